"""ONNX Runtime backend: any ONNX model ``rtstyle export onnx`` writes (fp32 or fp16, float or
uint8 I/O, read from the session), on the CPU, or on the GPU through the TensorRT or CUDA
execution providers when onnxruntime-gpu is installed.

On the GPU, tensors are bound by device pointer (I/O binding), so frames never visit the host.
The TensorRT provider gets an optimisation profile (``trt_profile_*_shapes``) covering the
engine's batch size up to 1080p output, so it builds its engine once rather than on every larger
input, and fp16 for fp16 models. ``tensorrt`` is imported first when installed: its pip wheels
put the TensorRT libraries on the loader path only then. A requested provider that onnxruntime
did not load is never dropped silently: the engine's ``reason`` says which one ran instead.
"""

from __future__ import annotations

import types
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..dtypes import PRECISION_OF
from ..engine import Engine, EngineOptions, OrtOptions, refuse_style, resolve_device
from ..errors import BackendUnavailableError, CheckpointError, InputError
from ..fsutil import cache_dir
from ..graph_format import LAYOUTS, META_PRECISION, META_SCALE, META_TASK, GraphIO, load_onnx
from ..nets import MIN_SIDE
from ..textutil import first_line
from ..threads import plan_threads
from .trt_build import default_profile

TRT_PROVIDER, CUDA_PROVIDER, CPU_PROVIDER = "TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"
GPU_PROVIDERS = (TRT_PROVIDER, CUDA_PROVIDER)
_ORT_TYPES = {"tensor(float)": torch.float32, "tensor(float16)": torch.float16, "tensor(uint8)": torch.uint8}
_NUMPY = {torch.float32: np.float32, torch.float16: np.float16, torch.uint8: np.uint8}


class OrtEngine(Engine):
    backend = "onnxruntime"

    def __init__(self, session, device: torch.device, providers: list[str], facts: ModelFacts, precision: str,
                 reason: str):
        super().__init__(device=device, precision=precision, scale=facts.scale, reason=reason)
        self.session = session
        self.providers = providers
        inp, out = session.get_inputs()[0], session.get_outputs()[0]
        self.input_name, self.output_name = inp.name, out.name
        self.io = _graph_io(inp)
        self.output_dtype = _ORT_TYPES[out.type] if out.type in _ORT_TYPES else torch.float32

    def _run(self, frames: torch.Tensor) -> torch.Tensor:
        x = self.io.prepare(frames.to(self.device, non_blocking=True))
        out = self._run_bound(x) if self.device.type == "cuda" else self._run_host(x)
        return self.io.finish(out)

    def _run_host(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.session.run([self.output_name], {self.input_name: x.numpy()})[0])

    def _run_bound(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.empty(self.io.output_shape(tuple(x.shape), self.scale), dtype=self.output_dtype, device=self.device)
        index = self.device.index
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


def open(path: Path, options: EngineOptions, reason: str) -> OrtEngine:
    refuse_style(options.style, "onnxruntime", path.name)
    import_tensorrt_libraries()
    import onnxruntime as ort

    available = ort.get_available_providers()
    device = _device(options.device, available)
    names = _provider_names(device, available, options.backend_settings(OrtOptions))
    if device.type == "cpu":
        session = _session(ort, path, names)
        facts = _model_facts(session, path)
    else:  # the GPU providers' settings depend on the model: read it before their session
        facts = _facts_before_session(ort, path)
    precision = options.precision
    fp16_by_trt = False
    if precision not in ("auto", facts.precision):
        fp16_by_trt = (precision == "fp16" and facts.precision == "fp32" and device.type == "cuda"
                       and _trt_weak_fp16(names))
        if not fp16_by_trt:
            raise InputError(
                f"{path.name} is an {facts.precision} model; onnxruntime runs it as exported: pass --precision auto "
                f"or export another one (rtstyle export onnx {'--fp16' if precision == 'fp16' else 'without --fp16'})"
            )
    if device.type == "cuda":
        fp16 = facts.precision == "fp16" or fp16_by_trt
        session = _session(ort, path, _providers(names, device, fp16, facts, options.batch_size))
    used = session.get_providers()
    reason = _check_fallback(names, used, device, reason)
    if fp16_by_trt and used[0] != TRT_PROVIDER:
        raise BackendUnavailableError(f"--precision fp16 of the fp32 model {path.name} needs onnxruntime's TensorRT "
                                      f"provider, and it did not load ({', '.join(used)} ran); export with --fp16")
    return OrtEngine(session, device, used, facts, "fp16" if fp16_by_trt else facts.precision, reason)


def import_tensorrt_libraries() -> str | None:
    """Import ``tensorrt`` if installed, so its pip wheels' libraries are on the loader path before
    onnxruntime's TensorRT provider looks for them; returns its version (None: not importable)."""
    import importlib.util

    if importlib.util.find_spec("tensorrt") is None:
        return None
    try:
        import tensorrt
    except (ImportError, OSError):  # the libraries it loads may be missing or for another CUDA
        return None
    return str(tensorrt.__version__)


def _trt_weak_fp16(providers: list[str]) -> bool:
    """Whether onnxruntime's TensorRT provider can run an fp32 graph in fp16 (``trt_fp16_enable``).

    TensorRT 11 builds strongly typed networks only (no kFP16 builder flag): an fp32 graph runs
    in fp32 there, so calling it fp16 would be a false label. A TensorRT we cannot see (system
    libraries, no Python package) is taken as 10, the version onnxruntime's provider is built for."""
    if TRT_PROVIDER not in providers:
        return False
    version = import_tensorrt_libraries()
    return version is None or int(version.split(".")[0]) < 11


@dataclass(frozen=True)
class ModelFacts:
    """What choosing providers needs to know about an ONNX model, read before its real session."""

    input_name: str
    io: str
    precision: str
    scale: int


def _model_facts(session, path: Path) -> ModelFacts:
    """The model's input, precision and scale; a model the runtime cannot feed frames is refused."""
    metadata = session.get_modelmeta().custom_metadata_map
    if metadata.get(META_TASK) == "texture":
        raise InputError(f"{path.name} is a texture generator (noise in, no video in); feed its 'noise' input "
                         "directly, or sample from the checkpoint with `rtstyle synth`")
    if len(session.get_inputs()) > 1:
        names = [i.name for i in session.get_inputs()]
        raise CheckpointError(f"this ONNX model takes {names}: an AdaIN graph with the style as inputs, for your "
                              "own code; for the runtime, export with --style-image (the style baked in)")
    inp = session.get_inputs()[0]
    io = _graph_io(inp)
    precision = metadata.get(META_PRECISION) or PRECISION_OF.get(_ORT_TYPES.get(inp.type), "fp32")
    return ModelFacts(inp.name, io.kind, precision, _scale(session, io))


def _facts_before_session(ort, path: Path) -> ModelFacts:
    """The model's facts from the file's own metadata when rtstyle wrote it (no session: a CPU one
    could lack fp16 kernels a GPU provider has); a foreign model is measured on a CPU session."""
    graph = OnnxFile.read(path)
    if graph is not None and META_SCALE in graph.get_modelmeta().custom_metadata_map:
        return _model_facts(graph, path)
    probe_options = ort.SessionOptions()
    probe_options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return _model_facts(_session(ort, path, [CPU_PROVIDER], probe_options), path)


class OnnxFile:
    """An ONNX file's inputs and metadata read with the ``onnx`` package, answering like an
    onnxruntime session does (``get_inputs``, ``get_modelmeta``) so ``_model_facts`` reads either."""

    _TYPES = {1: "tensor(float)", 10: "tensor(float16)", 2: "tensor(uint8)"}  # onnx.TensorProto elem types

    def __init__(self, proto):
        initializers = {init.name for init in proto.graph.initializer}
        self._inputs = []
        for inp in proto.graph.input:
            if inp.name in initializers:
                continue
            tensor = inp.type.tensor_type
            self._inputs.append(types.SimpleNamespace(
                name=inp.name, type=self._TYPES.get(tensor.elem_type, f"elem_type {tensor.elem_type}"),
                shape=[d.dim_value if d.HasField("dim_value") else d.dim_param for d in tensor.shape.dim],
            ))
        self._meta = types.SimpleNamespace(custom_metadata_map={p.key: p.value for p in proto.metadata_props})

    @classmethod
    def read(cls, path: Path) -> "OnnxFile | None":
        """None where the ``onnx`` package is not installed (onnxruntime alone does not need it)."""
        import importlib.util

        return cls(load_onnx(path)) if importlib.util.find_spec("onnx") is not None else None

    def get_inputs(self) -> list:
        return self._inputs

    def get_modelmeta(self):
        return self._meta


def _device(requested: str, available: list[str]) -> torch.device:
    has_gpu_provider = any(p in available for p in GPU_PROVIDERS)
    if requested == "auto":
        # Stay on the CPU unless ORT itself can use the GPU: frames must live where it computes.
        requested = "cuda" if has_gpu_provider and torch.cuda.is_available() else "cpu"
    device = resolve_device(requested)
    if device.type == "cuda" and not has_gpu_provider:
        raise BackendUnavailableError(
            f"this onnxruntime has no GPU provider (only {', '.join(available)}); "
            "pip uninstall onnxruntime && pip install onnxruntime-gpu, or use --device cpu"
        )
    if device.type == "cuda" and device.index is None:  # "cuda" is the current device, named for the providers
        device = torch.device("cuda", torch.cuda.current_device())
    return device


def _provider_names(device: torch.device, available: list[str], settings: OrtOptions) -> list[str]:
    """The providers to ask for, best first: the given ones (checked), else the device's default."""
    if settings.providers is None:
        if device.type != "cuda":
            return [CPU_PROVIDER]
        return [*(p for p in GPU_PROVIDERS if p in available), CPU_PROVIDER]
    for name in settings.providers:
        if name not in available:
            raise InputError(f"onnxruntime provider {name!r} is not available here; choose from {available}")
    on_gpu = any(p in GPU_PROVIDERS for p in settings.providers)
    if on_gpu != (device.type == "cuda"):
        raise InputError(f"providers {list(settings.providers)} compute on {'the GPU' if on_gpu else 'the CPU'}, "
                         f"but the engine's frames live on {device}; pass --device {'cuda' if on_gpu else 'cpu'}")
    return list(settings.providers)


def trt_profile_shapes(input_name: str, io: str, batch: int, scale: int) -> dict[str, str]:
    """``trt_profile_{min,opt,max}_shapes`` for the TensorRT provider: one profile from batch 1 at
    the networks' minimum side to ``batch`` frames of 1080p output, tuned at 720p. Without it the
    provider rebuilds its engine every time an input is larger than any seen before."""
    low, opt, high = default_profile(LAYOUTS[io], batch, scale)
    return {f"trt_profile_{name}_shapes": f"{input_name}:{'x'.join(map(str, shape))}"
            for name, shape in (("min", low), ("opt", opt), ("max", high))}


def _providers(names: list[str], device: torch.device, fp16: bool, facts: ModelFacts, batch: int) -> list:
    index = device.index
    providers: list = []
    for name in names:
        if name == TRT_PROVIDER:
            engines = cache_dir() / "ort-tensorrt"
            engines.mkdir(parents=True, exist_ok=True)
            providers.append((name, {
                "device_id": index,
                "trt_fp16_enable": fp16,
                "trt_engine_cache_enable": True,
                "trt_engine_cache_path": str(engines),
                "trt_timing_cache_enable": True,
                "trt_timing_cache_path": str(engines),
                **trt_profile_shapes(facts.input_name, facts.io, batch, facts.scale),
            }))
        elif name == CUDA_PROVIDER:
            providers.append((name, {"device_id": index}))
        else:
            providers.append(name)
    return providers


def _check_fallback(asked: list[str], used: list[str], device: torch.device, reason: str) -> str:
    """Say which asked-for provider onnxruntime did not load (it drops them without an error)."""
    if device.type == "cuda" and not any(p in GPU_PROVIDERS for p in used):
        raise BackendUnavailableError(
            f"onnxruntime loaded none of {[p for p in asked if p in GPU_PROVIDERS]} (CUDA or cuDNN libraries missing "
            "or for another CUDA version); see onnxruntime's log above, or use --device cpu"
        )
    missing = [p for p in asked if p not in used]
    if not missing:
        return reason
    hint = " (pip install tensorrt-cu12 to put its libraries on the loader path)" if TRT_PROVIDER in missing else ""
    return f"{reason}; {', '.join(missing)} did not load{hint}, running on {used[0]}"


def _session(ort, path: Path, providers: list, session_options=None):
    if session_options is None:
        session_options = ort.SessionOptions()
        session_options.intra_op_num_threads = plan_threads().engine  # the cores decoder and encoder leave (threads.py)
    try:
        return ort.InferenceSession(str(path), sess_options=session_options, providers=providers)
    except Exception as exc:  # noqa: BLE001 - ORT raises its own pybind exception types
        raise CheckpointError(f"onnxruntime cannot load {path}: {first_line(exc)}") from None


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
    """The model's scale, measured on one small input and checked against its metadata; the
    output must be frames of the input's batch with 3 channels (issue 15: foreign or edited
    ONNX files ended in "unexpected" errors, or in garbage frames)."""
    inp = session.get_inputs()[0]
    stored = session.get_modelmeta().custom_metadata_map.get(META_SCALE)
    if stored is not None and (isinstance(session, OnnxFile) or "TensorrtExecutionProvider" in session.get_providers()):
        # Read the metadata only: there is no session to probe (an rtstyle model's facts are read from
        # the file before a GPU session exists), or a probe would make TensorRT build one more engine.
        if stored.strip() not in ("1", "2", "4", "8"):
            raise CheckpointError(f"this ONNX model's metadata says {META_SCALE}={stored!r}; expected 1, 2, 4 or 8")
        return int(stored)
    batch = 2 if not isinstance(inp.shape[0], int) else inp.shape[0]
    shape = (batch, MIN_SIDE, MIN_SIDE + 4, 3) if io.kind == "uint8" else (batch, 3, MIN_SIDE, MIN_SIDE + 4)
    probe = np.zeros(shape, dtype=_NUMPY[torch.uint8 if io.kind == "uint8" else io.dtype])
    try:
        out = session.run(None, {inp.name: probe})[0]
    except Exception as exc:  # noqa: BLE001 - ORT raises its own pybind exception types
        raise CheckpointError(f"this ONNX model fails on a {'x'.join(map(str, shape))} input: {first_line(exc)}") from None
    channels = out.shape[-1] if io.kind == "uint8" else (out.shape[1] if out.ndim == 4 else None)
    if out.ndim != 4 or channels != 3 or out.shape[0] != batch:
        raise CheckpointError(f"this ONNX model returns {tuple(out.shape)} for input {shape}; rtstyle needs "
                              f"{io.layout} frames with 3 channels and the input's batch of {batch}")
    h, w = io.spatial(out.shape)
    measured = h // MIN_SIDE
    if h % MIN_SIDE or w != (MIN_SIDE + 4) * measured or measured < 1:
        raise CheckpointError(f"this ONNX model turns {MIN_SIDE}x{MIN_SIDE + 4} frames into {h}x{w}: not a whole "
                              "scale of the input")
    if stored is not None and stored.strip() != str(measured):
        raise CheckpointError(f"this ONNX model's metadata says {META_SCALE}={stored!r} but it scales by {measured}; "
                              "re-export it")
    return measured
