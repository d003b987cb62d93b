"""Temporal stability at run time: optical flow, warping, occlusion masks and the warping error
(``flow.py``), and flow-guided smoothing (``smoothing.py``). The evaluation command behind
``rtstyle eval temporal`` (VGG losses, plots) lives one layer up, in ``rtstyle/eval_temporal.py``,
so the runtime never imports VGG.
"""

from __future__ import annotations

from ..frames import to_gray
from .flow import (
                   CUT_THRESHOLD,
                   FLOW_METHODS,
                   MIN_VALID_FRACTION,
                   FlowEstimator,
                   PairError,
                   WarpingErrorMeter,
                   inside_mask,
                   resize_flow,
                   valid_mask,
                   warp,
                   warping_error,
                   warping_error_abs,
                   warping_errors,
)
from .smoothing import TemporalSmoother, check_smoothing

__all__ = ["CUT_THRESHOLD", "FLOW_METHODS", "MIN_VALID_FRACTION", "FlowEstimator", "PairError", "TemporalSmoother",
           "WarpingErrorMeter", "check_smoothing", "inside_mask", "resize_flow", "to_gray", "valid_mask", "warp",
           "warping_error", "warping_error_abs", "warping_errors"]
