"""Model files that are code: which ``.pt2`` packages and TensorRT engines rtstyle may load.

A ``.pt2`` (AOTInductor) package carries a native library whose constructors run the moment it
is loaded, and a TensorRT engine is deserialised by native code that trusts its input. Both are
code, not data, so rtstyle loads one only when

* rtstyle itself exported or built it on this machine: every package or engine it writes has its
  SHA-256 appended to a trust list in the user's cache folder (``trusted-models.txt``), or
* the user says so explicitly (``--trust-model``, ``trust_model=True``).

Safetensors checkpoints and ONNX models are data (no code runs when they load): those are the
formats to share. The trust list is ignored when other users could write to it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .errors import InputError
from .fsutil import cache_dir, sha256_file

TRUST_FILE_NAME = "trusted-models.txt"
SHARE_HINT = "share models as safetensors checkpoints or ONNX files, which carry no code"


class UntrustedModelError(InputError):
    """A package or engine rtstyle did not produce, opened without ``--trust-model``."""


def trust_file() -> Path:
    return cache_dir() / TRUST_FILE_NAME


def record_trusted(path: str | Path, name: str | None = None) -> str:
    """Add ``path``'s SHA-256 to the trust list (called right after rtstyle writes the file, before
    its rename; ``name``: the final file name, for people reading the list)."""
    digest = sha256_file(path)
    if digest in trusted_hashes():
        return digest
    file = trust_file()
    file.parent.mkdir(parents=True, exist_ok=True)
    # One short line in append mode: concurrent writers cannot interleave inside it (O_APPEND,
    # one write under PIPE_BUF). 0600: only this user vouches for the list.
    fd = os.open(file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, f"{digest}  {name or Path(path).name}\n".encode())
    finally:
        os.close(fd)
    return digest


def trusted_hashes() -> set[str]:
    """The hashes in the trust list; empty when it is missing or writable by other users."""
    file = trust_file()
    try:
        st = file.stat()
        text = file.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    if st.st_uid != os.getuid() or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return set()  # someone else could have vouched for a file: trust nothing in it
    return {parts[0] for line in text.splitlines() if (parts := line.split()) and len(parts[0]) == 64}


def is_trusted(path: str | Path) -> bool:
    return sha256_file(path) in trusted_hashes()


def check_trusted(path: str | Path, trust_model: bool = False, kind: str = "a compiled model") -> None:
    """Raise ``UntrustedModelError`` unless rtstyle produced ``path`` or the user trusts it."""
    if trust_model or is_trusted(path):
        return
    raise UntrustedModelError(
        f"refusing to load {Path(path).name} ({kind}): loading it runs native code, and it was not exported or "
        f"built by rtstyle here (its sha256 is not in {trust_file()}); pass --trust-model only if you trust where it "
        f"came from, or {SHARE_HINT}"
    )
