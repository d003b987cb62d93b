"""A video file as a source: every frame in order (``stylize``, ``eval temporal``, ``live
--every-frame``), or played in real time like a camera (``live`` on a file)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Iterator

from ..frames import Frame
from ..video import VideoReader
from .base import Source


class FileSource(Source):
    """Frames of ``path`` decoded by ``VideoReader`` (PyAV, OpenCV fallback), optionally within
    [start, start + duration). ``realtime``: hand frames out no faster than their timestamps (a
    file standing in for a camera); the pipeline then treats it as live and drops stale frames.
    ``reader``: any ``VideoReader`` to use instead (e.g. ``gpu.DeviceVideoReader``, whose frames
    are tensors on the GPU: the batcher stacks them there, nothing goes through the host)."""

    def __init__(self, path: str | Path | None = None, start: float | None = None, duration: float | None = None,
                 decoder: str = "auto", realtime: bool = False, reader: VideoReader | None = None):
        super().__init__()
        if (path is None) == (reader is None):
            raise ValueError("FileSource needs a path or a reader")
        self.reader = reader if reader is not None else VideoReader(path, start, duration, decoder=decoder)
        self.warnings = self.reader.warnings  # the reader appends while decoding
        self.info = self.reader.info
        self.live = realtime
        self._frames: Iterator[Frame] | None = None
        self._t0: float | None = None

    def start(self) -> "FileSource":
        if self._frames is None:
            self._frames = iter(self.reader)
        return self

    def read(self) -> Frame | None:
        self.start()
        frame = next(self._frames, None)
        if frame is None:
            self.end_reason = self.end_reason or "source_ended"
            return None
        now = time.perf_counter()
        if self.live:
            if self._t0 is None:
                self._t0 = now - frame.time
            time.sleep(max(0.0, self._t0 + frame.time - now))  # real time, as a camera would deliver it
            now = time.perf_counter()
        frame.captured_at = now
        self.frames_read += 1
        return frame

    def stop(self) -> None:
        if self._frames is not None and hasattr(self._frames, "close"):
            self._frames.close()  # the generator closes the container now, not at garbage collection
