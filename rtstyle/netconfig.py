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
    """A Johnson et al. 2016 style transformer and its efficient relatives (``nets/transformer.py``).

    The defaults are the paper's network (``johnson``): a 9x9 conv, two 3x3 stride-2 convs, residual
    blocks at 1/4 resolution, two nearest-upsample + 3x3 convs, a 9x9 conv, InstanceNorm and ReLU
    after every conv but the last. The other fields describe the designs of the architecture study
    (benchmarks/results/arch-study-*): a third stride-2 stage, 4x4 stride-2 convs that sample between
    the rows they read (the 3x3 ones sample even rows only, so the output is shifted 1.5 px and only
    the top and left borders see padding: the line along the top edge of issue 31), pixel-shuffle
    upsampling, depthwise-separable residual blocks and smaller first and last convs."""

    arch: Literal["style"] = "style"
    width: int = 32  # channels after the first conv; doubled by each stride-2 stage
    num_residual: int = 5
    downsamples: int = 2  # stride-2 stages; the residual blocks run at 1 / 2**downsamples resolution
    down_kernel: int = 3  # 3: the paper's 3x3/2 (pad 1); 4: 4x4/2 (pad 1), centred like the upsampling
    upsample: Literal["nearest", "shuffle"] = "nearest"  # shuffle: 3x3 conv to 4x channels, pixel shuffle
    block: Literal["conv", "separable"] = "conv"  # separable: 1x1 expand x2, 3x3 depthwise, 1x1 project
    edge_kernel: int = 9  # kernel of the first and the last conv (full resolution)

    def __post_init__(self) -> None:
        if self.downsamples not in (1, 2, 3):
            raise ConfigError(f"StyleNetConfig: downsamples must be 1, 2 or 3, got {self.downsamples}")
        if self.down_kernel not in (3, 4):
            raise ConfigError(f"StyleNetConfig: down_kernel must be 3 or 4, got {self.down_kernel}")
        if self.upsample not in ("nearest", "shuffle"):
            raise ConfigError(f"StyleNetConfig: upsample must be 'nearest' or 'shuffle', got {self.upsample!r}")
        if self.block not in ("conv", "separable"):
            raise ConfigError(f"StyleNetConfig: block must be 'conv' or 'separable', got {self.block!r}")
        if self.edge_kernel not in (3, 5, 7, 9):
            raise ConfigError(f"StyleNetConfig: edge_kernel must be 3, 5, 7 or 9, got {self.edge_kernel}")

    @property
    def stride(self) -> int:
        """Input sides are padded to a multiple of this (and cropped back)."""
        return 2 ** self.downsamples

    @classmethod
    def preset(cls, name: str) -> "StyleNetConfig":
        if name not in STYLE_ARCH_PRESETS:
            raise ConfigError(f"StyleNetConfig.preset: unknown preset {name!r}; choose from {sorted(STYLE_ARCH_PRESETS)}")
        return STYLE_ARCH_PRESETS[name]


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


# The style architectures by name (``rtstyle train style --arch``); the study that compares them is
# benchmarks/arch_study.py. johnson and fast keep their original structure, so every checkpoint
# trained before the study rebuilds exactly.
STYLE_ARCH_PRESETS: dict[str, StyleNetConfig] = {
    "johnson": StyleNetConfig(),
    "fast": StyleNetConfig(width=16, num_residual=3),
    # The study's own designs: little work at full resolution (3x3 edge convs, 16 or 12 channels),
    # aligned 4x4/2 downsampling, and the capacity where pixels are few.
    "lowres": StyleNetConfig(width=16, downsamples=3, down_kernel=4, edge_kernel=3),  # 5 blocks of 128 ch at 1/8
    "lowres-slim": StyleNetConfig(width=12, downsamples=3, down_kernel=4, edge_kernel=3),  # 96 ch at 1/8
    "separable": StyleNetConfig(width=16, down_kernel=4, block="separable", edge_kernel=3),  # 64 ch at 1/4
}


def describe_style_arch(config: StyleNetConfig) -> str:
    """One line: "16 wide, 5 residual blocks of 128 ch at 1/8, 4x4/2 down, nearest up, 3x3 edges"."""
    blocks = "separable blocks" if config.block == "separable" else "residual blocks"
    return (f"{config.width} wide, {config.num_residual} {blocks} of {config.width * config.stride} ch at "
            f"1/{config.stride}, {config.down_kernel}x{config.down_kernel}/2 down, {config.upsample} up, "
            f"{config.edge_kernel}x{config.edge_kernel} edges")
