"""Limits on what one input may hold, decided here for every front door (``rtstyle stylize``, the
studio's file jobs, ``live``, ``eval``). They are read from file headers before anything is
decoded, so memory stays bounded whatever an input declares (a 187 KB PNG can declare 8000x8000
pixels; 3.7 GB went by before the engine failed), and checked again while decoding, since a
header can lie (a stream may change its frame size midway, a container may omit its length).

* ``MAX_PIXELS``: frames the engines process at full size (stylize, live, eval). 4096x4096
  covers 4K UHD and DCI 4K; ``--max-pixels`` raises it, ``--max-side`` shrinks the model input.
* ``MAX_DECODE_PIXELS``: any image rtstyle decodes (style images, photos, content images),
  even when it is shrunk right after: 100 MP is 300 MB of RGB.
* ``Limits``: one input's frame size, frame count and length. ``rtstyle stylize`` takes them
  from its flags (``--max-pixels``, ``--max-input-frames``, ``--max-input-seconds``), the studio
  from the server's flags; ``Limits.tightened`` applies a client's own values, which can only
  lower them. ``stylize.check_input`` applies them to a file before decoding, ``VideoReader``
  while decoding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from pathlib import Path

from .errors import ConfigError, InputError

MAX_PIXELS = 4096 * 4096
MAX_DECODE_PIXELS = 100_000_000
PIXELS_HINT = "--max-pixels raises the limit; --max-side shrinks the model input"
# Frames a job holds at once beyond the engine's own memory: the decoder's picture and its RGB
# copy, the resized copy, a batch being filled, one in the engine, the sink's (pipeline queues).
FRAMES_IN_FLIGHT = 8
_BUFFER_BYTES = 64 * 2**20  # codec and container buffers, Python objects


@dataclass(frozen=True)
class Limits:
    """What one input may hold; ``None``: no limit. ``hint`` ends a pixel-limit message (what
    the user can change)."""

    max_pixels: int = MAX_PIXELS  # one frame's width x height
    max_frames: int | None = None  # frames in one input
    max_seconds: float | None = None  # length of one input
    hint: str = PIXELS_HINT

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name != "hint" and value is not None:
                _check_positive(f.name, value)

    def tightened(self, **client: int | float | None) -> "Limits":
        """These limits with a client's values (``max_pixels=...``; None: not given) where they
        are lower: a client value can only tighten a limit, never loosen it."""
        changes = {}
        for name, value in client.items():
            if name not in ("max_pixels", "max_frames", "max_seconds"):
                raise ConfigError(f"unknown limit {name!r}; choose from max_pixels, max_frames, max_seconds")
            if value is None:
                continue
            _check_positive(name, value)
            current = getattr(self, name)
            changes[name] = value if current is None else min(current, value)
        return replace(self, **changes)

    def check_frame(self, width: int, height: int, what: str | Path) -> None:
        check_pixels(width, height, what, self.max_pixels, self.hint)

    def check_frames(self, frames: int | None, what: str | Path, more: bool = False) -> None:
        """``frames`` (declared, or decoded so far) against ``max_frames``; ``more``: the count
        is a lower bound (decoding goes on)."""
        if self.max_frames is not None and frames is not None and frames > self.max_frames:
            amount = f"more than {self.max_frames:,}" if more else f"{frames:,}"
            raise InputError(f"{what} holds {amount} frames, above the limit of {self.max_frames:,} per input")

    def check_seconds(self, seconds: float | None, what: str | Path, more: bool = False) -> None:
        if self.max_seconds is not None and seconds is not None and seconds > self.max_seconds:
            amount = f"more than {self.max_seconds:g} s" if more else f"{seconds:.1f} s"
            raise InputError(f"{what} lasts {amount}, above the limit of {self.max_seconds:g} s per input")

    def memory_budget(self) -> int:
        """Bytes a run may hold for frames at this limit (FRAMES_IN_FLIGHT of them in RGB, plus
        buffers), beyond its engine: what an input refused by these limits must stay under."""
        return FRAMES_IN_FLIGHT * 3 * self.max_pixels + _BUFFER_BYTES


def _check_positive(name: str, value) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0
    if not ok or (name != "max_seconds" and not float(value).is_integer()):
        kind = "a number of seconds > 0" if name == "max_seconds" else "an integer >= 1"
        raise ConfigError(f"{name} must be {kind}, got {value!r}")


def check_pixels(width: int, height: int, what: str | Path, limit: int = MAX_PIXELS, hint: str = PIXELS_HINT) -> None:
    if width * height > limit:
        raise InputError(f"{what} is {width}x{height} = {width * height:,} pixels, above the limit of {limit:,} "
                         f"({hint})")


def image_header_size(path: str | Path) -> tuple[int, int] | None:
    """(width, height) from an image file's header (no pixel decoded), or None if PIL does not
    recognise it (a video, or not an image at all: its reader reports that)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:  # lazy: reads the header only
            return im.size
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return None
    except Image.DecompressionBombError:  # PIL's own guard, over 2x its limit
        raise InputError(f"{path} declares more than {MAX_DECODE_PIXELS:,} pixels, above the limit rtstyle decodes "
                         "(shrink the image first)") from None


def video_header_size(path: str | Path) -> tuple[int, int] | None:
    """(width, height) of the first video stream from the container header, or None."""
    import av

    try:
        with av.open(str(path)) as container:
            stream = next(iter(container.streams.video), None)
            if stream is None:
                return None
            ctx = stream.codec_context
            return (int(ctx.width), int(ctx.height)) if ctx.width and ctx.height else None
    except (av.error.FFmpegError, OSError, ValueError):
        return None


def check_media_pixels(path: str | Path, limit: int = MAX_PIXELS, hint: str = PIXELS_HINT) -> None:
    """Refuse an image or video whose declared frame size is over ``limit`` pixels."""
    size = image_header_size(path) or video_header_size(path)
    if size is not None:
        check_pixels(*size, path, limit, hint)
