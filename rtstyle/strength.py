"""Style strength for every model: the network's output blended with its own input.

``output = s * stylized + (1 - s) * input`` per pixel, on the engine's device, after the engine
ran (``StrengthEngine``, or ``apply_strength`` for front ends whose strength changes while they
run: ``rtstyle live``'s keys, the studio's slider). It needs nothing from the network, so it works
for every model on every backend (TensorRT engines, ONNX and OpenVINO graphs included), and it
costs one element-wise pass over the batch where the batch already is: no host copy (on a GPU in
torch, on the CPU with OpenCV's saturating uint8 blend).

Why the output space and not feature space (where AdaIN's ``--alpha`` blends): docs/images/strength.jpg
(``python -m rtstyle.benchmarks.readme_figures``) shows both on the bundled styles. In feature space
(the residual blocks' change to a Johnson network's features scaled by ``s``) strengths 0.25 to 1
look alike, and at 0 the decoder, trained on stylized features only, still paints its style over a
distorted picture (59 and 37 levels of 255 from the photo on average); in the output space the
style fades evenly to exactly the input, on every backend.

A super-resolution engine's output is larger than its input: there the input is enlarged
bicubically first (strength 0 is plain bicubic upscaling).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from .engine import Engine
from .errors import InputError


def check_strength(value: float) -> float:
    """``value`` as a float in [0, 1], or a one-line InputError naming it."""
    try:
        strength = float(value)
    except (TypeError, ValueError):
        raise InputError(f"--strength must be a number in [0, 1], got {value!r}") from None
    if not (math.isfinite(strength) and 0.0 <= strength <= 1.0):
        raise InputError(f"--strength must be in [0, 1] (1: the full style, 0: the input), got {value}")
    return strength


def apply_strength(frames: torch.Tensor, stylized: torch.Tensor, strength: float) -> torch.Tensor:
    """``strength * stylized + (1 - strength) * frames`` as uint8 NHWC, on ``stylized``'s device.
    ``frames``: the engine's uint8 NHWC input (enlarged bicubically when ``stylized`` is larger).
    Strength 1 returns ``stylized`` itself, 0 a copy of the input."""
    if strength >= 1.0:
        return stylized
    if stylized.device.type == "cpu":
        return _blend_on_cpu(frames.cpu(), stylized, float(strength))
    return _blend_in_torch(frames.to(stylized.device, non_blocking=True), stylized, float(strength))


def _blend_in_torch(ref: torch.Tensor, stylized: torch.Tensor, strength: float) -> torch.Tensor:
    """The blend on a GPU: float lerp in place, rounded back to uint8."""
    if ref.shape[1:3] != stylized.shape[1:3]:
        nchw = F.interpolate(ref.permute(0, 3, 1, 2).float(), size=tuple(stylized.shape[1:3]), mode="bicubic",
                             align_corners=False)
        ref = nchw.clamp_(0, 255).permute(0, 2, 3, 1)
    elif strength <= 0.0:
        return ref.clone()
    else:
        ref = ref.float()
    return ref.lerp_(stylized.float(), strength).round_().to(torch.uint8).contiguous()


def _blend_on_cpu(frames: torch.Tensor, stylized: torch.Tensor, strength: float) -> torch.Tensor:
    """OpenCV's saturating uint8 blend: one pass, no float copies (a batch of four 640x480 frames
    took 0.9 ms against 146 ms for the float lerp on this loaded 2-core CPU)."""
    import cv2

    n, h, w, _ = stylized.shape
    out = np.ascontiguousarray(stylized.numpy())
    ref = np.ascontiguousarray(frames.numpy())
    if ref.shape != out.shape:
        ref = np.stack([cv2.resize(f, (w, h), interpolation=cv2.INTER_CUBIC) for f in ref])
    elif strength <= 0.0:
        return torch.from_numpy(ref.copy())
    blended = cv2.addWeighted(out.reshape(n * h, w * 3), strength, ref.reshape(n * h, w * 3), 1.0 - strength, 0.0)
    return torch.from_numpy(blended.reshape(n, h, w, 3))


class Strength:
    """A strength attribute checked on every assignment (``check_strength``): a data descriptor,
    so front ends whose strength changes while they run cannot be given a bad one."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.slot = f"_{name}"

    def __get__(self, obj, owner: type | None = None):
        return self if obj is None else getattr(obj, self.slot)

    def __set__(self, obj, value: float) -> None:
        setattr(obj, self.slot, check_strength(value))


class StrengthEngine(Engine):
    """``inner``'s output blended with its input at ``strength`` (see the module docstring).
    ``strength`` may change between batches."""

    backend = "strength"
    strength = Strength()

    def __init__(self, inner: Engine, strength: float = 1.0):
        super().__init__(device=inner.device, precision=inner.precision, scale=inner.scale, reason=inner.reason)
        self.inner = inner
        self.strength = strength

    def _run(self, frames: torch.Tensor) -> torch.Tensor:
        strength = self.strength  # read once: another thread may change it meanwhile
        return apply_strength(frames, self.inner(frames), strength)

    def describe(self) -> str:
        return f"{self.inner.describe()}, strength {self.strength:g}"


def with_strength(engine: Engine, strength: float) -> Engine:
    """``engine`` itself at strength 1, else wrapped in a ``StrengthEngine``."""
    strength = check_strength(strength)
    return engine if strength >= 1.0 else StrengthEngine(engine, strength)
