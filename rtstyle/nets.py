"""The feed-forward networks, defined once and imported by trainers, export and runtime.

Both networks take and return float NCHW RGB in [0, 1] (see ``frames.py``). Any height and
width >= ``MIN_SIDE`` works: inputs are replicate-padded up to the stride multiple and the
output is cropped back, so a 641x359 frame comes back 641x359 (times the SR scale).

A network is described completely by its config dataclass; checkpoints store that config,
so ``build_model(config_dict)`` rebuilds the net with no extra flags.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from .errors import CheckpointError

# The 9x9 reflection-padded convs need at least 5 pixels; 16 leaves room after the
# two stride-2 stages of the style net. The runtime upsamples smaller frames.
MIN_SIDE = 16


@dataclass(frozen=True)
class StyleNetConfig:
    """Johnson et al. 2016 style transformer (with upsample+conv and InstanceNorm)."""

    arch: Literal["style"] = "style"
    width: int = 32  # channels after the first conv; then 2x, 4x
    num_residual: int = 5

    @classmethod
    def preset(cls, name: str) -> "StyleNetConfig":
        presets = {"johnson": cls(), "fast": cls(width=16, num_residual=3)}
        if name not in presets:
            raise ValueError(f"StyleNetConfig.preset: unknown preset {name!r}; choose from {sorted(presets)}")
        return presets[name]


@dataclass(frozen=True)
class SRNetConfig:
    """Johnson et al. 2016 super-resolution net for x4 / x8."""

    arch: Literal["sr"] = "sr"
    scale: int = 4
    width: int = 64
    num_residual: int = 4
    norm: Literal["batch", "none"] = "batch"

    def __post_init__(self) -> None:
        if self.scale not in (2, 4, 8):
            raise ValueError(f"SRNetConfig: scale must be 2, 4 or 8, got {self.scale}")
        if self.norm not in ("batch", "none"):
            raise ValueError(f"SRNetConfig: norm must be 'batch' or 'none', got {self.norm!r}")


ModelConfig = StyleNetConfig | SRNetConfig


class ConvLayer(nn.Sequential):
    """Reflection padding + conv: avoids the border artefacts of zero padding."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1):
        super().__init__(nn.ReflectionPad2d(kernel // 2), nn.Conv2d(cin, cout, kernel, stride))


class UpsampleConv(nn.Sequential):
    """Nearest x2 upsampling then conv; transposed convs leave checkerboard artefacts."""

    def __init__(self, cin: int, cout: int, kernel: int = 3):
        super().__init__(nn.Upsample(scale_factor=2, mode="nearest"), ConvLayer(cin, cout, kernel))


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    return nn.Identity()


class ResidualBlock(nn.Module):
    def __init__(self, channels: int, norm: str):
        super().__init__()
        self.body = nn.Sequential(
            ConvLayer(channels, channels, 3),
            _norm(norm, channels),
            nn.ReLU(inplace=True),
            ConvLayer(channels, channels, 3),
            _norm(norm, channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def _to_pixel_range(x: torch.Tensor) -> torch.Tensor:
    # Johnson et al.'s scaled tanh, mapped to [0, 1].
    return 0.5 * (torch.tanh(x) + 1.0)


def _check_min_side(x: torch.Tensor) -> None:
    h, w = x.shape[-2:]
    if h < MIN_SIDE or w < MIN_SIDE:
        raise ValueError(
            f"input {h}x{w} is smaller than the networks' minimum side {MIN_SIDE}; "
            "resize it first (the runtime does this automatically)"
        )


def _pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    _check_min_side(x)
    h, w = x.shape[-2:]
    # Always pad (possibly by zero): a shape-dependent branch would specialise exported
    # graphs to one input size.
    return F.pad(x, (0, (-w) % multiple, 0, (-h) % multiple), mode="replicate")


class StyleNet(nn.Module):
    """9x9 conv w -> 3x3/2 2w -> 3x3/2 4w -> residual blocks -> 2x (up + 3x3 conv) -> 9x9 conv 3."""

    stride = 4

    def __init__(self, config: StyleNetConfig = StyleNetConfig()):
        super().__init__()
        self.config = config
        w = config.width
        layers: list[nn.Module] = []
        for cin, cout, k, s in ((3, w, 9, 1), (w, 2 * w, 3, 2), (2 * w, 4 * w, 3, 2)):
            layers += [ConvLayer(cin, cout, k, s), _norm("instance", cout), nn.ReLU(inplace=True)]
        layers += [ResidualBlock(4 * w, "instance") for _ in range(config.num_residual)]
        for cin, cout in ((4 * w, 2 * w), (2 * w, w)):
            layers += [UpsampleConv(cin, cout), _norm("instance", cout), nn.ReLU(inplace=True)]
        layers.append(ConvLayer(w, 3, 9))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        y = self.body(_pad_to_multiple(x, self.stride))
        # Crop with a negative pad, not a slice: a slice is a view whose contiguity depends on
        # whether any padding was added, which torch.export (AOTInductor) cannot decide for a
        # dynamic size and would specialise the package to sizes that are (not) multiples of 4.
        return _to_pixel_range(F.pad(y, (0, w - y.shape[-1], 0, h - y.shape[-2])))


class SRNet(nn.Module):
    """9x9 conv -> residual blocks -> log2(scale) x (up + 3x3 conv) -> 9x9 conv 3."""

    def __init__(self, config: SRNetConfig = SRNetConfig()):
        super().__init__()
        self.config = config
        c = config.width
        layers: list[nn.Module] = [ConvLayer(3, c, 9), nn.ReLU(inplace=True)]
        layers += [ResidualBlock(c, config.norm) for _ in range(config.num_residual)]
        for _ in range(int(math.log2(config.scale))):
            layers += [UpsampleConv(c, c), _norm(config.norm, c), nn.ReLU(inplace=True)]
        layers.append(ConvLayer(c, 3, 9))
        self.body = nn.Sequential(*layers)

    @property
    def scale(self) -> int:
        return self.config.scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_min_side(x)
        return _to_pixel_range(self.body(x))


_ARCHS: dict[str, tuple[type, type[nn.Module]]] = {
    "style": (StyleNetConfig, StyleNet),
    "sr": (SRNetConfig, SRNet),
}


def config_to_dict(config: ModelConfig) -> dict[str, Any]:
    return asdict(config)


def config_from_dict(data: dict[str, Any]) -> ModelConfig:
    """Rebuild a config dataclass; unknown archs or fields are a CheckpointError."""
    arch = data.get("arch")
    if arch not in _ARCHS:
        raise CheckpointError(f"unknown model arch {arch!r}; expected one of {sorted(_ARCHS)}")
    cls = _ARCHS[arch][0]
    known = {f.name for f in fields(cls)}
    unknown = set(data) - known
    if unknown:
        raise CheckpointError(f"model config for arch {arch!r} has unknown fields {sorted(unknown)}")
    try:
        return cls(**data)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"invalid model config {data}: {exc}") from None


def build_model(config: ModelConfig | dict[str, Any]) -> nn.Module:
    """Instantiate the network a config describes."""
    if isinstance(config, dict):
        config = config_from_dict(config)
    return _ARCHS[config.arch][1](config)


def output_scale(config: ModelConfig) -> int:
    """How many times larger the output is than the input (1 for style nets)."""
    return getattr(config, "scale", 1)
