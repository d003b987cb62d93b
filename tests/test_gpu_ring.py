"""The pinned output ring's bookkeeping on the CPU (the same code paths as on CUDA, minus the
asynchronous copy): order, slot reuse, back-pressure, no frame lost, aborts, size changes."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

from rtstyle.errors import InputError
from rtstyle.gpu.ring import OutputRing


def _batch(start: int, n: int, h: int = 4, w: int = 6) -> torch.Tensor:
    """Frames whose every pixel holds its frame number (mod 256), to check what comes out."""
    return torch.arange(start, start + n, dtype=torch.int64).remainder(256).to(torch.uint8).view(n, 1, 1, 1).expand(
        n, h, w, 3).contiguous()


def test_order_values_and_items_survive_a_slow_consumer():
    ring = OutputRing(slots=3)
    seen: list[int] = []
    frames_seen: list[int] = []

    def consume():
        while (slot := ring.get()) is not None:
            time.sleep(0.002)  # slower than the producer: the ring must push back, not drop
            for image, item in zip(slot.frames, slot.items):
                assert (image == item % 256).all()
                frames_seen.append(item)
            seen.append(slot.index)
            ring.release(slot)

    t = threading.Thread(target=consume)
    t.start()
    n = 0
    for size in [4, 4, 1, 3, 4, 2] * 5:
        batch = _batch(n, size)
        assert ring.put(batch, list(range(n, n + size)))
        batch.fill_(0)  # the producer reuses its memory at once: the ring must hold a copy
        n += size
    ring.close()
    t.join(10)
    assert frames_seen == list(range(n))  # every frame, once, in order
    assert set(seen) == {0, 1, 2}  # three buffers, reused
    assert ring.copies == 30 and ring.waits_for_slot > 0


def test_back_pressure_blocks_until_release():
    ring = OutputRing(slots=2)
    assert ring.put(_batch(0, 2), [0, 1]) and ring.put(_batch(2, 2), [2, 3])
    done = threading.Event()

    def third():
        ring.put(_batch(4, 2), [4, 5])
        done.set()

    t = threading.Thread(target=third)
    t.start()
    assert not done.wait(0.2)  # both slots are taken and unreleased
    first = ring.get()
    assert first.items == [0, 1]
    assert not done.wait(0.1)  # got, but still being encoded: its buffer is not free yet
    ring.release(first)
    assert done.wait(5)
    t.join()
    assert [ring.get().items, ring.get().items] == [[2, 3], [4, 5]]


def test_a_slot_is_never_overwritten_while_held():
    ring = OutputRing(slots=2)
    ring.put(_batch(7, 1), [7])
    held = ring.get()
    ring.put(_batch(8, 1), [8])
    ring.release(ring.get())
    ring.put(_batch(9, 1), [9])  # goes into the released slot, not the held one
    assert (held.frames == 7).all()
    assert ring.get().index != held.index


def test_abort_releases_blocked_put_and_get():
    ring = OutputRing(slots=2)
    ring.put(_batch(0, 1), [0])
    ring.put(_batch(1, 1), [1])
    abort = threading.Event()
    abort.set()
    assert ring.put(_batch(2, 1), [2], abort) is False  # full: gives up instead of hanging
    empty = OutputRing(slots=2)
    assert empty.get(abort) is None


def test_close_drains_then_ends_for_every_caller():
    ring = OutputRing(slots=2)
    ring.put(_batch(0, 2), [0, 1])
    ring.close()
    ring.close()  # twice is fine
    assert ring.get().items == [0, 1]
    assert ring.get() is None and ring.get() is None
    with pytest.raises(RuntimeError, match="closed"):
        ring.put(_batch(0, 1), [0])


def test_size_changes_reallocate_only_free_slots():
    ring = OutputRing(slots=2)
    ring.put(_batch(1, 4, 4, 6), list(range(4)))
    slot = ring.get()
    ring.release(slot)
    ring.put(_batch(2, 2, 8, 10), [0, 1])  # new frame size: a new buffer in a free slot
    big = ring.get()
    assert big.frames.shape == (2, 8, 10, 3) and (big.frames[0] == 2).all() and (big.frames[1] == 3).all()
    ring.release(big)
    ring.put(_batch(3, 1, 8, 10), [0])  # a smaller batch reuses a buffer as a view
    assert ring.get().frames.shape == (1, 8, 10, 3)


def test_bad_input_is_a_one_line_error():
    ring = OutputRing(slots=2)
    with pytest.raises(InputError, match="uint8"):
        ring.put(torch.zeros(1, 2, 2, 3), [0])
    with pytest.raises(InputError, match="items"):
        ring.put(_batch(0, 2), [0])
    with pytest.raises(InputError, match="at least 2 slots"):
        OutputRing(slots=1)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_copies_are_asynchronous_and_exact():
    ring = OutputRing(slots=4, device="cuda")
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):  # the producer's own stream: the copy must wait for it
        for i in range(12):
            x = torch.full((2, 540, 960, 3), i, dtype=torch.uint8, device="cuda")
            x = (x.float() * 1.0).to(torch.uint8)  # queued kernels the copy must follow
            assert ring.put(x, [i, i])
            slot = ring.get()
            assert slot.event is not None and np.all(slot.frames == i)
            ring.release(slot)
    assert ring.pinned and ring.copies == 12
