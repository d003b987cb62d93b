"""The task interface: what one kind of training is, apart from the loop that runs it.

A task says which network to build, which loss to use, how one step's batch is made and what that
batch costs. The loop (``loop.py``) owns everything else, the same for every task: the device,
AMP, DistributedDataParallel, the optimiser, per-step seeding, checkpoints, resume and the loss log.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from rtstyle.losses import LossConfig, LossTerms, PerceptualLoss
from rtstyle.nets import ModelConfig


class Task:
    """Subclasses set the attributes in ``__init__`` and override ``make_batch`` (and, where the
    objective is not "perceptual loss of model(input) against target", ``loss``)."""

    kind: str  # the checkpoint's task (checkpoint.TASKS): "style" | "sr" | "texture"
    model_config: ModelConfig
    loss_config: LossConfig
    crop_size: int  # side of the square training crops (or noise maps)
    needs_images: bool = True  # False: batches are made from nothing (noise); no --data, no loader
    meta: dict[str, Any]  # recorded in the checkpoint's metadata
    style_target: np.ndarray | None = None  # one-style tasks: the style image as the loss saw it (uint8 HWC)

    def setup_model(self, net: nn.Module) -> None:
        """Runs on the fresh network before the optimiser is made (e.g. load and freeze shared
        weights); the optimiser then trains the parameters that still require gradients."""

    def setup_loss(self, loss: PerceptualLoss, device: torch.device) -> None:
        """Runs once the loss (with its frozen VGG16) is on the device: e.g. give it the style targets."""

    def make_batch(self, images: torch.Tensor | None, batch_size: int,
                   device: torch.device) -> tuple[torch.Tensor, Any]:
        """(network input, loss target) of one step. ``images`` are float NCHW [0, 1] crops on the
        device, or None for a task that ``needs_images`` not."""
        raise NotImplementedError

    def loss(self, model: nn.Module, net_in: torch.Tensor, target: Any, loss: PerceptualLoss) -> LossTerms:
        """The step's weighted loss terms. ``model`` may be DDP-wrapped: call ``model(...)`` for the
        trained forward pass (once per step, so DDP sees one forward per backward)."""
        return loss(model(net_in), target)
