"""Photos through the same engine path as video: ``sources.ImageSource`` -> ``pipeline.run_pipeline``
(batched: consecutive photos of one size share an engine call) -> ``PhotoSink``, which writes each
result in the format of its output's extension. No temporary files, EXIF orientation applied on
reading (``frames.load_image``)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Callable

import numpy as np

from .engine import Engine
from .errors import InputError
from .frames import IMAGE_EXTENSIONS, Frame, resize, save_image
from .pipeline import PipelineConfig, PipelineStats, run_pipeline
from .sinks import Sink, SinkChain
from .sources import ImageSource, Source, Transformed
from .tiles import DEFAULT_PAD, Tiling, tile_windows
from .video.animated import is_animated_image

PHOTO_OUTPUT_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
_QUALITY = {".jpg": {"quality": 95}, ".jpeg": {"quality": 95}, ".webp": {"quality": 95}}  # PIL's default 75 shows blocks

SizeRule = Callable[[int, int], tuple[int, int]]  # (width, height) -> (width, height)


def check_photo(path: str | Path) -> tuple[int, int]:
    """A photo's (width, height) from its header, without decoding its pixels: bad inputs are
    named before the engine is built. Raises InputError naming the file."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return im.size
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise InputError(f"not a readable image: {path} ({exc.__class__.__name__})") from None


def tile_count(paths: list[Path], model_size: SizeRule, tile: int, pad: int = DEFAULT_PAD) -> int:
    """How many tiles ``stylize_photos`` will cut ``paths`` into, from their headers (a progress
    total: one large photo is many minutes of tiles)."""
    return sum(len(tile_windows(*model_size(*check_photo(path)), tile, pad)) for path in paths)


def is_photo(path: str | Path) -> bool:
    """A still image: an image extension and one frame. GIFs, animated PNGs (APNG) and animated
    WebPs are videos: every frame is stylized, with its duration."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS and not is_animated_image(path)


class EachFitted(Transformed):
    """Another source's frames, each brought to ``model_size(w, h)`` of its own size (photos of
    different sizes stay different; ``Resized`` would force one size on all). ``sizes[i]`` is
    frame i's original size."""

    def __init__(self, inner: Source, model_size: SizeRule):
        super().__init__(inner)
        self.model_size = model_size
        self.sizes: dict[int, tuple[int, int]] = {}

    def transform(self, frame: Frame) -> Frame:
        h, w = frame.image.shape[:2]
        self.sizes[frame.index] = (w, h)
        frame.image = resize(frame.image, self.model_size(w, h))
        return frame


class PhotoSink(Sink):
    """Frame i's result -> ``outputs[i]`` at ``output_size(i, w, h)`` (w, h: the engine's output
    size), written atomically; ``written`` lists what was written."""

    def __init__(self, outputs: list[Path], output_size: Callable[[int, int, int], tuple[int, int]]):
        self.outputs, self.output_size = outputs, output_size
        self.written: list[Path] = []

    def write(self, image: np.ndarray, frame: Frame) -> np.ndarray:
        h, w = image.shape[:2]
        dst = self.outputs[frame.index]
        image = resize(np.ascontiguousarray(image), self.output_size(frame.index, w, h))
        save_image(dst, image, **_QUALITY.get(dst.suffix.lower(), {}))
        self.written.append(dst)
        return image


def stylize_photos(pairs: list[tuple[Path, Path]], engine: Engine, batch_size: int, model_size: SizeRule,
                   output_size: Callable[[tuple[int, int], tuple[int, int]], tuple[int, int]],
                   stop: threading.Event | None = None, bar=None, tile: int | None = None,
                   tile_pad: int = DEFAULT_PAD) -> tuple[PipelineStats, list[Path]]:
    """Every (photo, output) pair through ``engine``. ``model_size(w, h)``: the model input size of
    a photo of size (w, h); ``output_size(original, engine_output)``: the size written. ``tile``:
    the engine sees tiles of this size, ``batch_size`` at a time (``rtstyle.tiles``); ``bar`` then
    counts tiles (``tile_count``), else photos."""
    source = EachFitted(ImageSource([src for src, _ in pairs]), model_size)
    sink = PhotoSink([dst for _, dst in pairs], lambda i, w, h: output_size(source.sizes[i], (w, h)))
    tiling = Tiling(source, SinkChain([sink]), tile, tile_pad)

    def progress(stats: PipelineStats) -> None:
        if bar is not None:
            bar.update(stats.frames_out - bar.n)

    stats = run_pipeline(tiling.source, engine, tiling.sink, PipelineConfig(batch_size=batch_size), stop, progress)
    return tiling.finish(stats), sink.written
