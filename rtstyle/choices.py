"""Names, choices and loss defaults that the command line needs to build its parser.

Kept free of torch (and of every module that imports it) so ``rtstyle --help`` and usage
errors answer at once; the modules that own these values import them from here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Mapping

from .errors import ConfigError
from .netconfig import STYLE_ARCH_PRESETS

DEFAULT_STYLE_MODEL = "starry_night"  # bundled style used when no --model is given
PRECISIONS = ("auto", "fp32", "fp16", "bf16")  # engine precisions
DEVICES = ("auto", "cpu", "cuda", "GPU")  # GPU: an Intel GPU, OpenVINO's name (--backend openvino)
BACKEND_NAMES = ("torch", "onnxruntime", "tensorrt", "aoti", "openvino")  # engine.BACKENDS, in this order
IO_KINDS = ("float", "uint8")  # exported graphs: float NCHW [0, 1] or uint8 NHWC frames
LAYOUTS = {"float": "NCHW", "uint8": "NHWC"}
BENCH_QUICK_DURATION = "a few minutes on a CPU (AOTInductor compiles a package)"  # --help and README say this
# benchmarks.config.ARCHS: the Johnson-size net, every other style preset as style-NAME, SR x4 and x8
BENCH_ARCHS = ("style", *(f"style-{name}" for name in STYLE_ARCH_PRESETS if name != "johnson"), "sr4", "sr8")
OPTIMIZERS = ("lbfgs", "adam")  # rtstyle optimize
PROGRESS_MODES = ("auto", "bar", "plain", "json", "none")  # rtstyle.progress: --progress
TILE_PAD = 16  # rtstyle.tiles.DEFAULT_PAD: pixels of context around a tile (the bundled SR nets see 14)
INITS = ("content", "noise", "mix")
# rtstyle eval temporal --cut-threshold (rtstyle.temporal.flow.CUT_THRESHOLD): a frame pair whose
# input warping error (squared) exceeds it is a scene cut. Ordinary pairs of real clips measure
# 0.0003-0.005; a black-to-picture pair or a hard cut between unrelated shots ~0.1-0.5. 0.05 sits
# 10x above the highest ordinary floor (fast motion is never taken for a cut) and 2x below the
# smallest cut.
TEMPORAL_CUT_THRESHOLD = 0.05
# rtstyle live's keys: its --help and the on-screen key help (h) both list these.
LIVE_KEYS = (
    ("q, Esc", "quit"),
    ("n, space", "next style (repeat --model for several)"),
    ("p", "previous style"),
    ("1-9", "style number N"),
    ("s / a", "next / previous style image (AdaIN --style-dir)"),
    ("[ / ]", "style strength down / up by 0.1 (--strength)"),
    ("h", "show or hide this key help"),
)

# torchvision's vgg16().features: index of each ReLU we expose.
LAYER_INDEX: dict[str, int] = {
    "relu1_1": 1, "relu1_2": 3,
    "relu2_1": 6, "relu2_2": 8,
    "relu3_1": 11, "relu3_2": 13, "relu3_3": 15,
    "relu4_1": 18, "relu4_2": 20, "relu4_3": 22,
    "relu5_1": 25, "relu5_2": 27, "relu5_3": 29,
}
STYLE_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")  # Johnson et al.'s Gram layers
ADAIN_STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")  # Huang & Belongie's mean/std layers


@dataclass
class LossConfig:
    """Loss layers and weights; stored in every checkpoint. Defaults follow the paper."""

    content_layers: tuple[str, ...] = ("relu3_3",)
    style_layers: tuple[str, ...] = STYLE_LAYERS
    style_layer_weights: tuple[float, ...] | None = None  # None: all 1
    content_weight: float = 1.0
    style_weight: float = 5.0
    tv_weight: float = 1e-4
    pixel_weight: float = 0.0

    def __post_init__(self) -> None:
        self.content_layers = tuple(self.content_layers)
        self.style_layers = tuple(self.style_layers)
        for name in (*self.content_layers, *self.style_layers):
            if name not in LAYER_INDEX:
                raise ConfigError(f"LossConfig: unknown VGG layer {name!r}; choose from {list(LAYER_INDEX)}")
        if self.style_layer_weights is not None:
            self.style_layer_weights = tuple(float(w) for w in self.style_layer_weights)
            if len(self.style_layer_weights) != len(self.style_layers):
                raise ConfigError(
                    f"LossConfig: {len(self.style_layer_weights)} style_layer_weights for "
                    f"{len(self.style_layers)} style_layers"
                )
            if any(w < 0 for w in self.style_layer_weights):
                raise ConfigError(f"LossConfig: style_layer_weights must be >= 0, got {self.style_layer_weights}")
        for name in ("content_weight", "style_weight", "tv_weight", "pixel_weight"):
            if getattr(self, name) < 0:
                raise ConfigError(f"LossConfig: {name} must be >= 0, got {getattr(self, name)}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping) -> "LossConfig":
        return cls(**dict(data))
