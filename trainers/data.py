"""Training images: any folder tree of jpg/png/webp (MS-COCO, ../shared/data/photos, ...).

Unreadable files are skipped with a warning and counted, at scan time (header check) and,
for files whose pixels turn out corrupt, at load time. An empty folder is an error.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from rtstyle.errors import InputError

log = logging.getLogger(__name__)

TRAIN_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")


@dataclass
class ScanResult:
    files: list[Path]
    skipped: list[Path] = field(default_factory=list)


def scan_images(root: str | Path) -> ScanResult:
    """Find readable images under ``root`` (recursively); raise InputError if there are none."""
    from PIL import Image, UnidentifiedImageError

    root = Path(root)
    if not root.is_dir():
        raise InputError(f"data folder not found: {root}")
    candidates = sorted(p for p in root.rglob("*") if p.suffix.lower() in TRAIN_EXTENSIONS and p.is_file())
    result = ScanResult([])
    for path in candidates:
        try:
            with Image.open(path) as im:  # reads the header only
                im.size  # noqa: B018
            result.files.append(path)
        except (UnidentifiedImageError, OSError, ValueError):
            log.warning("skipping unreadable image %s", path)
            result.skipped.append(path)
    if not result.files:
        found = f"{len(candidates)} unreadable" if candidates else "none"
        raise InputError(f"no training images ({', '.join(TRAIN_EXTENSIONS)}) in {root}: {found}")
    return result


class InfiniteSampler(Sampler):
    """Yields (image index, crop seed) pairs forever, deterministic given (seed, rank, start).

    Training is counted in iterations, not epochs, so the sampler never ends; resuming at
    step k with the same seed continues the same stream.
    """

    def __init__(self, size: int, seed: int, batch_size: int, start_step: int = 0, rank: int = 0):
        self.size, self.seed, self.batch_size = size, seed, batch_size
        self.start, self.rank = start_step * batch_size, rank

    def __iter__(self) -> Iterator[tuple[int, int]]:
        i = self.start
        while True:
            rng = random.Random(hash((self.seed, self.rank, i)))
            yield rng.randrange(self.size), rng.getrandbits(32)
            i += 1


class RandomCrops(Dataset):
    """Square random crops of ``size`` px as uint8 HWC tensors (frames.py's convention), with
    random horizontal flips.

    The shorter side is first resized to ``size * U(1, max_zoom)``, so crops cover most of
    the photo (as Johnson et al. resized COCO to 256x256) with some scale variety.
    """

    def __init__(self, files: list[Path], size: int, max_zoom: float = 1.25):
        if size < 16:
            raise InputError(f"image size must be >= 16, got {size}")
        self.files, self.size, self.max_zoom = files, size, max_zoom
        self.failed: set[Path] = set()

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, item: tuple[int, int]) -> torch.Tensor:
        index, seed = item
        rng = random.Random(seed)
        for _ in range(len(self.files)):
            path = self.files[index]
            try:
                return self._crop(path, rng)
            except (OSError, ValueError, SyntaxError):
                if path not in self.failed:
                    log.warning("skipping corrupt image %s", path)
                    self.failed.add(path)
                index = rng.randrange(len(self.files))
        raise InputError("no readable training images left (all failed to decode)")

    def _crop(self, path: Path, rng: random.Random) -> torch.Tensor:
        from PIL import Image, ImageOps

        target = round(self.size * rng.uniform(1.0, self.max_zoom))
        with Image.open(path) as im:
            im.draft("RGB", (target, target))  # JPEG: decode at reduced scale, much faster
            im = ImageOps.exif_transpose(im).convert("RGB")
            scale = target / min(im.size)
            new = (max(self.size, round(im.width * scale)), max(self.size, round(im.height * scale)))
            im = im.resize(new, Image.Resampling.BICUBIC, reducing_gap=2.0)
            x = rng.randrange(new[0] - self.size + 1)
            y = rng.randrange(new[1] - self.size + 1)
            im = im.crop((x, y, x + self.size, y + self.size))
            if rng.random() < 0.5:
                im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            arr = np.asarray(im, dtype=np.uint8)
        return torch.from_numpy(arr.copy())


__all__ = ["InfiniteSampler", "RandomCrops", "ScanResult", "scan_images"]
