"""Frames pushed in from elsewhere: a WebRTC track's callback, a network receiver, a test.

The producer calls ``push(image)`` from its own thread (or event loop) and ``end()`` when done;
the pipeline's reader thread takes them with ``read()``. ``newest_only`` (the default, for live
feeds) keeps a single slot: a frame not yet taken is replaced by a newer one and counted in
``frames_dropped``, so ``push`` never blocks the producer. Otherwise frames queue up to
``maxsize`` and ``push`` waits for room (every frame is processed).
"""

from __future__ import annotations

import collections
import threading
import time
from fractions import Fraction

import numpy as np

from ..frames import MILLISECONDS, Frame
from .base import Source

_WAIT_S = 0.1  # how often a waiting read or push looks at the stop flag


class PushSource(Source):
    def __init__(self, newest_only: bool = True, maxsize: int = 8, stop_flag=None):
        super().__init__()
        self.live = newest_only
        self.maxsize = 1 if newest_only else max(1, maxsize)
        self._stop = stop_flag or threading.Event()
        self._frames: collections.deque[Frame] = collections.deque()
        self._cond = threading.Condition()
        self._ended = False
        self._pushed = 0
        self._t0: float | None = None

    def push(self, image: np.ndarray, pts: int | None = None, time_base: Fraction = MILLISECONDS,
             captured_at: float | None = None) -> bool:
        """Hand over one uint8 RGB frame; ``pts`` defaults to the time since the first push (ms).
        Returns False once the source ended or was stopped (the producer may stop sending)."""
        now = time.perf_counter() if captured_at is None else captured_at
        with self._cond:
            if self._t0 is None:
                self._t0 = now
            if pts is None:
                pts, time_base = round((now - self._t0) * 1000), MILLISECONDS
            while len(self._frames) >= self.maxsize and not self.live:
                if self._ended or self._stop.is_set():
                    return False
                self._cond.wait(_WAIT_S)
            if self._ended or self._stop.is_set():
                return False
            if self.live and self._frames:
                self._frames.popleft()
                self.frames_dropped += 1
            self._frames.append(Frame(image, pts, time_base, self._pushed, captured_at=now))
            self._pushed += 1
            self._cond.notify_all()
            return True

    def end(self, reason: str = "source_ended") -> None:
        """No more frames: ``read`` returns the queued ones, then None with ``end_reason``."""
        with self._cond:
            if not self._ended:
                self._ended = True
                self.end_reason = self.end_reason or reason
            self._cond.notify_all()

    def read(self) -> Frame | None:
        with self._cond:
            while not self._frames:
                if self._ended:
                    return None
                if self._stop.is_set():
                    self.end_reason = self.end_reason or "interrupted"
                    return None
                self._cond.wait(_WAIT_S)
            frame = self._frames.popleft()
            frame.index = self.frames_read
            self.frames_read += 1
            self._cond.notify_all()
            return frame

    def stop(self) -> None:
        self.end("interrupted" if self._stop.is_set() else "source_ended")
