"""File-system helpers: atomic writes, so no output is ever half-written."""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path
from typing import Iterator

from .outputs import commit, partial_path


@contextlib.contextmanager
def atomic_path(path: str | Path, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success move it to ``path``.

    The rename is atomic on POSIX, so readers see either the old file or the complete new
    one. With ``overwrite=False`` it never replaces a file (one that appeared during the run
    included: ``OutputError``). Either way the file gets the same permissions as every output
    (0666 less the umask; see ``rtstyle.outputs``). On failure the temporary file is removed
    and the exception propagates. User-facing outputs go through ``OutputPolicy.writing``,
    which checks the path first.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial_path(path)  # keeps the suffix so libraries that pick a format by extension still do
    try:
        yield tmp
        commit(tmp, path, replace=overwrite)
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


def check_regular_input(path: str | Path) -> None:
    """InputError for inputs that are pipes, sockets or devices (FIFOs, /dev/stdin fed by a
    pipe): video decoding seeks, so those would read as empty or fail deep in a decoder."""
    import stat

    from .errors import InputError

    try:
        mode = os.stat(path).st_mode
    except OSError:
        return  # a missing file is reported by whoever opens it, with its own wording
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return
    kind = "a pipe (FIFO)" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device"
    raise InputError(f"input {path} is {kind}, not a file: rtstyle reads files it can seek in; "
                     "save the stream to a file first")
