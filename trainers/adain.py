"""``rtstyle train adain``: an AdaIN decoder (Huang & Belongie 2017) for arbitrary styles.

Each step pairs a batch of content crops with a batch of random crops of the style images.
The encoder (VGG16 to relu4_1) is frozen, so only the decoder trains, on

    content = MSE(phi_relu4_1(out), t),  t = AdaIN(phi(content), phi(style))
    style   = sum over relu1_1..relu4_1 of MSE(mean) + MSE(std) between out and style features

with ``out = decoder(t)``; the paper's weights are content 1, style 10, Adam at 1e-4.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from rtstyle.errors import InputError
from rtstyle.frames import load_image, numpy_to_float
from rtstyle.fsutil import sha256_file
from rtstyle.losses import LossTerms, PerceptualLoss, feature_loss, mean_std_style_loss
from rtstyle.nets import ENCODER_LAYER, AdaINConfig, adain, channel_mean_std
from rtstyle.trainconfig import AdaINTrainConfig

from .data import scan_images
from .loop import TrainResult, train
from .task import Task


class StyleCrops:
    """Random square crops of a few style images kept in memory (float NCHW [0, 1])."""

    def __init__(self, files: list[Path], max_side: int, crop: int, seed: int):
        self.crop = crop
        self.images = [self._at_least(numpy_to_float(load_image(f, max_side=max_side)), crop) for f in files]
        self.generator = torch.Generator().manual_seed(seed)

    @staticmethod
    def _at_least(image: torch.Tensor, side: int) -> torch.Tensor:
        h, w = image.shape[-2:]
        if min(h, w) >= side:
            return image
        scale = side / min(h, w)
        size = (max(side, round(h * scale)), max(side, round(w * scale)))
        return F.interpolate(image, size=size, mode="bilinear", align_corners=False).clamp(0, 1)

    def sample(self, n: int, device: torch.device) -> torch.Tensor:
        crops = []
        for _ in range(n):
            image = self.images[int(torch.randint(len(self.images), (1,), generator=self.generator))]
            h, w = image.shape[-2:]
            y = int(torch.randint(h - self.crop + 1, (1,), generator=self.generator))
            x = int(torch.randint(w - self.crop + 1, (1,), generator=self.generator))
            crops.append(image[..., y:y + self.crop, x:x + self.crop])
        return torch.cat(crops).to(device, non_blocking=True)


def style_files(folder: Path, hold_out: tuple[str, ...]) -> tuple[list[Path], list[Path]]:
    """(training styles, held-out styles) of a folder; InputError for an unknown held-out name."""
    files = scan_images(folder).files
    names = {f.name for f in files}
    unknown = sorted(set(hold_out) - names)
    if unknown:
        raise InputError(f"--hold-out {unknown[0]!r} is not a style image in {folder}; choose from {sorted(names)}")
    train_files = [f for f in files if f.name not in hold_out]
    if not train_files:
        raise InputError(f"--hold-out leaves no training style in {folder}")
    return train_files, [f for f in files if f.name in hold_out]


def adain_objective(model, content: torch.Tensor, style: torch.Tensor, loss: PerceptualLoss) -> LossTerms:
    """The AdaIN loss of one batch (``loss`` supplies the frozen VGG16 and the weights)."""
    net = getattr(model, "module", model)
    cfg = loss.config
    with torch.no_grad():
        style_feats = loss.vgg(style, cfg.style_layers)
        mean, std = channel_mean_std(style_feats[ENCODER_LAYER])
        target = adain(net.encode(content), mean, std)
    output = model(content, mean, std)
    out_feats = loss.vgg(output, cfg.style_layers)
    terms = {
        "content": cfg.content_weight * feature_loss(out_feats[ENCODER_LAYER], target),
        "style": cfg.style_weight * mean_std_style_loss([out_feats[n] for n in cfg.style_layers],
                                                        [style_feats[n] for n in cfg.style_layers],
                                                        cfg.style_layer_weights),
    }
    return LossTerms(terms["content"] + terms["style"], terms)


class AdaINTask(Task):
    """Photo crops in; the target is a batch of random crops of the training styles."""

    kind = "style"

    def __init__(self, cfg: AdaINTrainConfig):
        train_files, held_out = style_files(Path(cfg.styles), tuple(cfg.hold_out))
        self.crops = StyleCrops(train_files, cfg.style_size, cfg.image_size, cfg.seed)
        self.model_config, self.loss_config, self.crop_size = AdaINConfig(width=cfg.width), cfg.loss_config(), cfg.image_size
        self.meta = {
            "objective": "adain: content MSE to the AdaIN target at relu4_1 + mean/std style MSE at relu1_1..relu4_1",
            "styles": [{"name": f.name, "sha256": sha256_file(f)} for f in train_files],
            "held_out_styles": [f.name for f in held_out],
            "encoder": "VGG16 (ImageNet) to relu4_1, frozen, not stored in this file (the paper used VGG19)",
        }

    def make_batch(self, images: torch.Tensor, batch_size: int,
                   device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        return images, self.crops.sample(len(images), images.device).to(images.dtype)

    def loss(self, model, net_in: torch.Tensor, target: torch.Tensor, loss: PerceptualLoss) -> LossTerms:
        return adain_objective(model, net_in, target, loss)


def train_adain(cfg: AdaINTrainConfig) -> TrainResult:
    """Train an AdaIN decoder on ``cfg.data`` photos and ``cfg.styles`` paintings."""
    return train(cfg, AdaINTask(cfg))
