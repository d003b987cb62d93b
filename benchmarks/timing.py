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
        else:
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


# A figure is only as good as the machine was quiet. These thresholds decide when the bench
# reports figures but refuses to draw verdicts from them.
NOISY_SPREAD = 0.25  # median over cells of (p90 - p10) / median per-call time
NOISY_LOAD_PER_CORE = 0.5  # 1-minute load average per core before the run (other jobs running)
NOISY_BUSY_CORES = 0.25  # cores kept busy by other processes just before the run (environment.busy_cores)
IMPOSSIBLE_FLOOR_SHARE = 1.05  # faster than the roofline floor: the floor's ceilings were measured under load


def relative_spread(seconds: dict[str, float]) -> float:
    """(p90 - p10) / median of a ``summarize`` result: 0 on a quiet machine, large under load."""
    return (seconds["p90"] - seconds["p10"]) / seconds["median"] if seconds["median"] > 0 else 0.0


def assess_noise(spreads: Sequence[float], load_before: Sequence[float] | None, cores: int | None,
                 floor_shares: Sequence[float] = (), busy_before: float | None = None) -> dict[str, Any]:
    """Whether a run's figures can carry verdicts, and why not.

    ``spreads`` are the cells' ``relative_spread``; ``busy_before`` is how many cores other
    processes kept busy just before the run (``environment.busy_cores``); where it is unknown,
    ``load_before`` (``os.getloadavg()`` before the run; it trails by minutes, so it also counts a
    benchmark that has just finished) stands in. ``floor_shares`` are measured / roofline-floor
    speed ratios, which cannot exceed 1 when both were measured fairly.
    """
    reasons = []
    spread = statistics.median(spreads) if spreads else None
    if spread is not None and spread > NOISY_SPREAD:
        reasons.append(f"timings spread {100 * spread:.0f}% between repetitions (p10-p90 over median; "
                       f"quiet is under {100 * NOISY_SPREAD:.0f}%)")
    if busy_before is not None:
        if busy_before > NOISY_BUSY_CORES:
            reasons.append(f"other processes kept {busy_before:.2f} of {cores} cores busy before the run")
    elif load_before and cores and load_before[0] / cores > NOISY_LOAD_PER_CORE:
        reasons.append(f"load average {load_before[0]:.2f} on {cores} cores before the run")
    impossible = [s for s in floor_shares if s > IMPOSSIBLE_FLOOR_SHARE]
    if impossible:
        reasons.append(f"{len(impossible)} cell(s) beat the roofline floor (up to {100 * max(impossible):.0f}%): "
                       "the ceilings were measured while the machine was busy")
    return {"reliable": not reasons, "reasons": reasons, "median_spread": spread,
            "load_average_before": list(load_before) if load_before else None, "busy_cores_before": busy_before}
