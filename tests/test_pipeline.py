"""The threaded pipeline (rtstyle/pipeline.py): order, partial batches, errors, stop, bounded memory."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from rtstyle.pipeline import HostBatcher, PipelineConfig, run_pipeline
from tests.helpers_video import FailingEngine, IdentityEngine, frame_pattern


@dataclass
class Item:
    image: np.ndarray
    index: int


def items(n: int, size=(20, 16)):
    for i in range(n):
        yield Item(frame_pattern(i, *size), i)


def collect(n, engine, batch_size, **kw):
    out = []
    stats = run_pipeline(items(n), engine, lambda im, it: out.append((it.index, im.copy())),
                         PipelineConfig(batch_size=batch_size), **kw)
    return out, stats


def _no_stage_threads() -> bool:
    deadline = time.time() + 2
    while time.time() < deadline:
        if not any(t.name.startswith("rtstyle-") for t in threading.enumerate()):
            return True
        time.sleep(0.01)
    return False


@pytest.mark.parametrize("batch_size", [1, 4])
def test_identity_keeps_order_and_last_partial_batch(batch_size):
    engine = IdentityEngine()
    out, stats = collect(10, engine, batch_size)
    assert [i for i, _ in out] == list(range(10))
    assert all(np.array_equal(im, frame_pattern(i, 20, 16)) for i, im in out)
    assert sum(engine.batches) == 10 and engine.batches[-1] == (10 % batch_size or batch_size)
    assert (stats.frames_in, stats.frames_out, stats.interrupted) == (10, 10, False)
    assert set(stats.to_dict()["busy_s"]) == {"decode", "engine", "sink"}


def test_batch_sizes_give_identical_frames(tiny_style_ckpt):
    from rtstyle.engine import EngineOptions, open_engine

    engine = open_engine(tiny_style_ckpt, "torch", EngineOptions(device="cpu", precision="fp32"))
    one, _ = collect(6, engine, 1)
    four, _ = collect(6, engine, 4)
    for (i, a), (j, b) in zip(one, four):
        assert i == j and np.abs(a.astype(int) - b.astype(int)).max() <= 1


def test_scale_engine_output_size():
    out, _ = collect(3, IdentityEngine(scale=2), 2)
    assert out[0][1].shape == (32, 40, 3)


def test_engine_error_stops_all_stages():
    with pytest.raises(RuntimeError, match="batch 3"):
        collect(10_000, FailingEngine(fail_at=3), 2)
    assert _no_stage_threads()


def test_source_and_sink_errors_propagate():
    def bad_source():
        yield from items(3)
        raise ValueError("decoder broke")

    with pytest.raises(ValueError, match="decoder broke"):
        run_pipeline(bad_source(), IdentityEngine(), lambda im, it: None)

    def bad_sink(im, it):
        if it.index == 5:
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        run_pipeline(items(1000), IdentityEngine(), bad_sink, PipelineConfig(batch_size=2))
    assert _no_stage_threads()


def test_stop_flushes_frames_in_flight():
    stop = threading.Event()

    def on_progress(stats):
        if stats.frames_out >= 6:
            stop.set()

    out, stats = collect(10_000, IdentityEngine(), 2, stop=stop, on_progress=on_progress)
    assert stats.interrupted and 6 <= stats.frames_out < 10_000
    assert stats.frames_out == stats.frames_in  # everything read was processed and delivered
    assert [i for i, _ in out] == list(range(len(out)))


def test_memory_stays_bounded():
    """The reader can be at most a few batches ahead of the sink, however long the stream."""
    config = PipelineConfig(batch_size=4, queue_batches=2)
    read = []

    def source():
        for it in items(400, size=(8, 8)):
            read.append(it.index)
            yield it

    ahead = []
    run_pipeline(source(), IdentityEngine(), lambda im, it: ahead.append(len(read) - it.index), config)
    # two queues of 2 batches, one batch in the engine, one being filled, one being sunk
    assert max(ahead) <= (2 * config.queue_batches + 3) * config.batch_size


def test_host_batcher_flushes_on_size_change():
    b = HostBatcher(batch_size=3)
    assert b.add(np.zeros((4, 4, 3), np.uint8), 0) is None
    flushed = b.add(np.zeros((6, 4, 3), np.uint8), 1)
    assert flushed.frames.shape == (1, 4, 4, 3) and flushed.items == [0]
    assert b.flush().frames.shape == (1, 6, 4, 3)
    assert b.flush() is None


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_pinned_batches_on_cuda():
    class CudaIdentity(IdentityEngine):
        def __init__(self):
            super().__init__(device=torch.device("cuda"))

    b = HostBatcher(batch_size=2, device="cuda", ring=3)
    batch = b.add(np.ones((8, 8, 3), np.uint8), 0) or b.add(np.ones((8, 8, 3), np.uint8), 1)
    assert batch.frames.is_pinned()
    out, _ = collect(9, CudaIdentity(), 4)
    assert [i for i, _ in out] == list(range(9))
    assert all(np.array_equal(im, frame_pattern(i, 20, 16)) for i, im in out)
