"""ONNX Runtime backend: any ONNX model ``rtstyle export onnx`` writes (fp32 or fp16, float or
uint8 I/O, read from the session), on the CPU, or on the GPU through the TensorRT or CUDA
execution providers when onnxruntime-gpu is installed.

On the GPU, tensors are bound by device pointer (I/O binding), so frames never visit the host.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..engine import BaseEngine, EngineOptions, resolve_device
from ..errors import BackendUnavailableError, CheckpointError, InputError
from ..fsutil import cache_dir
from ..nets import MIN_SIDE
from .graph_io import META_PRECISION, META_SCALE, META_TASK, GraphIO

GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")
_ORT_TYPES = {"tensor(float)": torch.float32, "tensor(float16)": torch.float16, "tensor(uint8)": torch.uint8}
_PRECISION_OF = {torch.float32: "fp32", torch.float16: "fp16"}
_NUMPY = {torch.float32: np.float32, torch.float16: np.float16, torch.uint8: np.uint8}


class OrtEngine(BaseEngine):
    backend = "onnxruntime"

    def __init__(self, session, device: torch.device, providers: list[str], precision: str):
        self.session = session
        self.device = device
        self.providers = providers
        if len(session.get_inputs()) > 1:
            names = [i.name for i in session.get_inputs()]
            raise CheckpointError(f"this ONNX model takes {names}: an AdaIN graph with the style as inputs, for your "
                                  "own code; for the runtime, export with --style-image (the style baked in)")
        inp, out = session.get_inputs()[0], session.get_outputs()[0]
        self.input_name, self.output_name = inp.name, out.name
        self.io = _graph_io(inp)
        self.output_dtype = _ORT_TYPES[out.type] if out.type in _ORT_TYPES else torch.float32
        self.precision = precision
        self.scale = _scale(session, self.io)

    def _run(self, frames: torch.Tensor) -> torch.Tensor:
        x = self.io.prepare(frames.to(self.device, non_blocking=True))
        out = self._run_bound(x) if self.device.type == "cuda" else self._run_host(x)
        return self.io.finish(out)

    def _run_host(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.session.run([self.output_name], {self.input_name: x.numpy()})[0])

    def _run_bound(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.empty(self.io.output_shape(tuple(x.shape), self.scale), dtype=self.output_dtype, device=self.device)
        index = self.device.index or 0
        binding = self.session.io_binding()
        binding.bind_input(self.input_name, "cuda", index, _NUMPY[x.dtype], tuple(x.shape), x.data_ptr())
        binding.bind_output(self.output_name, "cuda", index, _NUMPY[out.dtype], tuple(out.shape), out.data_ptr())
        # ORT computes on its own CUDA stream: the input must be complete before it starts.
        # run_with_iobinding returns after ORT's stream is done, so `out` is ready for torch.
        torch.cuda.current_stream(self.device).synchronize()
        self.session.run_with_iobinding(binding)
        return out

    def describe(self) -> str:
        return f"onnxruntime on {self.device} ({self.precision}, {self.io.kind} io, {self.providers[0]})"


STYLE_KEYS = ("style_image", "alpha", "style_index")


def open(path: Path, options: EngineOptions) -> OrtEngine:
    import onnxruntime as ort

    if any(key in options.extra for key in STYLE_KEYS):
        raise InputError(f"{path.name}: onnxruntime runs an exported graph whose style is fixed at export; "
                         "export with `rtstyle export onnx --style-image/--style-index`, or use --backend torch")

    available = ort.get_available_providers()
    device = _device(options.device, available)
    precision = options.precision
    session = _session(ort, path, _providers(device, available, precision))
    metadata = session.get_modelmeta().custom_metadata_map
    if metadata.get(META_TASK) == "texture":
        raise InputError(f"{path.name} is a texture generator (noise in, no video in); feed its 'noise' input "
                         "directly, or sample from the checkpoint with `rtstyle synth`")
    model_precision = metadata.get(META_PRECISION) or _PRECISION_OF.get(
        _ORT_TYPES.get(session.get_inputs()[0].type), "fp32"
    )
    used = session.get_providers()
    fp16_by_trt = precision == "fp16" and model_precision == "fp32" and used[0] == "TensorrtExecutionProvider"
    if precision not in ("auto", model_precision) and not fp16_by_trt:
        raise InputError(
            f"{path.name} is an {model_precision} model; onnxruntime runs it as exported: pass --precision auto "
            f"or export another one (rtstyle export onnx {'--fp16' if precision == 'fp16' else 'without --fp16'})"
        )
    return OrtEngine(session, device, used, "fp16" if fp16_by_trt else model_precision)


def _device(requested: str, available: list[str]) -> torch.device:
    has_gpu_provider = any(p in available for p in GPU_PROVIDERS)
    if requested == "auto":
        # Stay on the CPU unless ORT itself can use the GPU: frames must live where it computes.
        return torch.device("cuda" if has_gpu_provider and torch.cuda.is_available() else "cpu")
    device = resolve_device(requested)
    if device.type == "cuda" and not has_gpu_provider:
        raise BackendUnavailableError(
            f"this onnxruntime has no GPU provider (only {', '.join(available)}); "
            "pip uninstall onnxruntime && pip install onnxruntime-gpu, or use --device cpu"
        )
    return device


def _providers(device: torch.device, available: list[str], precision: str) -> list:
    if device.type != "cuda":
        return ["CPUExecutionProvider"]
    index = device.index or 0
    providers: list = []
    if "TensorrtExecutionProvider" in available:
        engines = cache_dir() / "ort-tensorrt"
        engines.mkdir(parents=True, exist_ok=True)
        providers.append((
            "TensorrtExecutionProvider",
            {
                "device_id": index,
                "trt_fp16_enable": precision == "fp16",
                "trt_engine_cache_enable": True,
                "trt_engine_cache_path": str(engines),
                "trt_timing_cache_enable": True,
                "trt_timing_cache_path": str(engines),
            },
        ))
    if "CUDAExecutionProvider" in available:
        providers.append(("CUDAExecutionProvider", {"device_id": index}))
    return [*providers, "CPUExecutionProvider"]


def _session(ort, path: Path, providers: list):
    try:
        return ort.InferenceSession(str(path), providers=providers)
    except Exception as exc:  # noqa: BLE001 - ORT raises its own pybind exception types
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise CheckpointError(f"onnxruntime cannot load {path}: {first_line}") from None


def _graph_io(inp) -> GraphIO:
    if inp.type not in _ORT_TYPES:
        raise CheckpointError(f"ONNX input {inp.name!r} has type {inp.type}; rtstyle models take {sorted(_ORT_TYPES)}")
    io = GraphIO.for_input_dtype(_ORT_TYPES[inp.type])
    channels = inp.shape[3] if io.kind == "uint8" else inp.shape[1]
    if len(inp.shape) != 4 or channels != 3:
        raise CheckpointError(
            f"ONNX input {inp.name!r} has shape {inp.shape}; an rtstyle {io.kind}-io model takes {io.layout} with 3 channels"
        )
    return io


def _scale(session, io: GraphIO) -> int:
    """The model's scale from its metadata, else measured on one small input (foreign ONNX)."""
    stored = session.get_modelmeta().custom_metadata_map.get(META_SCALE)
    if stored is not None:
        return int(stored)
    shape = (1, MIN_SIDE, MIN_SIDE, 3) if io.kind == "uint8" else (1, 3, MIN_SIDE, MIN_SIDE)
    probe = np.zeros(shape, dtype=_NUMPY[torch.uint8 if io.kind == "uint8" else io.dtype])
    out = session.run(None, {session.get_inputs()[0].name: probe})[0]
    return io.spatial(out.shape)[0] // MIN_SIDE
