"""Tiled inference: frames too large for the engine at once (a big photo, 4K video through an x4
network) are cut into overlapping tiles that travel the one frame path as frames of their own,
and are stitched back before the usual sinks.

* ``Tiled(source, tile, pad)``: a source that hands out each frame's tiles (``Tile`` items, all of
  one shape, so the pipeline's batcher packs tiles of consecutive frames into full batches);
* ``Stitcher(sink)``: the pipeline's sink; it pastes each tile's core into the frame's output and,
  after the frame's last tile, passes the whole frame to ``sink`` (the usual chain) with its own
  ``Frame`` (timestamps, index);
* ``Tiling(source, sink, tile, pad)``: both, or neither when ``tile`` is None, plus the frame counts.

Geometry, as Real-ESRGAN's ``--tile``/``--tile_pad``: a grid of ``tile`` x ``tile`` cores, each seen
by the engine with ``pad`` pixels of real picture around it. At the frame's edges the window
shifts inward instead of shrinking, so every tile has one shape and the network sees the frame's
true border there, as it does untiled. A network whose output pixel depends only on the input
within ``pad`` pixels (its receptive field; no normalisation over the whole image) then gives the
untiled output exactly. The bundled SR networks see 14 input pixels around (9x9 conv, four
residual blocks of two 3x3 convs, the upsampling convs), hence ``DEFAULT_PAD`` = 16: the tiled
output equals the untiled one up to float rounding (tests/test_tiles.py). Style networks
normalise over the whole frame (instance norm): tiles of them would differ in colour.

Memory: the engine holds ``batch_size`` tiles and their activations, never a whole frame; the
host holds the queued tiles and one output frame.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .choices import TILE_PAD
from .errors import InputError
from .frames import Frame
from .nets import MIN_SIDE
from .pipeline import PipelineStats
from .sources import Source

DEFAULT_PAD = TILE_PAD  # pixels of context on each side of a tile (see the module docstring)

Box = tuple[int, int, int, int]  # x0, y0, x1, y1


def check_tiling(tile: int | None, pad: int) -> None:
    if tile is not None and tile < MIN_SIDE:
        raise InputError(f"--tile must be at least {MIN_SIDE} pixels (or 0 for no tiling), got {tile}")
    if pad < 0:
        raise InputError(f"--tile-pad must be >= 0 pixels, got {pad}")


def _spans(length: int, tile: int, pad: int) -> list[tuple[int, int, int]]:
    """Along one axis: (core start, core end, window start); every window is ``min(tile + 2 pad,
    length)`` long and holds its core with ``pad`` pixels of context wherever the frame has them."""
    window = min(tile + 2 * pad, length)
    return [(start, min(start + tile, length), min(max(start - pad, 0), length - window))
            for start in range(0, length, tile)]


def tile_windows(width: int, height: int, tile: int, pad: int) -> list[tuple[Box, Box]]:
    """(core, window) boxes covering a ``width`` x ``height`` frame, row by row; the cores tile
    the frame exactly, the windows all have one size."""
    win_w, win_h = min(tile + 2 * pad, width), min(tile + 2 * pad, height)
    return [((cx0, cy0, cx1, cy1), (wx, wy, wx + win_w, wy + win_h))
            for cy0, cy1, wy in _spans(height, tile, pad) for cx0, cx1, wx in _spans(width, tile, pad)]


@dataclass
class Tile:
    """One window of a frame, as the pipeline carries it (``image`` is what the engine sees)."""

    image: np.ndarray  # uint8 (h, w, 3): the window, a view of the frame's picture
    frame: Frame  # the frame it was cut from
    core: Box  # the part of the frame this tile's output fills
    window: Box  # where ``image`` lies in the frame
    last: bool  # the frame's last tile: the stitched frame moves on after it


class Tiled(Source):
    """``inner``'s frames as tiles (see the module docstring). ``frames_in`` counts whole frames,
    ``frames_read`` tiles."""

    def __init__(self, inner: Source, tile: int, pad: int = DEFAULT_PAD):
        super().__init__()
        check_tiling(tile, pad)
        if inner.live:
            raise InputError("tiling needs every frame of its source; a live source drops frames")
        self.inner, self.tile, self.pad = inner, tile, pad
        self.warnings = inner.warnings
        self.frames_in = 0
        self._pending: collections.deque[Tile] = collections.deque()

    def start(self) -> "Tiled":
        self.inner.start()
        return self

    def read(self) -> Tile | None:
        if not self._pending:
            frame = self.inner.read()
            if frame is None:
                self.end_reason = self.inner.end_reason
                return None
            self.frames_in += 1
            h, w = frame.image.shape[:2]
            boxes = tile_windows(w, h, self.tile, self.pad)
            self._pending.extend(Tile(frame.image[wy0:wy1, wx0:wx1], frame, core, (wx0, wy0, wx1, wy1),
                                      i == len(boxes) - 1)
                                 for i, (core, (wx0, wy0, wx1, wy1)) in enumerate(boxes))
        self.frames_read += 1
        return self._pending.popleft()

    def stop(self) -> None:
        self.inner.stop()


class Stitcher:
    """The pipeline's sink for ``Tiled`` sources: tiles in, whole frames out to ``sink``. The
    output buffer is reused from frame to frame (sinks copy what they keep, as the pipeline asks)."""

    def __init__(self, sink: Callable[[np.ndarray, Any], None]):
        self.sink = sink
        self.frames = 0  # whole frames passed on
        self._canvas: np.ndarray | None = None

    def __call__(self, image: np.ndarray, tile: Tile) -> None:
        scale = image.shape[0] // tile.image.shape[0]  # the engine's: SR tiles come back larger
        h, w = tile.frame.image.shape[:2]
        shape = (h * scale, w * scale, 3)
        if self._canvas is None or self._canvas.shape != shape:
            self._canvas = np.empty(shape, np.uint8)
        (cx0, cy0, cx1, cy1), (wx0, wy0, _, _) = tile.core, tile.window
        self._canvas[cy0 * scale:cy1 * scale, cx0 * scale:cx1 * scale] = \
            image[(cy0 - wy0) * scale:(cy1 - wy0) * scale, (cx0 - wx0) * scale:(cx1 - wx0) * scale]
        if tile.last:
            self.frames += 1
            self.sink(self._canvas, tile.frame)


class Tiling:
    """A frame path's source and sink, cut into tiles when ``tile`` is set, else passed through;
    ``frames_out(stats)`` and ``finish(stats)`` count whole frames either way."""

    def __init__(self, source: Source, sink: Callable[[np.ndarray, Any], None], tile: int | None,
                 pad: int = DEFAULT_PAD):
        self.on = tile is not None
        self.source: Source = Tiled(source, tile, pad) if self.on else source
        self.sink: Callable[[np.ndarray, Any], None] = Stitcher(sink) if self.on else sink

    def frames_out(self, stats: PipelineStats) -> int:
        """Whole frames through so far (the pipeline itself counts tiles)."""
        return self.sink.frames if self.on else stats.frames_out

    def finish(self, stats: PipelineStats) -> PipelineStats:
        """``stats`` counting whole frames, the tiles in ``stats.tiles``."""
        if self.on:
            stats.tiles = stats.frames_out
            stats.frames_in, stats.frames_out = self.source.frames_in, self.sink.frames
        return stats
