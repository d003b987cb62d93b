"""``rtstyle train texture``: Ulyanov et al. 2016 texture network, content-conditioned variant.

The multi-scale generator (``nets.TextureNet``: the content at several scales plus noise,
circular padding) trained exactly like a style net: the same perceptual loss (content +
Gram-matrix style + TV), the same data and options, only the network differs. The pure
texture-synthesis variant (noise in, texture out) is not implemented.
"""

from __future__ import annotations

from dataclasses import dataclass

from rtstyle.errors import InputError
from rtstyle.nets import TextureNetConfig

from .common import TrainResult
from .style import StyleTrainConfig, train_style


@dataclass(kw_only=True)
class TextureTrainConfig(StyleTrainConfig):
    scales: int = TextureNetConfig.scales
    width: int | None = TextureNetConfig.width
    noise_channels: int = TextureNetConfig.noise_channels
    noise_std: float = TextureNetConfig.noise_std
    padding: str = TextureNetConfig.padding

    def model_config(self) -> TextureNetConfig:
        try:
            return TextureNetConfig(scales=self.scales, width=self.width or TextureNetConfig.width,
                                    noise_channels=self.noise_channels, noise_std=self.noise_std, padding=self.padding)
        except ValueError as exc:
            raise InputError(str(exc)) from None


def train_texture(cfg: TextureTrainConfig) -> TrainResult:
    """Train a texture network for one style image (checkpoint and logs as ``train_style``)."""
    return train_style(cfg)
