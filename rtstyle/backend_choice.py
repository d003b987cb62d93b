"""``--backend auto`` on a CPU: the fastest backend for this machine and this model, measured.

Which CPU backend wins depends on the CPU (bf16 instructions, cache sizes, core count) and the
model, so it is measured rather than guessed: every backend that can open the model runs a few
batches at ``MEASURE_SIZE`` (a few seconds in all; a super-resolution net at the input size whose
output is ``MEASURE_SIZE``, as the cost grows with the output: ``measure_size``), the fastest one is kept open and returned,
and the timings are cached in ``<user cache>/backend-choice.json`` under a key of the CPU, the
model's hash, the measured size and batch, the precision asked for and the library versions,
so later runs only read the cache. ``RTSTYLE_AUTO_MEASURE=0`` skips measuring (the static
choice by file kind stands).

A timing is only as good as the machine was quiet: each measurement records how many cores other
processes kept busy meanwhile (``sysinfo.OtherLoad``). A cached timing is measured again when it
is older than ``MAX_AGE_DAYS``, or was taken under load (``LOADED_CORES``) and the machine is
quiet now (sampled for ``QUIET_SAMPLE_S``; on a machine that stays busy, another loaded
measurement would be no better, so the cached one stands and its reason says it was loaded).
``rtstyle doctor`` lists the cache; ``rtstyle doctor --clear-cache`` empties it.

This module knows nothing of the backends: ``open_fastest`` gets a function that opens one.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import importlib.metadata
import json
import math
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from .errors import CheckpointError, RtstyleError
from .fsutil import atomic_path, cache_dir, sha256_file
from .nets import MIN_SIDE
from .sysinfo import OtherLoad, cpu_model
from .threads import available_cores

CACHE_NAME = "backend-choice.json"
MEASURE_SIZE = (320, 176)  # (width, height): small enough to take seconds, big enough to rank the backends
MEASURE_BATCH = 4  # frames per call; fixed, so the choice (and the output) does not change with --batch-size
MEASURE_CALLS = 3  # timed calls after one warm-up
MEASURE_BUDGET_S = 3.0  # per backend, after at least one timed call
ENV = "RTSTYLE_AUTO_MEASURE"
MAX_AGE_DAYS = 30  # libraries, drivers and the machine's other work change; so may the ranking
LOADED_CORES = 0.25  # other processes kept this many cores busy: a loaded measurement (as benchmarks/timing.py)
QUIET_SAMPLE_S = 0.25  # how long a run looks at the machine before measuring a loaded timing again
_VERSIONED = ("rtstyle", "torch", "openvino", "onnxruntime")


@dataclass(frozen=True)
class Choice:
    backend: str
    ms_per_frame: dict[str, float | None]  # every candidate; None: could not open here
    cached: bool
    measured_at: str
    other_cores: float | None = None  # cores other processes kept busy during the measurement

    def reason(self, size: tuple[int, int], batch: int) -> str:
        ranked = sorted(((ms, name) for name, ms in self.ms_per_frame.items() if ms is not None))
        timings = ", ".join(f"{name} {ms:.0f} ms/frame" for ms, name in ranked)
        failed = [name for name, ms in self.ms_per_frame.items() if ms is None]
        skipped = f"; {', '.join(failed)} could not open it" if failed else ""
        when = f"cached measurement of {self.measured_at}" if self.cached else "measured now"
        if loaded(self.other_cores):
            when += f" while other processes kept {self.other_cores:.2f} cores busy"
        return (f"fastest on this CPU: {timings} ({size[0]}x{size[1]}, batch {batch}; {when}{skipped}; "
                f"--backend NAME to choose)")


def loaded(other_cores: float | None) -> bool:
    return other_cores is not None and other_cores >= LOADED_CORES


def measure_again(entry: dict[str, Any], now: _dt.datetime | None = None,
                  quiet_now: Callable[[], float | None] | None = None) -> str | None:
    """Why a cached timing must be measured again, or None when it stands: it is older than
    ``MAX_AGE_DAYS`` (or undated), carries no load record (an older rtstyle wrote it), or was
    taken under load while the machine is quiet now (``quiet_now()``: the cores other processes
    keep busy now; sampled only for a loaded entry)."""
    now = now or _dt.datetime.now(_dt.timezone.utc)
    try:
        measured = _dt.datetime.fromisoformat(entry["measured_at"])
    except (KeyError, TypeError, ValueError):
        return "undated"
    if measured.tzinfo is None:
        measured = measured.replace(tzinfo=_dt.timezone.utc)
    age = now - measured
    if age > _dt.timedelta(days=MAX_AGE_DAYS):
        return f"{age.days} days old"
    if "other_cores" not in entry:
        return "taken without a load record"
    if loaded(entry["other_cores"]):
        current = (quiet_now or _other_cores_now)()
        if current is not None and not loaded(current):
            return f"taken while other processes kept {entry['other_cores']:.2f} cores busy; the machine is quiet now"
    return None


def _other_cores_now() -> float | None:
    with OtherLoad() as load:
        time.sleep(QUIET_SAMPLE_S)
    return load.cores


def measuring_enabled() -> bool:
    return os.environ.get(ENV, "1") != "0"


def pick_fastest(ms_per_frame: dict[str, float | None]) -> str:
    """The candidate with the fewest ms per frame; ties go to the earlier (preferred) one."""
    usable = [(ms, i, name) for i, (name, ms) in enumerate(ms_per_frame.items())
              if ms is not None and math.isfinite(ms) and ms > 0]
    if not usable:
        raise ValueError(f"pick_fastest: no usable timing in {ms_per_frame}")
    return min(usable)[2]


def choice_key(model_digest: str, candidates: list[str], precision: str, size: tuple[int, int] = MEASURE_SIZE,
               batch: int = MEASURE_BATCH) -> str:
    """What a measurement depends on: this CPU, the model, the setting measured, the versions."""
    setting = {
        "cpu": cpu_model(), "cores": available_cores(), "model": model_digest, "candidates": candidates,
        "precision": precision, "batch": batch, "size": list(size), "versions": library_versions(),
    }
    return hashlib.sha256(json.dumps(setting, sort_keys=True).encode()).hexdigest()[:32]


def library_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in _VERSIONED:
        try:
            out[name] = importlib.metadata.version(name)  # metadata, not an import: nothing heavy loads
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def cache_path() -> Path:
    return cache_dir() / CACHE_NAME


def read_cache() -> dict[str, Any]:
    try:
        data = json.loads(cache_path().read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_cache(key: str, entry: dict[str, Any]) -> None:
    data = read_cache()
    data[key] = entry
    with contextlib.suppress(OSError):  # a read-only cache folder costs the next run a measurement
        with atomic_path(cache_path()) as tmp:
            tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")


def measure_size(scale: int) -> tuple[int, int]:
    """The input size to time an engine of ``scale`` at: ``MEASURE_SIZE`` for a style net, the
    input whose output is ``MEASURE_SIZE`` for a super-resolution net. Timing an x8 net at the
    full size (a 2560x1408 output) took 81 s on a loaded 2-core CPU, at 40x22 4 s, and the ranking
    of the backends was the same (openvino 3.4-26x faster than torch at both sizes, sr_x4 and sr_x8)."""
    return max(MIN_SIDE, MEASURE_SIZE[0] // scale), max(MIN_SIDE, MEASURE_SIZE[1] // scale)


def measure(engine, batch: int, size: tuple[int, int] | None = None, calls: int = MEASURE_CALLS,
            budget_s: float = MEASURE_BUDGET_S) -> float:
    """Median ms per frame of ``engine`` on random uint8 batches at ``size`` (default:
    ``measure_size(engine.scale)``), after one warm-up call."""
    size = size or measure_size(engine.scale)
    generator = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (batch, size[1], size[0], 3), dtype=torch.uint8, generator=generator)
    frames = frames.to(engine.device)
    engine(frames)  # first call: compiling, allocation, autotuning
    samples: list[float] = []
    started = time.perf_counter()
    for _ in range(calls):
        t0 = time.perf_counter()
        engine(frames).cpu()
        samples.append(time.perf_counter() - t0)
        if time.perf_counter() - started > budget_s:
            break
    return 1000.0 * statistics.median(samples) / batch


def open_fastest(model_path: Path, candidates: list[str], precision: str, opener: Callable[[str, str], Any],
                 measurer: Callable[[Any, int], float] | None = None, on_status: Callable[[str], None] | None = None):
    """Open the fastest of ``candidates`` for ``model_path`` (cached timings, else measured now).

    ``opener(name, reason)`` opens one backend's engine; the one returned carries the reason.
    ``on_status(line)`` hears what a first run is doing while it measures (seconds, on a CPU)."""
    batch = MEASURE_BATCH
    key = choice_key(sha256_file(model_path), candidates, precision)
    entry = read_cache().get(key)
    if entry and entry.get("backend") in candidates and measure_again(entry) is None:
        choice = Choice(entry["backend"], entry["ms_per_frame"], True, entry.get("measured_at", "?"),
                        entry.get("other_cores"))
        return opener(choice.backend, choice.reason(tuple(entry.get("size", MEASURE_SIZE)), batch))
    status = on_status or (lambda line: None)
    status(f"{model_path.name}: timing {' and '.join(candidates)} on this CPU to choose --backend auto "
           f"(first run only; kept in {cache_path()})")
    timings: dict[str, float | None] = {}
    errors: list[Exception] = []
    size = MEASURE_SIZE
    with OtherLoad() as load:
        for name in candidates:
            try:
                engine = opener(name, "measuring for --backend auto")
                size = measure_size(engine.scale)
                timings[name] = round((measurer or measure)(engine, batch), 2)
                status(f"  {name}: {timings[name]:.0f} ms/frame at {size[0]}x{size[1]}")
            except CheckpointError:
                # The model itself is refused (onnxruntime, tried first for .onnx, checks channels, batch and
                # scale on a probe): no other backend may run it anyway and write garbage frames.
                raise
            except (RtstyleError, RuntimeError, ImportError) as exc:
                timings[name] = None  # this backend cannot run the model here: not a candidate
                errors.append(exc)
                status(f"  {name}: cannot run it here ({exc})")
            engine = None  # its memory goes before the next backend is measured
    if all(ms is None for ms in timings.values()):
        raise errors[0]
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    choice = Choice(pick_fastest(timings), timings, False, now, load.cores)
    write_cache(key, {"backend": choice.backend, "ms_per_frame": timings, "measured_at": now, "model": model_path.name,
                      "cpu": cpu_model(), "size": list(size), "batch": batch, "precision": precision,
                      "other_cores": load.cores})
    # Opened afresh with its reason (an engine's reason is set at construction); compiled models are cached.
    return opener(choice.backend, choice.reason(size, batch))
