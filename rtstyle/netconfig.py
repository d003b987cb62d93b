"""Every network family's config dataclass: the complete description of a network, stored in its
checkpoints (``nets.config_to_dict``).

Kept free of torch, like ``choices.py``: the trainer configs take their defaults from these, and
the command line reads those defaults to build its parser without loading torch. The networks
themselves are in ``rtstyle/nets/`` (one module per family), which re-exports these names.
A bad value raises ``ConfigError``, one line naming it and the allowed values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .errors import ConfigError

ENCODER_LAYER = "relu4_1"  # AdaIN's encoder output and content layer (Huang & Belongie 2017)


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
            raise ConfigError(f"StyleNetConfig.preset: unknown preset {name!r}; choose from {sorted(presets)}")
        return presets[name]


@dataclass(frozen=True)
class SRNetConfig:
    """Johnson et al. 2016 super-resolution net for x4 / x8; ``residual`` adds its output to a
    bicubic upsampling of the input (``nets/sr.py``); False is the paper's network."""

    arch: Literal["sr"] = "sr"
    scale: int = 4
    width: int = 64
    num_residual: int = 4
    norm: Literal["batch", "none"] = "batch"
    residual: bool = False

    def __post_init__(self) -> None:
        if self.scale not in (2, 4, 8):
            raise ConfigError(f"SRNetConfig: scale must be 2, 4 or 8, got {self.scale}")
        if self.norm not in ("batch", "none"):
            raise ConfigError(f"SRNetConfig: norm must be 'batch' or 'none', got {self.norm!r}")
        if not isinstance(self.residual, bool):
            raise ConfigError(f"SRNetConfig: residual must be true or false, got {self.residual!r}")


@dataclass(frozen=True)
class AdaINConfig:
    """Huang & Belongie 2017: frozen VGG encoder to relu4_1, AdaIN, a decoder mirroring it.

    The paper's encoder is VGG19; ours is the VGG16 of ``vgg.py`` (the offline weights), so the
    decoder mirrors VGG16 (two 3x3 convs at the relu3 level where VGG19's mirror has three)."""

    arch: Literal["adain"] = "adain"
    width: int = 64  # decoder channels at the relu1 level, then 2x and 4x (the paper: 64, 128, 256)

    def __post_init__(self) -> None:
        if self.width < 1:
            raise ConfigError(f"AdaINConfig: width must be >= 1, got {self.width}")


@dataclass(frozen=True)
class StyleBankConfig:
    """Chen et al. 2017: a shared encoder/decoder and one convolutional filter bank per style."""

    arch: Literal["stylebank"] = "stylebank"
    num_styles: int = 1
    width: int = 32  # encoder channels after the first conv; then 2x, 4x (the bank works at 4x)
    bank_layers: int = 2  # 3x3 convs per bank, ReLU between

    def __post_init__(self) -> None:
        if self.num_styles < 1 or self.width < 1 or self.bank_layers < 1:
            raise ConfigError(f"StyleBankConfig: num_styles, width and bank_layers must be >= 1, got {self}")


@dataclass(frozen=True)
class TextureNetConfig:
    """Ulyanov et al. 2016 multi-scale generator (content-conditioned stylization variant).

    Scale k (0 = full resolution) sees the content downsampled 2^k times plus ``noise_channels``
    noise maps; each scale has a conv block (3x3, 3x3, 1x1, norm + LeakyReLU); coarse to fine,
    the running result is upsampled (nearest x2) and joined (concatenated) with the next finer
    block, growing by ``width`` channels per join; a final 1x1 conv gives RGB."""

    arch: Literal["texture"] = "texture"
    scales: int = 5
    width: int = 8  # channels per scale's block (the paper: 8)
    noise_channels: int = 3
    noise_std: float = 0.1  # training-time noise amplitude, in [0, 1] pixel units
    padding: Literal["circular", "reflect"] = "circular"
    norm: Literal["instance", "batch"] = "instance"

    def __post_init__(self) -> None:
        if not 1 <= self.scales <= 6 or self.width < 1 or self.noise_channels < 0 or self.noise_std < 0:
            raise ConfigError(f"TextureNetConfig: need 1 <= scales <= 6, width >= 1, noise >= 0, got {self}")
        if self.padding not in ("circular", "reflect") or self.norm not in ("instance", "batch"):
            raise ConfigError(f"TextureNetConfig: padding must be circular|reflect and norm instance|batch, got {self}")

    @property
    def input_channels(self) -> int:
        """Channels each scale's block sees: the content (RGB) and the noise maps."""
        return 3 + self.noise_channels


@dataclass(frozen=True)
class TextureSynthConfig:
    """Ulyanov et al. 2016 texture synthesis: the same multi-scale generator fed noise alone.

    ``TextureSynthNet.forward(z)`` takes standard-normal noise z (N, noise_channels, H, W) and
    returns an RGB texture of the same size; a different z is a different sample of the texture."""

    arch: Literal["texture_synth"] = "texture_synth"
    scales: int = 5
    width: int = 8
    noise_channels: int = 8
    padding: Literal["circular", "reflect"] = "circular"
    norm: Literal["instance", "batch"] = "instance"
    # "nearest" is the paper's; it leaves a grid of block edges from the coarse scales that short
    # training does not smooth away. "bilinear" interpolates (around the wrap with circular padding).
    upsample: Literal["nearest", "bilinear"] = "bilinear"

    def __post_init__(self) -> None:
        if not 1 <= self.scales <= 6 or self.width < 1 or self.noise_channels < 1:
            raise ConfigError(f"TextureSynthConfig: need 1 <= scales <= 6, width >= 1, noise_channels >= 1, got {self}")
        if self.padding not in ("circular", "reflect") or self.norm not in ("instance", "batch"):
            raise ConfigError(
                f"TextureSynthConfig: padding must be circular|reflect and norm instance|batch, got {self}")
        if self.upsample not in ("nearest", "bilinear"):
            raise ConfigError(f"TextureSynthConfig: upsample must be nearest|bilinear, got {self.upsample!r}")

    @property
    def input_channels(self) -> int:
        return self.noise_channels

    @property
    def tile_multiple(self) -> int:
        """Output sides that are multiples of this tile seamlessly (with circular padding)."""
        return 2 ** self.scales
