"""The studio's safety rules, free of any web framework so they are tested directly.

* ``is_loopback(host)``: 127.0.0.0/8, ::1 and ``localhost``. Any other bind needs a token.
* ``check_token(expected, given)``: constant-time comparison.
* ``sniff_media(head)``: what the first bytes of an upload say it is (never the file name):
  ``("video", ".mp4")``, ``("image", ".png")`` ... or None for anything else.
* ``UploadStore``: a private (0700) temp folder; each job gets a subfolder named by a random id,
  files inside get fixed names (``input.<sniffed ext>``, ``output.<ext>``), so no client-supplied
  name ever reaches the file system. ``purge_expired`` deletes what outlived its time limit;
  ``usage()`` is the bytes it holds (the disk cap). The folder holds a lock while its server
  lives: at start, folders of servers that died (SIGKILL, power loss) are removed.
* ``Slots``: a counter with a limit (sessions, jobs); ``acquire`` is False when full, which the
  app answers with 503 "busy".
* ``scrub_paths(text, roots)``: a message with every path under ``roots`` cut to its file name,
  so no error a client sees names a server path.
"""

from __future__ import annotations

import fcntl
import hmac
import ipaddress
import os
import re
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from ..errors import InputError

MIN_TOKEN_CHARS = 16
_ID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost: it may resolve to anything


def new_token() -> str:
    return secrets.token_urlsafe(24)


def check_token(expected: str | None, given: str | None) -> bool:
    """True when no token is required or ``given`` matches it."""
    if expected is None:
        return True
    return given is not None and hmac.compare_digest(expected.encode(), given.encode())


def validate_token(token: str) -> str:
    if len(token) < MIN_TOKEN_CHARS:
        raise InputError(f"--token must be at least {MIN_TOKEN_CHARS} characters, got {len(token)}")
    return token


def new_id() -> str:
    return secrets.token_urlsafe(12)  # 16 characters of [A-Za-z0-9_-]


def valid_id(text: str) -> bool:
    return bool(_ID.match(text))


# ------------------------------------------------------------------------------- content sniffing

# Containers FFmpeg reads, told apart by their signatures; the job still fails cleanly if the
# content behind a right signature does not decode.
_MP4_BRANDS_QT = (b"qt  ",)


def sniff_media(head: bytes) -> tuple[str, str] | None:
    """(kind, extension) from a file's first bytes (at least 16 wanted), or None if not a known
    video or image format."""
    if len(head) >= 12 and head[4:8] == b"ftyp":
        return ("video", ".mov") if head[8:12] in _MP4_BRANDS_QT else ("video", ".mp4")
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "video", ".mkv"  # Matroska and WebM
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return "video", ".avi"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "image", ".webp"
    if head.startswith(b"\xff\xd8\xff"):
        return "image", ".jpg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image", ".png"
    if head.startswith(b"BM") and len(head) >= 14:
        return "image", ".bmp"
    return None


def sniff_image(head: bytes) -> str | None:
    """The extension of an image upload (style images), or None."""
    found = sniff_media(head)
    return found[1] if found is not None and found[0] == "image" else None


# -------------------------------------------------------------------------------------- storage

STORE_PREFIX = "rtstyle-serve-"
LOCK_NAME = ".server.lock"
_UNLOCKED_STALE_S = 24 * 3600  # a folder without a lock file (an older rtstyle's) this old is stale


class UploadStore:
    """Private per-job folders under one 0700 temp folder, deleted after use or ``ttl_s``.

    The folder's lock file is held (``flock``) while this server lives; the kernel releases it
    when the process dies, however it dies, so a new store removes the folders whose lock it can
    take (``remove_stale``) before making its own."""

    def __init__(self, ttl_s: float = 1800.0, parent: str | Path | None = None):
        self.ttl_s = ttl_s
        self.removed_stale = remove_stale(parent)
        self.root = Path(tempfile.mkdtemp(prefix=STORE_PREFIX, dir=parent))  # mkdtemp: mode 0700
        self._lock_fd = os.open(self.root / LOCK_NAME, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        self._created: dict[str, float] = {}
        self._lock = threading.Lock()

    def new_folder(self) -> tuple[str, Path]:
        """A fresh (id, folder) pair; the id is random, never derived from client input."""
        job_id = new_id()
        folder = self.root / job_id
        folder.mkdir(mode=0o700)
        with self._lock:
            self._created[job_id] = time.monotonic()
        return job_id, folder

    def folder(self, job_id: str) -> Path | None:
        """The folder of a known id (ids that were never issued, or malformed, give None)."""
        if not valid_id(job_id):
            return None
        with self._lock:
            known = job_id in self._created
        return self.root / job_id if known else None

    def delete(self, job_id: str) -> None:
        with self._lock:
            known = self._created.pop(job_id, None) is not None
        if known:
            shutil.rmtree(self.root / job_id, ignore_errors=True)

    def expired(self, now: float | None = None) -> list[str]:
        now = time.monotonic() if now is None else now
        with self._lock:
            return [k for k, t in self._created.items() if now - t > self.ttl_s]

    def usage(self) -> int:
        """Bytes of every file under the store (uploads, also those still arriving, and results)."""
        total = 0
        for folder, _, files in os.walk(self.root):
            for name in files:
                try:
                    total += os.lstat(os.path.join(folder, name)).st_size
                except OSError:  # deleted meanwhile
                    pass
        return total

    def close(self) -> None:
        with self._lock:
            self._created.clear()
        shutil.rmtree(self.root, ignore_errors=True)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


def remove_stale(parent: str | Path | None = None) -> list[Path]:
    """Remove the store folders under ``parent`` (the temp folder) of servers that are gone:
    this user's ``rtstyle-serve-*`` folders whose lock nobody holds (or, with no lock file,
    untouched for a day). Returns what was removed."""
    removed = []
    base = Path(parent) if parent is not None else Path(tempfile.gettempdir())
    try:
        candidates = [p for p in base.iterdir() if p.name.startswith(STORE_PREFIX)]
    except OSError:
        return removed
    for folder in candidates:
        try:
            if folder.is_symlink() or not folder.is_dir() or folder.stat().st_uid != os.getuid():
                continue
            if _owner_gone(folder):
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder)
        except OSError:
            continue
    return removed


def _owner_gone(folder: Path) -> bool:
    lock = folder / LOCK_NAME
    if not lock.exists():
        return time.time() - folder.stat().st_mtime > _UNLOCKED_STALE_S
    fd = os.open(lock, os.O_RDWR | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # taken: its server is gone (held until close)
        return True
    except BlockingIOError:
        return False  # a live server holds it
    finally:
        os.close(fd)


def scrub_paths(text: str, roots: Iterable[str | Path]) -> str:
    """``text`` with every path under one of ``roots`` replaced by its last part (the file name)."""
    for root in sorted({str(r).rstrip("/") for r in roots if str(r) not in ("", "/")}, key=len, reverse=True):
        text = re.sub(re.escape(root) + r"(/[^\s'\",;:()]*)?",
                      lambda m: (m.group(0).rstrip("/").rsplit("/", 1)[-1] or "the server's folder"), text)
    return text


def inside(folder: Path, path: Path) -> bool:
    """True when ``path`` resolves inside ``folder`` (a belt-and-braces check before serving)."""
    try:
        Path(os.path.realpath(path)).relative_to(os.path.realpath(folder))
        return True
    except ValueError:
        return False


class Slots:
    """At most ``limit`` holders at once (thread-safe)."""

    def __init__(self, limit: int, what: str):
        if limit < 1:
            raise InputError(f"the {what} limit must be >= 1, got {limit}")
        self.limit = limit
        self.what = what
        self.used = 0
        self._lock = threading.Lock()

    def acquire(self) -> bool:
        with self._lock:
            if self.used >= self.limit:
                return False
            self.used += 1
            return True

    def release(self) -> None:
        with self._lock:
            self.used = max(0, self.used - 1)

    def busy_message(self) -> str:
        return f"busy: all {self.limit} {self.what} slots are in use; try again later"
