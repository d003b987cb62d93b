"""``rtstyle train sr``: Johnson et al. x4 / x8 super-resolution with a relu2_2 feature loss.

HR patches (288x288 by default) come from any photo folder; the LR input is made on the
device by Gaussian blur (sigma 1.0) then bicubic downsampling, as in the paper (and SRCNN).
"""

from __future__ import annotations

import torch

from rtstyle.degrade import degrade
from rtstyle.trainconfig import SRTrainConfig

from .loop import TrainResult, train
from .task import Task


class SRTask(Task):
    kind = "sr"

    def __init__(self, cfg: SRTrainConfig):
        self.model_config, self.loss_config, self.crop_size = cfg.model_config(), cfg.loss_config(), cfg.image_size
        self.scale, self.blur_sigma = cfg.scale, cfg.blur_sigma
        self.meta = {"degradation": {"blur_sigma": cfg.blur_sigma, "downsample": "bicubic", "scale": cfg.scale}}

    def make_batch(self, images: torch.Tensor, batch_size: int,
                   device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        return degrade(images, self.scale, self.blur_sigma), images


def train_sr(cfg: SRTrainConfig) -> TrainResult:
    return train(cfg, SRTask(cfg))
