"""Size limits read from file headers before anything is decoded, so memory stays bounded
whatever an input declares (a 187 KB PNG can declare 8000x8000 pixels; 3.7 GB went by before
the engine failed).

* ``MAX_PIXELS``: frames the engines process at full size (stylize, live, eval). 4096x4096
  covers 4K UHD and DCI 4K; ``--max-pixels`` raises it, ``--max-side`` shrinks the model input.
* ``MAX_DECODE_PIXELS``: any image rtstyle decodes (style images, photos, content images),
  even when it is shrunk right after: 100 MP is 300 MB of RGB.
"""

from __future__ import annotations

from pathlib import Path

from .errors import InputError

MAX_PIXELS = 4096 * 4096
MAX_DECODE_PIXELS = 100_000_000


def check_pixels(width: int, height: int, what: str | Path, limit: int = MAX_PIXELS,
                 hint: str = "--max-pixels raises the limit; --max-side shrinks the model input") -> None:
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


def check_media_pixels(path: str | Path, limit: int = MAX_PIXELS) -> None:
    """Refuse an image or video whose declared frame size is over ``limit`` pixels."""
    size = image_header_size(path) or video_header_size(path)
    if size is not None:
        check_pixels(*size, path, limit)
