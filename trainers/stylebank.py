"""``rtstyle train stylebank``: one network for several styles (Chen et al. 2017, StyleBank).

A shared encoder/decoder plus one filter bank per style, trained with the paper's T+1
alternation: T stylization steps (encoder -> bank i -> decoder, the perceptual loss of style i,
styles taken in turn) then one auto-encoder step (encoder -> decoder, pixel MSE to the input),
which keeps the content in the encoder and the style in the banks.

``base`` adds styles to a trained StyleBank: its encoder, decoder and banks are loaded and
frozen, and only the new banks train (no auto-encoder steps).
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from rtstyle.checkpoint import load_checkpoint
from rtstyle.errors import InputError
from rtstyle.frames import load_image, numpy_to_float
from rtstyle.fsutil import sha256_file
from rtstyle.losses import LossConfig, LossTerms, PerceptualLoss, pixel_loss
from rtstyle.nets import StyleBankConfig, StyleBankNet

from .common import TaskSpec, TrainConfig, TrainResult, train


@dataclass(kw_only=True)
class StyleBankTrainConfig(TrainConfig):
    styles: tuple[Path, ...]  # style images, one bank each, in bank order
    base: Path | None = None  # a trained StyleBank to add ``styles`` to (only the new banks train)
    style_size: int | None = 512
    width: int = StyleBankConfig.width
    bank_layers: int = StyleBankConfig.bank_layers
    autoencoder_every: int = 2  # T: one auto-encoder step after every T stylization steps
    content_weight: float = LossConfig.content_weight
    style_weight: float = LossConfig.style_weight
    tv_weight: float = LossConfig.tv_weight

    def validate(self) -> None:
        super().validate()
        if not self.styles:
            raise InputError("no style images given; pass --style IMAGE (repeat it, one bank per style)")
        if self.autoencoder_every < 1:
            raise InputError(f"--autoencoder-every must be >= 1, got {self.autoencoder_every}")
        if self.base is not None and self.resume is not None:
            raise InputError("give either --base (add styles to a trained StyleBank) or --resume, not both")
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise InputError("StyleBank training runs in one process (each step uses one bank, which "
                             "DistributedDataParallel would see as unused parameters); run it without torchrun")

    def loss_config(self) -> LossConfig:
        try:
            return LossConfig(content_weight=self.content_weight, style_weight=self.style_weight, tv_weight=self.tv_weight)
        except ValueError as exc:
            raise InputError(str(exc)) from None


class StyleBankObjective:
    """The T+1 alternation; ``trained`` are the bank indices this run trains, in turn."""

    def __init__(self, styles: list[torch.Tensor], trained: list[int], autoencoder_every: int | None):
        self.styles, self.trained, self.every = styles, trained, autoencoder_every
        self.losses: list[PerceptualLoss] = []
        self.steps = itertools.count()
        self.stylized = 0

    def setup(self, loss: PerceptualLoss, device: torch.device) -> None:
        """One perceptual loss per trained style, sharing the frozen VGG16."""
        for style in self.styles:
            per_style = PerceptualLoss(loss.vgg, loss.config)
            per_style.set_style(style.to(device))
            self.losses.append(per_style)

    def __call__(self, model: nn.Module, images: torch.Tensor, target: torch.Tensor, loss: PerceptualLoss) -> LossTerms:
        step = next(self.steps)
        if self.every is not None and step % (self.every + 1) == self.every:
            term = pixel_loss(model(images, None), images)
            return LossTerms(term, {"pixel": term})
        k = self.stylized % len(self.trained)
        self.stylized += 1
        return self.losses[k](model(images, self.trained[k]), target)


def _style_meta(path: Path) -> dict:
    return {"name": path.name, "sha256": sha256_file(path)}


def train_stylebank(cfg: StyleBankTrainConfig) -> TrainResult:
    """Train a StyleBank on ``cfg.styles`` (or add them to ``cfg.base``)."""
    cfg.validate()
    styles = [numpy_to_float(load_image(p, max_side=cfg.style_size)) for p in cfg.styles]
    metas = [_style_meta(Path(p)) for p in cfg.styles]
    first_new, setup_model, base_meta = 0, (lambda net: None), []
    if cfg.base is not None:
        base = load_checkpoint(cfg.base, task="style")
        if not isinstance(base.model, StyleBankNet):
            raise InputError(f"--base {cfg.base} is a {base.config.arch!r} model, not a StyleBank")
        if (base.config.width, base.config.bank_layers) != (cfg.width, cfg.bank_layers):
            raise InputError(f"--base {cfg.base} has width {base.config.width}, bank layers {base.config.bank_layers}; "
                             f"pass --width {base.config.width} --bank-layers {base.config.bank_layers}")
        first_new, base_meta = base.config.num_styles, list(base.meta.get("styles", []))
        setup_model = _freeze_all_but_new_banks(base.model, first_new)
    config = StyleBankConfig(num_styles=first_new + len(styles), width=cfg.width, bank_layers=cfg.bank_layers)
    objective = StyleBankObjective(styles, list(range(first_new, config.num_styles)),
                                   None if cfg.base is not None else cfg.autoencoder_every)
    spec = TaskSpec(
        task="style",
        model_config=config,
        loss_config=cfg.loss_config(),
        crop_size=cfg.image_size,
        prepare=lambda images: (images, images),
        setup_loss=objective.setup,
        objective=objective,
        setup_model=setup_model,
        meta={"styles": base_meta + metas, "objective": f"stylebank T+1 alternation, T={cfg.autoencoder_every}",
              **({"base": Path(cfg.base).name} if cfg.base is not None else {})},
    )
    return train(cfg, spec)


def _freeze_all_but_new_banks(base: StyleBankNet, first_new: int):
    def setup(net: nn.Module) -> None:
        # Strict loads, part by part: the new banks are the only parts the base lacks.
        net.encoder.load_state_dict(base.encoder.state_dict())
        net.decoder.load_state_dict(base.decoder.state_dict())
        for old, new in zip(base.banks, net.banks[:first_new], strict=True):
            new.load_state_dict(old.state_dict())
        net.requires_grad_(False)
        for bank in net.banks[first_new:]:
            bank.requires_grad_(True)
    return setup
