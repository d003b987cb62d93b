"""The one output rule every command follows (issue 15).

* An existing path is refused unless the user passed ``-y`` (``overwrite``); with ``-n``
  (``never``) an existing path is never touched (commands with many outputs skip it).
* An output may never be one of the command's inputs (same file, also through links).
* Every file is written under a hidden temporary name beside the target and renamed at the end.
  Without ``-y`` that rename cannot replace a file that appeared during the run (a no-replace
  rename: ``renameat2(RENAME_NOREPLACE)``, else ``link`` + ``unlink``), so two runs writing one
  path cannot both succeed.
* Every output gets the same permissions: 0666 less the umask (libraries such as safetensors
  create their files 0600).
* Temporary files of processes that died (SIGKILL, power loss) are removed when a later run
  writes the same path.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from .errors import OutputError

PARTIAL_TAG = ".partial-"
_NAME_MAX_FALLBACK = 255


@dataclass(frozen=True)
class OutputPolicy:
    """How a command treats existing outputs: refuse (default), replace (``-y``) or never touch
    them (``-n``)."""

    overwrite: bool = False
    never: bool = False

    def __post_init__(self) -> None:
        if self.overwrite and self.never:
            raise OutputError("-y (overwrite) and -n (never overwrite) contradict each other; pass one")

    def exists_message(self, path: Path) -> str:
        if self.never:
            return f"output {path} exists and -n never overwrites; choose another path"
        return f"output {path} exists; pass -y to replace it"

    def check(self, path: str | Path, inputs: Iterable[str | Path] = ()) -> Path:
        """Refuse an unusable output path up front (one-line ``OutputError``); return it."""
        path = Path(path)
        if str(path) == "-":
            raise OutputError("output '-' (standard output) is not supported; give a file path")
        if path.is_dir():
            raise OutputError(f"output {path} is a folder; give a file path")
        for item in inputs:
            if same_file(path, item):
                raise OutputError(f"output {path} is the input {item}; choose another path")
        check_name_length(path)
        clean_stale_partials(path)
        if (path.exists() or path.is_symlink()) and not self.overwrite:
            raise OutputError(self.exists_message(path))
        return path

    def skip(self, path: str | Path) -> bool:
        """True when ``-n`` says to leave an existing ``path`` alone (batch commands skip it)."""
        return self.never and Path(path).exists()

    @contextlib.contextmanager
    def writing(self, path: str | Path, inputs: Iterable[str | Path] = ()) -> Iterator[Path]:
        """Check ``path``, yield its temporary name, and put it in place when the block succeeds;
        on failure the temporary file is removed and the exception propagates."""
        path = self.check(path, inputs)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = partial_path(path)
        try:
            yield tmp
            commit(tmp, path, replace=self.overwrite)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise


def partial_path(path: Path, pid: int | None = None) -> Path:
    """``.NAME.partial-PID.SUFFIX`` beside ``path``: hidden, per process, suffix kept so libraries
    that pick a format from the extension still do."""
    return path.with_name(f".{path.stem}{PARTIAL_TAG}{os.getpid() if pid is None else pid}{path.suffix}")


def check_name_length(path: Path) -> None:
    """The temporary name is longer than the output's: refuse names the file system cannot hold
    (otherwise the error surfaces later, blaming the encoder)."""
    folder = path.parent if str(path.parent) else Path(".")
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        limit = os.pathconf(probe, "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = _NAME_MAX_FALLBACK
    longest = len(os.fsencode(partial_path(path, pid=4194304).name))  # the largest Linux PID
    if longest > limit:
        raise OutputError(f"output name {path.name!r} is too long ({len(os.fsencode(path.name))} bytes; "
                          f"this folder allows {limit - (longest - len(os.fsencode(path.name)))} for an output name)")


def same_file(a: str | Path, b: str | Path) -> bool:
    """True when ``a`` and ``b`` name one file (also through symlinks and hard links)."""
    a, b = Path(a), Path(b)
    try:
        return os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()


def output_mode() -> int:
    """0666 less the process umask, read without changing it (/proc), else by setting it back."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def commit(tmp: Path, path: Path, replace: bool) -> None:
    """Give ``tmp`` the output permissions and move it to ``path``; without ``replace`` an existing
    ``path`` (even one that appeared during the run) makes it fail with ``OutputError``."""
    if tmp.is_file():
        os.chmod(tmp, output_mode())
    if replace:
        os.replace(tmp, path)
        return
    try:
        rename_noreplace(tmp, path)
    except FileExistsError:
        raise OutputError(f"output {path} appeared while this run was writing it (another run?); "
                          f"nothing was replaced, pass -y to replace it") from None


def rename_noreplace(src: Path, dst: Path) -> None:
    """Atomic rename that fails with ``FileExistsError`` when ``dst`` exists."""
    if _renameat2(src, dst):
        return
    if src.is_dir():  # folders cannot be hard-linked: best effort
        if dst.exists():
            raise FileExistsError(errno.EEXIST, "exists", str(dst))
        os.rename(src, dst)
        return
    try:
        os.link(src, dst)  # fails with EEXIST atomically
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
        if dst.exists():  # a file system without hard links: check, then rename
            raise FileExistsError(errno.EEXIST, "exists", str(dst)) from None
        os.rename(src, dst)
        return
    os.unlink(src)


_RENAME_NOREPLACE = 1
_AT_FDCWD = -100


def _renameat2(src: Path, dst: Path) -> bool:
    """``renameat2(..., RENAME_NOREPLACE)`` through libc; False when unavailable here."""
    func = _libc_renameat2()
    if func is None:
        return False
    if func(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), _RENAME_NOREPLACE) == 0:
        return True
    err = ctypes.get_errno()
    if err == errno.EEXIST:
        raise FileExistsError(err, os.strerror(err), str(dst))
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False  # old kernel or a file system without the flag: use the fallback
    raise OSError(err, os.strerror(err), str(src))


_LIBC_RENAMEAT2: list = []


def _libc_renameat2():
    if not _LIBC_RENAMEAT2:
        func = None
        with contextlib.suppress(OSError, AttributeError, TypeError):
            libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
            func = libc.renameat2
            func.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
            func.restype = ctypes.c_int
        _LIBC_RENAMEAT2.append(func)
    return _LIBC_RENAMEAT2[0]


def partials_of(path: Path) -> list[tuple[Path, int]]:
    """``path``'s temporary files beside it (``partial_path``'s names), with the pid in each name."""
    folder = path.parent if str(path.parent) else Path(".")
    pattern = re.compile(re.escape(f".{path.stem}{PARTIAL_TAG}") + r"(\d+)" + re.escape(path.suffix) + "$")
    try:
        names = [p for p in folder.iterdir() if p.name.startswith(f".{path.stem}{PARTIAL_TAG}")]
    except OSError:
        return []
    found = []
    for candidate in names:
        match = pattern.match(candidate.name)
        with contextlib.suppress(OSError):
            if match and not stat.S_ISDIR(candidate.lstat().st_mode):  # never a folder on a name match
                found.append((candidate, int(match.group(1))))
    return found


def clean_stale_partials(path: Path) -> list[Path]:
    """Remove ``path``'s temporary files left by processes that no longer exist; return them."""
    removed = []
    for candidate, pid in partials_of(path):
        if not _alive(pid):
            with contextlib.suppress(OSError):
                candidate.unlink()
                removed.append(candidate)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True
