"""The style image a checkpoint was trained on, found again: one lookup for ``eval quality`` and
``eval temporal`` (the checkpoint records the image's name and SHA-256; the image itself lives in
a style folder)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from .errors import InputError
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
