"""``rtstyle train sr``: Johnson et al. x4 / x8 super-resolution with a relu2_2 feature loss.

HR patches (288x288 by default) come from any photo folder; the LR input is made on the
device by Gaussian blur (sigma 1.0) then bicubic downsampling, as in the paper (and SRCNN).
"""

from __future__ import annotations

from dataclasses import dataclass

from rtstyle.degrade import degrade
from rtstyle.errors import InputError
from rtstyle.losses import LossConfig
from rtstyle.nets import SRNetConfig

from .common import TaskSpec, TrainConfig, TrainResult, train

SCALES = (4, 8)


@dataclass(kw_only=True)
class SRTrainConfig(TrainConfig):
    scale: int = 4
    image_size: int = 288  # HR patch side
    width: int = 64
    num_residual: int = 4
    norm: str = "batch"
    blur_sigma: float = 1.0
    content_weight: float = 1.0
    pixel_weight: float = 0.0
    tv_weight: float = 0.0

    def model_config(self) -> SRNetConfig:
        if self.scale not in SCALES:
            raise InputError(f"--scale must be one of {SCALES}, got {self.scale}")
        if self.image_size % self.scale:
            raise InputError(f"--image-size {self.image_size} must be a multiple of --scale {self.scale}")
        try:
            return SRNetConfig(scale=self.scale, width=self.width, num_residual=self.num_residual, norm=self.norm)
        except ValueError as exc:
            raise InputError(str(exc)) from None

    def loss_config(self) -> LossConfig:
        try:
            return LossConfig(content_layers=("relu2_2",), style_layers=(), content_weight=self.content_weight,
                              style_weight=0.0, tv_weight=self.tv_weight, pixel_weight=self.pixel_weight)
        except ValueError as exc:
            raise InputError(str(exc)) from None


def train_sr(cfg: SRTrainConfig) -> TrainResult:
    model_config = cfg.model_config()
    if cfg.image_size // cfg.scale < 16:
        raise InputError(f"--image-size {cfg.image_size} gives LR patches under 16 px at x{cfg.scale}")
    spec = TaskSpec(
        task="sr",
        model_config=model_config,
        loss_config=cfg.loss_config(),
        crop_size=cfg.image_size,
        prepare=lambda hr: (degrade(hr, cfg.scale, cfg.blur_sigma), hr),
        meta={"degradation": {"blur_sigma": cfg.blur_sigma, "downsample": "bicubic", "scale": cfg.scale}},
    )
    return train(cfg, spec)
