"""What ``rtstyle bench`` measures: the grid per device kind, timing settings and targets, in one
typed config (``BenchConfig``) whose ``resolved`` fills the per-device defaults."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch

from rtstyle.dtypes import TORCH_DTYPES
from rtstyle.engine import BACKENDS, EngineOptions
from rtstyle.errors import InputError
from rtstyle.netconfig import STYLE_ARCH_PRESETS
from rtstyle.nets import SRNetConfig, StyleNetConfig

SCHEMA = "rtstyle-bench/1"
ARCHS = {
    "style": StyleNetConfig(),
    # every other `rtstyle train style --arch` preset as style-NAME (style-fast, style-lowres, ...)
    **{f"style-{name}": cfg for name, cfg in STYLE_ARCH_PRESETS.items() if name != "johnson"},
    "sr4": SRNetConfig(scale=4),
    "sr8": SRNetConfig(scale=8),
}

# The grid, used on GPUs. A CPU would need hours for it at 1080p, so CPUs get a reduced
# grid by default (the run says so in its notes).
GPU_RESOLUTIONS = ((640, 360), (1280, 720), (1920, 1080))
GPU_BATCHES = (1, 4, 8)
CPU_RESOLUTIONS = ((320, 180), (640, 360))
CPU_BATCHES = (1, 4)
QUICK_RESOLUTIONS = ((320, 180), (640, 360))
QUICK_BATCHES = (1, 4)

TARGETS = {
    "gpu_1080p_fp16_fps": 250.0,
    "pipeline_efficiency": 0.8,
    "speedup_vs_reference_cpu": 1.5,
    "speedup_vs_reference_gpu": 5.0,
}


@dataclass(frozen=True)
class Timing:
    """Warm-up calls, timed calls, and a per-configuration time cap (after at least 3 calls)."""

    warmup: int
    repeats: int
    max_seconds: float


_TIMING = {"gpu": Timing(10, 50, 10.0), "cpu": Timing(2, 10, 15.0), "quick": Timing(1, 3, 3.0)}
# Pipeline clip: (width, height, frames) by device kind.
_CLIP = {"gpu": (1920, 1080, 300), "cpu": (320, 180, 48), "quick": (320, 180, 16)}


@dataclass(frozen=True)
class BenchConfig:
    """What to measure. ``None`` fields take per-device defaults (see ``resolved``)."""

    model: str | None = None  # bundled name or checkpoint; None: a fresh net of ``arch``
    arch: str | None = None  # style | style-fast | sr4 | sr8 (default: style, quick: style-fast)
    device: str = "auto"
    backends: tuple[str, ...] | None = None  # None: every available backend
    precisions: tuple[str, ...] | None = None  # None: per backend and device
    batch_sizes: tuple[int, ...] | None = None
    resolutions: tuple[tuple[int, int], ...] | None = None  # (width, height); SR: output size
    warmup: int | None = None
    repeats: int | None = None
    max_seconds: float | None = None  # cap per configuration (after at least 3 timed calls)
    rotate: int = 4  # distinct input batches cycled through
    reference: bool = True
    pipeline: bool = True
    clip: str | None = None  # None: generate a clip
    clip_size: tuple[int, int] | None = None  # generated clip (width, height)
    clip_frames: int | None = None
    pipeline_batch: int | None = None  # None: the engine default (EngineOptions.batch_size)
    quick: bool = False
    seed: int = 0
    progress: bool | str = True  # or a mode of rtstyle.progress: auto, bar, plain, json, none
    cuda_events: bool = False  # time model-only cells with CUDA events (device time) instead of host clocks

    def __post_init__(self) -> None:
        if self.arch is not None and self.arch not in ARCHS:
            raise InputError(f"unknown --arch {self.arch!r}; choose from {sorted(ARCHS)}")
        if self.model is not None and self.arch is not None:
            raise InputError("give --model or --arch, not both (a checkpoint carries its own architecture)")
        for name in self.backends or ():
            if name not in BACKENDS:
                raise InputError(f"unknown backend {name!r}; choose from {sorted(BACKENDS)}")
        for p in self.precisions or ():
            if p not in TORCH_DTYPES:
                raise InputError(f"unknown precision {p!r}; choose from {sorted(TORCH_DTYPES)}")
        if any(b < 1 for b in self.batch_sizes or ()):
            raise InputError(f"batch sizes must be >= 1, got {self.batch_sizes}")
        if any(w < 16 or h < 16 for w, h in self.resolutions or ()):
            raise InputError(f"resolutions must be at least 16x16, got {self.resolutions}")
        if self.repeats is not None and self.repeats < 1:
            raise InputError(f"--repeats must be >= 1, got {self.repeats}")
        if self.warmup is not None and self.warmup < 0:
            raise InputError(f"--warmup must be >= 0, got {self.warmup}")
        if self.rotate < 1:
            raise InputError(f"rotate must be >= 1, got {self.rotate}")
        if self.clip is not None and not Path(self.clip).is_file():
            raise InputError(f"--clip {self.clip}: file not found")

    def resolved(self, device: torch.device) -> "BenchConfig":
        """This config with every ``None`` default filled in for ``device``."""
        kind = "quick" if self.quick else ("gpu" if device.type == "cuda" else "cpu")
        timing = _TIMING[kind]
        grid_res, grid_batch = {
            "quick": (QUICK_RESOLUTIONS, QUICK_BATCHES),
            "gpu": (GPU_RESOLUTIONS, GPU_BATCHES),
            "cpu": (CPU_RESOLUTIONS, CPU_BATCHES),
        }[kind]
        cw, ch, cn = _CLIP[kind]
        return dataclasses.replace(
            self,
            arch=self.arch if self.model is not None or self.arch else ("style-fast" if self.quick else "style"),
            resolutions=self.resolutions or grid_res,
            batch_sizes=self.batch_sizes or grid_batch,
            warmup=self.warmup if self.warmup is not None else timing.warmup,
            repeats=self.repeats or timing.repeats,
            max_seconds=self.max_seconds or timing.max_seconds,
            clip_size=self.clip_size or (cw, ch),
            clip_frames=self.clip_frames or cn,
            pipeline_batch=self.pipeline_batch or EngineOptions().batch_size,
        )


