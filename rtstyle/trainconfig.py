"""What every trainer (``rtstyle.trainers``) takes: one config dataclass per task, checked when built.

Free of torch and below the trainers (like ``choices.py`` and ``netconfig.py``): ``rtstyle train``
builds its parser from these dataclasses' defaults, so each default is written once, here, and
building the parser (for any command) loads neither torch nor the trainers. A bad value raises ``InputError``
(``ConfigError`` for the loss and network configs) when the config is constructed, one line naming
the flag; files are read only when training starts.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from .choices import ADAIN_STYLE_LAYERS, LossConfig
from .errors import ConfigError, InputError
from .netconfig import (
    DEFAULT_MARGIN,
    ENCODER_LAYER,
    STYLE_ARCH_PRESETS,
    AdaINConfig,
    SRNetConfig,
    StyleBankConfig,
    StyleNetConfig,
    TextureNetConfig,
    TextureSynthConfig,
)
from .outputs import OutputPolicy, same_file

AMP_MODES = ("auto", "off", "fp16", "bf16")
COMPILE_MODES = ("auto", "on", "off")
# --compile auto compiles runs with at least this many steps left: torch.compile costs about a minute
# of start-up on a 2-core CPU and then saves ~30% of every step (benchmarks/results/train-speed-*).
COMPILE_AUTO_MIN_STEPS = 500
STYLE_ARCHS = tuple(STYLE_ARCH_PRESETS)  # StyleNetConfig presets
SR_SCALES = (4, 8)
SR_ARCHS = ("paper", "residual")  # the paper's net, or a correction on top of bicubic (nets/sr.py)


@dataclass(kw_only=True)
class TrainConfig:
    """Options common to every trainer (the common flags of ``rtstyle train``)."""

    data: Path | None  # None only for tasks that need no images (texture synthesis)
    out: Path
    iterations: int = 2000
    batch_size: int = 4
    image_size: int = 256  # training crop side in pixels
    lr: float = 1e-3
    device: str = "auto"
    seed: int = 42
    resume: Path | None = None
    checkpoint_every: int = 500
    log_every: int = 10
    num_workers: int | None = None  # None: 0 on CPU (two cores here), 4 on CUDA
    amp: str = "auto"  # auto: bf16/fp16 autocast on CUDA, bf16 on CPUs with native bf16 (AMX, AVX512-BF16), else off
    compile: str = "auto"  # torch.compile the network and the loss; auto: on CPU runs of COMPILE_AUTO_MIN_STEPS+ steps
    channels_last: bool = True  # False: NCHW throughout, the layout before issue 31 (benchmarks/train_speed.py)
    vgg_weights: Path | None = None
    name: str | None = None
    progress: bool | str = "auto"  # a mode of rtstyle.progress: auto, bar, plain, json, none (or a bool)
    overwrite: bool = False  # replace an existing --out (and its .losses.csv/.png)
    # Stop (saving a final checkpoint) once training has used this much CPU time, resumed runs
    # included: a fixed budget that load from other processes does not shrink, as
    # benchmarks/arch_study.py gives every network. None: run all --iterations.
    max_cpu_seconds: float | None = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise InputError for a value no run could use (called on construction and by ``train``)."""
        for name in ("iterations", "batch_size", "checkpoint_every", "log_every"):
            if getattr(self, name) < 1:
                raise InputError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.image_size < 32:
            raise InputError(f"--image-size must be >= 32, got {self.image_size}")
        if self.lr <= 0:
            raise InputError(f"--lr must be > 0, got {self.lr}")
        if self.max_cpu_seconds is not None and not self.max_cpu_seconds > 0:
            raise InputError(f"max_cpu_seconds must be > 0, got {self.max_cpu_seconds}")
        if self.amp not in AMP_MODES:
            raise InputError(f"--amp must be one of {AMP_MODES}, got {self.amp!r}")
        if self.compile not in COMPILE_MODES:
            raise InputError(f"--compile must be one of {COMPILE_MODES}, got {self.compile!r}")
        if Path(self.out).suffix != ".safetensors":
            raise InputError(f"--out must end in .safetensors, got {self.out}")
        if self.resume is not None and not Path(self.resume).is_file():
            raise InputError(f"--resume checkpoint not found: {self.resume}")
        # The one output rule (rtstyle.outputs). Resuming into the checkpoint being resumed continues
        # that run (each save replaces it atomically), so that one case needs no -y.
        if not (self.resume is not None and same_file(self.out, self.resume)):
            policy = OutputPolicy(overwrite=self.overwrite)
            inputs = [p for p in (self.resume, self.vgg_weights) if p is not None]
            for path in (Path(self.out), sidecar(self.out, ".losses.csv"), sidecar(self.out, ".losses.png")):
                policy.check(path, inputs)


@dataclass(frozen=True)
class StabilityConfig:
    """The stabilisation term of the style trainer (``stability.py`` says what it is)."""

    weight: float = 400.0  # 0: off; chosen on tuning styles and clips (stability.py)
    shift: float = 2.0  # max translation in pixels (uniform in [-shift, shift] per axis, sub-pixel)
    noise: float = 0.02  # std of Gaussian input noise, in [0, 1] units
    brightness: float = 0.05  # max absolute brightness offset of the input, in [0, 1] units
    # Synthetic motion beyond the translation (all 0: translation only, the term of issue 7).
    rotate: float = 2.0  # max rotation of T, degrees
    zoom: float = 0.03  # max relative scale change of T (0.05: x0.95 to x1.05)
    flow: float = 1.5  # amplitude of T's smooth local flow field, pixels
    occlusion: float = 0.5  # chance per image of an occluder (a patch of another photo) in the moved input

    def __post_init__(self) -> None:
        for name in ("weight", "shift", "noise", "brightness", "rotate", "zoom", "flow", "occlusion"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise InputError(f"--stability-{name} must be a finite number >= 0, got {value}")
        if self.zoom >= 0.5:
            raise InputError(f"--stability-zoom must be below 0.5, got {self.zoom}")
        if self.occlusion > 1:
            raise InputError(f"--stability-occlusion is a chance in [0, 1], got {self.occlusion}")

    @property
    def moves(self) -> bool:
        """True when T is more than a translation (the synthetic-motion form)."""
        return bool(self.rotate or self.zoom or self.flow or self.occlusion)

    @property
    def enabled(self) -> bool:
        return self.weight > 0

    def to_dict(self) -> dict:
        return asdict(self)


def sidecar(out: Path, suffix: str) -> Path:
    """``style.safetensors`` -> ``style.losses.csv`` etc., next to the checkpoint."""
    return Path(out).with_name(Path(out).name.removesuffix(".safetensors") + suffix)


def _single_process(task: str, why: str) -> None:
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise InputError(f"{task} training runs in one process ({why}); run it without torchrun")


@dataclass(kw_only=True)
class StyleTrainConfig(TrainConfig):
    style: Path
    iterations: int = 40_000  # Johnson et al.'s schedule: the defaults are the paper's recipe (--preset paper)
    style_size: int | None = 512  # longer side of the style image; None keeps its size
    arch: str = "johnson"  # StyleNetConfig preset
    width: int | None = None  # override the preset's width / residual count
    num_residual: int | None = None
    # Mirrored pixels around each crop, cropped from the output (StyleNetConfig.margin: no frame
    # along the borders). None: DEFAULT_MARGIN for a new run, the checkpoint's for --resume
    # (resolved by trainers.style, which may read checkpoints).
    margin: int | None = None
    content_weight: float = LossConfig.content_weight
    style_weight: float = LossConfig.style_weight
    tv_weight: float = LossConfig.tv_weight
    # The stabilisation term (see stability.py): on by default; weight 0 turns it off.
    stability_weight: float = StabilityConfig.weight
    stability_shift: float = StabilityConfig.shift
    stability_noise: float = StabilityConfig.noise
    stability_brightness: float = StabilityConfig.brightness
    stability_rotate: float = StabilityConfig.rotate
    stability_zoom: float = StabilityConfig.zoom
    stability_flow: float = StabilityConfig.flow
    stability_occlusion: float = StabilityConfig.occlusion

    def validate(self) -> None:
        super().validate()
        self.model_config()
        self.loss_config()
        self.stability_config()

    def stability_config(self) -> StabilityConfig:
        return StabilityConfig(weight=self.stability_weight, shift=self.stability_shift,
                               noise=self.stability_noise, brightness=self.stability_brightness,
                               rotate=self.stability_rotate, zoom=self.stability_zoom, flow=self.stability_flow,
                               occlusion=self.stability_occlusion)

    def model_config(self) -> StyleNetConfig:
        if self.arch not in STYLE_ARCHS:
            raise InputError(f"--arch must be one of {STYLE_ARCHS}, got {self.arch!r}")
        base = StyleNetConfig.preset(self.arch)
        # None: the default for a new run (trainers.style gives a --resume the checkpoint's own).
        margin = DEFAULT_MARGIN if self.margin is None else self.margin
        try:
            return replace(base, width=self.width or base.width, margin=margin,
                           num_residual=base.num_residual if self.num_residual is None else self.num_residual)
        except ConfigError as exc:
            raise InputError(str(exc).replace("StyleNetConfig: margin", "--margin")) from None

    def loss_config(self) -> LossConfig:
        return LossConfig(content_weight=self.content_weight, style_weight=self.style_weight,
                          tv_weight=self.tv_weight)


@dataclass(kw_only=True)
class SRTrainConfig(TrainConfig):
    scale: int = SRNetConfig.scale
    arch: str = "paper"
    image_size: int = 288  # HR patch side
    width: int = SRNetConfig.width
    num_residual: int = SRNetConfig.num_residual
    norm: str = SRNetConfig.norm
    blur_sigma: float = 1.0
    content_weight: float = 1.0
    content_layers: tuple[str, ...] = ("relu2_2",)  # the paper's feature loss; deeper layers are an option
    pixel_weight: float = 0.0
    tv_weight: float = 0.0
    colour_weight: float = 0.0  # MSE(degrade(output), LR input): low-resolution colour consistency

    def validate(self) -> None:
        super().validate()
        if self.colour_weight < 0:
            raise InputError(f"--colour-weight must be >= 0, got {self.colour_weight}")
        self.model_config()
        self.loss_config()
        if self.image_size // self.scale < 16:
            raise InputError(f"--image-size {self.image_size} gives LR patches under 16 px at x{self.scale}")

    def model_config(self) -> SRNetConfig:
        if self.scale not in SR_SCALES:
            raise InputError(f"--scale must be one of {SR_SCALES}, got {self.scale}")
        if self.image_size % self.scale:
            raise InputError(f"--image-size {self.image_size} must be a multiple of --scale {self.scale}")
        if self.arch not in SR_ARCHS:
            raise InputError(f"--arch must be one of {SR_ARCHS}, got {self.arch!r}")
        return SRNetConfig(scale=self.scale, width=self.width, num_residual=self.num_residual, norm=self.norm,
                           residual=self.arch == "residual")

    def loss_config(self) -> LossConfig:
        return LossConfig(content_layers=self.content_layers, style_layers=(), content_weight=self.content_weight,
                          style_weight=0.0, tv_weight=self.tv_weight, pixel_weight=self.pixel_weight)


@dataclass(kw_only=True)
class AdaINTrainConfig(TrainConfig):
    styles: Path  # folder of style images (paintings); every readable one is a training style
    hold_out: tuple[str, ...] = ()  # style file names left out of training (to judge generalisation)
    style_size: int = 512  # longer side the style images are loaded at, before random crops
    width: int = AdaINConfig.width
    iterations: int = 20000
    lr: float = 1e-4
    content_weight: float = 1.0
    style_weight: float = 10.0

    def validate(self) -> None:
        self.hold_out = tuple(self.hold_out)
        super().validate()
        AdaINConfig(width=self.width)
        self.loss_config()
        if self.vgg_weights is not None:
            raise InputError("AdaIN models rebuild their VGG16 encoder from the default weights on every load; "
                             "set $RTSTYLE_VGG_WEIGHTS instead of --vgg-weights so training and inference agree")
        if self.style_size < self.image_size:
            raise InputError(f"--style-size ({self.style_size}) must be >= --image-size ({self.image_size})")
        _single_process("AdaIN", "the objective calls the frozen encoder outside DistributedDataParallel")

    def loss_config(self) -> LossConfig:
        return LossConfig(content_layers=(ENCODER_LAYER,), style_layers=ADAIN_STYLE_LAYERS,
                          content_weight=self.content_weight, style_weight=self.style_weight, tv_weight=0.0)


@dataclass(kw_only=True)
class StyleBankTrainConfig(TrainConfig):
    styles: tuple[Path, ...]  # style images, one bank each, in bank order
    base: Path | None = None  # a trained StyleBank to add ``styles`` to (only the new banks train)
    style_size: int | None = 512
    width: int = StyleBankConfig.width
    bank_layers: int = StyleBankConfig.bank_layers
    autoencoder_every: int = 2  # T: one auto-encoder step after every T stylization steps
    iterations: int = 4000
    content_weight: float = LossConfig.content_weight
    style_weight: float = LossConfig.style_weight
    tv_weight: float = LossConfig.tv_weight

    def validate(self) -> None:
        self.styles = tuple(self.styles)
        super().validate()
        if not self.styles:
            raise InputError("no style images given; pass --style IMAGE (repeat it, one bank per style)")
        StyleBankConfig(num_styles=len(self.styles), width=self.width, bank_layers=self.bank_layers)
        self.loss_config()
        if self.autoencoder_every < 1:
            raise InputError(f"--autoencoder-every must be >= 1, got {self.autoencoder_every}")
        if self.base is not None and self.resume is not None:
            raise InputError("give either --base (add styles to a trained StyleBank) or --resume, not both")
        _single_process("StyleBank", "each step uses one bank, which DistributedDataParallel would see as "
                                     "unused parameters")

    def loss_config(self) -> LossConfig:
        return LossConfig(content_weight=self.content_weight, style_weight=self.style_weight,
                          tv_weight=self.tv_weight)


@dataclass(kw_only=True)
class TextureTrainConfig(StyleTrainConfig):
    data: Path | None = None  # required unless synthesis
    synthesis: bool = False  # noise in, texture out (no content, no --data)
    scales: int = TextureNetConfig.scales
    width: int | None = TextureNetConfig.width
    noise_channels: int | None = None  # None: 3 for stylization, 8 for synthesis
    noise_std: float = TextureNetConfig.noise_std
    padding: str = TextureNetConfig.padding
    upsample: str = TextureSynthConfig.upsample  # synthesis only
    # Off for texture networks: their training-time noise input is meant to change the output,
    # and the stabilisation term was measured on the style transformer only.
    stability_weight: float = 0.0

    def validate(self) -> None:
        super().validate()
        if not self.synthesis:
            if self.data is None:
                raise InputError("rtstyle train texture needs --data (training photos), or --synthesis for "
                                 "noise -> texture")
            return
        if self.stability_weight:
            raise InputError("--stability-weight applies to video stylization, not to --synthesis")
        multiple = self.model_config().tile_multiple
        if self.image_size % multiple:
            raise InputError(f"--image-size must be a multiple of 2^scales = {multiple} for --synthesis (so "
                             f"training textures wrap around), got {self.image_size}")

    def model_config(self) -> TextureNetConfig | TextureSynthConfig:
        if self.synthesis:
            return TextureSynthConfig(scales=self.scales, width=self.width or TextureSynthConfig.width,
                                      noise_channels=self.noise_channels or TextureSynthConfig.noise_channels,
                                      padding=self.padding, upsample=self.upsample)
        return TextureNetConfig(scales=self.scales, width=self.width or TextureNetConfig.width,
                                noise_channels=TextureNetConfig.noise_channels if self.noise_channels is None
                                else self.noise_channels,
                                noise_std=self.noise_std, padding=self.padding)

    def loss_config(self) -> LossConfig:
        if self.synthesis:
            # No content to keep: the Gram style loss shapes the texture, TV keeps it from aliasing.
            return LossConfig(content_weight=0.0, style_weight=self.style_weight, tv_weight=self.tv_weight)
        return super().loss_config()
