"""Texture synthesis: sample images from a noise -> texture generator (``nets.TextureSynthNet``,
trained by ``rtstyle train texture --synthesis``).

Each sample is drawn from its own seed (``seed + i``), so one sample can be regenerated alone, at
any size: the generator is fully convolutional. Sides that are multiples of the model's
``tile_multiple`` (2^scales) give textures that wrap around; ``tile`` > 1 writes each one repeated
``tile`` x ``tile`` times, so a seam, if there were one, would show.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .checkpoint import load_checkpoint
from .errors import InputError, OutputError
from .frames import float_to_numpy, save_image
from .models import resolve_model
from .outputs import OutputPolicy

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
MAX_SIDE = 8192


@dataclass(frozen=True)
class SynthConfig:
    model: str | Path  # a texture checkpoint or bundled model name
    out: Path  # image file; with count > 1, NAME-000.png, NAME-001.png, ...
    width: int = 512
    height: int = 512
    count: int = 1
    seed: int = 0
    tile: int = 1  # write each texture repeated tile x tile times
    device: str = "auto"
    overwrite: bool = False

    def __post_init__(self) -> None:
        for name in ("width", "height"):
            value = getattr(self, name)
            if not 16 <= value <= MAX_SIDE:
                raise InputError(f"texture {name} must be 16..{MAX_SIDE} pixels, got {value}")
        if self.count < 1:
            raise InputError(f"--count must be >= 1, got {self.count}")
        if not 1 <= self.tile <= 8:
            raise InputError(f"--tile must be 1..8, got {self.tile}")
        if Path(self.out).suffix.lower() not in IMAGE_SUFFIXES:
            raise OutputError(f"output {self.out} should end in one of {', '.join(IMAGE_SUFFIXES)}")


@dataclass
class SynthResult:
    paths: list[Path]
    seconds_per_texture: float  # generator time only (no PNG encoding), lower median over the samples
    tileable: bool  # the sizes are multiples of the model's tile multiple


def output_paths(cfg: SynthConfig) -> list[Path]:
    out = Path(cfg.out)
    if cfg.count == 1:
        return [out]
    return [out.with_name(f"{out.stem}-{i:03d}{out.suffix}") for i in range(cfg.count)]


def synthesize(cfg: SynthConfig) -> SynthResult:
    """Write ``cfg.count`` textures; every output is checked before the first is written."""
    from .engine import resolve_device

    paths = output_paths(cfg)
    source = resolve_model(cfg.model)
    for path in paths:
        if not path.parent.is_dir():
            raise OutputError(f"output folder {path.parent} does not exist")
        OutputPolicy(overwrite=cfg.overwrite).check(path, [source])  # the one output rule (rtstyle.outputs)
    device = resolve_device(cfg.device)
    ckpt = load_checkpoint(source, task="texture", device=device)
    net = ckpt.model.to(device).eval()
    multiple = ckpt.config.tile_multiple
    tileable = cfg.width % multiple == 0 and cfg.height % multiple == 0
    if cfg.tile > 1 and not tileable:
        raise InputError(f"--tile needs a size that is a multiple of {multiple} (2^scales of {source.name}) "
                         f"to wrap around, got {cfg.width}x{cfg.height}")
    times = []
    for i, path in enumerate(paths):
        noise = net.noise(1, cfg.height, cfg.width, seed=cfg.seed + i, device="cpu").to(device)
        start = time.perf_counter()
        with torch.inference_mode():
            texture = net(noise)
        image = float_to_numpy(texture)[0]  # synchronises on a GPU, so the time is the generator's
        times.append(time.perf_counter() - start)
        if cfg.tile > 1:
            image = np.tile(image, (cfg.tile, cfg.tile, 1))
        save_image(path, image, cfg.overwrite)
    times.sort()
    return SynthResult(paths, times[(len(times) - 1) // 2], tileable)
