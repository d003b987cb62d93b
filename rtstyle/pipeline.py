"""The streaming runtime: decode -> batch -> engine -> sink, in threads joined by bounded queues.

Public API
----------
* ``run_pipeline(source, engine, sink, config=PipelineConfig(), stop=None, on_progress=None)
  -> PipelineStats``: ``source`` is a ``sources.Source`` (file, camera, images, ...; started,
  read until None and stopped here) or any iterable of frame items with an ``.image`` attribute
  (uint8 RGB HWC, e.g. ``frames.Frame``); ``engine`` any ``Engine`` (None: pass frames
  through, for decode/encode-only timing); ``sink(image, item)`` is called once per frame, in
  order, on the calling thread (so GUIs and signal handlers work): usually a ``sinks.SinkChain``.
  Stages:

  - *decode* thread: pulls items from ``source`` and packs them into batches (``HostBatcher``:
    pinned host memory when the engine is on CUDA, so the copy to the GPU is asynchronous).
    For a live source (``source.live``, or ``config.drop_stale``) a full queue to the engine
    holds only the newest batch: older ones are dropped (``stats.frames_dropped``), so a slow
    engine shows the latest picture instead of falling further behind;
  - *engine* thread: ``engine(batch.to(device, non_blocking=True))`` then the result back to
    the host; with ``config.output_ring`` the copy back is queued into a pinned slot of a
    ``gpu.ring.OutputRing`` instead, so the engine goes on with the next batch while it runs
    (the sink's images are then views of the slot, valid until the sink returns: a sink that
    keeps a frame copies it; every sink in ``sinks.py`` except ``CallbackSink`` does);
  - *sink* (calling thread): ``sink(out_image, item)`` for every frame of the batch.

  Frames may also be uint8 (H, W, 3) torch tensors already on the engine's device (a GPU
  decoder: ``gpu.decode``): they are batched where they are.

  With the engine on CUDA, the decode thread and the engine thread each queue their GPU work on
  a stream of their own (never the legacy default stream, where FFmpeg's NVDEC copies run and
  which would serialise them): a batch decoded on the GPU reaches the engine with a CUDA event
  that the engine's stream waits on, so no thread waits on the host for another's kernels.
  ``config.output_nv12`` (a ``gpu.colour.YuvSpec``) converts the engine's output to NV12 on the
  engine's device before the copy back (half the bytes of RGB, no host colour conversion): the
  sink then gets uint8 (H*3/2, W) NV12 images, as ``VideoWriter.write_nv12`` takes them.

  Queues hold at most ``config.queue_batches`` batches each, so memory stays flat however
  long the video. An end-of-stream marker flows through every queue. Setting ``stop`` (an
  ``threading.Event``, e.g. from a signal handler) or a ``KeyboardInterrupt`` in the caller
  stops reading and flushes every frame already read; ``stats.interrupted`` is then True
  (a second ``KeyboardInterrupt`` propagates at once). ``on_progress(stats)`` runs after
  each batch reaches the sink.
  An exception in any stage stops all stages and is re-raised in the caller.

* ``HostBatcher(batch_size, device)``: pack uint8 HWC frames into a (N, H, W, 3) tensor, in
  a ring of pinned buffers when ``device`` is CUDA. Usable alone (engine-only benchmarks).
* ``run_engine(engine, batch) -> np.ndarray``: one batch through the engine and back to host.
* ``PipelineStats``: frames in/out/dropped, batches, wall time, busy seconds per stage, fps.
* ``StopFlag(*parents)``: a stop request set here or by any parent event (a signal handler's).

The last batch may be partial: it is run at its real size, never padded, so no padding frame
can reach the output.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable

import numpy as np
import torch

from .errors import InputError
from .gpu.colour import YuvSpec, rgb_to_nv12
from .gpu.ring import OutputRing
from .sources import Source

_END = object()  # end-of-stream marker
_POLL_S = 0.05  # how often blocked stages look at the abort flag


@dataclass(frozen=True)
class PipelineConfig:
    batch_size: int = 1
    queue_batches: int = 3  # capacity of each queue, in batches
    drop_stale: bool | None = None  # keep only the newest batches for the engine; None: when the source is live
    output_ring: bool = False  # engine output back through a pinned ring of async copies (not with drop_stale)
    output_nv12: YuvSpec | None = None  # engine output converted to NV12 on its device; the sink gets NV12 images

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise InputError(f"batch size must be >= 1, got {self.batch_size}")
        if self.queue_batches < 1:
            raise InputError(f"queue_batches must be >= 1, got {self.queue_batches}")


@dataclass
class PipelineStats:
    frames_in: int = 0
    frames_out: int = 0
    frames_dropped: int = 0  # live sources: read but replaced by a newer frame before the engine took it
    batches: int = 0
    wall_s: float = 0.0
    busy_s: dict[str, float] = field(default_factory=lambda: {"decode": 0.0, "engine": 0.0, "sink": 0.0})
    interrupted: bool = False
    tiles: int = 0  # tiled runs (rtstyle.tiles): the pieces the engine saw; frames_in/out count whole frames

    @property
    def fps(self) -> float:
        return self.frames_out / self.wall_s if self.wall_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["fps"] = round(self.fps, 3)
        d["ms_per_frame"] = {k: round(1000 * v / max(1, self.frames_out), 3) for k, v in self.busy_s.items()}
        return d

    def summary(self) -> str:
        stages = ", ".join(f"{k} {1000 * v / max(1, self.frames_out):.1f}" for k, v in self.busy_s.items())
        dropped = f" ({self.frames_dropped} dropped)" if self.frames_dropped else ""
        dropped += f" in {self.tiles} tiles" if self.tiles else ""
        return (f"{self.frames_in} frames in, {self.frames_out} out{dropped}, {self.fps:.2f} fps over {self.wall_s:.1f} s "
                f"(ms/frame busy: {stages})")


@dataclass
class _Batch:
    frames: torch.Tensor  # (N, H, W, 3) uint8 on host (on the device for a device decoder's frames)
    items: list
    ready: Any = None  # torch.cuda.Event after which ``frames`` (made on the GPU) may be read


def _side_stream(device: torch.device):
    """A CUDA stream of the calling thread's own on ``device`` (a context manager), or nothing."""
    if device.type != "cuda":
        return contextlib.nullcontext()
    return torch.cuda.stream(torch.cuda.Stream(device))


def _wait_until_ready(batch: _Batch) -> None:
    """Make the current stream wait (on the GPU, not the host) for a batch made on another one,
    and keep its memory from being reused until this stream is done with it."""
    if batch.ready is not None:
        current = torch.cuda.current_stream(batch.frames.device)
        current.wait_event(batch.ready)
        batch.frames.record_stream(current)


class HostBatcher:
    """Collects frames into uint8 (N, H, W, 3) batches. On CUDA the batches live in a ring of
    pinned buffers, so ``tensor.to(device, non_blocking=True)`` overlaps with the next decode; the
    ring is larger than what the queues can hold, so a buffer is never refilled while in use."""

    def __init__(self, batch_size: int, device: torch.device | str = "cpu", ring: int = 8):
        self.batch_size = batch_size
        self.pinned = torch.device(device).type == "cuda" and torch.cuda.is_available()
        self.ring = ring
        self._buffers: list[torch.Tensor] = []
        self._next = 0
        self._items: list = []
        self._shape: tuple[int, ...] | None = None

    def add(self, image: np.ndarray | torch.Tensor, item: Any = None) -> _Batch | None:
        """Add one frame; returns a full batch when ready. A frame of another size flushes first
        (returned), and the new frame starts the next batch."""
        flushed = None
        if self._shape is not None and image.shape != self._shape:
            flushed = self.flush()
        self._shape = image.shape
        self._items.append((image, item))
        if len(self._items) == self.batch_size:
            return self.flush()  # flushed is None here: a size change leaves a batch of one pending
        return flushed

    def flush(self) -> _Batch | None:
        """The partial batch so far (real size, no padding), or None."""
        if not self._items:
            return None
        images = [im for im, _ in self._items]
        items = [it for _, it in self._items]
        self._items = []
        n = len(images)
        if isinstance(images[0], torch.Tensor):  # decoded on the device: batch it there
            buf = torch.stack(images)
            ready = None
            if buf.is_cuda:
                # The engine thread reads it on its own stream: it waits for this event there.
                ready = torch.cuda.Event()
                ready.record(torch.cuda.current_stream(buf.device))
            return _Batch(buf, items, ready)
        if self.pinned:
            buf = self._buffer(images[0].shape)[:n]
            for dst, src in zip(buf, images):
                dst.copy_(torch.from_numpy(src))
        else:
            buf = torch.from_numpy(np.stack(images))
        return _Batch(buf, items)

    def _buffer(self, shape: tuple[int, ...]) -> torch.Tensor:
        full = (self.batch_size, *shape)
        if len(self._buffers) < self.ring:
            self._buffers.append(torch.empty(full, dtype=torch.uint8).pin_memory())
            return self._buffers[-1]
        if tuple(self._buffers[self._next].shape) != full:
            self._buffers[self._next] = torch.empty(full, dtype=torch.uint8).pin_memory()
        buf = self._buffers[self._next]  # the oldest buffer: long since consumed
        self._next = (self._next + 1) % self.ring
        return buf


class StopFlag:
    """A stop request: set here, or by any of ``parents`` (e.g. the event a signal handler sets).
    Quacks like ``threading.Event`` for the pipeline and the sources."""

    def __init__(self, *parents: threading.Event | None):
        self._own = threading.Event()
        self._parents = [p for p in parents if p is not None]

    def set(self) -> None:
        self._own.set()

    def is_set(self) -> bool:
        return self._own.is_set() or any(p.is_set() for p in self._parents)

    def wait(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.perf_counter() + timeout
        while not self.is_set():
            left = _POLL_S if deadline is None else min(_POLL_S, deadline - time.perf_counter())
            if left <= 0:
                return False
            self._own.wait(left)
        return True


def run_engine(engine, frames: torch.Tensor, non_blocking: bool = True, nv12: YuvSpec | None = None) -> np.ndarray:
    """One uint8 NHWC batch through ``engine`` (copied to its device) and back as numpy (NV12
    (N, H*3/2, W), converted on the engine's device, with ``nv12``). ``non_blocking=False``
    finishes the copy before returning control, so the host buffer may be refilled at once (the
    newest-frame policy recycles pinned buffers faster than the queues say)."""
    out = frames if engine is None else engine(frames.to(engine.device, non_blocking=non_blocking))
    if nv12 is not None:
        out = rgb_to_nv12(out, nv12)
    return out.cpu().numpy()  # .cpu() waits for the device, so the input buffer is free again


class _Stages:
    """Shared state: the abort flag (errors), the first error, and timing."""

    def __init__(self, stop: threading.Event | StopFlag):
        self.stop = stop  # graceful: stop reading, flush in-flight frames
        self.abort = threading.Event()  # an error: everyone leaves now
        self.error: BaseException | None = None
        self.lock = threading.Lock()
        self.stats = PipelineStats()
        self.started = time.perf_counter()

    def fail(self, exc: BaseException) -> None:
        with self.lock:
            if self.error is None:
                self.error = exc
        self.abort.set()

    def put(self, q: queue.Queue, item) -> bool:
        while not self.abort.is_set():
            try:
                q.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def get(self, q: queue.Queue):
        while not self.abort.is_set():
            try:
                return q.get(timeout=_POLL_S)
            except queue.Empty:
                continue
        return _END


    def put_newest(self, q: queue.Queue, item) -> bool:
        """Put without waiting: a full queue gives up its oldest entry (counted as dropped)."""
        while not self.abort.is_set():
            try:
                q.put_nowait(item)
                return True
            except queue.Full:
                try:
                    old = q.get_nowait()
                except queue.Empty:
                    continue
                self.stats.frames_dropped += len(old.items)
        return False


def _read_items(source: Source | Iterable):
    """``(read, close)`` for a ``Source`` or a plain iterable of items."""
    if isinstance(source, Source):
        source.start()
        return source.read, source.stop
    it = iter(source)
    return (lambda: next(it, None)), getattr(it, "close", lambda: None)


def _decode_stage(st: _Stages, source: Source | Iterable, batcher: HostBatcher, out_q: queue.Queue,
                  newest_only: bool, device: torch.device) -> None:
    try:
        with _side_stream(device):  # a GPU decoder's conversions and the batching stay off the default stream
            _decode(st, source, batcher, out_q, newest_only)
    except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
        st.fail(exc)


def _decode(st: _Stages, source: Source | Iterable, batcher: HostBatcher, out_q: queue.Queue, newest_only: bool) -> None:
    close = None
    try:
        read, close = _read_items(source)
        while not st.stop.is_set() and not st.abort.is_set():
            t0 = time.perf_counter()
            item = read()
            if item is None:
                break
            batch = batcher.add(item.image, item)
            st.stats.busy_s["decode"] += time.perf_counter() - t0
            st.stats.frames_in += 1
            if batch is not None and not (st.put_newest(out_q, batch) if newest_only else st.put(out_q, batch)):
                return
        batch = batcher.flush()
        if batch is not None and not st.put(out_q, batch):
            return
        st.put(out_q, _END)
    except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
        st.fail(exc)
    finally:
        if close is not None:
            close()  # the source releases its file or device now, not at garbage collection


def _engine_stage(st: _Stages, engine, in_q: queue.Queue, out_q: queue.Queue, newest_only: bool,
                  ring: OutputRing | None = None, nv12: YuvSpec | None = None) -> None:
    try:
        with _side_stream(engine.device if engine is not None else torch.device("cpu")):
            _engine_loop(st, engine, in_q, out_q, newest_only, ring, nv12)
    except BaseException as exc:  # noqa: BLE001
        st.fail(exc)


def _engine_loop(st: _Stages, engine, in_q: queue.Queue, out_q: queue.Queue, newest_only: bool,
                 ring: OutputRing | None, nv12: YuvSpec | None) -> None:
    while True:
        batch = st.get(in_q)
        if batch is _END:
            st.put(out_q, _END)
            return
        t0 = time.perf_counter()
        _wait_until_ready(batch)
        if ring is not None:
            _engine_into_ring(st, engine, batch, ring, out_q, nv12)
            continue
        out = run_engine(engine, batch.frames, non_blocking=not newest_only, nv12=nv12)
        st.stats.busy_s["engine"] += time.perf_counter() - t0
        st.stats.batches += 1
        if len(out) != len(batch.items):
            raise RuntimeError(f"engine returned {len(out)} frames for a batch of {len(batch.items)}")
        if not st.put(out_q, (out, batch.items)):
            return


_IN_RING = object()  # marker on the results queue: the next batch waits in the output ring


def _engine_into_ring(st: _Stages, engine, batch: _Batch, ring: OutputRing, out_q: queue.Queue,
                      nv12: YuvSpec | None = None) -> None:
    """Queue ``batch`` through the engine and its copy back into ``ring``, without waiting."""
    t0 = time.perf_counter()
    frames = batch.frames
    if frames.is_cuda:
        # Decoded on the device by another thread: keep its memory until this stream is done.
        frames.record_stream(torch.cuda.current_stream(frames.device))
    out = frames if engine is None else engine(frames.to(engine.device, non_blocking=True))
    if nv12 is not None:
        out = rgb_to_nv12(out, nv12)
    if len(out) != len(batch.items):
        raise RuntimeError(f"engine returned {len(out)} frames for a batch of {len(batch.items)}")
    queued = ring.put(out, batch.items, st.abort)  # waits only while every slot is still being encoded
    st.stats.busy_s["engine"] += time.perf_counter() - t0
    st.stats.batches += 1
    if queued:
        st.put(out_q, _IN_RING)


def run_pipeline(source: Source | Iterable, engine, sink: Callable[[np.ndarray, Any], None],
                 config: PipelineConfig | None = None, stop: threading.Event | StopFlag | None = None,
                 on_progress: Callable[[PipelineStats], None] | None = None) -> PipelineStats:
    """Run ``source`` through ``engine`` into ``sink``; see the module docstring."""
    config = config or PipelineConfig()
    st = _Stages(stop or threading.Event())
    device = engine.device if engine is not None else torch.device("cpu")
    newest = config.drop_stale if config.drop_stale is not None else bool(getattr(source, "live", False))
    # Enough slots that the sink never waits for the engine's put (queue + one in hand + one spare).
    ring = OutputRing(config.queue_batches + 2, device) if config.output_ring and not newest else None
    # Input buffers in use at once: the queue, one filling, one in the engine, and with a ring up
    # to ring.slots batches still queued on the device: the batcher's ring outnumbers them all.
    batcher = HostBatcher(config.batch_size, device, ring=2 * config.queue_batches + 3 + (ring.slots if ring else 0))
    decoded: queue.Queue = queue.Queue(config.queue_batches)
    results: queue.Queue = queue.Queue(config.queue_batches)
    threads = [
        threading.Thread(target=_decode_stage, args=(st, source, batcher, decoded, newest, device),
                         name="rtstyle-decode", daemon=True),
        threading.Thread(target=_engine_stage, args=(st, engine, decoded, results, newest, ring, config.output_nv12),
                         name="rtstyle-engine", daemon=True),
    ]
    for t in threads:
        t.start()
    try:
        _sink_stage(st, results, sink, on_progress, ring)
    finally:
        st.abort.set()  # release any stage still waiting (only matters after errors)
        for t in threads:
            t.join()
        st.stats.wall_s = time.perf_counter() - st.started
    if st.error is not None:
        raise st.error
    st.stats.interrupted = st.stop.is_set()
    return st.stats


def _sink_stage(st: _Stages, results: queue.Queue, sink, on_progress, ring: OutputRing | None = None) -> None:
    while True:
        slot = None
        try:
            got = st.get(results)
            if got is _END:
                return
            t0 = time.perf_counter()
            if got is _IN_RING:
                slot = ring.get(st.abort)  # waits for this batch's copy only
                if slot is None:
                    return
                got = (slot.frames, slot.items)
            out, items = got
            for image, item in zip(out, items):
                sink(image, item)
                st.stats.frames_out += 1
            st.stats.busy_s["sink"] += time.perf_counter() - t0
            st.stats.wall_s = time.perf_counter() - st.started  # so fps is live for progress bars
            if on_progress is not None:
                on_progress(st.stats)
        except KeyboardInterrupt:
            if st.stop.is_set():  # a second Ctrl-C: stop at once
                raise
            # Without a signal handler Ctrl-C lands here: stop reading, keep flushing.
            st.stop.set()
        except BaseException as exc:
            st.fail(exc)
            return
        finally:
            if slot is not None:
                ring.release(slot)  # its frames are written: the buffer may be refilled
