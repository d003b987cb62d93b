"""Where stylized frames go: one chain of sinks, built once and used by ``stylize``, ``live`` and
``eval temporal``.

The pipeline calls ``chain(image, frame)`` for every frame, in order, on the caller's thread:
``image`` is the engine's output (uint8 RGB HWC), ``frame`` the ``frames.Frame`` it came from
(the model-input picture, its timestamp, its capture time). Each sink's ``write`` returns the
image for the next sink (the smoother changes it; the others pass it on) or None to end the
frame's way down the chain. ``chain.close(outcome)`` closes every sink even when one fails:
``"done"``, ``"interrupted"`` (writers finalise a playable partial file) or ``"failed"`` (writers
leave no half-written output behind).

Sinks: ``SmoothingSink`` (flow-guided temporal smoothing), ``StatsSink`` (frames, fps,
capture-to-display latency), ``PreviewSink`` (an OpenCV window; ``Display``), ``WriterSink``
(a ``VideoWriter``, opened up front or on the first frame), ``VirtualCamSink`` (pyvirtualcam),
``CallbackSink`` (any function: measurements, tests). A new sink subclasses ``Sink``.
"""

from __future__ import annotations

import collections
import contextlib
import os
import sys
import time
from typing import Callable

import numpy as np

from .choices import LIVE_KEYS
from .errors import BackendUnavailableError, InputError
from .frames import Frame, resize, rgb_to_bgr, to_gray
from .temporal import TemporalSmoother
from .video import VideoWriter

OUTCOMES = ("done", "interrupted", "failed")
_LATENCY_WINDOW = 10_000  # latencies kept for the percentile; the mean covers the whole run


class Sink:
    def write(self, image: np.ndarray, frame: Frame) -> np.ndarray | None:
        return image

    def close(self, outcome: str = "done") -> None:
        pass


class SinkChain:
    def __init__(self, sinks: list[Sink | None]):
        self.sinks = [s for s in sinks if s is not None]

    @property
    def output(self):
        """The file the chain's writer finalised (after close), or None."""
        return next((s.output for s in self.sinks if isinstance(s, WriterSink)), None)

    def __call__(self, image: np.ndarray, frame: Frame) -> None:
        for sink in self.sinks:
            image = sink.write(image, frame)
            if image is None:
                return

    def close(self, outcome: str = "done") -> None:
        """Close every sink; the first error is raised after all had their turn."""
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}, got {outcome!r}")
        error: BaseException | None = None
        for sink in self.sinks:
            try:
                sink.close(outcome)
            except BaseException as exc:  # noqa: BLE001 - re-raised below
                error = error or exc
                outcome = "failed" if outcome == "done" else outcome
        if error is not None:
            raise error


class CallbackSink(Sink):
    """``fn(image, frame)`` for every frame; the image passes on unchanged."""

    def __init__(self, fn: Callable[[np.ndarray, Frame], None]):
        self.fn = fn

    def write(self, image, frame):
        self.fn(image, frame)
        return image


class SmoothingSink(Sink):
    """Flow-guided blend with the previous output (``temporal.TemporalSmoother``). Here, after
    the engine, because frames arrive in order and one at a time: the result does not depend on
    the batch size. Flow is computed on the model-input frame. ``style_of(frame)``, when given,
    names the style that produced each frame: the smoother starts afresh when it changes, so
    the previous style is never blended into the new one."""

    def __init__(self, alpha: float, style_of: Callable[[Frame], object] | None = None):
        self.smoother = TemporalSmoother(alpha)
        self.style_of = style_of
        self._style: object = None

    def write(self, image, frame):
        if self.style_of is not None:
            style = self.style_of(frame)
            if style != self._style:
                self.smoother.reset()
                self._style = style
        return self.smoother(image, to_gray(frame.image))

    def reset(self) -> None:
        self.smoother.reset()


# ------------------------------------------------------------------------------------ stats

class FpsMeter:
    """Frames per second over a sliding one-second window."""

    def __init__(self, window_s: float = 1.0):
        self.window_s = window_s
        self._times: collections.deque[float] = collections.deque()

    def tick(self, now: float) -> float:
        self._times.append(now)
        while self._times and now - self._times[0] > self.window_s:
            self._times.popleft()
        span = now - self._times[0]
        return (len(self._times) - 1) / span if span > 0 else 0.0


class StatsSink(Sink):
    """Counts frames, the current fps, and capture-to-here latency of frames with a capture time
    (put it after the preview: capture to display)."""

    def __init__(self):
        self.frames = 0
        self.fps = 0.0
        self._meter = FpsMeter()
        self._latencies: collections.deque[float] = collections.deque(maxlen=_LATENCY_WINDOW)
        self._latency_sum = 0.0

    def write(self, image, frame):
        now = time.perf_counter()
        self.frames += 1
        self.fps = self._meter.tick(now)
        if frame.captured_at is not None:
            self._latencies.append(now - frame.captured_at)
            self._latency_sum += now - frame.captured_at
        return image

    @property
    def latency_ms_mean(self) -> float:
        return 1000 * self._latency_sum / len(self._latencies) if self._latencies else 0.0

    @property
    def latency_ms_p95(self) -> float:
        return 1000 * float(np.percentile(np.fromiter(self._latencies, float), 95)) if self._latencies else 0.0


# ---------------------------------------------------------------------------------- preview

def gui_available() -> bool:
    """True when OpenCV has a GUI backend and there is a display to open a window on."""
    import cv2

    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False  # GUI builds abort the process without a display
    try:
        cv2.namedWindow("rtstyle-probe", cv2.WINDOW_AUTOSIZE)
        cv2.destroyWindow("rtstyle-probe")
        return True
    except cv2.error:
        return False  # opencv-python-headless


class Display:
    """Show RGB frames in an OpenCV window; headless when asked or when no GUI exists."""

    def __init__(self, title: str = "rtstyle", window: bool | None = None):
        self.title = title
        if window is None:
            window = gui_available()
        elif window and not gui_available():
            raise InputError("showing frames needs a display and an OpenCV build with GUI support "
                             "(pip install opencv-python instead of opencv-python-headless); "
                             "run headless (live: --no-window; stylize: without --preview)")
        self.window = window
        self.show_help = False  # the key help (LIVE_KEYS) on screen; live's h key toggles it

    def toggle_help(self) -> None:
        self.show_help = not self.show_help

    def compose(self, rgb: np.ndarray, overlay: str | None = None) -> np.ndarray:
        """The frame as shown: the overlay line and, when on, the key help, each on a dark box."""
        lines = [overlay] if overlay else []
        if self.show_help:
            lines += [f"{keys}: {action}" for keys, action in LIVE_KEYS]
        return draw_text_box(rgb, lines) if lines else rgb

    def show(self, rgb: np.ndarray, overlay: str | None = None) -> int:
        """Show one frame; returns the key pressed (-1 for none; always -1 headless)."""
        if not self.window:
            return -1
        import cv2

        cv2.imshow(self.title, rgb_to_bgr(self.compose(rgb, overlay)))
        return cv2.waitKey(1) & 0xFF

    def close(self) -> None:
        if self.window:
            import cv2

            with contextlib.suppress(cv2.error):  # the user may have closed it already
                cv2.destroyWindow(self.title)


def draw_text_box(rgb: np.ndarray, lines: list[str], origin: tuple[int, int] = (6, 6), scale: float = 0.5,
                  alpha: float = 0.65) -> np.ndarray:
    """A copy of ``rgb`` with ``lines`` in white on a dark box blended under them: readable on
    light and dark styles alike (a text shadow alone vanishes on bright pictures)."""
    import cv2

    font, thickness, pad = cv2.FONT_HERSHEY_SIMPLEX, 1, 4
    sizes = [cv2.getTextSize(line, font, scale, thickness) for line in lines]
    line_h = max(h + base for (_, h), base in sizes) + pad
    x0, y0 = origin
    height, width = rgb.shape[:2]
    x1 = min(width, x0 + max(w for (w, _), _ in sizes) + 2 * pad)
    y1 = min(height, y0 + line_h * len(lines) + pad)
    out = np.ascontiguousarray(rgb).copy()
    box = out[y0:y1, x0:x1]
    box[:] = (box.astype(np.float32) * (1 - alpha)).astype(np.uint8)  # darken: black at alpha
    for i, (line, ((_, h), _)) in enumerate(zip(lines, sizes)):
        baseline_y = y0 + pad + i * line_h + h
        cv2.putText(out, line, (x0 + pad, baseline_y), font, scale, (255, 255, 255), thickness, cv2.LINE_AA)
    return out


class PreviewSink(Sink):
    """Shows each frame in ``display`` with an optional ``overlay()`` text; ``on_key(key)`` gets
    every key pressed in the window."""

    def __init__(self, display: Display, overlay: Callable[[], str | None] | None = None,
                 on_key: Callable[[int], None] | None = None):
        self.display, self.overlay, self.on_key = display, overlay, on_key

    def write(self, image, frame):
        key = self.display.show(image, self.overlay() if self.overlay is not None else None)
        if key != -1 and self.on_key is not None:
            self.on_key(key)
        return image

    def close(self, outcome="done"):
        self.display.close()


# ---------------------------------------------------------------------------------- outputs

class WriterSink(Sink):
    """Encodes frames with a ``VideoWriter``: ``writer`` itself, or ``open_writer(width, height)``
    called on the first frame (when the size is known). Timestamps are the frame's own (``pts``,
    ``duration``), or with ``capture_clock`` its capture time in ms (a live recording keeps real
    timing). Frames of another size than the first (a style switch to a model of another scale)
    are resized to it. Closing keeps the file (a partial one when interrupted) or, after a
    failure, removes it."""

    def __init__(self, writer: VideoWriter | None = None,
                 open_writer: Callable[[int, int], VideoWriter] | None = None, capture_clock: bool = False):
        if (writer is None) == (open_writer is None):
            raise ValueError("WriterSink needs a writer or open_writer, not both")
        self.writer, self._open, self.capture_clock = writer, open_writer, capture_clock
        self.output = None
        self._t0: float | None = None

    def write(self, image, frame):
        h, w = image.shape[:2]
        if self.writer is None:
            self.writer = self._open(w, h)
        if (w, h) != (self.writer.width, self.writer.height):
            image = resize(image, (self.writer.width, self.writer.height))
        if self.capture_clock and frame.captured_at is not None:
            self._t0 = frame.captured_at if self._t0 is None else self._t0
            self.writer.write(image, round((frame.captured_at - self._t0) * 1000))
        else:
            self.writer.write(image, frame.pts, frame.duration)
        return image

    @property
    def warnings(self) -> list[str]:
        return self.writer.warnings if self.writer is not None else []

    def close(self, outcome="done"):
        if self.writer is not None:
            self.output = self.writer.close(keep=outcome != "failed", partial=outcome == "interrupted")


def open_virtual_cam(width: int, height: int, fps: float):
    try:
        import pyvirtualcam
    except ImportError:
        raise BackendUnavailableError("--virtual-cam needs pyvirtualcam: pip install 'rtstyle[camera]' "
                                      "(and a virtual camera driver such as v4l2loopback or OBS)") from None
    try:
        return pyvirtualcam.Camera(width=width, height=height, fps=fps, fmt=pyvirtualcam.PixelFormat.RGB)
    except RuntimeError as exc:
        raise BackendUnavailableError(f"no virtual camera device: {exc}") from None


def check_virtual_cam_installed() -> None:
    import importlib.util

    if importlib.util.find_spec("pyvirtualcam") is None:
        open_virtual_cam(0, 0, 0)  # raises the install hint


class VirtualCamSink(Sink):
    """Sends frames to a virtual camera (pyvirtualcam), opened on the first frame at its size."""

    def __init__(self, fps: float = 30.0):
        check_virtual_cam_installed()
        self.fps = fps
        self.cam = None
        self.size: tuple[int, int] | None = None

    def write(self, image, frame):
        h, w = image.shape[:2]
        if self.cam is None:
            self.size = (w, h)
            self.cam = open_virtual_cam(w, h, self.fps)
        self.cam.send(resize(image, self.size))
        return image

    def close(self, outcome="done"):
        if self.cam is not None:
            self.cam.close()


def build_sinks(smoothing: float = 0.0, measure: list[Sink] | None = None, preview: PreviewSink | None = None,
                stats: StatsSink | None = None, writer: WriterSink | None = None,
                virtual_cam: VirtualCamSink | None = None,
                style_of: Callable[[Frame], object] | None = None) -> SinkChain:
    """The one chain every front end uses, in the one order: smoothing (it changes the image),
    measurements, preview, stats (after the preview: capture-to-display latency), writer,
    virtual camera. Leave out what a front end does not need. ``style_of``: see ``SmoothingSink``
    (front ends that switch styles while running)."""
    smoother = SmoothingSink(smoothing, style_of) if smoothing > 0 else None
    return SinkChain([smoother, *(measure or []), preview, stats, writer, virtual_cam])
