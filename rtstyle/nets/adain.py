"""Huang & Belongie 2017 arbitrary style transfer: frozen VGG encoder, AdaIN, trained decoder.

Its forward pass takes the style's statistics besides the image; ``rtstyle.conditioning`` binds
them so the runtime and the exporters still see a one-input image -> image module."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..netconfig import ENCODER_LAYER, AdaINConfig
from ..vgg import load_vgg16
from .common import ConvLayer, pad_to_multiple, to_pixel_range

ADAIN_EPS = 1e-5


def channel_mean_std(features: torch.Tensor, eps: float = ADAIN_EPS) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample, per-channel mean and standard deviation over H, W: two (B, C) fp32 tensors.

    Computed in fp32 (fp16 squares overflow); ``eps`` inside the square root keeps flat
    feature maps finite (the same eps as AdaIN's reference code)."""
    f = features.float().flatten(2)
    var = f.var(dim=2, unbiased=False)
    return f.mean(dim=2), (var + eps).sqrt()


def adain(content: torch.Tensor, style_mean: torch.Tensor, style_std: torch.Tensor,
          eps: float = ADAIN_EPS) -> torch.Tensor:
    """Adaptive instance normalisation: ``content`` normalised per channel, then given the
    style's mean and std ((B or 1, C) each). Runs in fp32 and returns ``content``'s dtype."""
    mean, std = channel_mean_std(content, eps)
    f = content.float()
    normalised = (f - mean[..., None, None]) / std[..., None, None]
    out = normalised * style_std.float()[..., None, None] + style_mean.float()[..., None, None]
    return out.to(content.dtype)


def _relu_conv(cin: int, cout: int) -> list[nn.Module]:
    return [ConvLayer(cin, cout, 3), nn.ReLU(inplace=True)]


class AdaINDecoder(nn.Sequential):
    """relu4_1 features (512 ch) -> image: VGG16's layers mirrored, pools replaced by nearest x2
    upsampling, reflection padding, no normalisation (as in the paper)."""

    def __init__(self, width: int):
        w = width
        super().__init__(
            *_relu_conv(512, 4 * w), nn.Upsample(scale_factor=2, mode="nearest"),
            *_relu_conv(4 * w, 4 * w), *_relu_conv(4 * w, 4 * w), *_relu_conv(4 * w, 2 * w),
            nn.Upsample(scale_factor=2, mode="nearest"),
            *_relu_conv(2 * w, 2 * w), *_relu_conv(2 * w, w), nn.Upsample(scale_factor=2, mode="nearest"),
            *_relu_conv(w, w), ConvLayer(w, 3, 3),
        )


def _drop_encoder_keys(module: nn.Module, state_dict: dict, prefix: str, local_metadata) -> None:
    for key in [k for k in state_dict if k.startswith(prefix + "encoder.")]:
        del state_dict[key]


def _encoder_keys_not_missing(module: nn.Module, incompatible_keys) -> None:
    missing = incompatible_keys.missing_keys
    missing[:] = [k for k in missing if ".encoder." not in f".{k}"]


class AdaINNet(nn.Module):
    """Arbitrary style transfer in one pass: ``forward(content, style_mean, style_std, alpha)``.

    ``style_mean``/``style_std`` are the style image's relu4_1 statistics ((1 or B, 512) each,
    from ``style_stats``); ``alpha`` in [0, 1] (a 0-d or 1-element tensor) blends the AdaIN
    target with the content features (1: full style, 0: the decoder's reconstruction).

    The encoder is the pretrained VGG16, frozen: it is rebuilt from the VGG weights (``vgg.py``
    resolution order) whenever the net is built, and it is **not part of the state dict**, so
    checkpoints hold the trained decoder only and strict loading checks exactly its keys (the
    two hooks below implement that; ``encoder`` stays a registered submodule so ``.to()``,
    ``deepcopy`` and the exporters treat it like any other layer).
    """

    stride = 8  # three 2x2 max-pools before relu4_1

    def __init__(self, config: AdaINConfig = AdaINConfig(), encoder: nn.Module | None = None):
        super().__init__()
        self.config = config
        self.encoder = encoder if encoder is not None else load_vgg16(last_layer=ENCODER_LAYER)
        self.decoder = AdaINDecoder(config.width)
        self.register_state_dict_post_hook(_drop_encoder_keys)
        self.register_load_state_dict_post_hook(_encoder_keys_not_missing)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return self.encoder(images, (ENCODER_LAYER,))[ENCODER_LAYER]

    def decode(self, features: torch.Tensor) -> torch.Tensor:
        return to_pixel_range(self.decoder(features))

    @torch.no_grad()
    def style_stats(self, style: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, std) of a style batch's relu4_1 features, (B, 512) each."""
        return channel_mean_std(self.encode(style))

    def forward(self, content: torch.Tensor, style_mean: torch.Tensor, style_std: torch.Tensor,
                alpha: torch.Tensor | float = 1.0) -> torch.Tensor:
        h, w = content.shape[-2:]
        features = self.encode(pad_to_multiple(content, self.stride))
        target = adain(features, style_mean, style_std)
        alpha = torch.as_tensor(alpha, dtype=target.dtype, device=target.device).reshape(())
        mixed = alpha * target + (1 - alpha) * features
        y = self.decoder(mixed)
        return to_pixel_range(F.pad(y, (0, w - y.shape[-1], 0, h - y.shape[-2])))
