"""Cameras and streams (OpenCV ``VideoCapture``: an index, a URL, ``/dev/videoN``) as a live source.

Latency comes first: the capture keeps a buffer of one frame and a grabber thread keeps only the
newest frame, so the engine always works on the latest picture; stale ones are dropped and
counted. Each frame carries its capture time, for capture-to-display latency. A disconnected
camera can be reopened with backoff (``reconnect``).
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Protocol

import numpy as np

from ..errors import InputError
from ..frames import MILLISECONDS, Frame, bgr_to_rgb
from .base import Source

_WAIT_S = 0.1  # how often a waiting read looks at the stop flag


class Capture(Protocol):
    def read(self) -> tuple[bool, np.ndarray | None]: ...

    def release(self) -> None: ...


class StopFlag(Protocol):
    def is_set(self) -> bool: ...

    def wait(self, timeout: float | None = None) -> bool: ...


def is_camera(source: str) -> bool:
    return str(source).isdigit() or "://" in str(source) or str(source).startswith("/dev/video")


def opencv_capture(source: str):
    """``cv2.VideoCapture`` for an index, URL or file, with a one-frame buffer."""
    import cv2

    quiet = getattr(getattr(cv2, "utils", None), "logging", None)  # OpenCV prints a warning per failed backend
    level = quiet.getLogLevel() if quiet else None
    if quiet:
        quiet.setLogLevel(quiet.LOG_LEVEL_ERROR)
    try:
        cap = cv2.VideoCapture(int(source) if str(source).isdigit() else str(source))
    finally:
        if quiet:
            quiet.setLogLevel(level)
    if not cap.isOpened():
        kind = "camera" if is_camera(source) else "video file"
        raise InputError(f"cannot open {kind} {source!r}; check the index/URL/path (cameras: 0, 1, ...)")
    cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # ignored by some backends; the grabber drops stale frames anyway
    return cap


def source_fps(cap) -> float | None:
    try:
        import cv2

        fps = float(cap.get(cv2.CAP_PROP_FPS))
    except Exception:  # noqa: BLE001 - fakes and some backends have no properties
        return None
    return fps if 0 < fps < 1000 else None


class LatestFrameGrabber:
    """Reads the capture in a thread and keeps only the newest frame with its capture time."""

    def __init__(self, capture: Capture, pace_fps: float | None = None):
        self.capture = capture
        self.pace = 1.0 / pace_fps if pace_fps else None
        self.captured = 0
        self.dropped = 0
        self.ended = False
        self._slot: tuple[np.ndarray, float] | None = None
        self._cond = threading.Condition()
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rtstyle-grab", daemon=True)

    def start(self) -> "LatestFrameGrabber":
        self._thread.start()
        return self

    def _loop(self) -> None:
        next_due = time.perf_counter()
        try:
            while not self._halt.is_set():
                ok, frame = self.capture.read()
                if not ok or frame is None:
                    break
                stamp = time.perf_counter()
                with self._cond:
                    if self._slot is not None:
                        self.dropped += 1
                    self._slot = (frame, stamp)
                    self.captured += 1
                    self._cond.notify()
                if self.pace:
                    next_due += self.pace
                    time.sleep(max(0.0, next_due - time.perf_counter()))
        finally:
            with self._cond:
                self.ended = True
                self._cond.notify()

    def latest(self, timeout: float) -> tuple[np.ndarray, float] | None:
        """The newest unseen frame and its capture time; None on timeout or when the source ended."""
        with self._cond:
            self._cond.wait_for(lambda: self._slot is not None or self.ended, timeout)
            got, self._slot = self._slot, None
            return got

    @property
    def stopped(self) -> bool:
        return self._halt.is_set()

    def stop(self) -> None:
        """Stop reading and release the capture (idempotent)."""
        if self._halt.is_set():
            return
        self._halt.set()
        self._thread.join(timeout=2.0)
        self.capture.release()


class CameraSource(Source):
    """A camera or stream through ``open_capture(spec)`` (``opencv_capture``, or a fake in tests),
    newest frame first. ``stop_flag`` (anything with ``is_set``/``wait``) ends a waiting read and
    a reconnect. ``reconnect``: after a disconnect, reopen with backoff for up to
    ``reconnect_timeout`` seconds. ``pace_fps``: read no faster than this (a file via OpenCV)."""

    live = True

    def __init__(self, spec: str, open_capture: Callable[[str], Any] = opencv_capture,
                 stop_flag: StopFlag | None = None, reconnect: bool = False, reconnect_timeout: float = 30.0,
                 pace_fps: float | None = None):
        super().__init__()
        self.spec = spec
        self._open_capture = open_capture
        self._stop = stop_flag or threading.Event()
        self.reconnect, self.reconnect_timeout = reconnect, reconnect_timeout
        self.pace_fps = pace_fps
        self.reconnects = 0
        self.frames_captured = 0
        self._grabbed_dropped = 0
        self._grabber: LatestFrameGrabber | None = None
        self._capture = open_capture(spec)  # opened now, so a wrong index or URL fails before any work
        self.fps = source_fps(self._capture)
        self._t0: float | None = None

    def start(self) -> "CameraSource":
        if self._grabber is None and self._capture is not None:
            self._grabber = LatestFrameGrabber(self._capture, self.pace_fps).start()
        return self

    def read(self) -> Frame | None:
        self.start()
        while not self._stop.is_set():
            got = self._grabber.latest(timeout=_WAIT_S) if self._grabber is not None else None
            if got is not None:
                return self._frame(*got)
            if self._grabber is not None and not self._grabber.ended:
                continue
            self._retire()
            if not (self.reconnect and is_camera(self.spec)) or not self._reopen():
                if not self.end_reason:
                    self.end_reason = "disconnected" if is_camera(self.spec) else "source_ended"
                return None
        self.end_reason = self.end_reason or "interrupted"
        return None

    def _frame(self, image: np.ndarray, captured_at: float) -> Frame:
        if self._t0 is None:
            self._t0 = captured_at
        pts = round((captured_at - self._t0) * 1000)
        frame = Frame(bgr_to_rgb(image), pts, MILLISECONDS, self.frames_read, captured_at=captured_at)
        self.frames_read += 1
        return frame

    def _reopen(self) -> bool:
        """Reopen the camera with backoff until it works, stop is set, or the timeout passes."""
        deadline = time.perf_counter() + self.reconnect_timeout
        wait = 0.25
        while not self._stop.wait(wait) and time.perf_counter() < deadline:
            wait = min(2 * wait, 2.0)
            try:
                self._capture = self._open_capture(self.spec)
            except InputError:
                continue
            self.reconnects += 1
            self.warnings.append(f"camera {self.spec} reconnected after a disconnect")
            self._grabber = LatestFrameGrabber(self._capture, self.pace_fps).start()
            return True
        self.end_reason = "interrupted" if self._stop.is_set() else "disconnected"
        return False

    def _retire(self) -> None:
        """Stop the grabber and add its counts (once per grabber)."""
        g = self._grabber
        if g is None or g.stopped:
            return
        g.stop()
        self.frames_captured += g.captured
        self.frames_dropped += g.dropped
        self._grabber, self._capture = None, None

    def stop(self) -> None:
        self._retire()
        if self._capture is not None:  # opened but never started
            self._capture.release()
            self._capture = None
