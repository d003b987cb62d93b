"""``rtstyle train style``: a Johnson et al. style transformer for one style image."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from rtstyle.errors import InputError
from rtstyle.frames import load_image, numpy_to_float
from rtstyle.fsutil import sha256_file
from rtstyle.losses import LossConfig, PerceptualLoss
from rtstyle.nets import StyleNetConfig

from .common import TaskSpec, TrainConfig, TrainResult, train
from .stability import StabilityConfig, StabilityLoss

ARCHS = ("johnson", "fast")


@dataclass(kw_only=True)
class StyleTrainConfig(TrainConfig):
    style: Path
    style_size: int | None = 512  # longer side of the style image; None keeps its size
    arch: str = "johnson"  # StyleNetConfig preset
    width: int | None = None  # override the preset's width / residual count
    num_residual: int | None = None
    content_weight: float = LossConfig.content_weight
    style_weight: float = LossConfig.style_weight
    tv_weight: float = LossConfig.tv_weight
    # The stabilisation term (see stability.py): on by default; weight 0 turns it off.
    stability_weight: float = StabilityConfig.weight
    stability_shift: float = StabilityConfig.shift
    stability_noise: float = StabilityConfig.noise
    stability_brightness: float = StabilityConfig.brightness

    def stability_config(self) -> StabilityConfig:
        return StabilityConfig(weight=self.stability_weight, shift=self.stability_shift,
                               noise=self.stability_noise, brightness=self.stability_brightness)

    def model_config(self) -> StyleNetConfig:
        if self.arch not in ARCHS:
            raise InputError(f"--arch must be one of {ARCHS}, got {self.arch!r}")
        base = StyleNetConfig.preset(self.arch)
        return StyleNetConfig(width=self.width or base.width,
                              num_residual=base.num_residual if self.num_residual is None else self.num_residual)

    def loss_config(self) -> LossConfig:
        try:
            return LossConfig(content_weight=self.content_weight, style_weight=self.style_weight,
                              tv_weight=self.tv_weight)
        except ValueError as exc:
            raise InputError(str(exc)) from None


def style_target(path: Path, style_size: int | None) -> tuple[Callable[[PerceptualLoss, torch.device], None], dict,
                                                                np.ndarray]:
    """For a one-style trainer: (``TaskSpec.setup_loss`` giving the loss this image's Gram
    matrices, the checkpoint's ``style_image`` entry, the image as the loss sees it, which the
    checkpoint carries so evaluation needs no copy of the file). InputError if it is not an image."""
    path = Path(path)
    image = load_image(path, max_side=style_size)
    style = numpy_to_float(image)

    def setup_loss(loss: PerceptualLoss, device: torch.device) -> None:
        loss.set_style(style.to(device))

    return setup_loss, {"name": path.name, "sha256": sha256_file(path), "size": list(style.shape[-2:])}, image


def train_style(cfg: StyleTrainConfig) -> TrainResult:
    """Train a style network; the checkpoint records the style image's name and hash."""
    stability = cfg.stability_config()  # bad values fail before the style image is read
    setup_loss, style_image, image = style_target(cfg.style, cfg.style_size)
    spec = TaskSpec(
        task="style",
        style_target=image,
        model_config=cfg.model_config(),
        loss_config=cfg.loss_config(),
        crop_size=cfg.image_size,
        prepare=lambda images: (images, images),
        setup_loss=setup_loss,
        meta={"style_image": style_image, "stability": stability.to_dict()},
        extra_loss=StabilityLoss(stability) if stability.enabled else None,
    )
    return train(cfg, spec)
