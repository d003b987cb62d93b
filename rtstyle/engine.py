"""One ``Engine`` contract that every inference backend implements.

An engine takes a batch of **uint8 RGB NHWC frames on its device** and returns the stylized
(or upscaled) batch in the same layout on the same device; pre- and post-processing
(uint8 <-> float, layout) happen inside, on the device, through ``frames.py``. Every engine
knows at construction its ``backend`` name, ``device``, ``precision`` (fp32 | fp16 | bf16),
``scale`` (output side / input side) and the ``reason`` it was chosen; nothing is patched on later.

Options are typed: ``EngineOptions`` holds what every backend understands (device, precision,
batch size, the style choice of multi-style models) and, in ``backend_options``, at most one
backend's own settings (``TorchOptions``, ``TensorRTOptions``, ``OrtOptions``). A backend that
cannot honour a setting or a style choice refuses with a one-line ``InputError`` naming the
value; nothing is silently ignored.

A new backend is one ``BACKENDS`` entry (its module exposes ``open(path, options, reason)``),
plus, if it has settings of its own, a ``BackendOptions`` subclass; the conformance test
(tests/test_engine_conformance.py) then runs it through the whole contract.
"""

from __future__ import annotations

import abc
import importlib
import importlib.metadata
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ClassVar, Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F

from .backend_choice import measuring_enabled, open_fastest
from .choices import BACKEND_NAMES, DEVICES, IO_KINDS, PRECISIONS  # noqa: F401 - re-exported
from .conditioning import StyleChoice
from .dtypes import ENGINE_PRECISIONS
from .errors import BackendUnavailableError, InputError
from .nets import MIN_SIDE

Shape = tuple[int, int, int, int]
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")  # torch.compile


# ------------------------------------------------------------------------------------ the engine

class Engine(abc.ABC):
    """What the runtime and the benchmarks call. See the module docstring for the contract.

    Subclasses set ``backend`` and implement ``_run`` for frames at least ``MIN_SIDE`` pixels
    on a side; the checks, the empty batch and tiny frames are handled here, once."""

    backend: ClassVar[str]  # registry name, e.g. "torch"

    def __init__(self, *, device: torch.device, precision: str, scale: int, reason: str):
        if precision not in ENGINE_PRECISIONS:
            raise ValueError(f"{self.backend} engine: precision {precision!r} is not one of {list(ENGINE_PRECISIONS)}")
        if not isinstance(device, torch.device):
            raise TypeError(f"{self.backend} engine: device must be a torch.device, got {device!r}")
        if int(scale) < 1:
            raise ValueError(f"{self.backend} engine: scale must be >= 1, got {scale}")
        self.device = device  # where input and output frames live
        self.precision = precision  # what it computes in
        self.scale = int(scale)  # output side / input side (1 for style nets, 4 or 8 for SR)
        self.reason = reason  # why this backend was chosen (for the CLI to print)

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        if not isinstance(frames, torch.Tensor):
            return self._call_numpy(frames)
        if frames.dtype != torch.uint8 or frames.dim() != 4 or frames.shape[-1] != 3:
            raise InputError(f"{self.backend} engine: expected uint8 (N, H, W, 3) frames, "
                             f"got {frames.dtype} {tuple(frames.shape)}")
        n, h, w, _ = frames.shape
        if n == 0 or h == 0 or w == 0:
            return torch.empty((n, h * self.scale, w * self.scale, 3), dtype=torch.uint8, device=self.device)
        if min(h, w) >= MIN_SIDE:
            return self._run(frames)
        # Networks need MIN_SIDE pixels: upsample tiny frames (nearest), run, shrink back.
        factor = -(-MIN_SIDE // min(h, w))
        big = F.interpolate(frames.permute(0, 3, 1, 2), scale_factor=factor, mode="nearest")
        out = self._run(big.permute(0, 2, 3, 1).contiguous())
        small = F.interpolate(out.permute(0, 3, 1, 2).float(), size=(h * self.scale, w * self.scale), mode="area")
        return small.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()

    def _call_numpy(self, frames: np.ndarray) -> np.ndarray:
        """A numpy uint8 RGB image (H, W, 3) or batch (N, H, W, 3) in, the same shape of array out."""
        if not isinstance(frames, np.ndarray) or frames.dtype != np.uint8 or frames.ndim not in (3, 4) \
                or frames.shape[-1] != 3:
            got = f"{frames.dtype} {frames.shape}" if isinstance(frames, np.ndarray) else type(frames).__name__
            raise InputError(f"{self.backend} engine: expected a numpy uint8 RGB image (H, W, 3) or batch (N, H, W, 3), "
                             f"or a torch uint8 (N, H, W, 3) tensor, got {got}; rtstyle.Stylizer takes PIL images "
                             f"and float arrays too")
        single = frames.ndim == 3
        batch = torch.from_numpy(np.ascontiguousarray(frames[None] if single else frames))
        out = self(batch).cpu().numpy()
        return out[0] if single else out

    @abc.abstractmethod
    def _run(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 (N, H, W, 3) frames, N >= 1 and both sides >= MIN_SIDE -> the output frames."""

    def describe(self) -> str:
        return f"{self.backend} on {self.device} ({self.precision})"


@runtime_checkable
class StyleSwitchable(Protocol):
    """An engine whose style image can change between batches (AdaIN models): only engines
    that can do it have the method, so ``isinstance(engine, StyleSwitchable)`` is the test."""

    def set_style(self, image: np.ndarray | torch.Tensor, alpha: float | None = None) -> None: ...


def style_switcher(engine: Engine) -> StyleSwitchable:
    """``engine`` as a ``StyleSwitchable``, or a one-line InputError saying why it is not one."""
    if not isinstance(engine, StyleSwitchable):
        raise InputError(f"{engine.describe()} cannot switch style images: only AdaIN models on --backend torch can "
                         "(other models have their style trained in or fixed at export)")
    return engine


# ------------------------------------------------------------------------------------ options

@dataclass(frozen=True)
class BackendOptions:
    """Settings only one backend understands; subclasses name it in ``backend``."""

    backend: ClassVar[str] = ""


@dataclass(frozen=True)
class TorchOptions(BackendOptions):
    """torch backend. ``None`` means "the default for the device"."""

    backend: ClassVar[str] = "torch"
    cuda_graphs: bool | None = None  # None: one CUDA graph per input shape on CUDA, none on the CPU
    graph_cache: int | None = None  # input shapes kept captured (default 4); needs CUDA graphs
    compile: bool | str = False  # torch.compile before capture: True or one of COMPILE_MODES

    def __post_init__(self) -> None:
        if self.graph_cache is not None and self.graph_cache < 1:
            raise InputError(f"graph_cache must be >= 1, got {self.graph_cache}")
        if not isinstance(self.compile, bool) and self.compile not in COMPILE_MODES:
            raise InputError(f"unknown compile mode {self.compile!r}; "
                             f"choose True, False or one of {list(COMPILE_MODES)}")


@dataclass(frozen=True)
class TensorRTOptions(BackendOptions):
    """tensorrt backend, when it builds an engine from an ONNX model or checkpoint. Shapes are in
    the model's input layout (NCHW for float io, NHWC for uint8 io); unset ones get defaults
    from ``EngineOptions.batch_size`` (see ``backends/trt_build.py``)."""

    backend: ClassVar[str] = "tensorrt"
    min_shape: Shape | None = None
    opt_shape: Shape | None = None
    max_shape: Shape | None = None
    io: str | None = None  # a checkpoint's graph io: "float" (default) | "uint8"; an ONNX model has its own
    cache_dir: Path | None = None  # engine cache folder; default fsutil.cache_dir()/engines

    def __post_init__(self) -> None:
        if self.io is not None and self.io not in IO_KINDS:
            raise InputError(f"unknown io {self.io!r}; choose from {list(IO_KINDS)}")
        for name in ("min_shape", "opt_shape", "max_shape"):
            shape = getattr(self, name)
            if shape is not None and (len(shape) != 4 or not all(isinstance(s, int) and s >= 1 for s in shape)):
                raise InputError(f"{name} {shape!r} is not four positive integers like (1, 3, 360, 640)")

    def build_settings(self) -> dict[str, object]:
        """The settings given, by name: a prebuilt engine must refuse every one of them."""
        return {name: value for name, value in (("min_shape", self.min_shape), ("opt_shape", self.opt_shape),
                ("max_shape", self.max_shape), ("io", self.io), ("cache_dir", self.cache_dir)) if value is not None}


@dataclass(frozen=True)
class OrtOptions(BackendOptions):
    """onnxruntime backend."""

    backend: ClassVar[str] = "onnxruntime"
    providers: tuple[str, ...] | None = None  # None: TensorRT, CUDA, CPU on a GPU; CPU on the CPU

    def __post_init__(self) -> None:
        if self.providers is not None:
            object.__setattr__(self, "providers", tuple(self.providers))
            if not self.providers:
                raise InputError("providers must name at least one onnxruntime execution provider")


# OpenVINO device families (a device may carry an index: GPU.1).
OPENVINO_DEVICES = ("CPU", "GPU", "NPU", "AUTO", "HETERO", "MULTI")


@dataclass(frozen=True)
class OpenVINOOptions(BackendOptions):
    """openvino backend. ``None`` means "the default here"."""

    backend: ClassVar[str] = "openvino"
    device: str | None = None  # an OpenVINO device (CPU, GPU, GPU.1); None: from EngineOptions.device
    num_streams: int | None = None  # parallel infer streams; None: the throughput hint decides (1: lowest latency)
    threads: int | None = None  # inference threads; None: rtstyle.threads.plan_threads().engine
    cache_dir: Path | None = None  # compiled models; None: <user cache>/openvino
    shape_cache: int = 4  # frame sizes kept compiled in memory

    def __post_init__(self) -> None:
        if self.device is not None and self.device.split(".")[0].split(":")[0] not in OPENVINO_DEVICES:
            raise InputError(f"unknown OpenVINO device {self.device!r}; choose from {list(OPENVINO_DEVICES)} "
                             "(with an index where there are several: GPU.1)")
        for name in ("num_streams", "threads"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise InputError(f"openvino {name} must be >= 1, got {value}")
        if self.shape_cache < 1:
            raise InputError(f"openvino shape_cache must be >= 1, got {self.shape_cache}")


@dataclass(frozen=True)
class EngineOptions:
    """Settings every backend understands, plus at most one backend's own (``backend_options``)."""

    device: str = "auto"
    precision: str = "auto"
    batch_size: int = 4  # largest batch the engine will see (sizes TensorRT profiles)
    style: StyleChoice = field(default_factory=StyleChoice)  # multi-style models: AdaIN image/alpha, StyleBank index
    backend_options: BackendOptions | None = None
    trust_model: bool = False  # load .pt2 packages / TensorRT engines rtstyle did not produce (rtstyle.trust)

    def __post_init__(self) -> None:
        if self.device not in DEVICES and not str(self.device).startswith("cuda:"):
            raise InputError(f"unknown device {self.device!r}; choose from {list(DEVICES)} or cuda:N")
        if self.precision not in PRECISIONS:
            raise InputError(f"unknown precision {self.precision!r}; choose from {list(PRECISIONS)}")
        if self.batch_size < 1:
            raise InputError(f"batch size must be >= 1, got {self.batch_size}")
        if not isinstance(self.style, StyleChoice):
            raise InputError(f"style must be a StyleChoice, got {type(self.style).__name__}")
        if self.backend_options is not None and not isinstance(self.backend_options, BackendOptions):
            raise InputError(f"backend_options must be one of {[c.__name__ for c in _option_types()]}, "
                             f"got {type(self.backend_options).__name__}")

    def backend_settings(self, options_type: type[BackendOptions]) -> BackendOptions:
        """This backend's options (defaults when none were given)."""
        given = self.backend_options
        return given if isinstance(given, options_type) else options_type()


def refuse_style(choice: StyleChoice, backend: str, label: str) -> None:
    """For backends that run a graph whose style was fixed at export: a given choice is an error."""
    if choice.given:
        raise InputError(f"{label}: {choice.describe()} cannot apply on --backend {backend}: "
                         "its style was fixed at export; "
                         "export with `rtstyle export onnx --style-image/--style-index`, or use --backend torch")


# ------------------------------------------------------------------------------------ registry

@dataclass(frozen=True)
class BackendInfo:
    """A registry entry: how to check availability cheaply and where the opener lives."""

    name: str
    module: str  # imported only when opened; exposes open(path, EngineOptions, reason) -> Engine
    available: Callable[[EngineOptions], str | None]  # None if usable, else what is missing
    install_hint: str
    needs_cuda: bool = False
    options_type: type[BackendOptions] | None = None  # its BackendOptions subclass, if it has settings
    formats: tuple[str, ...] = ()  # model file suffixes it opens


def resolve_device(device: str) -> torch.device:
    if device == "GPU":
        raise InputError("--device GPU (an Intel GPU, OpenVINO's name) runs with --backend openvino; "
                         "for an NVIDIA GPU use --device cuda")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise BackendUnavailableError(
            f"device {device!r} requested but no CUDA GPU is available (torch {torch.__version__}, "
            f"CUDA build: {torch.version.cuda or 'no'}); use --device cpu"
        )
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise InputError(f"device {device!r} does not exist; "
                         f"this machine has cuda:0..cuda:{torch.cuda.device_count() - 1}")
    return dev


def _has_module(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def _cuda_missing() -> str | None:
    return None if torch.cuda.is_available() else "a CUDA GPU"


def _torch_available(opts: EngineOptions) -> str | None:
    return None


def _ort_available(opts: EngineOptions) -> str | None:
    if not _has_module("onnxruntime"):
        return "the onnxruntime package"
    if opts.device.startswith("cuda") and torch.cuda.is_available() and not _ort_gpu_installed():
        return "onnxruntime-gpu for --device cuda (the onnxruntime installed here is the CPU build)"
    return None


def _trt_available(opts: EngineOptions) -> str | None:
    if not _has_module("tensorrt"):
        return "the tensorrt package"
    return _cuda_missing()


def _aoti_available(opts: EngineOptions) -> str | None:
    return None  # AOTInductor ships with torch; the package itself names its device


def _openvino_available(opts: EngineOptions) -> str | None:
    return None if _has_module("openvino") else "the openvino package"


BACKENDS: dict[str, BackendInfo] = {
    "torch": BackendInfo("torch", "rtstyle.backends.torch_backend", _torch_available, "pip install torch",
                         options_type=TorchOptions, formats=(".safetensors",)),
    "onnxruntime": BackendInfo(
        "onnxruntime", "rtstyle.backends.ort_backend", _ort_available,
        "pip install onnxruntime (CPU) or onnxruntime-gpu (CUDA; never both)", options_type=OrtOptions,
        formats=(".onnx",),
    ),
    "tensorrt": BackendInfo(
        "tensorrt", "rtstyle.backends.trt_backend", _trt_available,
        "pip install 'rtstyle[trt]' on a machine with an NVIDIA GPU (tensorrt-cu12 10.x; see README)",
        needs_cuda=True, options_type=TensorRTOptions, formats=(".safetensors", ".onnx", ".engine", ".plan", ".trt"),
    ),
    "aoti": BackendInfo("aoti", "rtstyle.backends.aoti_backend", _aoti_available, "pip install torch>=2.6",
                        formats=(".pt2",)),
    "openvino": BackendInfo(
        "openvino", "rtstyle.backends.openvino_backend", _openvino_available, "pip install 'rtstyle[openvino]'",
        options_type=OpenVINOOptions, formats=(".safetensors", ".onnx"),
    ),
}
_FORMAT_NAMES = {".safetensors": "an rtstyle checkpoint", ".onnx": "an ONNX model", ".engine": "a TensorRT engine",
                 ".plan": "a TensorRT engine", ".trt": "a TensorRT engine", ".pt2": "an AOTInductor package"}


def check_format(name: str, path: Path) -> None:
    """A model file of a kind the backend does not open is refused, naming the backends that do
    (a file of an unknown kind is left to the backend: its reader names the problem)."""
    suffix = path.suffix.lower()
    if suffix not in _FORMAT_NAMES or suffix in BACKENDS[name].formats:
        return
    others = [n for n, info in BACKENDS.items() if suffix in info.formats]
    opens = " or ".join(sorted({_FORMAT_NAMES[f].split(" ", 1)[1] + "s" for f in BACKENDS[name].formats}))
    raise InputError(f"{path.name} is {_FORMAT_NAMES[suffix]}: --backend {name} opens {opens}; "
                     f"use --backend {' or '.join(others)} (or auto)")


def _option_types() -> list[type[BackendOptions]]:
    return [info.options_type for info in BACKENDS.values() if info.options_type is not None]


def backend_names() -> list[str]:
    return ["auto", *BACKEND_NAMES]


def check_backend(name: str, opts: EngineOptions) -> None:
    """Raise a one-line error if ``name`` is unknown or cannot run here."""
    if name not in BACKENDS:
        raise InputError(f"unknown backend {name!r}; choose from {backend_names()}")
    info = BACKENDS[name]
    missing = info.available(opts)
    if missing is None and info.needs_cuda:
        missing = _cuda_missing()
    if missing is not None:
        raise BackendUnavailableError(f"backend {name!r} needs {missing}; install with: {info.install_hint}")


def check_options(name: str, opts: EngineOptions) -> None:
    """Another backend's options are refused, never ignored."""
    given = opts.backend_options
    if given is None:
        return
    expected = BACKENDS[name].options_type
    if type(given) is not expected:
        takes = f"takes {expected.__name__}" if expected is not None else "takes no backend options"
        raise InputError(f"{type(given).__name__} are settings of --backend {given.backend}, but this model opens with "
                         f"--backend {name}, which {takes}")


def _ort_gpu_installed() -> bool:
    # Package metadata, not an import: choosing a backend should not load onnxruntime.
    try:
        importlib.metadata.distribution("onnxruntime-gpu")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def choose_backend(model_path: Path, opts: EngineOptions) -> tuple[str, str]:
    """Pick a backend for ``--backend auto`` from the model file's kind; returns (name, reason).

    A file can only run where its format runs (.onnx: onnxruntime, engine: TensorRT,
    .pt2: AOTInductor); a checkpoint runs on torch, on the GPU when there is one.
    """
    suffix = model_path.suffix.lower()
    if opts.device == "GPU":
        return "openvino", "--device GPU: an Intel GPU runs through OpenVINO"
    if suffix in (".engine", ".plan", ".trt"):
        return "tensorrt", f"{model_path.name} is a TensorRT engine"
    if suffix == ".onnx":
        if opts.device != "cpu" and torch.cuda.is_available() and _ort_gpu_installed():
            return "onnxruntime", f"{model_path.name} is an ONNX model: onnxruntime-gpu (TensorRT/CUDA execution providers)"
        why = "--device cpu" if opts.device == "cpu" else "onnxruntime-gpu or a GPU missing"
        return "onnxruntime", f"{model_path.name} is an ONNX model: onnxruntime on the CPU ({why})"
    if suffix == ".pt2":
        return "aoti", f"{model_path.name} is an AOTInductor package (runs on the device it was compiled for)"
    on_gpu = resolve_device(opts.device).type == "cuda"
    if on_gpu:
        return "torch", "CUDA GPU found: torch with fp16, channels_last and CUDA graphs"
    return "torch", "no CUDA GPU: torch on CPU (the fastest CPU path measured, see benchmarks/results)"


# On a CPU, backends that can open the same file kind compete: ``--backend auto`` measures them.
CPU_CANDIDATES = {".safetensors": ("torch", "openvino"), ".onnx": ("onnxruntime", "openvino")}


def cpu_candidates(model_path: Path, opts: EngineOptions) -> list[str]:
    """The available backends that can run ``model_path`` when the engine will be on the CPU."""
    if opts.device not in ("auto", "cpu") or (opts.device == "auto" and torch.cuda.is_available()):
        return []
    names = CPU_CANDIDATES.get(model_path.suffix.lower(), ())
    if opts.style.style_image is not None:
        names = ("torch",)  # AdaIN engines switch style images live (rtstyle live --style-dir) only in torch
    return [name for name in names if BACKENDS[name].available(opts) is None]


def open_engine(model: str | Path, backend: str = "auto", options: EngineOptions | None = None,
                on_status: Callable[[str], None] | None = None) -> Engine:
    """Open ``model`` (bundled name, checkpoint, .onnx, TensorRT engine or .pt2) with a backend.

    ``auto`` on a CPU measures the backends that can run the model (``backend_choice``; a first
    run's seconds of it are told to ``on_status``, one line at a time)."""
    from .models import resolve_model

    opts = options or EngineOptions()
    if backend != "auto":  # a misspelt or missing backend first: no model is read for nothing
        check_backend(backend, opts)
    path = resolve_model(model)
    reason = f"--backend {backend}"
    if backend == "auto" and opts.backend_options is not None:
        backend = opts.backend_options.backend  # one backend's settings name the backend
        reason = f"{type(opts.backend_options).__name__} given"
    if backend == "auto":
        candidates = cpu_candidates(path, opts)
        if len(candidates) > 1 and measuring_enabled():
            return open_fastest(path, candidates, opts.precision,
                                lambda name, why: _open_with(name, path, opts, why), on_status=on_status)
        backend, reason = choose_backend(path, opts)
    return _open_with(backend, path, opts, reason)


def _open_with(backend: str, path: Path, opts: EngineOptions, reason: str) -> Engine:
    check_format(backend, path)
    check_backend(backend, opts)
    check_options(backend, opts)
    module = importlib.import_module(BACKENDS[backend].module)
    return module.open(path, opts, reason)
