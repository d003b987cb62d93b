"""``rtstyle train texture``: Ulyanov et al. 2016 texture networks, both variants.

* Content-conditioned (default): the multi-scale generator (``nets.TextureNet``: the content at
  several scales plus noise, circular padding) trained exactly like a style net: the same
  perceptual loss (content + Gram style + TV), the same data and options; only the net differs.
* Synthesis (``--synthesis``): the generator fed noise alone (``nets.TextureSynthNet``) and
  trained with the Gram style loss and TV only, on noise batches, so it needs no training
  images. ``rtstyle synth`` then samples textures of any size from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from rtstyle.errors import InputError
from rtstyle.losses import LossConfig
from rtstyle.nets import TextureNetConfig, TextureSynthConfig

from .common import TaskSpec, TrainResult, train
from .style import StyleTrainConfig, style_target, train_style


@dataclass(kw_only=True)
class TextureTrainConfig(StyleTrainConfig):
    data: Path | None = None  # required unless synthesis
    synthesis: bool = False  # noise in, texture out (no content, no --data)
    scales: int = TextureNetConfig.scales
    width: int | None = TextureNetConfig.width
    noise_channels: int | None = None  # None: 3 for stylization, 8 for synthesis
    noise_std: float = TextureNetConfig.noise_std
    padding: str = TextureNetConfig.padding
    upsample: str = TextureSynthConfig.upsample  # synthesis only
    # Off for texture networks: their training-time noise input is meant to change the output,
    # and the stabilisation term was measured on the style transformer only.
    stability_weight: float = 0.0

    def model_config(self) -> TextureNetConfig | TextureSynthConfig:
        try:
            if self.synthesis:
                return TextureSynthConfig(scales=self.scales, width=self.width or TextureSynthConfig.width,
                                          noise_channels=self.noise_channels or TextureSynthConfig.noise_channels,
                                          padding=self.padding, upsample=self.upsample)
            return TextureNetConfig(scales=self.scales, width=self.width or TextureNetConfig.width,
                                    noise_channels=TextureNetConfig.noise_channels if self.noise_channels is None
                                    else self.noise_channels,
                                    noise_std=self.noise_std, padding=self.padding)
        except ValueError as exc:
            raise InputError(str(exc)) from None


def train_texture(cfg: TextureTrainConfig) -> TrainResult:
    """Train a texture network for one style image (checkpoint and logs as ``train_style``)."""
    if not cfg.synthesis:
        if cfg.data is None:
            raise InputError("rtstyle train texture needs --data (training photos), or --synthesis for noise -> texture")
        return train_style(cfg)
    if cfg.stability_weight:
        raise InputError("--stability-weight applies to video stylization, not to --synthesis")
    model_config = cfg.model_config()
    if cfg.image_size % model_config.tile_multiple:
        raise InputError(f"--image-size must be a multiple of 2^scales = {model_config.tile_multiple} for "
                         f"--synthesis (so training textures wrap around), got {cfg.image_size}")
    try:
        # No content to keep: the Gram style loss shapes the texture, TV keeps it from aliasing.
        loss_config = LossConfig(content_weight=0.0, style_weight=cfg.style_weight, tv_weight=cfg.tv_weight)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    setup_loss, style_image, image = style_target(cfg.style, cfg.style_size)
    size, channels = cfg.image_size, model_config.noise_channels

    def make_batch(batch: int, device: torch.device) -> tuple[torch.Tensor, None]:
        return torch.randn(batch, channels, size, size, device=device), None

    spec = TaskSpec(
        task="texture",
        style_target=image,
        model_config=model_config,
        loss_config=loss_config,
        crop_size=size,
        prepare=None,
        make_batch=make_batch,
        setup_loss=setup_loss,
        meta={"style_image": style_image},
    )
    return train(cfg, spec)
