"""The feed-forward networks, defined once and imported by trainers, export and runtime.

Every network takes and returns float NCHW RGB in [0, 1] (see ``frames.py``). Any height and
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


# ------------------------------------------------------------------ multi- and arbitrary-style nets
#
# Three further archs, registered below like the two above. Their forward passes take more
# than an image (style statistics, a style index); ``rtstyle.conditioning`` binds those extra
# inputs so the runtime and the exporters still see a one-input image -> image module.

ENCODER_LAYER = "relu4_1"  # AdaIN's encoder output (Huang & Belongie 2017)
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


@dataclass(frozen=True)
class AdaINConfig:
    """Huang & Belongie 2017: frozen VGG encoder to relu4_1, AdaIN, a decoder mirroring it.

    The paper's encoder is VGG19; ours is the VGG16 of ``vgg.py`` (the offline weights), so the
    decoder mirrors VGG16 (two 3x3 convs at the relu3 level where VGG19's mirror has three)."""

    arch: Literal["adain"] = "adain"
    width: int = 64  # decoder channels at the relu1 level, then 2x and 4x (the paper: 64, 128, 256)

    def __post_init__(self) -> None:
        if self.width < 1:
            raise ValueError(f"AdaINConfig: width must be >= 1, got {self.width}")


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
        from .vgg import load_vgg16

        self.config = config
        self.encoder = encoder if encoder is not None else load_vgg16(last_layer=ENCODER_LAYER)
        self.decoder = AdaINDecoder(config.width)
        self.register_state_dict_post_hook(_drop_encoder_keys)
        self.register_load_state_dict_post_hook(_encoder_keys_not_missing)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return self.encoder(images, (ENCODER_LAYER,))[ENCODER_LAYER]

    def decode(self, features: torch.Tensor) -> torch.Tensor:
        return _to_pixel_range(self.decoder(features))

    @torch.no_grad()
    def style_stats(self, style: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, std) of a style batch's relu4_1 features, (B, 512) each."""
        return channel_mean_std(self.encode(style))

    def forward(self, content: torch.Tensor, style_mean: torch.Tensor, style_std: torch.Tensor,
                alpha: torch.Tensor | float = 1.0) -> torch.Tensor:
        h, w = content.shape[-2:]
        features = self.encode(_pad_to_multiple(content, self.stride))
        target = adain(features, style_mean, style_std)
        alpha = torch.as_tensor(alpha, dtype=target.dtype, device=target.device).reshape(())
        mixed = alpha * target + (1 - alpha) * features
        y = self.decoder(mixed)
        return _to_pixel_range(F.pad(y, (0, w - y.shape[-1], 0, h - y.shape[-2])))


@dataclass(frozen=True)
class StyleBankConfig:
    """Chen et al. 2017: a shared encoder/decoder and one convolutional filter bank per style."""

    arch: Literal["stylebank"] = "stylebank"
    num_styles: int = 1
    width: int = 32  # encoder channels after the first conv; then 2x, 4x (the bank works at 4x)
    bank_layers: int = 2  # 3x3 convs per bank, ReLU between

    def __post_init__(self) -> None:
        if self.num_styles < 1 or self.width < 1 or self.bank_layers < 1:
            raise ValueError(f"StyleBankConfig: num_styles, width and bank_layers must be >= 1, got {self}")


def style_bank(channels: int, layers: int) -> nn.Sequential:
    modules: list[nn.Module] = []
    for i in range(layers):
        modules.append(ConvLayer(channels, channels, 3))
        if i < layers - 1:
            modules.append(nn.ReLU(inplace=True))
    return nn.Sequential(*modules)


class StyleBankNet(nn.Module):
    """``forward(x, style_index)``: encoder -> bank ``style_index`` -> decoder; ``style_index``
    None is the auto-encoder branch (encoder -> decoder) that the T+1 training alternates with.

    Encoder and decoder are the style net's down/up stages (9x9 w, 3x3/2 2w, 3x3/2 4w with
    InstanceNorm + ReLU; upsample+conv back), so the encoder output is >= 0 after its ReLU."""

    stride = 4

    def __init__(self, config: StyleBankConfig = StyleBankConfig()):
        super().__init__()
        self.config = config
        w = config.width
        enc: list[nn.Module] = []
        for cin, cout, k, s in ((3, w, 9, 1), (w, 2 * w, 3, 2), (2 * w, 4 * w, 3, 2)):
            enc += [ConvLayer(cin, cout, k, s), _norm("instance", cout), nn.ReLU(inplace=True)]
        self.encoder = nn.Sequential(*enc)
        self.banks = nn.ModuleList(style_bank(4 * w, config.bank_layers) for _ in range(config.num_styles))
        dec: list[nn.Module] = []
        for cin, cout in ((4 * w, 2 * w), (2 * w, w)):
            dec += [UpsampleConv(cin, cout), _norm("instance", cout), nn.ReLU(inplace=True)]
        dec.append(ConvLayer(w, 3, 9))
        self.decoder = nn.Sequential(*dec)

    def forward(self, x: torch.Tensor, style_index: int | None = None) -> torch.Tensor:
        if style_index is not None and not 0 <= style_index < len(self.banks):
            raise ValueError(f"style index {style_index} out of range; this StyleBank has {len(self.banks)} styles (0..{len(self.banks) - 1})")
        h, w = x.shape[-2:]
        features = self.encoder(_pad_to_multiple(x, self.stride))
        if style_index is not None:
            features = self.banks[style_index](features)
        y = self.decoder(features)
        return _to_pixel_range(F.pad(y, (0, w - y.shape[-1], 0, h - y.shape[-2])))


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
            raise ValueError(f"TextureNetConfig: need 1 <= scales <= 6, width >= 1, noise >= 0, got {self}")
        if self.padding not in ("circular", "reflect") or self.norm not in ("instance", "batch"):
            raise ValueError(f"TextureNetConfig: padding must be circular|reflect and norm instance|batch, got {self}")

    @property
    def input_channels(self) -> int:
        """Channels each scale's block sees: the content (RGB) and the noise maps."""
        return 3 + self.noise_channels


class _TextureBlock(nn.Sequential):
    def __init__(self, cin: int, cout: int, padding: str, norm: str):
        layers: list[nn.Module] = []
        for i, k in enumerate((3, 3, 1)):
            layers += [nn.Conv2d(cin if i == 0 else cout, cout, k, padding=k // 2, padding_mode=padding),
                       _norm(norm, cout), nn.LeakyReLU(0.01, inplace=True)]
        super().__init__(*layers)


class TextureNet(nn.Module):
    """``forward(x)``: float NCHW [0, 1] in and out, any size >= MIN_SIDE.

    Noise, like dropout, is a training-time input: in ``train()`` mode each scale gets fresh
    Gaussian noise of std ``noise_std``; in ``eval()`` mode it gets the noise's mean, zero, so
    inference (and exported graphs) are deterministic and video frames do not flicker."""

    def __init__(self, config: TextureNetConfig = TextureNetConfig()):
        super().__init__()
        self.config = config
        c, w, pad, norm = config.input_channels, config.width, config.padding, config.norm
        # The coarsest scale is 2^(scales-1) times smaller; padding to twice that keeps it >= 2x2,
        # which InstanceNorm (statistics over space) and the 3x3 convs need.
        self.stride = 2 ** config.scales
        self.blocks = nn.ModuleList(_TextureBlock(c, w, pad, norm) for _ in range(config.scales))
        # joins[k] merges the upsampled result of scales > k (k_out channels) with block k.
        self.joins = nn.ModuleList(
            _TextureBlock(w * (config.scales - k), w * (config.scales - k), pad, norm) for k in range(config.scales - 1)
        )
        self.to_rgb = nn.Conv2d(w * config.scales, 3, 1)

    def _inputs(self, x: torch.Tensor, scale: int) -> torch.Tensor:
        image = F.avg_pool2d(x, 2 ** scale) if scale else x
        if not self.config.noise_channels:
            return image
        shape = (image.shape[0], self.config.noise_channels, *image.shape[-2:])
        if self.training and self.config.noise_std > 0:
            noise = torch.randn(shape, device=x.device, dtype=x.dtype) * self.config.noise_std
        else:
            noise = image.new_zeros(shape)
        return torch.cat([image, noise], dim=1)

    def _upsample(self, y: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """x2 to the next finer scale's ``size`` (sizes are multiples of the stride). Given as a
        size, not a scale factor: the exporter then keeps height and width one dynamic pair."""
        return F.interpolate(y, size=size, mode="nearest")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        x = _pad_to_multiple(x, self.stride)
        top = self.config.scales - 1
        y = self.blocks[top](self._inputs(x, top))
        for k in range(top - 1, -1, -1):
            finer = self.blocks[k](self._inputs(x, k))
            y = self.joins[k](torch.cat([self._upsample(y, finer.shape[-2:]), finer], dim=1))
        y = self.to_rgb(y)
        return _to_pixel_range(F.pad(y, (0, w - y.shape[-1], 0, h - y.shape[-2])))


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
            raise ValueError(f"TextureSynthConfig: need 1 <= scales <= 6, width >= 1, noise_channels >= 1, got {self}")
        if self.padding not in ("circular", "reflect") or self.norm not in ("instance", "batch"):
            raise ValueError(f"TextureSynthConfig: padding must be circular|reflect and norm instance|batch, got {self}")
        if self.upsample not in ("nearest", "bilinear"):
            raise ValueError(f"TextureSynthConfig: upsample must be nearest|bilinear, got {self.upsample!r}")

    @property
    def input_channels(self) -> int:
        return self.noise_channels

    @property
    def tile_multiple(self) -> int:
        """Output sides that are multiples of this tile seamlessly (with circular padding)."""
        return 2 ** self.scales


class TextureSynthNet(TextureNet):
    """``forward(z)``: noise (N, noise_channels, H, W) -> texture, float NCHW [0, 1].

    Scale k sees z average-pooled 2^k times and multiplied by 2^k, which is again unit-variance
    noise: one input tensor then drives every scale, so the graph exports with one dynamic input
    and a seed reproduces a sample. With circular padding and H, W multiples of 2^scales every
    layer (circular convs, aligned pooling, nearest x2 upsampling) commutes with circular shifts
    by multiples of 2^scales, so the texture wraps around: it tiles without seams."""

    def __init__(self, config: TextureSynthConfig = TextureSynthConfig()):
        super().__init__(config)  # type: ignore[arg-type] - same fields, noise-only inputs

    def _inputs(self, x: torch.Tensor, scale: int) -> torch.Tensor:
        if not scale:
            return x
        factor = 2 ** scale
        return F.avg_pool2d(x, factor) * factor

    def _upsample(self, y: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        if self.config.upsample == "nearest":
            return super()._upsample(y, size)
        # Pad one pixel (wrapping around with circular padding), interpolate, drop the two padded
        # output pixels per side: the kept ones sample exactly where an unpadded x2 bilinear
        # (align_corners=False) would, with the far side as their border neighbour.
        mode = "circular" if self.config.padding == "circular" else "replicate"
        padded = (size[0] + 4, size[1] + 4)
        up = F.interpolate(F.pad(y, (1, 1, 1, 1), mode=mode), size=padded, mode="bilinear", align_corners=False)
        return F.pad(up, (-2, -2, -2, -2))  # a negative pad, not a slice: exports with dynamic sizes

    def noise(self, batch: int, height: int, width: int, seed: int | None = None,
              device: torch.device | str = "cpu") -> torch.Tensor:
        """Standard-normal input for ``batch`` textures of ``height`` x ``width`` (seeded if asked)."""
        generator = torch.Generator(device=device).manual_seed(seed) if seed is not None else None
        return torch.randn(batch, self.config.noise_channels, height, width, generator=generator, device=device)


_ARCHS.update({
    "adain": (AdaINConfig, AdaINNet),
    "stylebank": (StyleBankConfig, StyleBankNet),
    "texture": (TextureNetConfig, TextureNet),
    "texture_synth": (TextureSynthConfig, TextureSynthNet),
})
ModelConfig = StyleNetConfig | SRNetConfig | AdaINConfig | StyleBankConfig | TextureNetConfig | TextureSynthConfig
