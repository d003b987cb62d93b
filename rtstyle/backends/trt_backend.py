"""TensorRT backend (TensorRT >= 10): deserialises an engine and runs it with
``execute_async_v3`` on a stream of its own, binding torch tensors by name (at 256-byte aligned
addresses, copying a misaligned chunk), so frames never leave the GPU.

Given an ONNX model or a checkpoint instead of an engine, it builds one through the engine
cache (``trt_build``), sized by ``EngineOptions.batch_size`` and ``engine.TensorRTOptions``
(profile shapes, io, cache folder); a built engine refuses those settings, since its profile
and io are fixed.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..dtypes import PRECISION_OF
from ..engine import Engine, EngineOptions, TensorRTOptions, refuse_style, resolve_device
from ..errors import BackendUnavailableError, CheckpointError, InputError
from ..graph_format import GraphIO
from ..trust import check_trusted
from .onnx_graph import cached_onnx
from .trt_build import ENGINE_SUFFIXES, TensorRTBuildConfig, build_cached_engine, import_tensorrt, onnx_info


def _torch_dtypes(trt) -> dict:
    names = {"FLOAT": torch.float32, "HALF": torch.float16, "BF16": torch.bfloat16, "UINT8": torch.uint8,
             "INT8": torch.int8, "INT32": torch.int32, "INT64": torch.int64, "BOOL": torch.bool}
    return {getattr(trt.DataType, name): dtype for name, dtype in names.items() if hasattr(trt.DataType, name)}


TRT_ALIGNMENT = 256  # bytes: IExecutionContext::setTensorAddress requires it of every I/O address


def aligned_for_tensorrt(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` if its address suits TensorRT, else a contiguous copy (the caching allocator
    aligns blocks to 512 bytes). Chunks of a split batch start N*H*W*C*itemsize bytes in, e.g. at
    4410 bytes for 2 frames of 21x35 uint8: TensorRT would refuse or misread them."""
    if tensor.data_ptr() % TRT_ALIGNMENT == 0 and tensor.is_contiguous():
        return tensor
    return tensor.clone(memory_format=torch.contiguous_format)


def record_stream(tensor: torch.Tensor, stream) -> None:
    """Mark ``tensor`` as used on ``stream`` (a separate function so tests can stand in for CUDA)."""
    tensor.record_stream(stream)


class TensorRTEngine(Engine):
    backend = "tensorrt"

    def __init__(self, trt, serialized: bytes, device: torch.device, label: str, precision: str | None, reason: str):
        """``precision``: from the build's sidecar; None reads it from a float input's dtype."""
        with torch.cuda.device(device):
            self.runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
            self.engine = self.runtime.deserialize_cuda_engine(serialized)
            if self.engine is None:
                raise CheckpointError(
                    f"TensorRT {trt.__version__} cannot load {label}: built by another TensorRT version or for another GPU; rebuild it"
                )
            self.context = self.engine.create_execution_context()
            self.stream = torch.cuda.Stream(device)
        dtypes = _torch_dtypes(trt)
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if len(inputs) != 1 or len(outputs) != 1:
            raise CheckpointError(f"{label} has inputs {inputs} and outputs {outputs}; rtstyle engines have one of each")
        self.input_name, self.output_name = inputs[0], outputs[0]
        self.io = GraphIO.for_input_dtype(dtypes[self.engine.get_tensor_dtype(self.input_name)])
        self.output_dtype = dtypes[self.engine.get_tensor_dtype(self.output_name)]
        if precision is None:
            if self.io.kind == "uint8":
                raise CheckpointError(f"{label} takes uint8 frames and has no build sidecar (.json) saying its "
                                      "precision; build it with `rtstyle export tensorrt`")
            precision = PRECISION_OF[self.io.dtype]
        self.min_shape, _, self.max_shape = (tuple(s) for s in self.engine.get_tensor_profile_shape(self.input_name, 0))
        super().__init__(device=device, precision=precision, scale=self._measure_scale(), reason=reason)

    def _measure_scale(self) -> int:
        """Output side / input side, read from the engine's shape inference at the min shape."""
        self._set_shape(self.min_shape)
        out_shape = tuple(self.context.get_tensor_shape(self.output_name))
        return self.io.spatial(out_shape)[0] // self.io.spatial(self.min_shape)[0]

    def _run(self, frames: torch.Tensor) -> torch.Tensor:
        x = self.io.prepare(frames.to(self.device, non_blocking=True))
        # The engine's own stream, ordered against the caller's both ways: in the pipeline's
        # engine thread the caller's is the legacy default stream, on which TensorRT would add
        # device synchronisations. record_stream tells the caching allocator which stream uses
        # a tensor allocated on the other, so neither is reused before that stream is done.
        caller = torch.cuda.current_stream(self.device)
        with torch.cuda.device(self.device):
            self.stream.wait_stream(caller)
            record_stream(x, self.stream)
            with torch.cuda.stream(self.stream):
                # Batches larger than the profile allows run in chunks rather than failing.
                outs = [self._infer(aligned_for_tensorrt(chunk)) for chunk in x.split(self.max_shape[0])]
            caller.wait_stream(self.stream)
        for out in outs:
            record_stream(out, caller)
        return self.io.finish(outs[0] if len(outs) == 1 else torch.cat(outs))

    def _infer(self, x: torch.Tensor) -> torch.Tensor:
        """One chunk within the profile, on ``self.stream`` (the current stream here)."""
        shape = tuple(x.shape)
        if not all(lo <= s <= hi for lo, s, hi in zip(self.min_shape, shape, self.max_shape)):
            raise InputError(
                f"input {'x'.join(map(str, shape))} is outside this engine's profile "
                f"{'x'.join(map(str, self.min_shape))} .. {'x'.join(map(str, self.max_shape))}; "
                "rebuild it with a larger --max-shape"
            )
        self._set_shape(shape)
        out_shape = tuple(self.context.get_tensor_shape(self.output_name))
        out = torch.empty(out_shape, dtype=self.output_dtype, device=self.device)
        self._bind(self.input_name, x)
        self._bind(self.output_name, out)
        if not self.context.execute_async_v3(self.stream.cuda_stream):
            raise RuntimeError(f"TensorRT execution failed for input {shape}; see TensorRT's log above")
        return out

    def _set_shape(self, shape: tuple[int, ...]) -> None:
        # set_input_shape returns False (and logs) for a shape outside the profile or of the wrong rank.
        if not self.context.set_input_shape(self.input_name, shape):
            raise RuntimeError(f"TensorRT refused input shape {'x'.join(map(str, shape))} for {self.input_name!r}")

    def _bind(self, name: str, tensor: torch.Tensor) -> None:
        # set_tensor_address returns False for a misaligned address or an unknown name.
        if not self.context.set_tensor_address(name, tensor.data_ptr()):
            raise RuntimeError(f"TensorRT refused the address {tensor.data_ptr():#x} of {name!r} "
                               f"(it needs {TRT_ALIGNMENT}-byte aligned device memory)")

    def describe(self) -> str:
        return f"tensorrt on {self.device} ({self.precision}, {self.io.kind} io, max {'x'.join(map(str, self.max_shape))})"


def open(path: Path, options: EngineOptions, reason: str) -> TensorRTEngine:
    # What the user asked for is checked first, before what this machine lacks.
    refuse_style(options.style, "tensorrt", path.name)
    settings = options.backend_settings(TensorRTOptions)
    built = path.suffix.lower() in ENGINE_SUFFIXES
    if built and (given := settings.build_settings()):
        raise InputError(f"{path.name} is a built TensorRT engine: its profile and io are fixed, so "
                         f"{', '.join(f'{k}={v}' for k, v in given.items())} cannot apply; build another with "
                         "`rtstyle export tensorrt`, or open the ONNX model")
    if not built and options.precision == "bf16":
        raise InputError("the tensorrt backend builds fp16 or fp32 engines; choose --precision fp16 or fp32")
    if built:  # issue 15: an engine is native code; engines rtstyle builds are recorded (rtstyle.trust)
        check_trusted(path, options.trust_model, "a TensorRT engine")
    trt = import_tensorrt()
    device = resolve_device("cuda" if options.device == "auto" else options.device)
    if device.type != "cuda":
        raise BackendUnavailableError(f"the tensorrt backend runs on CUDA GPUs only, not on {device}; use --device cuda")
    if device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    engine_path = path if built else _cached_engine(path, options, settings, device)
    engine = TensorRTEngine(trt, engine_path.read_bytes(), device, path.name, _built_precision(engine_path), reason)
    if options.precision not in ("auto", engine.precision):
        raise InputError(f"{path.name} is an {engine.precision} engine; pass --precision auto or {engine.precision}")
    return engine


def _built_precision(engine_path: Path) -> str | None:
    """The precision recorded in the build's sidecar JSON (engines do not say it themselves);
    None when there is none (an engine built elsewhere)."""
    sidecar = engine_path.with_suffix(".json")
    try:
        precision = json.loads(sidecar.read_text())["precision"]
    except (OSError, ValueError, KeyError):
        return None
    if precision not in ("fp16", "fp32"):
        raise CheckpointError(f"{sidecar} names precision {precision!r}; rtstyle builds fp16 or fp32 engines")
    return precision


def _cached_engine(path: Path, options: EngineOptions, settings: TensorRTOptions, device: torch.device) -> Path:
    """Build (or reuse) an engine for an ONNX model or checkpoint through the engine cache."""
    precision = "fp32" if options.precision == "fp32" else "fp16"
    if path.suffix.lower() == ".onnx":
        io = onnx_info(path).io
        if settings.io not in (None, io):
            raise InputError(f"{path.name} is an ONNX model with {io} io, so io={settings.io!r} cannot apply "
                             f"(export another with `rtstyle export onnx --io {settings.io}`)")
    else:
        io = settings.io or "float"
    config = TensorRTBuildConfig(max_batch=options.batch_size, precision=precision, io=io, min_shape=settings.min_shape,
                                 opt_shape=settings.opt_shape, max_shape=settings.max_shape)
    # A checkpoint is traced to ONNX first (fp16 for an fp16 engine: strongly typed), once, into the cache.
    onnx_path = path if path.suffix.lower() == ".onnx" else cached_onnx(path, precision, io)
    return build_cached_engine(onnx_path, config, device=device.index, cache=settings.cache_dir, source=path).path
