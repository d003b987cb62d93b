"""Perceptual losses of Johnson et al. 2016, on the VGG16 of ``vgg.py``.

All images are float NCHW RGB in [0, 1] (``frames.py``); every term is averaged over the batch.

* feature reconstruction (eq. 2): ||phi_j(y_hat) - phi_j(y)||_2^2 / (C_j H_j W_j)
* style (eq. 3-4): ||G_j(y_hat) - G_j(y_s)||_F^2 with G_j = phi phi^T / (C_j H_j W_j)
* total variation: sum of squared neighbour differences in [0, 1] (a 256x256 photo scores
  ~2e3, a noisy stylization several times more; the paper's 1e-6..1e-4 weights keep it a
  gentle regulariser)
* pixel: mean squared error in [0, 1]
* AdaIN (Huang & Belongie 2017): content = MSE to the AdaIN target at relu4_1; style = MSE
  of per-channel means plus MSE of per-channel standard deviations at relu1_1..relu4_1
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .choices import ADAIN_STYLE_LAYERS, STYLE_LAYERS, LossConfig  # noqa: F401 - re-exported
from .nets import channel_mean_std
from .vgg import VGG16


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, C), normalised by C*H*W. Computed in fp32 (fp16 overflows)."""
    b, c, h, w = features.shape
    f = features.float().reshape(b, c, h * w)
    return torch.bmm(f, f.transpose(1, 2)) / (c * h * w)


def feature_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Normalised squared L2 distance of eq. 2, averaged over the batch."""
    return F.mse_loss(output.float(), target.float())


def style_loss(output_grams: Sequence[torch.Tensor], target_grams: Sequence[torch.Tensor],
               weights: Sequence[float] | None = None) -> torch.Tensor:
    """Sum over layers of squared Frobenius distances between Gram matrices.

    A target with batch 1 is broadcast against every output in the batch.
    """
    weights = weights or [1.0] * len(output_grams)
    total = output_grams[0].new_zeros(())
    for w, g, t in zip(weights, output_grams, target_grams, strict=True):
        total = total + w * (g - t).pow(2).sum(dim=(1, 2)).mean()
    return total


def mean_std_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """AdaIN's style term for one layer: MSE of per-channel means + MSE of per-channel stds.

    A target with batch 1 is broadcast against every output in the batch."""
    out_mean, out_std = channel_mean_std(output)
    tgt_mean, tgt_std = channel_mean_std(target)
    return (F.mse_loss(out_mean, tgt_mean.expand_as(out_mean))
            + F.mse_loss(out_std, tgt_std.expand_as(out_std)))


def mean_std_style_loss(outputs: Sequence[torch.Tensor], targets: Sequence[torch.Tensor],
                        weights: Sequence[float] | None = None) -> torch.Tensor:
    """Sum over layers of ``mean_std_loss`` (optionally weighted)."""
    weights = weights or [1.0] * len(outputs)
    return sum((w * mean_std_loss(o, t) for w, o, t in zip(weights, outputs, targets, strict=True)),
               outputs[0].new_zeros((), dtype=torch.float32))


def tv_loss(images: torch.Tensor) -> torch.Tensor:
    """Total variation: sum of squared horizontal and vertical differences, batch-averaged."""
    x = images.float()
    dh = (x[..., 1:, :] - x[..., :-1, :]).pow(2).sum(dim=(1, 2, 3))
    dw = (x[..., :, 1:] - x[..., :, :-1]).pow(2).sum(dim=(1, 2, 3))
    return (dh + dw).mean()


def pixel_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(output.float(), target.float())


@dataclass
class LossTerms:
    """Weighted terms and their sum; ``as_floats`` is what logs and CSVs record."""

    total: torch.Tensor
    terms: dict[str, torch.Tensor] = field(default_factory=dict)

    def as_floats(self) -> dict[str, float]:
        return {"total": float(self.total.detach()), **{k: float(v.detach()) for k, v in self.terms.items()}}


class PerceptualLoss(nn.Module):
    """Johnson et al.'s objective: content + style (Gram) + TV + optional pixel loss.

    For style transfer call ``set_style`` once with the style image; for super-resolution leave
    the style weight at 0 and the loss is feature (+ pixel) reconstruction of the HR target.
    """

    def __init__(self, vgg: VGG16, config: LossConfig):
        super().__init__()
        self.vgg = vgg
        self.config = config
        self._style_grams: list[torch.Tensor] | None = None

    @property
    def _uses_style(self) -> bool:
        return self.config.style_weight > 0 and bool(self.config.style_layers)

    def set_style(self, style: torch.Tensor) -> None:
        """Precompute target Grams from a (1, 3, H, W) style image in [0, 1]."""
        with torch.no_grad():
            feats = self.vgg(style, self.config.style_layers)
            self._style_grams = [gram_matrix(feats[name]) for name in self.config.style_layers]

    def forward(self, output: torch.Tensor, content: torch.Tensor) -> LossTerms:
        cfg = self.config
        layers = set(cfg.content_layers) if cfg.content_weight > 0 else set()
        if self._uses_style:
            if self._style_grams is None:
                raise RuntimeError("PerceptualLoss: call set_style() before computing a style loss")
            layers |= set(cfg.style_layers)
        out_feats = self.vgg(output, layers)
        terms: dict[str, torch.Tensor] = {}
        if cfg.content_weight > 0:
            with torch.no_grad():
                target_feats = self.vgg(content, cfg.content_layers)
            content_term = sum(feature_loss(out_feats[n], target_feats[n]) for n in cfg.content_layers)
            terms["content"] = cfg.content_weight * content_term
        if self._uses_style:
            grams = [gram_matrix(out_feats[n]) for n in cfg.style_layers]
            terms["style"] = cfg.style_weight * style_loss(grams, self._style_grams, cfg.style_layer_weights)
        if cfg.tv_weight > 0:
            terms["tv"] = cfg.tv_weight * tv_loss(output)
        if cfg.pixel_weight > 0:
            terms["pixel"] = cfg.pixel_weight * pixel_loss(output, content)
        total = sum(terms.values(), output.new_zeros((), dtype=torch.float32))
        return LossTerms(total, terms)
