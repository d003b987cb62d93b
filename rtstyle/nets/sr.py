"""Johnson et al. 2016 super-resolution network (x2, x4, x8)."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..netconfig import SRNetConfig
from .common import ConvLayer, ResidualBlock, UpsampleConv, check_min_side, norm_layer, to_pixel_range


class SRNet(nn.Module):
    """9x9 conv -> residual blocks -> log2(scale) x (up + 3x3 conv) -> 9x9 conv 3."""

    def __init__(self, config: SRNetConfig = SRNetConfig()):
        super().__init__()
        self.config = config
        c = config.width
        layers: list[nn.Module] = [ConvLayer(3, c, 9), nn.ReLU(inplace=True)]
        layers += [ResidualBlock(c, config.norm) for _ in range(config.num_residual)]
        for _ in range(int(math.log2(config.scale))):
            layers += [UpsampleConv(c, c), norm_layer(config.norm, c), nn.ReLU(inplace=True)]
        layers.append(ConvLayer(c, 3, 9))
        self.body = nn.Sequential(*layers)

    @property
    def scale(self) -> int:
        return self.config.scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_min_side(x)
        return to_pixel_range(self.body(x))
