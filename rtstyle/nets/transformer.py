"""Johnson et al. 2016 style transformer: one style per network, any frame size."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..netconfig import StyleNetConfig
from .common import ConvLayer, ResidualBlock, UpsampleConv, norm_layer, pad_to_multiple, to_pixel_range


class StyleNet(nn.Module):
    """9x9 conv w -> 3x3/2 2w -> 3x3/2 4w -> residual blocks -> 2x (up + 3x3 conv) -> 9x9 conv 3."""

    stride = 4

    def __init__(self, config: StyleNetConfig = StyleNetConfig()):
        super().__init__()
        self.config = config
        w = config.width
        layers: list[nn.Module] = []
        for cin, cout, k, s in ((3, w, 9, 1), (w, 2 * w, 3, 2), (2 * w, 4 * w, 3, 2)):
            layers += [ConvLayer(cin, cout, k, s), norm_layer("instance", cout), nn.ReLU(inplace=True)]
        layers += [ResidualBlock(4 * w, "instance") for _ in range(config.num_residual)]
        for cin, cout in ((4 * w, 2 * w), (2 * w, w)):
            layers += [UpsampleConv(cin, cout), norm_layer("instance", cout), nn.ReLU(inplace=True)]
        layers.append(ConvLayer(w, 3, 9))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        y = self.body(pad_to_multiple(x, self.stride))
        # Crop with a negative pad, not a slice: a slice is a view whose contiguity depends on
        # whether any padding was added, which torch.export (AOTInductor) cannot decide for a
        # dynamic size and would specialise the package to sizes that are (not) multiples of 4.
        return to_pixel_range(F.pad(y, (0, w - y.shape[-1], 0, h - y.shape[-2])))
