"""Animated images: APNG and animated WebP, in and out (GIF is FFmpeg's own, both ways).

* ``is_animated_image(path)``: a ``.png`` or ``.webp`` holding more than one frame (read from its
  header). Such a file is a video for rtstyle: every frame is stylized, not the first one only.
* ``probe_webp(path)`` / ``iter_webp(path)``: an animated WebP read with PIL (FFmpeg 8 decodes
  only still WebP), each frame composited on the canvas, with its own duration in ms.
* ``set_last_frame_duration(path, seconds)``: FFmpeg's APNG muxer gives the last frame the delay
  of the one before, and libwebp the average delay; the writer puts the real one in the file's
  last frame header (APNG ``fcTL``, WebP ``ANMF``). GIF needs no patch: its muxer takes the
  packet's duration.
"""

from __future__ import annotations

import struct
import zlib
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import InputError
from ..frames import image_to_rgb

ANIMATED_IMAGE_EXTENSIONS = (".png", ".webp")
WEBP_TIME_BASE = Fraction(1, 1000)  # PIL gives WebP timestamps and durations in ms


def is_animated_image(path: str | Path) -> bool:
    """True for a .png/.webp file with more than one frame (False for stills, other files and
    files that do not open: their readers name the problem)."""
    path = Path(path)
    if path.suffix.lower() not in ANIMATED_IMAGE_EXTENSIONS or not path.is_file():
        return False
    from PIL import Image

    try:
        with Image.open(path) as im:
            return bool(getattr(im, "is_animated", False)) and im.format in ("PNG", "WEBP")
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return False


def probe_webp(path: Path) -> tuple[int, int, int, float]:
    """(width, height, frames, seconds) of an animated WebP, from its headers (no pixel decoded:
    PIL knows a frame's duration only once it is decoded, so they are read from the ANMF chunks)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            if im.format != "WEBP":
                raise InputError(f"not a WebP file: {path}")
            width, height, frames = im.width, im.height, im.n_frames
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise InputError(f"not a readable animated WebP: {path} ({exc.__class__.__name__})") from None
    data = path.read_bytes()
    ms = sum(int.from_bytes(data[pos + 20:pos + 23], "little") for pos in _webp_frames(data))
    return width, height, frames, ms / 1000


def iter_webp(path: Path) -> Iterator[tuple[np.ndarray, int, int]]:
    """(uint8 RGB frame, pts in ms, duration in ms) for every frame of an animated WebP."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            for index in range(im.n_frames):
                im.seek(index)
                im.load()
                yield (image_to_rgb(im).copy(), int(im.info.get("timestamp") or 0),
                       int(im.info.get("duration") or 0))
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise InputError(f"cannot decode {path} ({exc.__class__.__name__})") from None


# ------------------------------------------------------------------------------ last frame's delay

def set_last_frame_duration(path: Path, seconds: float) -> bool:
    """Write ``seconds`` as the last frame's delay of the APNG or animated WebP at ``path``
    (in place); False when the file holds no animation frame header to change."""
    data = bytearray(path.read_bytes())
    head = bytes(data[:16])
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        changed = _apng_last_delay(data, seconds)
    elif head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        changed = _webp_last_duration(data, seconds)
    else:
        return False
    if changed:
        path.write_bytes(data)
    return changed


def _apng_last_delay(data: bytearray, seconds: float) -> bool:
    """PNG chunks: length (4, big-endian), type (4), data, CRC32 (of type + data). An fcTL's data
    holds the delay as two u16 at offsets 20 (numerator) and 22 (denominator)."""
    pos, last = 8, None
    while pos + 8 <= len(data):
        length = struct.unpack_from(">I", data, pos)[0]
        if data[pos + 4:pos + 8] == b"fcTL" and length >= 26:
            last = pos
        pos += 12 + length
    if last is None:
        return False
    ms = max(0, round(seconds * 1000))
    num, den = (ms, 1000) if ms <= 65535 else (min(round(seconds), 65535), 1)  # ms, or whole seconds past 65 s
    struct.pack_into(">HH", data, last + 8 + 20, num, den)
    length = struct.unpack_from(">I", data, last)[0]
    struct.pack_into(">I", data, last + 8 + length, zlib.crc32(bytes(data[last + 4:last + 8 + length])))
    return True


def _webp_frames(data: bytes | bytearray) -> list[int]:
    """Offsets of the ANMF chunks of a WebP file. RIFF chunks after the 12-byte header: tag (4),
    little-endian size (4), data padded to even length; an ANMF's data holds the frame's duration
    in ms as a u24 at offset 12."""
    pos, found = 12, []
    while pos + 8 <= len(data):
        size = struct.unpack_from("<I", data, pos + 4)[0]
        if data[pos:pos + 4] == b"ANMF" and size >= 16:
            found.append(pos)
        pos += 8 + size + (size & 1)
    return found


def _webp_last_duration(data: bytearray, seconds: float) -> bool:
    frames = _webp_frames(data)
    if not frames:
        return False
    ms = max(0, min(round(seconds * 1000), 2**24 - 1))
    data[frames[-1] + 8 + 12:frames[-1] + 8 + 15] = ms.to_bytes(3, "little")
    return True
