"""Optical flow, warping, occlusion masks and the warping error of Lai et al. (ECCV 2018).

Conventions (OpenCV's)
----------------------
* A flow is an (H, W, 2) float32 array of (dx, dy) pixel displacements. ``flow(a, b)`` tells,
  for each pixel p of frame a, where it went in frame b: ``a(p) ~ b(p + flow(p))``.
* ``warp(image, flow)`` is *backward* warping: ``out(p) = image(p + flow(p))`` (bilinear,
  ``cv2.remap``). Hence ``warp(b, flow(a, b)) ~ a``: to bring frame t into frame t+1's pixel grid,
  warp frame t with the flow from t+1 to t (the backward flow).
* ``valid_mask(bw, fw)`` lives on frame t+1's grid (bw = flow(t+1, t), fw = flow(t, t+1)). A pixel
  is invalid when it is occluded (forward-backward check and motion boundary of Sundaram et al.
  2010, the thresholds of Lai et al.'s evaluation code) or its match ``p + bw(p)`` is outside
  frame t.

The warping error of a stylized clip S is the mean over consecutive pairs of
``mean over valid p of ||S_{t+1}(p) - warp(S_t, bw)(p)||^2``, RGB in [0, 1], the squared
distance summed over the three channels (as Lai et al. do). The absolute form
(``warping_error_abs``) is the same mean of ``sum over channels of |S_{t+1}(p) - warp(S_t, bw)(p)|``:
squaring lets a few large misses (flow errors, disocclusions the mask missed) dominate, while
the absolute form weighs the faint, widespread shimmer viewers see as flicker. Flow is estimated
on the *input* frames, so the stylization is held to the motion of the real scene. The same
numbers for the input frames themselves (``input_warping_error``) are the floor set by flow and
occlusion errors.

Scene cuts
----------
A pair across a scene cut (a hard cut, a black first frame, a flash) has no motion to hold the
stylization to: whatever the model does there is not flicker, and one such pair can outweigh a
hundred ordinary ones. A pair is therefore *skipped* from every mean (and counted, with its
time) when the input's own squared warping error of the pair exceeds ``cut_threshold``
(default ``CUT_THRESHOLD`` = 0.05), or when fewer than ``MIN_VALID_FRACTION`` (10%) of its
pixels are valid (flow found almost nothing to follow). The rule looks at the input only, so
every model, smoothing setting and encoding of one clip skips the same pairs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..choices import TEMPORAL_CUT_THRESHOLD
from ..errors import InputError
from ..frames import to_gray

FLOW_METHODS = ("dis", "farneback")
# Lai et al.'s detect_occlusion (fast_blind_video_consistency, utils.py), squared lengths on BOTH
# sides: |F_w + B|^2 > 0.01 (|F_w|^2 + |B|^2) + 0.5, and motion boundaries
# |grad u|^2 + |grad v|^2 > 0.01 |B|^2 + 0.002 with B = (u, v) and their forward differences.
_FB_RELATIVE, _FB_ABSOLUTE = 0.01, 0.5
_BOUNDARY_RELATIVE, _BOUNDARY_ABSOLUTE = 0.01, 0.002

# Scene cuts (see the module docstring). The threshold's value, and why 0.05, is in rtstyle/choices.py
# (the CLI's parser needs it without importing numpy/torch); under 10% valid pixels flow found
# almost nothing to follow, so the pair's error says nothing about the model.
CUT_THRESHOLD = TEMPORAL_CUT_THRESHOLD
MIN_VALID_FRACTION = 0.10


MIN_FLOW_SIDE = 12  # OpenCV's DIS refuses frames whose sides are both shorter


class FlowEstimator:
    """Dense optical flow between uint8 grayscale frames: ``estimator(a, b) -> flow(a, b)``.

    ``dis``: OpenCV's DIS (Kroeger et al. 2016) with a preset (ultrafast/fast/medium);
    ``farneback``: Farneback 2003 (slower, smoother). One instance per thread.
    """

    def __init__(self, method: str = "dis", preset: str = "medium"):
        import cv2

        if method not in FLOW_METHODS:
            raise InputError(f"unknown flow method {method!r}; choose from {FLOW_METHODS}")
        presets = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
                   "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}
        if preset not in presets:
            raise InputError(f"unknown DIS preset {preset!r}; choose from {list(presets)}")
        self.method = method
        self._dis = cv2.DISOpticalFlow_create(presets[preset]) if method == "dis" else None

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        import cv2

        h, w = a.shape[:2]
        if max(h, w) < MIN_FLOW_SIDE:
            # DIS needs a side of 12 px (issue 15: tiny frames ended in "unexpected error"):
            # estimate on frames enlarged to that size, then bring the field back.
            f = -(-MIN_FLOW_SIDE // max(h, w))
            big = [cv2.resize(x, (w * f, h * f), interpolation=cv2.INTER_LINEAR) for x in (a, b)]
            return resize_flow(self(*big), (w, h))
        if self._dis is not None:
            return self._dis.calc(a, b, None)
        return cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 3, 15, 3, 5, 1.2, 0)


def _pixel_grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return xs, ys


def warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Backward warp: ``out(p) = image(p + flow(p))``, bilinear; outside samples replicate the
    border (mask them with ``inside_mask``). Keeps the image's dtype."""
    import cv2

    h, w = flow.shape[:2]
    xs, ys = _pixel_grid(h, w)
    return cv2.remap(image, xs + flow[..., 0], ys + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def inside_mask(flow: np.ndarray) -> np.ndarray:
    """True where ``p + flow(p)`` falls inside the frame (no extrapolated sample)."""
    h, w = flow.shape[:2]
    xs, ys = _pixel_grid(h, w)
    x, y = xs + flow[..., 0], ys + flow[..., 1]
    return (x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)


def valid_mask(bw: np.ndarray, fw: np.ndarray) -> np.ndarray:
    """Pixels of frame t+1 whose match in frame t is trustworthy: not occluded, not at a motion
    boundary, inside frame t. ``bw = flow(t+1, t)``, ``fw = flow(t, t+1)``."""
    fw_w = warp(fw, bw)  # the forward flow of each pixel's match, on frame t+1's grid
    occluded = _sq(fw_w + bw) > _FB_RELATIVE * (_sq(fw_w) + _sq(bw)) + _FB_ABSOLUTE
    boundary = _sq_gradient(bw[..., 0]) + _sq_gradient(bw[..., 1]) > _BOUNDARY_RELATIVE * _sq(bw) + _BOUNDARY_ABSOLUTE
    return ~occluded & ~boundary & inside_mask(bw)


def _sq_gradient(c: np.ndarray) -> np.ndarray:
    """|grad c|^2 with Lai et al.'s forward differences (0 past the last row / column)."""
    dx, dy = np.zeros_like(c), np.zeros_like(c)
    dx[:, :-1] = c[:, :-1] - c[:, 1:]
    dy[:-1, :] = c[:-1, :] - c[1:, :]
    return dx ** 2 + dy ** 2


def _sq(v: np.ndarray) -> np.ndarray:
    """Squared length of each flow vector."""
    return (v ** 2).sum(-1)


def resize_flow(flow: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A flow field at another resolution (``size`` = (width, height)); vectors scale too."""
    import cv2

    h, w = flow.shape[:2]
    if (w, h) == tuple(size):
        return flow
    out = cv2.resize(flow, size, interpolation=cv2.INTER_LINEAR)
    out[..., 0] *= size[0] / w
    out[..., 1] *= size[1] / h
    return out


def warping_error(prev: np.ndarray, current: np.ndarray, bw: np.ndarray, valid: np.ndarray) -> float:
    """Mean over valid pixels of the squared RGB distance (channels summed, [0, 1] scale) between
    ``current`` and ``prev`` warped onto it; NaN when no pixel is valid. Frames are uint8 HWC
    (or float in [0, 1]); ``bw`` and ``valid`` are at the frames' resolution."""
    return warping_errors(prev, current, bw, valid)[0]


def warping_error_abs(prev: np.ndarray, current: np.ndarray, bw: np.ndarray, valid: np.ndarray) -> float:
    """As ``warping_error``, with the absolute RGB difference (channels summed) instead of the squared one."""
    return warping_errors(prev, current, bw, valid)[1]


def warping_errors(prev: np.ndarray, current: np.ndarray, bw: np.ndarray, valid: np.ndarray) -> tuple[float, float]:
    """(squared, absolute) warping error of one pair from one warp; (NaN, NaN) when no pixel is valid."""
    def unit(x: np.ndarray) -> np.ndarray:
        return x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)

    if not valid.any():
        return math.nan, math.nan
    diff = (unit(current) - warp(unit(prev), bw))[valid]
    return float((diff ** 2).sum(-1).mean()), float(np.abs(diff).sum(-1).mean())


# ------------------------------------------------------------------------------ measuring

@dataclass(frozen=True)
class PairError:
    """One consecutive pair: the stylized and the input warping error in both forms, the valid
    fraction, and whether the pair is a scene cut left out of every mean."""

    time: float | None  # seconds: the pair's second frame
    squared: float
    absolute: float
    input_squared: float
    input_absolute: float
    valid_fraction: float
    skipped: bool


def is_cut(input_squared: float, valid_fraction: float, cut_threshold: float = CUT_THRESHOLD) -> bool:
    """The scene-cut rule of the module docstring (NaN, no valid pixel, counts as a cut)."""
    return not (valid_fraction >= MIN_VALID_FRACTION and input_squared <= cut_threshold)


class WarpingErrorMeter:
    """Feed (input frame, stylized frame) pairs in order; records each consecutive pair
    (``pairs``: every one, scene cuts included and marked ``skipped``). ``errors``,
    ``errors_abs``, ``input_errors``, ``input_errors_abs`` and ``valid_fractions`` list the pairs
    that count (scene cuts left out). Holds one previous frame only."""

    def __init__(self, flow: FlowEstimator | None = None, cut_threshold: float = CUT_THRESHOLD):
        if not cut_threshold > 0:
            raise InputError(f"--cut-threshold must be > 0 (e.g. {CUT_THRESHOLD}), got {cut_threshold}")
        self.flow = flow or FlowEstimator()
        self.cut_threshold = cut_threshold
        self.pairs: list[PairError] = []
        self._prev: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # (gray, input, stylized)

    def update(self, source: np.ndarray, stylized: np.ndarray, time: float | None = None) -> PairError | None:
        """Add the next frame; returns the pair it closes (None for the first)."""
        gray = to_gray(source)
        prev, self._prev = self._prev, (gray, source, stylized)
        if prev is None or prev[0].shape != gray.shape or prev[2].shape != stylized.shape:
            return None  # first frame, or a size change: no pair
        bw, fw = self.flow(gray, prev[0]), self.flow(prev[0], gray)
        valid = valid_mask(bw, fw)
        input_sq, input_abs = warping_errors(prev[1], source, bw, valid)
        fraction = float(valid.mean())
        out_size = (stylized.shape[1], stylized.shape[0])
        if out_size != (source.shape[1], source.shape[0]):  # an upscaling model: carry the flow over
            import cv2

            bw = resize_flow(bw, out_size)
            valid = cv2.resize(valid.astype(np.uint8), out_size, interpolation=cv2.INTER_NEAREST).astype(bool)
        sq, ab = warping_errors(prev[2], stylized, bw, valid)
        pair = PairError(time, sq, ab, input_sq, input_abs, fraction, is_cut(input_sq, fraction, self.cut_threshold))
        self.pairs.append(pair)
        return pair

    def _kept(self, field: str) -> list[float]:
        return [getattr(p, field) for p in self.pairs if not p.skipped]

    @property
    def errors(self) -> list[float]:
        return self._kept("squared")

    @property
    def errors_abs(self) -> list[float]:
        return self._kept("absolute")

    @property
    def input_errors(self) -> list[float]:
        return self._kept("input_squared")

    @property
    def input_errors_abs(self) -> list[float]:
        return self._kept("input_absolute")

    @property
    def valid_fractions(self) -> list[float]:
        return self._kept("valid_fraction")

    @property
    def skipped(self) -> list[PairError]:
        return [p for p in self.pairs if p.skipped]

    @staticmethod
    def mean(values: list[float]) -> float:
        finite = [v for v in values if math.isfinite(v)]
        return float(np.mean(finite)) if finite else math.nan
