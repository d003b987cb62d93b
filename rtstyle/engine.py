"""One ``Engine`` interface that every inference backend implements.

An engine takes a batch of **uint8 RGB NHWC frames on its device** and returns the stylized
(or upscaled) batch in the same layout on the same device; pre- and post-processing
(uint8 <-> float, layout) happen inside, on the device, through ``frames.py``.

Backends import their heavy dependency only when opened. ``open_engine(..., backend="auto")``
picks the fastest available backend and records why in ``engine.reason``.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol, runtime_checkable

import torch
import torch.nn.functional as F

from .choices import BACKEND_NAMES, DEVICES, PRECISIONS  # noqa: F401 - re-exported
from .errors import BackendUnavailableError, InputError
from .nets import MIN_SIDE



@runtime_checkable
class Engine(Protocol):
    """What the runtime and the benchmarks call. See the module docstring for the contract."""

    backend: str  # registry name, e.g. "torch"
    device: torch.device  # where input and output frames live
    scale: int  # output side / input side (1 for style nets, 4 or 8 for SR)
    reason: str  # why this backend/precision was chosen (for the CLI to print)

    def __call__(self, frames: torch.Tensor) -> torch.Tensor: ...

    def describe(self) -> str: ...


class BaseEngine:
    """Shared frame checks and tiny-frame handling; subclasses implement ``_run``."""

    backend = "base"
    device = torch.device("cpu")
    scale = 1
    reason = ""
    precision = "fp32"

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        if frames.dtype != torch.uint8 or frames.dim() != 4 or frames.shape[-1] != 3:
            raise InputError(f"{self.backend} engine: expected uint8 (N, H, W, 3) frames, got {frames.dtype} {tuple(frames.shape)}")
        n, h, w, _ = frames.shape
        if n == 0:
            return frames.new_empty((0, h * self.scale, w * self.scale, 3))
        if min(h, w) >= MIN_SIDE:
            return self._run(frames)
        # Networks need MIN_SIDE pixels: upsample tiny frames (nearest), run, shrink back.
        factor = -(-MIN_SIDE // min(h, w))
        big = F.interpolate(frames.permute(0, 3, 1, 2), scale_factor=factor, mode="nearest")
        out = self._run(big.permute(0, 2, 3, 1).contiguous())
        small = F.interpolate(out.permute(0, 3, 1, 2).float(), size=(h * self.scale, w * self.scale), mode="area")
        return small.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()

    def _run(self, frames: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def describe(self) -> str:
        return f"{self.backend} on {self.device} ({self.precision})"


@dataclass(frozen=True)
class EngineOptions:
    """Settings shared by every backend. Backend-specific ones go in ``extra``."""

    device: str = "auto"
    precision: str = "auto"
    batch_size: int = 4  # largest batch the engine will see (sizes TensorRT profiles, CUDA graphs)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.device not in DEVICES and not str(self.device).startswith("cuda:"):
            raise InputError(f"unknown device {self.device!r}; choose from {DEVICES} or cuda:N")
        if self.precision not in PRECISIONS:
            raise InputError(f"unknown precision {self.precision!r}; choose from {PRECISIONS}")
        if self.batch_size < 1:
            raise InputError(f"batch size must be >= 1, got {self.batch_size}")


@dataclass(frozen=True)
class BackendInfo:
    """A registry entry: how to check availability cheaply and where the opener lives."""

    name: str
    module: str  # imported only when the backend is opened
    available: Callable[[EngineOptions], str | None]  # None if usable, else what is missing
    install_hint: str
    needs_cuda: bool = False


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise BackendUnavailableError(
            f"device {device!r} requested but no CUDA GPU is available (torch {torch.__version__}, "
            f"CUDA build: {torch.version.cuda or 'no'}); use --device cpu"
        )
    return dev


def _has_module(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def _cuda_missing() -> str | None:
    return None if torch.cuda.is_available() else "a CUDA GPU"


def _torch_available(opts: EngineOptions) -> str | None:
    return None


def _ort_available(opts: EngineOptions) -> str | None:
    return None if _has_module("onnxruntime") else "the onnxruntime package"


def _trt_available(opts: EngineOptions) -> str | None:
    if not _has_module("tensorrt"):
        return "the tensorrt package"
    return _cuda_missing()


def _aoti_available(opts: EngineOptions) -> str | None:
    return None  # AOTInductor ships with torch; the package itself names its device


BACKENDS: dict[str, BackendInfo] = {
    "torch": BackendInfo("torch", "rtstyle.backends.torch_backend", _torch_available, "pip install torch"),
    "onnxruntime": BackendInfo(
        "onnxruntime", "rtstyle.backends.ort_backend", _ort_available,
        "pip install onnxruntime (CPU) or onnxruntime-gpu (CUDA; never both)",
    ),
    "tensorrt": BackendInfo(
        "tensorrt", "rtstyle.backends.trt_backend", _trt_available,
        "pip install 'rtstyle[trt]' on a machine with an NVIDIA GPU (tensorrt>=10 from NVIDIA's index)",
        needs_cuda=True,
    ),
    "aoti": BackendInfo("aoti", "rtstyle.backends.aoti_backend", _aoti_available, "pip install torch>=2.6"),
}


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


def open_engine(model: str | Path, backend: str = "auto", options: EngineOptions | None = None) -> Engine:
    """Open ``model`` (bundled name, checkpoint, .onnx, TensorRT engine or .pt2) with a backend."""
    from .models import resolve_model

    opts = options or EngineOptions()
    path = resolve_model(model)
    reason = f"--backend {backend}"
    if backend == "auto":
        backend, reason = choose_backend(path, opts)
    check_backend(backend, opts)
    module = importlib.import_module(BACKENDS[backend].module)
    engine = module.open(path, opts)
    engine.reason = reason
    return engine
