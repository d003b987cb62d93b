"""``rtstyle train sr``: Johnson et al. x4 / x8 super-resolution with a relu2_2 feature loss.

HR patches (288x288 by default) come from any photo folder; the LR input is made on the
device by Gaussian blur (sigma 1.0) then bicubic downsampling, as in the paper (and SRCNN).

``arch="paper"`` is the paper's network; ``arch="residual"`` predicts a correction on top of
bicubic upsampling (``nets/sr.py``). ``colour_weight`` adds a low-resolution consistency term:
the output, degraded the way the input was made, should give the input back (MSE), which pins
colour and low frequencies without asking the high frequencies to be blurry.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rtstyle.degrade import degrade
from rtstyle.losses import LossTerms, PerceptualLoss
from rtstyle.trainconfig import SRTrainConfig

from .loop import TrainResult, train
from .task import Task


class SRTask(Task):
    kind = "sr"

    def __init__(self, cfg: SRTrainConfig):
        self.model_config, self.loss_config, self.crop_size = cfg.model_config(), cfg.loss_config(), cfg.image_size
        self.scale, self.blur_sigma, self.colour_weight = cfg.scale, cfg.blur_sigma, cfg.colour_weight
        self.meta = {"degradation": {"blur_sigma": cfg.blur_sigma, "downsample": "bicubic", "scale": cfg.scale},
                     "sr_arch": cfg.arch, "colour_weight": cfg.colour_weight}

    def make_batch(self, images: torch.Tensor, batch_size: int,
                   device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        return degrade(images, self.scale, self.blur_sigma), images

    def loss(self, model: nn.Module, net_in: torch.Tensor, target: torch.Tensor, loss: PerceptualLoss) -> LossTerms:
        output = model(net_in)
        terms = loss(output, target)
        if self.colour_weight > 0:
            lowres = degrade(output.float(), self.scale, self.blur_sigma)
            term = self.colour_weight * F.mse_loss(lowres, net_in.float())
            terms.terms["colour"] = term
            terms.total = terms.total + term
        return terms


def train_sr(cfg: SRTrainConfig) -> TrainResult:
    return train(cfg, SRTask(cfg))
