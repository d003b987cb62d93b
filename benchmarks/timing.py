"""Wall-clock timing that GPUs cannot flatter: synchronise around every timed call, discard
warm-up calls, rotate among distinct inputs, report the median and the spread."""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable, Sequence

import torch


def synchronize(device: torch.device) -> None:
    """Wait for queued device work; without it a GPU timing measures only the launch."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_calls(
    fn: Callable[[Any], Any],
    inputs: Sequence[Any],
    device: torch.device,
    warmup: int,
    repeats: int,
    max_seconds: float | None = None,
    events: bool = False,
) -> list[float]:
    """Seconds per call of ``fn(inputs[i % len(inputs)])`` over ``repeats`` timed calls.

    Rotating through several distinct inputs keeps caches from holding the one input a
    single-input loop would reuse. ``max_seconds`` stops early (after at least 3 timed calls)
    so slow configurations on a CPU do not take minutes. ``events`` (CUDA only): time each call
    with CUDA events recorded around it on the current stream, i.e. device time from the first
    queued kernel to the last, without the host's launch and synchronisation jitter.
    """
    if not inputs:
        raise ValueError("time_calls: needs at least one input")
    for i in range(warmup):
        fn(inputs[i % len(inputs)])
    synchronize(device)
    samples: list[float] = []
    started = time.perf_counter()
    use_events = events and device.type == "cuda"
    for i in range(repeats):
        x = inputs[(warmup + i) % len(inputs)]
        if use_events:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn(x)
            end.record()
            end.synchronize()
            samples.append(start.elapsed_time(end) / 1000.0)  # elapsed_time is in milliseconds
            continue
        t0 = time.perf_counter()
        fn(x)
        synchronize(device)
        samples.append(time.perf_counter() - t0)
        if max_seconds is not None and len(samples) >= 3 and time.perf_counter() - started > max_seconds:
            break
    return samples


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile, ``q`` in [0, 100]."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("percentile of no values")
    pos = (len(ordered) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def summarize(seconds: Sequence[float]) -> dict[str, float]:
    """Median, p10, p90 and extremes of per-call seconds."""
    return {
        "median": statistics.median(seconds),
        "p10": percentile(seconds, 10),
        "p90": percentile(seconds, 90),
        "min": min(seconds),
        "max": max(seconds),
        "n": len(seconds),
    }


def rate(items_per_call: float, seconds: dict[str, float]) -> dict[str, float]:
    """Items per second from a ``summarize`` result; the slow percentile gives the low rate."""
    return {
        "median": items_per_call / seconds["median"],
        "p10": items_per_call / seconds["p90"],
        "p90": items_per_call / seconds["p10"],
    }
