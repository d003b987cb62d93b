"""Flow-guided temporal smoothing at run time (``--temporal-smoothing``)."""

from __future__ import annotations

import time

import numpy as np

from ..errors import InputError
from ..frames import fit_size, resize
from .flow import FlowEstimator, resize_flow, valid_mask, warp


class TemporalSmoother:
    """Runtime flow-guided smoothing: ``out_t = alpha * warp(out_{t-1}) + (1 - alpha) * S_t`` on
    pixels whose motion is trustworthy (``valid_mask``), ``S_t`` elsewhere (occlusions, new
    content, cuts). Flow comes from the *input* frames, downscaled so the longer side is at most
    ``flow_side`` (DIS ultrafast), then scaled to the output. Stateful: feed frames in order,
    one at a time, so the result does not depend on the engine's batch size.
    """

    def __init__(self, alpha: float, flow_side: int = 160, flow: FlowEstimator | None = None):
        check_smoothing(alpha)
        self.alpha = alpha
        self.flow_side = flow_side
        self.flow = flow or FlowEstimator("dis", "ultrafast")
        self.seconds = 0.0
        self.frames = 0
        self._prev: tuple[np.ndarray, np.ndarray] | None = None  # (small gray input, float output)

    @property
    def ms_per_frame(self) -> float:
        return 1000.0 * self.seconds / max(1, self.frames)

    def reset(self) -> None:
        self._prev = None

    def __call__(self, stylized: np.ndarray, source_gray: np.ndarray) -> np.ndarray:
        """The smoothed frame (uint8 HWC) for ``stylized``; ``source_gray`` is the input frame in
        grayscale, any resolution."""
        t0 = time.perf_counter()
        try:
            return self._smooth(stylized, source_gray)
        finally:
            self.seconds += time.perf_counter() - t0
            self.frames += 1

    def _smooth(self, stylized: np.ndarray, source_gray: np.ndarray) -> np.ndarray:
        import cv2

        small = self._shrink(source_gray)
        out = stylized.astype(np.float32)
        prev, self._prev = self._prev, None
        if self.alpha > 0 and prev is not None and prev[0].shape == small.shape and prev[1].shape == out.shape:
            bw, fw = self.flow(small, prev[0]), self.flow(prev[0], small)
            size = (out.shape[1], out.shape[0])
            valid = cv2.resize(valid_mask(bw, fw).astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)
            warped = warp(prev[1], resize_flow(bw, size))
            blend = self.alpha * warped + (1.0 - self.alpha) * out
            out = np.where(valid[..., None].astype(bool), blend, out)
        # Keep the float result: re-quantising the running blend every frame would drift.
        self._prev = (small, out)
        return np.clip(out + 0.5, 0, 255).astype(np.uint8)

    def _shrink(self, gray: np.ndarray) -> np.ndarray:
        h, w = gray.shape[:2]
        return resize(gray, fit_size(w, h, max_side=self.flow_side))


def check_smoothing(alpha: float) -> None:
    if not (0.0 <= alpha < 1.0):
        raise InputError(f"--temporal-smoothing must be in [0, 1) (0 = off, e.g. 0.5), got {alpha}")

