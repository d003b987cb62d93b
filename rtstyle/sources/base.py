"""The ``Source`` interface: where the pipeline's frames come from.

A source hands out ``frames.Frame``s (uint8 RGB HWC + timestamp) one at a time::

    source.start()            # open the file / device / connection (idempotent)
    frame = source.read()     # the next frame, or None at the end (live sources block until one comes)
    source.stop()             # release everything (idempotent; also after errors)

or simply ``with source: for frame in source: ...``. ``live`` sources (cameras, streams, a file
played in real time) produce frames whether or not anyone keeps up: the pipeline then keeps only
the newest frame and counts the rest in ``frames_dropped``. Every source says why it ended in
``end_reason`` and collects non-fatal problems in ``warnings``.

A new kind of source (a WebRTC track, a hardware decoder) subclasses ``Source``, implements
``read`` (and ``start``/``stop`` if it holds resources), and goes in its own module of this
package; nothing else in the runtime changes.
"""

from __future__ import annotations

from typing import Iterator

from ..frames import Frame, fit_size, resize


class Source:
    live: bool = False  # frames arrive in real time: drop stale ones rather than queue them

    def __init__(self) -> None:
        self.warnings: list[str] = []
        self.frames_read = 0  # frames handed out by read()
        self.frames_dropped = 0  # frames the source itself skipped (newest-frame policy)
        self.end_reason = ""  # why read() returned None: source_ended | disconnected | interrupted

    def start(self) -> "Source":
        return self

    def read(self) -> Frame | None:
        raise NotImplementedError

    def stop(self) -> None:
        pass

    def __iter__(self) -> Iterator[Frame]:
        self.start()
        try:
            while (frame := self.read()) is not None:
                yield frame
        finally:
            self.stop()

    def __enter__(self) -> "Source":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class Transformed(Source):
    """Another source's frames, each changed by ``transform`` (a subclass hook); start, stop, the
    end reason, liveness and warnings are the inner source's."""

    def __init__(self, inner: Source):
        super().__init__()
        self.inner = inner
        self.live = inner.live
        self.warnings = inner.warnings  # one list: the inner source's warnings show through

    def transform(self, frame: Frame) -> Frame:
        raise NotImplementedError

    def start(self) -> "Transformed":
        self.inner.start()
        return self

    def read(self) -> Frame | None:
        frame = self.inner.read()
        if frame is None:
            self.end_reason = self.inner.end_reason
            return None
        self.frames_read += 1
        return self.transform(frame)

    def stop(self) -> None:
        self.inner.stop()


class Resized(Transformed):
    """Another source's frames at one size: ``size`` if given, else the first frame's size fitted
    by ``fit_size(resize, max_side)``. Later frames of another resolution are brought to the same
    size, so a batch and a video writer always see one size."""

    def __init__(self, inner: Source, size: tuple[int, int] | None = None, resize_to: tuple[int, int] | None = None,
                 max_side: int | None = None):
        super().__init__(inner)
        self.size = size
        self._resize, self._max_side = resize_to, max_side

    def transform(self, frame: Frame) -> Frame:
        if self.size is None:
            h, w = frame.image.shape[:2]
            self.size = fit_size(w, h, self._resize, self._max_side)
        frame.image = resize(frame.image, self.size)
        return frame
