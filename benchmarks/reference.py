"""The reference implementation the speed-up is measured against.

It is the straightforward per-frame loop of the classic examples (pytorch/examples
fast_neural_style ``stylize``): an fp32 eager model, one frame at a time, conversion on the
host (numpy uint8 HWC -> float tensor before the model, float -> numpy uint8 after it), the
frame copied to the device and back for every call, ``torch.no_grad`` rather than inference
mode. It runs the same network and the same frames as the engines, on the same machine.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from rtstyle.frames import float_to_numpy, numpy_to_float


class ReferenceStylizer:
    """Per-frame fp32 eager stylization with host-side pre/post-processing."""

    def __init__(self, model: torch.nn.Module, device: torch.device):
        self.device = device
        self.model = copy.deepcopy(model).to(device=device, dtype=torch.float32).eval()

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        """One uint8 HWC RGB frame in, one uint8 HWC RGB frame out."""
        x = numpy_to_float(frame).to(self.device)  # host conversion, then upload
        with torch.no_grad():
            y = self.model(x)
        return float_to_numpy(y.cpu())[0]  # download, then host conversion
