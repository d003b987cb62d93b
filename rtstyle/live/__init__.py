"""``rtstyle live``: a camera (or a stream, or a file acting as one) through the shared pipeline,
into a window, a recording and/or a virtual camera.

* ``loop.py``: ``LiveConfig``, ``LiveResult``, ``run_live``;
* ``styles.py``: the models and style images switched with keys.

The camera itself is ``sources.CameraSource``; the window is ``sinks.Display``.
"""

from __future__ import annotations

from .loop import LiveConfig, LiveResult, open_live_source, run_live
from .styles import Styles, style_images

__all__ = ["LiveConfig", "LiveResult", "Styles", "open_live_source", "run_live", "style_images"]
