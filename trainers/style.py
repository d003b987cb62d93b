"""``rtstyle train style``: a Johnson et al. style transformer for one style image (and, with a
texture network's config, the content-conditioned texture network of ``rtstyle train texture``)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rtstyle.checkpoint import read_metadata
from rtstyle.frames import load_image, numpy_to_float
from rtstyle.fsutil import sha256_file
from rtstyle.losses import LossTerms, PerceptualLoss
from rtstyle.trainconfig import StyleTrainConfig

from .loop import TrainResult, train
from .stability import StabilityLoss
from .task import Task


class StyleTarget:
    """One style image: its Gram targets for the loss, its ``style_image`` checkpoint entry, and the
    image as the loss sees it (uint8 HWC), which the checkpoint carries so evaluation needs no copy
    of the file. InputError if the file is not an image."""

    def __init__(self, path: Path, style_size: int | None):
        path = Path(path)
        self.pixels = load_image(path, max_side=style_size)
        self.image = numpy_to_float(self.pixels)
        self.meta = {"name": path.name, "sha256": sha256_file(path), "size": list(self.image.shape[-2:])}

    def setup_loss(self, loss: PerceptualLoss, device: torch.device) -> None:
        loss.set_style(self.image.to(device))


class StyleTask(Task):
    """Photo crops in, the same crops as the content target; plus the stabilisation term when on."""

    kind = "style"

    def __init__(self, cfg: StyleTrainConfig):
        stability = cfg.stability_config()  # bad values fail before the style image is read
        self.target = StyleTarget(cfg.style, cfg.style_size)
        self.style_target = self.target.pixels
        self.model_config, self.loss_config, self.crop_size = cfg.model_config(), cfg.loss_config(), cfg.image_size
        self.stability = StabilityLoss(stability) if stability.enabled else None
        self.meta = {"style_image": self.target.meta, "stability": stability.to_dict()}

    def setup_loss(self, loss: PerceptualLoss, device: torch.device) -> None:
        self.target.setup_loss(loss, device)

    def make_batch(self, images: torch.Tensor, batch_size: int, device: torch.device) -> tuple[torch.Tensor, Any]:
        return images, images

    def loss(self, model: nn.Module, net_in: torch.Tensor, target: Any, loss: PerceptualLoss) -> LossTerms:
        if self.stability is None:
            return super().loss(model, net_in, target, loss)
        # The perturbed batch runs in the same forward pass as the clean one: one forward per backward.
        extra_in, shifts = self.stability.inputs(net_in)
        both = model(torch.cat([net_in, extra_in.to(net_in.dtype)]))
        output, extra_output = both[:len(net_in)], both[len(net_in):]
        terms = loss(output, target)
        term = self.stability(output, extra_output, shifts)
        terms.terms[self.stability.name] = term
        terms.total = terms.total + term
        return terms


def train_style(cfg: StyleTrainConfig) -> TrainResult:
    """Train a style network; the checkpoint records the style image's name and hash."""
    cfg = with_resumed_margin(cfg)
    return train(cfg, StyleTask(cfg))


def with_resumed_margin(cfg: StyleTrainConfig) -> StyleTrainConfig:
    """``cfg`` with ``margin`` None resolved: a --resume keeps its checkpoint's network (older
    checkpoints have no margin), a new run gets the default."""
    if cfg.margin is not None or cfg.resume is None:
        return cfg
    return dataclasses.replace(cfg, margin=int(read_metadata(cfg.resume).get("model", {}).get("margin", 0)))
