"""Johnson et al. 2016 super-resolution network (x2, x4, x8), and a global-residual variant.

``residual=False`` (the default, ``--arch paper``) is the paper's network: its output is the
whole image through a scaled tanh. ``residual=True`` (``--arch residual``) adds the same body's
output to a bicubic upsampling of the input, so colour and low frequencies are right from the
first step and the body only learns the missing detail; its last conv starts near zero, so an
untrained residual net *is* bicubic (as VDSR and most SR nets since 2016).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..netconfig import SRNetConfig
from .common import ConvLayer, ResidualBlock, UpsampleConv, check_min_side, norm_layer, to_pixel_range

# Scale of the residual net's last conv at initialisation: small enough that the start is
# bicubic to within ~1e-3, not zero so that the earlier layers get gradients from step 1.
RESIDUAL_INIT_SCALE = 1e-2


class SRNet(nn.Module):
    """9x9 conv -> residual blocks -> log2(scale) x (up + 3x3 conv) -> 9x9 conv 3 (+ bicubic)."""

    def __init__(self, config: SRNetConfig = SRNetConfig()):
        super().__init__()
        self.config = config
        c = config.width
        layers: list[nn.Module] = [ConvLayer(3, c, 9), nn.ReLU(inplace=True)]
        layers += [ResidualBlock(c, config.norm) for _ in range(config.num_residual)]
        for _ in range(int(math.log2(config.scale))):
            layers += [UpsampleConv(c, c), norm_layer(config.norm, c), nn.ReLU(inplace=True)]
        last = ConvLayer(c, 3, 9)
        if config.residual:
            conv = last[1]
            with torch.no_grad():
                conv.weight.mul_(RESIDUAL_INIT_SCALE)
                conv.bias.zero_()
        layers.append(last)
        self.body = nn.Sequential(*layers)

    @property
    def scale(self) -> int:
        return self.config.scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_min_side(x)
        if not self.config.residual:
            return to_pixel_range(self.body(x))
        base = F.interpolate(x, scale_factor=self.config.scale, mode="bicubic", align_corners=False)
        # Clamped, not squashed: a tanh would pull bicubic's own values away from themselves.
        return (base + self.body(x)).clamp(0.0, 1.0)
