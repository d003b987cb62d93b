"""Frame sources for the pipeline: see ``base.py`` for the interface.

* ``FileSource``: a video file (every frame, or in real time like a camera);
* ``CameraSource``: a camera or stream, newest frame first (``LatestFrameGrabber``);
* ``ImageSource``: image files and folders of photos;
* ``PushSource``: frames pushed in by another thread or event loop (a WebRTC track, a receiver);
* ``Resized``: any source's frames brought to one size (the model input size).

A new source (a WebRTC track, a GPU decoder) goes in a module of its own here, subclassing ``Source``.
"""

from __future__ import annotations

from .base import Resized, Source, Transformed
from .camera import CameraSource, LatestFrameGrabber, is_camera, opencv_capture, source_fps
from .file import FileSource
from .images import ImageSource, list_images
from .push import PushSource

__all__ = ["CameraSource", "FileSource", "ImageSource", "LatestFrameGrabber", "PushSource", "Resized", "Source", "Transformed", "is_camera",
           "list_images", "opencv_capture", "source_fps"]
