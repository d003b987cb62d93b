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
distance summed over the three channels (as Lai et al. do). Flow is estimated on the *input*
frames, so the stylization is held to the motion of the real scene. The same number for the
input frames themselves (``input_warping_error``) is the floor set by flow and occlusion errors.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import InputError
from ..frames import to_gray

FLOW_METHODS = ("dis", "farneback")
# Lai et al.'s detect_occlusion: |F_w + B|^2 > 0.01 (|F_w|^2 + |B|^2) + 0.5, and motion boundaries
# |grad B|^2 > 0.01 |B|^2 + 0.002.
_FB_RELATIVE, _FB_ABSOLUTE = 0.01, 0.5
_BOUNDARY_RELATIVE, _BOUNDARY_ABSOLUTE = 0.01, 0.002


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
    if min(bw.shape[:2]) < 2:  # a 1-pixel-wide frame has no motion boundary to find (np.gradient needs 2)
        return ~occluded & inside_mask(bw)
    (du_y, du_x), (dv_y, dv_x) = np.gradient(bw[..., 0]), np.gradient(bw[..., 1])
    boundary = du_x ** 2 + du_y ** 2 + dv_x ** 2 + dv_y ** 2 > _BOUNDARY_RELATIVE * _sq(bw) + _BOUNDARY_ABSOLUTE
    return ~occluded & ~boundary & inside_mask(bw)


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
    def unit(x: np.ndarray) -> np.ndarray:
        return x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)

    if not valid.any():
        return math.nan
    diff = unit(current) - warp(unit(prev), bw)
    return float((diff ** 2).sum(-1)[valid].mean())


# ------------------------------------------------------------------------------ measuring

class WarpingErrorMeter:
    """Feed (input frame, stylized frame) pairs in order; records each consecutive pair's warping
    error, the input's own warping error and the valid fraction. Holds one previous frame only."""

    def __init__(self, flow: FlowEstimator | None = None):
        self.flow = flow or FlowEstimator()
        self.errors: list[float] = []
        self.input_errors: list[float] = []
        self.valid_fractions: list[float] = []
        self._prev: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # (gray, input, stylized)

    def update(self, source: np.ndarray, stylized: np.ndarray) -> float | None:
        """Add the next frame; returns the error of the pair it closes (None for the first)."""
        gray = to_gray(source)
        prev, self._prev = self._prev, (gray, source, stylized)
        if prev is None or prev[0].shape != gray.shape or prev[2].shape != stylized.shape:
            return None  # first frame, or a size change: no pair
        bw, fw = self.flow(gray, prev[0]), self.flow(prev[0], gray)
        valid = valid_mask(bw, fw)
        self.input_errors.append(warping_error(prev[1], source, bw, valid))
        self.valid_fractions.append(float(valid.mean()))
        out_size = (stylized.shape[1], stylized.shape[0])
        if out_size != (source.shape[1], source.shape[0]):  # an upscaling model: carry the flow over
            import cv2

            bw = resize_flow(bw, out_size)
            valid = cv2.resize(valid.astype(np.uint8), out_size, interpolation=cv2.INTER_NEAREST).astype(bool)
        self.errors.append(warping_error(prev[2], stylized, bw, valid))
        return self.errors[-1]

    @staticmethod
    def mean(values: list[float]) -> float:
        finite = [v for v in values if math.isfinite(v)]
        return float(np.mean(finite)) if finite else math.nan

