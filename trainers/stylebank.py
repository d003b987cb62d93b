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
from pathlib import Path

import torch
from torch import nn

from rtstyle.checkpoint import load_checkpoint
from rtstyle.errors import InputError
from rtstyle.frames import load_image, numpy_to_float
from rtstyle.fsutil import sha256_file
from rtstyle.losses import LossTerms, PerceptualLoss, pixel_loss
from rtstyle.nets import StyleBankConfig, StyleBankNet
from rtstyle.trainconfig import StyleBankTrainConfig

from .loop import TrainResult, train
from .task import Task


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


class StyleBankTask(Task):
    """Photo crops in and as the content target; the objective picks the bank (or the auto-encoder)."""

    kind = "style"

    def __init__(self, cfg: StyleBankTrainConfig):
        styles = [numpy_to_float(load_image(p, max_side=cfg.style_size)) for p in cfg.styles]
        metas = [_style_meta(Path(p)) for p in cfg.styles]
        first_new, self.base, base_meta = 0, None, []
        if cfg.base is not None:
            base = load_checkpoint(cfg.base, task="style")
            if not isinstance(base.model, StyleBankNet):
                raise InputError(f"--base {cfg.base} is a {base.config.arch!r} model, not a StyleBank")
            if (base.config.width, base.config.bank_layers) != (cfg.width, cfg.bank_layers):
                raise InputError(f"--base {cfg.base} has width {base.config.width}, bank layers "
                                 f"{base.config.bank_layers}; pass --width {base.config.width} "
                                 f"--bank-layers {base.config.bank_layers}")
            first_new, self.base, base_meta = base.config.num_styles, base.model, list(base.meta.get("styles", []))
        self.first_new = first_new
        self.model_config = StyleBankConfig(num_styles=first_new + len(styles), width=cfg.width,
                                            bank_layers=cfg.bank_layers)
        self.loss_config, self.crop_size = cfg.loss_config(), cfg.image_size
        self.objective = StyleBankObjective(styles, list(range(first_new, self.model_config.num_styles)),
                                            None if cfg.base is not None else cfg.autoencoder_every)
        self.meta = {"styles": base_meta + metas, "objective": f"stylebank T+1 alternation, T={cfg.autoencoder_every}",
                     **({"base": Path(cfg.base).name} if cfg.base is not None else {})}

    def setup_model(self, net: nn.Module) -> None:
        if self.base is None:
            return
        # Strict loads, part by part: the new banks are the only parts the base lacks.
        net.encoder.load_state_dict(self.base.encoder.state_dict())
        net.decoder.load_state_dict(self.base.decoder.state_dict())
        for old, new in zip(self.base.banks, net.banks[:self.first_new], strict=True):
            new.load_state_dict(old.state_dict())
        net.requires_grad_(False)
        for bank in net.banks[self.first_new:]:
            bank.requires_grad_(True)

    def setup_loss(self, loss: PerceptualLoss, device: torch.device) -> None:
        self.objective.setup(loss, device)

    def make_batch(self, images: torch.Tensor, batch_size: int,
                   device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        return images, images

    def loss(self, model: nn.Module, net_in: torch.Tensor, target: torch.Tensor, loss: PerceptualLoss) -> LossTerms:
        return self.objective(model, net_in, target, loss)


def train_stylebank(cfg: StyleBankTrainConfig) -> TrainResult:
    """Train a StyleBank on ``cfg.styles`` (or add them to ``cfg.base``)."""
    return train(cfg, StyleBankTask(cfg))
