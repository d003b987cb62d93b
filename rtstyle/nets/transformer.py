"""Johnson et al. 2016 style transformer and its efficient relatives: one style per network, any frame size.

``StyleNetConfig`` (``netconfig.py``) describes the layers; its defaults are the paper's network, whose
module layout (and so every state-dict key) is unchanged, so checkpoints of every age rebuild.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..netconfig import StyleNetConfig
from .common import ConvLayer, ResidualBlock, UpsampleConv, check_min_side, norm_layer, pad_to_multiple, to_pixel_range


class ShuffleUpsample(nn.Sequential):
    """3x3 conv to 4x the channels at the low resolution, then pixel shuffle (x2): the upsampling
    conv runs on a quarter of the pixels, and no nearest-upsampled copy is ever made."""

    def __init__(self, cin: int, cout: int):
        super().__init__(ConvLayer(cin, 4 * cout, 3), nn.PixelShuffle(2))


class SeparableResidualBlock(nn.Module):
    """MobileNetV2's inverted residual with InstanceNorm: 1x1 expand (x2), 3x3 depthwise, 1x1 project."""

    def __init__(self, channels: int, expand: int = 2):
        super().__init__()
        wide = channels * expand
        self.body = nn.Sequential(
            nn.Conv2d(channels, wide, 1), norm_layer("instance", wide), nn.ReLU(inplace=True),
            nn.ReflectionPad2d(1), nn.Conv2d(wide, wide, 3, groups=wide), norm_layer("instance", wide),
            nn.ReLU(inplace=True),
            nn.Conv2d(wide, channels, 1), norm_layer("instance", channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def _down(cin: int, cout: int, kernel: int) -> nn.Module:
    # 3x3/2 pad 1 (the paper's) reads rows 2o-1..2o+1: centred on even rows, so the output is shifted
    # and only the top/left borders read padding. 4x4/2 pad 1 reads 2o-1..2o+2, centred at 2o+0.5,
    # where nearest and pixel-shuffle upsampling put the pixel back: no shift, both borders alike.
    return ConvLayer(cin, cout, kernel, 2, padding=1)


class StyleNet(nn.Module):
    """edge conv w -> stride-2 convs (2w, 4w, ...) -> residual blocks -> as many x2 upsamplings -> edge conv 3."""

    def __init__(self, config: StyleNetConfig = StyleNetConfig()):
        super().__init__()
        self.config = config
        self.stride = config.stride
        w, norm = config.width, "instance"
        layers: list[nn.Module] = [ConvLayer(3, w, config.edge_kernel), norm_layer(norm, w), nn.ReLU(inplace=True)]
        ch = w
        for _ in range(config.downsamples):
            layers += [_down(ch, 2 * ch, config.down_kernel), norm_layer(norm, 2 * ch), nn.ReLU(inplace=True)]
            ch *= 2
        block = SeparableResidualBlock if config.block == "separable" else (lambda c: ResidualBlock(c, norm))
        layers += [block(ch) for _ in range(config.num_residual)]
        up = ShuffleUpsample if config.upsample == "shuffle" else UpsampleConv
        for _ in range(config.downsamples):
            layers += [up(ch, ch // 2), norm_layer(norm, ch // 2), nn.ReLU(inplace=True)]
            ch //= 2
        layers.append(ConvLayer(w, 3, config.edge_kernel))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        m = self.config.margin
        if m:  # mirrored picture around the frame: the net's own edge response lands outside it
            check_min_side(x)
            x = F.pad(x, (m, m, m, m), mode="reflect")
        y = self.body(pad_to_multiple(x, self.stride))
        # Crop with a negative pad, not a slice: a slice is a view whose contiguity depends on
        # whether any padding was added, which torch.export (AOTInductor) cannot decide for a
        # dynamic size and would specialise the package to sizes that are (not) multiples of 4.
        return to_pixel_range(F.pad(y, (-m, w + m - y.shape[-1], -m, h + m - y.shape[-2])))
