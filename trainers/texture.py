"""``rtstyle train texture``: Ulyanov et al. 2016 texture networks, both variants.

* Content-conditioned (default): the multi-scale generator (``nets.TextureNet``: the content at
  several scales plus noise, circular padding) trained exactly like a style net: the same
  perceptual loss (content + Gram style + TV), the same data and options; only the net differs.
* Synthesis (``--synthesis``): the generator fed noise alone (``nets.TextureSynthNet``) and
  trained with the Gram style loss and TV only, on noise batches, so it needs no training
  images. ``rtstyle synth`` then samples textures of any size from it.
"""

from __future__ import annotations

import torch

from rtstyle.losses import PerceptualLoss
from rtstyle.trainconfig import TextureTrainConfig

from .loop import TrainResult, train
from .style import StyleTarget, train_style
from .task import Task


class TextureSynthTask(Task):
    """Noise in (no photos); the Gram style loss and TV only, against the one style image."""

    kind = "texture"
    needs_images = False

    def __init__(self, cfg: TextureTrainConfig):
        self.target = StyleTarget(cfg.style, cfg.style_size)
        self.style_target = self.target.pixels
        self.model_config, self.loss_config, self.crop_size = cfg.model_config(), cfg.loss_config(), cfg.image_size
        self.meta = {"style_image": self.target.meta}

    def setup_loss(self, loss: PerceptualLoss, device: torch.device) -> None:
        self.target.setup_loss(loss, device)

    def make_batch(self, images: None, batch_size: int, device: torch.device) -> tuple[torch.Tensor, None]:
        size, channels = self.crop_size, self.model_config.noise_channels
        return torch.randn(batch_size, channels, size, size, device=device), None


def train_texture(cfg: TextureTrainConfig) -> TrainResult:
    """Train a texture network for one style image (checkpoint and logs as ``train_style``)."""
    if not cfg.synthesis:
        return train_style(cfg)  # the style trainer with the texture network's config
    return train(cfg, TextureSynthTask(cfg))
