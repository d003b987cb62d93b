"""Opening ``.pt2`` packages safely: every zip entry name is checked before anything is
extracted, and the loader unpacks into a private temporary folder that is removed afterwards.

torch's C++ loader extracts the whole archive under ``$TMPDIR/aotinductor_*`` and follows entry
names as given, so ``../x`` lands outside its folder, and a failed load leaves the folder behind.
Checking the names first and pointing ``TMPDIR`` at a folder of our own (mode 0700, removed in
``finally``) closes both. The library is ``dlopen``-ed during the load, so removing its file
afterwards is safe on POSIX.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
import threading
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any, Iterator

from .errors import CheckpointError

MAX_ENTRIES = 10_000
MAX_UNPACKED_BYTES = 8 << 30  # far above any style net; stops zip bombs filling the temp folder
_ENV_NAMES = ("TMPDIR", "TORCHINDUCTOR_CACHE_DIR")
_ENV_LOCK = threading.Lock()  # TMPDIR is process-wide: one load at a time changes it


def check_pt2_entries(path: str | Path) -> list[zipfile.ZipInfo]:
    """The archive's entries, or a one-line ``CheckpointError`` naming the first unsafe one:
    absolute paths, ``..`` parts, backslashes, NUL bytes, symlinks and other non-regular files."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, OSError):
        raise CheckpointError(f"{path} is not an AOTInductor package (.pt2 zip archive)") from None
    if len(infos) > MAX_ENTRIES:
        raise CheckpointError(f"{path} has {len(infos)} entries (limit {MAX_ENTRIES}); not an rtstyle package")
    total = 0
    for info in infos:
        reason = _unsafe_reason(info)
        if reason:
            raise CheckpointError(f"{path} has an unsafe entry {info.filename!r} ({reason}); nothing was extracted")
        total += info.file_size
    if total > MAX_UNPACKED_BYTES:
        raise CheckpointError(f"{path} unpacks to {total} bytes (limit {MAX_UNPACKED_BYTES}); not an rtstyle package")
    return infos


def _unsafe_reason(info: zipfile.ZipInfo) -> str | None:
    name = info.filename
    if "\x00" in name or "\\" in name:
        return "NUL or backslash in the name"
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return "absolute path"
    if ".." in PurePosixPath(name).parts:
        return "'..' leaves the unpack folder"
    kind = stat.S_IFMT(info.external_attr >> 16)  # 0 when the archiver recorded no file type
    if kind and kind not in (stat.S_IFREG, stat.S_IFDIR):
        return "symlink or special file"
    return None


@contextlib.contextmanager
def private_tmpdir() -> Iterator[Path]:
    """Point ``TMPDIR`` (and Python's ``tempfile``) at a fresh 0700 folder; remove it after."""
    folder = Path(tempfile.mkdtemp(prefix="rtstyle-pt2-"))
    with _ENV_LOCK:
        # torch's inductor cache_dir() stores its first answer in TORCHINDUCTOR_CACHE_DIR: restore
        # that too, or later compiles would use the removed folder.
        saved = {name: os.environ.get(name) for name in _ENV_NAMES}
        old_tempdir = tempfile.tempdir
        os.environ["TMPDIR"], tempfile.tempdir = str(folder), str(folder)
        try:
            yield folder
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
            tempfile.tempdir = old_tempdir
            shutil.rmtree(folder, ignore_errors=True)


def load_pt2(path: str | Path, device_index: int = -1) -> Any:
    """``aoti_load_package`` after ``check_pt2_entries``, unpacked in a private folder.

    Only call it for packages that passed ``trust.check_trusted``: loading runs native code."""
    from torch._inductor import aoti_load_package

    check_pt2_entries(path)
    with private_tmpdir():
        return aoti_load_package(str(path), device_index=device_index)
