"""The style image a checkpoint was trained on: one lookup for ``eval quality`` and ``eval temporal``.

Checkpoints carry the image as the loss saw it (``checkpoint.STYLE_TARGET_KEY``), so evaluation
works anywhere; older checkpoints record only its name and SHA-256, and the file is then looked
up in style folders. A ``--style`` override that is not the training image is used with a
warning that says how far it is from it, never refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .checkpoint import read_style_target
from .errors import InputError
from .frames import load_image
from .fsutil import sha256_file

SAMPLE_STYLES = Path(__file__).resolve().parent / "assets" / "samples" / "styles"
# The project's shared data beside the repository checkout (absent on most machines).
SHARED_STYLES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "styles"


def default_style_dirs() -> tuple[Path, ...]:
    """The style folders searched when none is given: the shared data, then the bundled samples."""
    return tuple(d for d in (SHARED_STYLES, SAMPLE_STYLES) if d.is_dir())


def find_style_image(meta: dict[str, Any], explicit: Path | None, dirs: Sequence[Path] | None = None) -> Path:
    """The style image a checkpoint was trained on: ``explicit`` if given, else found by name in
    ``dirs`` (None: ``default_style_dirs()``); either way its sha256 must match the one the
    checkpoint recorded. A same-named file with other bytes is skipped for a later match."""
    dirs = default_style_dirs() if dirs is None else tuple(dirs)
    record = meta.get("style_image") or {}
    name, digest = record.get("name"), record.get("sha256")
    if explicit is not None:
        explicit = Path(explicit)
        if not explicit.is_file():
            raise InputError(f"--style image not found: {explicit}")
        if digest and sha256_file(explicit) != digest:
            raise InputError(f"--style {explicit} is not the image this model was trained on "
                             f"({name}, sha256 {digest[:12]}...); pass that image")
        return explicit
    if not name:
        raise InputError("the checkpoint records no style image; pass --style PATH")
    candidates = [Path(d) / name for d in dirs if (Path(d) / name).is_file()]
    for candidate in candidates:
        if not digest or sha256_file(candidate) == digest:
            return candidate
    where = ", ".join(str(d) for d in dirs) or "no style folders"
    if candidates:
        raise InputError(f"{name} in {', '.join(str(c.parent) for c in candidates)} has a different sha256 than the "
                         f"image the model was trained on ({digest[:12]}...); pass that image with --style PATH")
    raise InputError(f"style image {name!r} not found in {where}; pass --style PATH or --style-dir DIR")


@dataclass(frozen=True)
class StyleTarget:
    """The style image to measure style losses against, where it came from, and any warning."""

    image: np.ndarray  # uint8 (H, W, 3) at the size the training loss used
    source: str
    warning: str | None = None


def style_target(meta: dict[str, Any], checkpoint: Path | None, explicit: Path | None,
                 dirs: Sequence[Path] | None = None) -> StyleTarget:
    """The style image for a model's losses: ``explicit`` (``--style``) if given, else the image
    embedded in ``checkpoint``, else the file found by name and sha256 in ``dirs``."""
    record = meta.get("style_image") or {}
    name, digest, size = record.get("name"), record.get("sha256"), record.get("size")
    max_side = max(size) if size else 512
    embedded = read_style_target(checkpoint) if checkpoint is not None and Path(checkpoint).suffix == ".safetensors" \
        else None
    if explicit is not None:
        explicit = Path(explicit)
        if not explicit.is_file():
            raise InputError(f"--style image not found: {explicit}")
        image = load_image(explicit, max_side=max_side)
        warning = None
        if digest and sha256_file(explicit) != digest:
            warning = f"--style {explicit} is not the image this model was trained on ({name}, sha256 " \
                      f"{digest[:12]}...); {_difference(image, embedded)}; losses are measured against --style"
        return StyleTarget(image, str(explicit), warning)
    if embedded is not None:
        return StyleTarget(embedded, f"{name or 'style image'} (embedded in {Path(checkpoint).name})")
    path = find_style_image(meta, None, dirs)
    return StyleTarget(load_image(path, max_side=max_side), str(path))


def _difference(image: np.ndarray, reference: np.ndarray | None) -> str:
    """How far an override is from the training image, in numbers a user can judge."""
    if reference is None:
        return "the checkpoint does not carry the training image to compare with"
    if image.shape != reference.shape:
        return f"its size at the training resolution is {image.shape[1]}x{image.shape[0]}, the training " \
               f"image's {reference.shape[1]}x{reference.shape[0]}"
    diff = np.abs(image.astype(np.int16) - reference.astype(np.int16))
    return f"mean difference {diff.mean():.1f}/255 from the training image (max {int(diff.max())})"
