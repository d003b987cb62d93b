"""The run tag: what a finished output says about the run that wrote it (``--skip-existing``).

Every video ``VideoWriter`` writes carries one line of text in its ``comment`` tag::

    rtstyle-run/1 run=<16 hex> source=<bytes>:<mtime ns> window=<start>:<duration> frames=0000000046 end=done

* ``source``: size and modification time of the input (as make and rsync judge a file unchanged);
* ``window``: the part of the input asked for (``-ss``/``-t``; ``-`` for none);
* ``frames``: frames written; ``end``: ``done`` (the whole window), ``stop`` (an interrupted run's
  finalised partial output) or ``open`` (never finalised);
* ``run``: the run that wrote it (a cluster job: one id for all its outputs, so a retried task
  recognises what an earlier attempt of the same job already finished).

The tag goes into the container header when the file is opened, with ``frames`` and ``end`` as
fixed-width placeholders, and is sealed at finalisation: those bytes are rewritten in place (same
length) once the muxer has closed the file and before it is renamed into place. MP4/MOV (in
``moov``, written last), Matroska/WebM (``Tags``; written without CRC-32 elements, which a rewrite
would invalidate), AVI (``INFO/ICMT``) and FLV (``onMetaData``) store the text as it is. The GIF,
APNG, WebP and MPEG-TS muxers store no such tag: the sealed tag is appended as a GIF comment
extension, a PNG ``tEXt`` chunk, a RIFF chunk of its own (``RTAG``, which WebP readers skip) or
a null packet (PID 0x1FFF, which demuxers drop). So a file judges itself: no frame counting,
which containers, decoders and packed B-frames disagree on.
"""

from __future__ import annotations

import os
import re
import secrets
import struct
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path

PREFIX = "rtstyle-run/1"
ENDS = ("open", "done", "stop")
_FRAMES_DIGITS = 10
_SCAN = 1 << 20  # the tag sits in the first (header) or last (MP4 moov, GIF, PNG) MiB of a file
_PATTERN = re.compile(
    rb"rtstyle-run/1 run=([0-9a-f]{16}) source=(\d+):(\d+) window=([^ :]+):([^ :]+) frames=(\d{10}) end=(open|done|stop)")
_MUXER_OPTIONS = {"matroska": {"write_crc32": "0"}, "webm": {"write_crc32": "0"}}
_GIF_TRAILER = b"\x3b"
_PNG_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"
_WEBP_CHUNK = b"RTAG"  # not one of WebP's chunks: readers skip unknown chunks (WebP container spec)
_TS_PACKET = 188
_TS_NULL_HEADER = b"\x47\x1f\xff\x10"  # sync byte, PID 0x1FFF (null packet), payload only


def new_run_id() -> str:
    return secrets.token_hex(8)


def _window_text(value: float | None) -> str:
    return "-" if value is None else repr(float(value))


def _window_value(text: str) -> float | None:
    return None if text == "-" else float(text)


@dataclass(frozen=True)
class RunTag:
    source_size: int
    source_mtime_ns: int
    start: float | None = None  # seconds into the input (None: its beginning)
    duration: float | None = None  # seconds (None: to its end)
    frames: int = 0
    end: str = "open"
    run: str = field(default_factory=new_run_id)

    @classmethod
    def for_source(cls, src: str | Path, start: float | None, duration: float | None,
                   run: str | None = None) -> "RunTag":
        st = os.stat(src)
        return cls(st.st_size, st.st_mtime_ns, start or None, duration, run=run or new_run_id())

    def text(self) -> str:
        return (f"{PREFIX} run={self.run} source={self.source_size}:{self.source_mtime_ns} "
                f"window={_window_text(self.start)}:{_window_text(self.duration)} "
                f"frames={self.frames:0{_FRAMES_DIGITS}d} end={self.end}")

    def sealed(self, frames: int, end: str) -> "RunTag":
        return replace(self, frames=frames, end=end)

    def why_not_complete(self, src: str | Path, start: float | None, duration: float | None) -> str | None:
        """None when this tag says: the whole window of ``src`` as it is now was written; else why not."""
        if self.end == "stop":
            return f"an interrupted run's partial output ({self.frames} frames)"
        if self.end != "done":
            return "never finalised"
        st = os.stat(src)
        if (st.st_size, st.st_mtime_ns) != (self.source_size, self.source_mtime_ns):
            return f"{Path(src).name} changed since (size or modification time)"
        if (start or None, duration) != (self.start, self.duration):
            return (f"written for another window (-ss {_window_text(self.start)} -t {_window_text(self.duration)})")
        return None


def muxer_options(fmt: str | None) -> dict[str, str]:
    """Options for ``av.open`` so that the tag can be sealed in place (see the module docstring)."""
    return dict(_MUXER_OPTIONS.get(fmt or "", {}))


def embed(container, tag: RunTag) -> None:
    """Put the open tag in a container's metadata (before ``start_encoding``)."""
    container.metadata["comment"] = tag.text()


def seal(path: Path, tag: RunTag) -> None:
    """Write the final ``tag`` into the finalised file ``path``: over the open tag of the same run
    where the container holds it, else appended (GIF, PNG). Raises ``ValueError`` if neither fits."""
    final = tag.text().encode()
    size = path.stat().st_size
    with open(path, "r+b") as f:
        found = False
        for offset, data in _windows(f, size):
            for match in _PATTERN.finditer(data):
                if match.group(1).decode() == tag.run and match.group(7) == b"open":
                    f.seek(offset + match.start())
                    f.write(final)  # same length: only frames= and end= change
                    found = True
        if found:
            return
        f.seek(0)
        head = f.read(8)
        if head[:6] in (b"GIF89a", b"GIF87a"):
            _append_gif_comment(f, size, final)
        elif head == b"\x89PNG\r\n\x1a\n":
            _append_png_text(f, size, final)
        elif head[:4] == b"RIFF" and f.read(4) == b"WEBP":
            _append_webp_chunk(f, size, final)
        elif head[:1] == b"\x47" and size % _TS_PACKET == 0:
            _append_ts_null_packet(f, size, final)
        else:
            raise ValueError(f"{path.name}: the container kept no run tag")


def read_tag(path: str | Path) -> RunTag | None:
    """The run tag of ``path`` (the last one found), or None (no tag: not written by rtstyle, or by
    a version before tags)."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            matches = [m for _, data in _windows(f, size) for m in _PATTERN.finditer(data)]
    except OSError:
        return None
    if not matches:
        return None
    m = matches[-1]
    return RunTag(int(m.group(2)), int(m.group(3)), _window_value(m.group(4).decode()),
                  _window_value(m.group(5).decode()), int(m.group(6)), m.group(7).decode(), m.group(1).decode())


def _windows(f, size: int):
    """(offset, bytes) of the first and the last ``_SCAN`` bytes (the whole file when small)."""
    f.seek(0)
    if size <= 2 * _SCAN:
        yield 0, f.read()
        return
    yield 0, f.read(_SCAN)
    f.seek(size - _SCAN)
    yield size - _SCAN, f.read()


def _append_gif_comment(f, size: int, text: bytes) -> None:
    """A GIF89a comment extension before the trailer byte."""
    f.seek(size - 1)
    if f.read(1) != _GIF_TRAILER:
        raise ValueError("GIF without its trailer byte")
    blocks = b"".join(bytes([len(text[i:i + 255])]) + text[i:i + 255] for i in range(0, len(text), 255))
    f.seek(size - 1)
    f.write(b"\x21\xfe" + blocks + b"\x00" + _GIF_TRAILER)


def _append_png_text(f, size: int, text: bytes) -> None:
    """A ``tEXt`` chunk (keyword ``Comment``) before ``IEND``."""
    f.seek(size - len(_PNG_IEND))
    if f.read() != _PNG_IEND:
        raise ValueError("PNG without its IEND chunk at the end")
    body = b"tEXt" + b"Comment\x00" + text
    chunk = struct.pack(">I", len(body) - 4) + body + struct.pack(">I", zlib.crc32(body))
    f.seek(size - len(_PNG_IEND))
    f.write(chunk + _PNG_IEND)


def _append_webp_chunk(f, size: int, text: bytes) -> None:
    """An ``RTAG`` chunk after the last one, the RIFF size grown to match."""
    if size % 2:
        raise ValueError("WebP of odd length")
    chunk = _WEBP_CHUNK + struct.pack("<I", len(text)) + text + b"\x00" * (len(text) & 1)
    f.seek(size)
    f.write(chunk)
    f.seek(4)
    f.write(struct.pack("<I", size + len(chunk) - 8))


def _append_ts_null_packet(f, size: int, text: bytes) -> None:
    """One null packet (PID 0x1FFF) whose payload is the tag, padded with 0xFF."""
    if len(text) > _TS_PACKET - len(_TS_NULL_HEADER):
        raise ValueError("run tag longer than one MPEG-TS packet")
    f.seek(size)
    f.write(_TS_NULL_HEADER + text + b"\xff" * (_TS_PACKET - len(_TS_NULL_HEADER) - len(text)))
