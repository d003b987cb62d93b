"""File-system helpers: atomic writes, so no output is ever half-written."""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it over ``path``.

    The rename is atomic on POSIX, so readers see either the old file or the complete new
    one. On failure the temporary file is removed and the exception propagates.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Keep the suffix so libraries that pick a format by extension still do.
    tmp = path.with_name(f".{path.stem}.partial-{os.getpid()}{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def cache_dir() -> Path:
    """rtstyle's cache folder: $RTSTYLE_CACHE, else $XDG_CACHE_HOME/rtstyle, else ~/.cache/rtstyle."""
    if env := os.environ.get("RTSTYLE_CACHE"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "rtstyle"


def as_paths(paths) -> tuple[Path, ...]:
    """A path or a sequence of paths as a tuple of Paths: a single ``str``/``Path`` is one path
    (iterating a string would give one-letter names)."""
    if isinstance(paths, (str, os.PathLike)):
        return (Path(paths),)
    return tuple(Path(p) for p in paths)
