"""The roofline floor: the fastest a network could run on this device, from ceilings measured
in the same run (never from a datasheet).

* compute ceiling: a large square matmul in the engine's dtype, best of several calls;
* memory ceiling: a large device-to-device copy (bytes read + bytes written), best of several.

For one frame: ``floor = max(flops / matmul_rate, matmul_bytes / copy_rate)`` (see ``flops.py``
for what is counted); achieved fraction = floor time / measured time = measured fps / floor fps.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from rtstyle.dtypes import TORCH_DTYPES

from .flops import WorkCount
from .timing import time_calls

# Square matmul side and copy size: large enough to reach the ceiling, small enough to take
# well under a second per call.
_MATMUL_SIDE = {"cpu": 2048, "cuda": 8192}
_COPY_BYTES = {"cpu": 256 << 20, "cuda": 2 << 30}


@dataclass(frozen=True)
class Ceilings:
    """Measured ceilings of one device: matmul FLOP/s per dtype name and copy bytes/s."""

    device: str
    matmul_flops_per_s: dict[str, float]
    copy_bytes_per_s: float
    matmul_side: int
    copy_bytes: int

    def to_dict(self) -> dict:
        d = asdict(self)
        d["matmul_tflops"] = {k: v / 1e12 for k, v in self.matmul_flops_per_s.items()}
        d["copy_gbps"] = self.copy_bytes_per_s / 1e9
        return d


@dataclass(frozen=True)
class Floor:
    """The roofline floor of one frame."""

    compute_s: float  # flops / matmul ceiling
    memory_s: float  # matmul_bytes / copy ceiling (element-wise ops fused away)
    unfused_memory_s: float  # all bytes / copy ceiling, for context
    floor_s: float
    bound: str  # "compute" or "memory"

    @property
    def fps(self) -> float:
        return 1.0 / self.floor_s

    def to_dict(self) -> dict:
        return {**asdict(self), "fps": self.fps}


def measure_matmul(device: torch.device, dtype: torch.dtype, side: int, repeats: int = 5) -> float:
    """Best FLOP/s of ``side`` x ``side`` matmuls in ``dtype`` on ``device``."""
    gen = torch.Generator(device="cpu").manual_seed(0)
    pairs = [
        (torch.randn(side, side, generator=gen).to(device, dtype), torch.randn(side, side, generator=gen).to(device, dtype))
        for _ in range(2)
    ]
    seconds = time_calls(lambda ab: torch.mm(*ab), pairs, device, warmup=2, repeats=repeats)
    return 2.0 * side**3 / min(seconds)


def measure_copy(device: torch.device, nbytes: int, repeats: int = 5) -> float:
    """Best bytes/s (read + write) of copying an ``nbytes`` buffer on ``device``."""
    src = torch.ones(nbytes, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    seconds = time_calls(dst.copy_, [src], device, warmup=2, repeats=repeats)
    return 2.0 * nbytes / min(seconds)


def measure_ceilings(device: torch.device, precisions: list[str], quick: bool = False) -> Ceilings:
    """Measure the matmul ceiling for each precision and the copy ceiling of ``device``."""
    side = _MATMUL_SIDE[device.type] // (2 if quick else 1)
    nbytes = _COPY_BYTES[device.type] // (4 if quick else 1)
    repeats = 3 if quick else 10
    matmul = {p: measure_matmul(device, TORCH_DTYPES[p], side, repeats) for p in precisions}
    return Ceilings(str(device), matmul, measure_copy(device, nbytes, repeats), side, nbytes)


def roofline_floor(work: WorkCount, matmul_flops_per_s: float, copy_bytes_per_s: float) -> Floor:
    """Floor time of the work of one frame against the given ceilings."""
    if matmul_flops_per_s <= 0 or copy_bytes_per_s <= 0:
        raise ValueError("roofline_floor: ceilings must be positive")
    compute = work.flops / matmul_flops_per_s
    memory = work.matmul_bytes / copy_bytes_per_s
    floor = max(compute, memory)
    if floor <= 0:
        raise ValueError("roofline_floor: the work counts no FLOPs and no bytes")
    return Floor(compute, memory, work.bytes / copy_bytes_per_s, floor, "compute" if compute >= memory else "memory")


def achieved_fraction(floor_s: float, measured_s: float) -> float:
    """Fraction of the roofline floor reached: floor time / measured time (1.0 = at the floor)."""
    if measured_s <= 0:
        raise ValueError("achieved_fraction: measured time must be positive")
    return floor_s / measured_s
