"""Building blocks every family shares, and the size rules of the frame convention.

Every network takes and returns float NCHW RGB in [0, 1] (see ``frames.py``). Any height and
width >= ``MIN_SIDE`` works: inputs are replicate-padded up to the stride multiple and the
output is cropped back, so a 641x359 frame comes back 641x359 (times the SR scale).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# The 9x9 reflection-padded convs need at least 5 pixels; 16 leaves room after the
# two stride-2 stages of the style net. The runtime upsamples smaller frames.
MIN_SIDE = 16


class ConvLayer(nn.Sequential):
    """Reflection padding + conv: avoids the border artefacts of zero padding."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, padding: int | None = None):
        super().__init__(nn.ReflectionPad2d(kernel // 2 if padding is None else padding),
                         nn.Conv2d(cin, cout, kernel, stride))


class UpsampleConv(nn.Sequential):
    """Nearest x2 upsampling then conv; transposed convs leave checkerboard artefacts."""

    def __init__(self, cin: int, cout: int, kernel: int = 3):
        super().__init__(nn.Upsample(scale_factor=2, mode="nearest"), ConvLayer(cin, cout, kernel))


def norm_layer(kind: str, channels: int) -> nn.Module:
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    return nn.Identity()


class ResidualBlock(nn.Module):
    def __init__(self, channels: int, norm: str):
        super().__init__()
        self.body = nn.Sequential(
            ConvLayer(channels, channels, 3),
            norm_layer(norm, channels),
            nn.ReLU(inplace=True),
            ConvLayer(channels, channels, 3),
            norm_layer(norm, channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def to_pixel_range(x: torch.Tensor) -> torch.Tensor:
    # Johnson et al.'s scaled tanh, mapped to [0, 1].
    return 0.5 * (torch.tanh(x) + 1.0)


def check_min_side(x: torch.Tensor) -> None:
    h, w = x.shape[-2:]
    if h < MIN_SIDE or w < MIN_SIDE:
        raise ValueError(
            f"input {h}x{w} is smaller than the networks' minimum side {MIN_SIDE}; "
            "resize it first (the runtime does this automatically)"
        )


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    check_min_side(x)
    h, w = x.shape[-2:]
    # Always pad (possibly by zero): a shape-dependent branch would specialise exported
    # graphs to one input size.
    return F.pad(x, (0, (-w) % multiple, 0, (-h) % multiple), mode="replicate")
