"""Ulyanov et al. 2016 multi-scale generators: content-conditioned stylization (``TextureNet``)
and noise-only texture synthesis (``TextureSynthNet``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..netconfig import TextureNetConfig, TextureSynthConfig
from .common import norm_layer, pad_to_multiple, to_pixel_range


class _TextureBlock(nn.Sequential):
    def __init__(self, cin: int, cout: int, padding: str, norm: str):
        layers: list[nn.Module] = []
        for i, k in enumerate((3, 3, 1)):
            layers += [nn.Conv2d(cin if i == 0 else cout, cout, k, padding=k // 2, padding_mode=padding),
                       norm_layer(norm, cout), nn.LeakyReLU(0.01, inplace=True)]
        super().__init__(*layers)


class TextureNet(nn.Module):
    """``forward(x)``: float NCHW [0, 1] in and out, any size >= MIN_SIDE.

    Noise, like dropout, is a training-time input: in ``train()`` mode each scale gets fresh
    Gaussian noise of std ``noise_std``; in ``eval()`` mode it gets the noise's mean, zero, so
    inference (and exported graphs) are deterministic and video frames do not flicker."""

    def __init__(self, config: TextureNetConfig = TextureNetConfig()):
        super().__init__()
        self.config = config
        c, w, pad, norm = config.input_channels, config.width, config.padding, config.norm
        # The coarsest scale is 2^(scales-1) times smaller; padding to twice that keeps it >= 2x2,
        # which InstanceNorm (statistics over space) and the 3x3 convs need.
        self.stride = 2 ** config.scales
        self.blocks = nn.ModuleList(_TextureBlock(c, w, pad, norm) for _ in range(config.scales))
        # joins[k] merges the upsampled result of scales > k (k_out channels) with block k.
        self.joins = nn.ModuleList(
            _TextureBlock(w * (config.scales - k), w * (config.scales - k), pad, norm) for k in range(config.scales - 1)
        )
        self.to_rgb = nn.Conv2d(w * config.scales, 3, 1)

    def _inputs(self, x: torch.Tensor, scale: int) -> torch.Tensor:
        image = F.avg_pool2d(x, 2 ** scale) if scale else x
        if not self.config.noise_channels:
            return image
        shape = (image.shape[0], self.config.noise_channels, *image.shape[-2:])
        if self.training and self.config.noise_std > 0:
            noise = torch.randn(shape, device=x.device, dtype=x.dtype) * self.config.noise_std
        else:
            noise = image.new_zeros(shape)
        return torch.cat([image, noise], dim=1)

    def _upsample(self, y: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """x2 to the next finer scale's ``size`` (sizes are multiples of the stride). Given as a
        size, not a scale factor: the exporter then keeps height and width one dynamic pair."""
        return F.interpolate(y, size=size, mode="nearest")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        x = pad_to_multiple(x, self.stride)
        top = self.config.scales - 1
        y = self.blocks[top](self._inputs(x, top))
        for k in range(top - 1, -1, -1):
            finer = self.blocks[k](self._inputs(x, k))
            y = self.joins[k](torch.cat([self._upsample(y, finer.shape[-2:]), finer], dim=1))
        y = self.to_rgb(y)
        return to_pixel_range(F.pad(y, (0, w - y.shape[-1], 0, h - y.shape[-2])))


class TextureSynthNet(TextureNet):
    """``forward(z)``: noise (N, noise_channels, H, W) -> texture, float NCHW [0, 1].

    Scale k sees z average-pooled 2^k times and multiplied by 2^k, which is again unit-variance
    noise: one input tensor then drives every scale, so the graph exports with one dynamic input
    and a seed reproduces a sample. With circular padding and H, W multiples of 2^scales every
    layer (circular convs, aligned pooling, nearest x2 upsampling) commutes with circular shifts
    by multiples of 2^scales, so the texture wraps around: it tiles without seams."""

    def __init__(self, config: TextureSynthConfig = TextureSynthConfig()):
        super().__init__(config)  # type: ignore[arg-type] - same fields, noise-only inputs

    def _inputs(self, x: torch.Tensor, scale: int) -> torch.Tensor:
        if not scale:
            return x
        factor = 2 ** scale
        return F.avg_pool2d(x, factor) * factor

    def _upsample(self, y: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        if self.config.upsample == "nearest":
            return super()._upsample(y, size)
        # Pad one pixel (wrapping around with circular padding), interpolate, drop the two padded
        # output pixels per side: the kept ones sample exactly where an unpadded x2 bilinear
        # (align_corners=False) would, with the far side as their border neighbour.
        mode = "circular" if self.config.padding == "circular" else "replicate"
        padded = (size[0] + 4, size[1] + 4)
        up = F.interpolate(F.pad(y, (1, 1, 1, 1), mode=mode), size=padded, mode="bilinear", align_corners=False)
        return F.pad(up, (-2, -2, -2, -2))  # a negative pad, not a slice: exports with dynamic sizes

    def noise(self, batch: int, height: int, width: int, seed: int | None = None,
              device: torch.device | str = "cpu") -> torch.Tensor:
        """Standard-normal input for ``batch`` textures of ``height`` x ``width`` (seeded if asked)."""
        generator = torch.Generator(device=device).manual_seed(seed) if seed is not None else None
        return torch.randn(batch, self.config.noise_channels, height, width, generator=generator, device=device)
