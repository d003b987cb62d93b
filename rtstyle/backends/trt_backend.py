"""TensorRT backend (TensorRT >= 10): deserialises an engine and runs it with
``execute_async_v3`` on torch's current CUDA stream, binding torch tensors by name, so frames
never leave the GPU.

Given an ONNX model or a checkpoint instead of an engine, it builds one through the engine
cache (``export.tensorrt_build``), sized by ``EngineOptions.batch_size``; ``extra`` may carry
``min_shape``/``opt_shape``/``max_shape`` (tuples or ``"1x3x360x640"`` strings).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..engine import BaseEngine, EngineOptions, resolve_device
from ..errors import BackendUnavailableError, CheckpointError, InputError
from .graph_io import GraphIO


def _torch_dtypes(trt) -> dict:
    names = {"FLOAT": torch.float32, "HALF": torch.float16, "BF16": torch.bfloat16, "UINT8": torch.uint8,
             "INT8": torch.int8, "INT32": torch.int32, "INT64": torch.int64, "BOOL": torch.bool}
    return {getattr(trt.DataType, name): dtype for name, dtype in names.items() if hasattr(trt.DataType, name)}


class TensorRTEngine(BaseEngine):
    backend = "tensorrt"

    def __init__(self, trt, serialized: bytes, device: torch.device, label: str, precision: str = "unknown"):
        self.device = device
        with torch.cuda.device(device):
            self.runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
            self.engine = self.runtime.deserialize_cuda_engine(serialized)
            if self.engine is None:
                raise CheckpointError(
                    f"TensorRT {trt.__version__} cannot load {label}: built by another TensorRT version or for another GPU; rebuild it"
                )
            self.context = self.engine.create_execution_context()
        dtypes = _torch_dtypes(trt)
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if len(inputs) != 1 or len(outputs) != 1:
            raise CheckpointError(f"{label} has inputs {inputs} and outputs {outputs}; rtstyle engines have one of each")
        self.input_name, self.output_name = inputs[0], outputs[0]
        self.io = GraphIO.for_input_dtype(dtypes[self.engine.get_tensor_dtype(self.input_name)])
        self.output_dtype = dtypes[self.engine.get_tensor_dtype(self.output_name)]
        self.precision = precision
        self.min_shape, _, self.max_shape = (tuple(s) for s in self.engine.get_tensor_profile_shape(self.input_name, 0))
        self.scale = self._measure_scale()

    def _measure_scale(self) -> int:
        """Output side / input side, read from the engine's shape inference at the min shape."""
        self.context.set_input_shape(self.input_name, self.min_shape)
        out_shape = tuple(self.context.get_tensor_shape(self.output_name))
        return self.io.spatial(out_shape)[0] // self.io.spatial(self.min_shape)[0]

    def _run(self, frames: torch.Tensor) -> torch.Tensor:
        x = self.io.prepare(frames.to(self.device, non_blocking=True))
        # Batches larger than the profile allows run in chunks rather than failing.
        chunks = [self._infer(chunk) for chunk in x.split(self.max_shape[0])]
        return self.io.finish(chunks[0] if len(chunks) == 1 else torch.cat(chunks))

    def _infer(self, x: torch.Tensor) -> torch.Tensor:
        shape = tuple(x.shape)
        if not all(lo <= s <= hi for lo, s, hi in zip(self.min_shape, shape, self.max_shape)):
            raise InputError(
                f"input {'x'.join(map(str, shape))} is outside this engine's profile "
                f"{'x'.join(map(str, self.min_shape))} .. {'x'.join(map(str, self.max_shape))}; "
                "rebuild it with a larger --max-shape"
            )
        self.context.set_input_shape(self.input_name, shape)
        out = torch.empty(tuple(self.context.get_tensor_shape(self.output_name)), dtype=self.output_dtype, device=self.device)
        self.context.set_tensor_address(self.input_name, x.data_ptr())
        self.context.set_tensor_address(self.output_name, out.data_ptr())
        # Same stream as the torch ops before and after: ordering without host syncs, and the
        # caching allocator cannot hand `x` to anyone else before TensorRT has read it.
        stream = torch.cuda.current_stream(self.device)
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise RuntimeError(f"TensorRT execution failed for input {shape}")
        return out

    def describe(self) -> str:
        return f"tensorrt on {self.device} ({self.precision}, {self.io.kind} io, max {'x'.join(map(str, self.max_shape))})"


def open(path: Path, options: EngineOptions) -> TensorRTEngine:
    from rtstyle.export.tensorrt_build import ENGINE_SUFFIXES, import_tensorrt

    trt = import_tensorrt()
    device = resolve_device("cuda" if options.device == "auto" else options.device)
    if device.type != "cuda":
        raise BackendUnavailableError(f"the tensorrt backend runs on CUDA GPUs only, not on {device}; use --device cuda")
    engine_path = path if path.suffix.lower() in ENGINE_SUFFIXES else _cached_engine(path, options).path
    return TensorRTEngine(trt, engine_path.read_bytes(), device, path.name, _built_precision(engine_path))


def _built_precision(engine_path: Path) -> str:
    """The precision recorded in the build's sidecar JSON (engines do not say it themselves)."""
    sidecar = engine_path.with_suffix(".json")
    try:
        return json.loads(sidecar.read_text())["precision"]
    except (OSError, ValueError, KeyError):
        return "unknown"


def _cached_engine(path: Path, options: EngineOptions):
    """Build (or reuse) an engine for an ONNX model or checkpoint through the engine cache."""
    from rtstyle.export.tensorrt_build import TensorRTBuildConfig, build_tensorrt_engine, onnx_info, parse_shape
    from .graph_io import LAYOUTS

    extra = options.extra
    layout = LAYOUTS[onnx_info(path).io if path.suffix.lower() == ".onnx" else extra.get("io", "float")]
    shapes = {
        name: parse_shape(value, layout) if isinstance(value, str) else tuple(value)
        for name in ("min_shape", "opt_shape", "max_shape")
        if (value := extra.get(name)) is not None
    }
    if options.precision == "bf16":
        raise InputError("the tensorrt backend builds fp16 or fp32 engines; choose --precision fp16 or fp32")
    precision = "fp32" if options.precision == "fp32" else "fp16"
    config = TensorRTBuildConfig(max_batch=options.batch_size, precision=precision, io=extra.get("io", "float"), **shapes)
    return build_tensorrt_engine(path, None, config)
