"""A ring of pinned host buffers that takes engine output off the device without stopping the engine.

``.cpu()`` on a CUDA tensor waits for the whole device queue, so an engine thread that copies its
own results back idles while the copy runs and cannot queue the next batch. ``OutputRing`` instead:

* ``put(frames, items)`` (engine thread): takes a free slot (blocks only while every slot is in
  flight or still being encoded: back-pressure, never a lost or overwritten frame), queues the
  device-to-host copy into the slot's pinned buffer on a side copy stream that first waits for
  the producing stream, records an event, and returns at once;
* ``get()`` (encoder side): the oldest slot, in ``put`` order, once its copy has finished (waits on
  its event only); ``slot.frames`` is a numpy view of the pinned buffer, valid until
  ``release(slot)``; ``None`` once ``close()`` was called and every slot was handed out.

On the CPU the same class copies synchronously into ordinary buffers, so the tests exercise the
ordering, reuse and back-pressure logic that runs on the GPU.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import InputError

_POLL_S = 0.05  # how often a blocked put/get looks at the abort flag
_CLOSED = object()


@dataclass
class Slot:
    index: int
    frames: np.ndarray  # (N, H, W, C) or NV12 (N, H*3/2, W) uint8 view of the slot's host buffer
    items: list
    event: Any = None  # torch.cuda.Event of the copy; None on the CPU


class OutputRing:
    """``slots`` host buffers for uint8 (N, H, W, C) or NV12 (N, H*3/2, W) batches coming off ``device``."""

    def __init__(self, slots: int = 4, device: torch.device | str = "cpu"):
        if slots < 2:
            raise InputError(f"an output ring needs at least 2 slots (one copying, one encoding), got {slots}")
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        self.slots = slots
        self._buffers: list[torch.Tensor | None] = [None] * slots
        self._free: queue.Queue[int] = queue.Queue()
        for i in range(slots):
            self._free.put(i)
        self._ready: queue.Queue = queue.Queue()  # unbounded: at most ``slots`` entries + the close marker
        self._closed = False
        self._lock = threading.Lock()
        self.copies = 0
        self.waits_for_slot = 0  # puts that found no free slot: the encoder side is the bottleneck
        self._stream = torch.cuda.Stream(self.device) if self.cuda else None

    # ------------------------------------------------------------------------------ producer
    def put(self, frames: torch.Tensor, items: list, abort: threading.Event | None = None) -> bool:
        """Queue the copy of ``frames`` (one item per frame); False if ``abort`` was set while
        waiting for a free slot (nothing queued)."""
        if frames.dtype != torch.uint8 or frames.dim() not in (3, 4):
            raise InputError(f"output ring takes uint8 (N, H, W, C) or NV12 (N, H*3/2, W) batches, got {frames.dtype} "
                             f"{tuple(frames.shape)}")
        if len(items) != frames.shape[0]:
            raise InputError(f"{frames.shape[0]} frames but {len(items)} items")
        with self._lock:
            if self._closed:
                raise RuntimeError("put() on a closed output ring")
        index = self._take_free(abort)
        if index is None:
            return False
        host = self._buffer(index, tuple(frames.shape))
        event = None
        if self.cuda and frames.is_cuda:
            producer = torch.cuda.current_stream(frames.device)
            self._stream.wait_stream(producer)  # the copy starts after the engine's kernels
            with torch.cuda.stream(self._stream):
                host.copy_(frames, non_blocking=True)
                event = torch.cuda.Event()
                event.record(self._stream)
            # The allocator may hand ``frames``' memory to the engine again once the engine drops
            # it; this keeps it reserved until the copy stream is done with it.
            frames.record_stream(self._stream)
        else:
            host.copy_(frames)
        self.copies += 1
        self._ready.put(Slot(index, host.numpy(), list(items), event))
        return True

    def close(self) -> None:
        """No more puts; ``get`` returns None after the last queued slot."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._ready.put(_CLOSED)

    def _take_free(self, abort: threading.Event | None) -> int | None:
        try:
            return self._free.get_nowait()
        except queue.Empty:
            self.waits_for_slot += 1
        while abort is None or not abort.is_set():
            try:
                return self._free.get(timeout=_POLL_S)
            except queue.Empty:
                continue
        return None

    def _buffer(self, index: int, shape: tuple[int, ...]) -> torch.Tensor:
        """The slot's buffer as a (shape) view; reallocated only when it is too small or the frame
        size changed. The slot is free here, so nothing reads the old buffer any more."""
        buf = self._buffers[index]
        if buf is None or buf.shape[1:] != shape[1:] or buf.shape[0] < shape[0]:
            buf = torch.empty(shape, dtype=torch.uint8, pin_memory=self.cuda)
            self._buffers[index] = buf
        return buf[: shape[0]]

    # ------------------------------------------------------------------------------ consumer
    def get(self, abort: threading.Event | None = None) -> Slot | None:
        """The oldest queued slot once its copy is complete; None when closed and drained (or
        when ``abort`` is set while waiting)."""
        while True:
            try:
                slot = self._ready.get(timeout=_POLL_S)
                break
            except queue.Empty:
                if abort is not None and abort.is_set():
                    return None
        if slot is _CLOSED:
            self._ready.put(_CLOSED)  # later gets see the end too
            return None
        if slot.event is not None:
            slot.event.synchronize()  # waits for this copy only, not for the engine's queue
        return slot

    def release(self, slot: Slot) -> None:
        """The slot's frames are consumed: its buffer may be refilled."""
        self._free.put(slot.index)

    @property
    def pinned(self) -> bool:
        return self.cuda
