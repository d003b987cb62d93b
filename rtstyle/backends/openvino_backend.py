"""OpenVINO backend: CPUs (and Intel GPUs) through Intel's inference runtime.

* Models: an ONNX file ``rtstyle export onnx`` writes (float or uint8 I/O, fp32 or fp16), or a
  checkpoint, converted in-process through torch's ONNX exporter (no ``rtstyle.export``
  needed). The conversion runs only when a compiled model is not in the cache.
* Frames: uint8 RGB NHWC in and out; for a float-I/O graph the conversion (/255, layout, x255,
  clamp, round) is added to the graph by OpenVINO's ``PrePostProcessor``, so it is compiled too.
* Precision: ``INFERENCE_PRECISION_HINT`` bf16 on CPUs with native bf16 (AVX512-BF16/AMX), fp32
  elsewhere (``auto``); ``--precision`` chooses. Intel GPUs run fp16 (default) or fp32.
* Throughput: every frame of a batch is its own asynchronous infer request, one per stream of
  the throughput hint, so the frames of a batch run side by side on the cores. One frame per
  call (``rtstyle live``) runs on one stream; ``num_streams=1`` puts every thread on it.
* Shapes: one static-shape model per frame size (static shapes compile to faster kernels), kept
  in a small LRU, each compiled model cached on disk (``openvino/*.blob`` in the user's cache
  folder) under a key of every setting it depends on (``compile_key``).

Options: ``engine.OpenVINOOptions`` (``EngineOptions.backend_options``); threads follow
``rtstyle.threads.plan_threads`` unless given. ``--device GPU`` (OpenVINO's name for an Intel
GPU) needs one; without it the engine refuses in one line.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import threading
import warnings
from collections import OrderedDict
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ..checkpoint import load_checkpoint
from ..conditioning import StyleChoice, bind_style
from ..cpu_memory import keep_freed_memory
from ..engine import Engine, EngineOptions, OpenVINOOptions, refuse_style
from ..errors import BackendUnavailableError, CheckpointError, InputError
from ..fsutil import atomic_path, cache_dir, sha256_file
from ..graph_format import META_SCALE, META_TASK
from ..nets import output_scale
from ..sysinfo import cpu_flags, cpu_has_native_bf16, cpu_model
from ..textutil import first_line
from ..threads import plan_threads

ONNX_OPSET = 18  # the checkpoint conversion's opset (what OpenVINO's ONNX frontend reads best)
CONVERTER = "torch.onnx-legacy/1"  # bump when the conversion or the pre/post graph changes
_OV_PRECISION = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}
_PRECISIONS = {"CPU": ("fp32", "bf16"), "GPU": ("fp32", "fp16")}


@dataclass(frozen=True)
class _Source:
    """Where the graph comes from: an ONNX file, or a checkpoint to convert."""

    path: Path
    digest: str  # sha256 of the file (and the style choice, for checkpoints)
    is_onnx: bool
    scale: int
    uint8_io: bool  # an ONNX graph that already takes and returns uint8 frames
    style: StyleChoice | None = None


class _Compiled:
    """One compiled static-shape model and its pool of asynchronous infer requests.

    The frames of a batch go round-robin to the requests (one per stream), so they run side by
    side; each output is copied out on the calling thread once its request is waited for.
    (``AsyncInferQueue`` callbacks were tried: its ``wait_all`` can return before the last
    callback has written, and a late write lands in a batch already handed on.)"""

    def __init__(self, compiled):
        self.compiled = compiled
        count = max(1, int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))
        self.requests = [compiled.create_infer_request() for _ in range(count)]

    def run(self, frames: np.ndarray, out: np.ndarray) -> None:
        """Fill ``out`` in place with the model's output for each of ``frames``."""
        pending: dict[int, int] = {}  # request -> frame it is running
        for i in range(len(frames)):
            slot = i % len(self.requests)
            if slot in pending:
                self._collect(slot, pending.pop(slot), out)
            self.requests[slot].start_async({0: frames[i:i + 1]}, share_inputs=True)
            pending[slot] = i
        for slot, i in pending.items():
            self._collect(slot, i, out)

    def _collect(self, slot: int, frame: int, out: np.ndarray) -> None:
        request = self.requests[slot]
        request.wait()
        out[frame] = request.get_output_tensor(0).data[0]


class OpenVINOEngine(Engine):
    backend = "openvino"

    def __init__(self, source: _Source, core, ov_device: str, precision: str, options: OpenVINOOptions,
                 threads: int, reason: str):
        import openvino as ov

        # Frames stay in host memory whatever the OpenVINO device: it copies to an Intel GPU itself.
        super().__init__(device=torch.device("cpu"), precision=precision, scale=source.scale, reason=reason)
        self._ov = ov
        self.core = core
        self.source = source
        self.ov_device = ov_device
        self.options = options
        self.threads = threads
        self.cache_root = options.cache_dir or cache_dir() / "openvino"
        self.shapes: OrderedDict[tuple[int, int], _Compiled] = OrderedDict()
        self.cache_hits = 0  # compiled models imported from the disk cache (tests, describe)
        self._model = None  # the dynamic-shape graph with pre/post, built on the first cache miss

    # -- compiling --------------------------------------------------------------------------

    def compile_config(self) -> dict[str, str]:
        config = {
            # Throughput whatever the batch size: a compiled model's rounding depends on how it
            # splits the work across threads, so one configuration keeps --batch-size 1 and 4 bit-exact.
            "PERFORMANCE_HINT": "THROUGHPUT",
            "INFERENCE_PRECISION_HINT": _OV_PRECISION[self.precision],
        }
        if self.ov_device.startswith("CPU"):
            config["INFERENCE_NUM_THREADS"] = str(self.threads)
        if self.options.num_streams is not None:
            config["NUM_STREAMS"] = str(self.options.num_streams)
        return config

    def compile_key(self, height: int, width: int) -> str:
        """Hash of every setting a compiled model depends on."""
        setting = {
            "model": self.source.digest,
            "converter": None if self.source.is_onnx else [CONVERTER, torch.__version__, ONNX_OPSET],
            "shape": [1, height, width, 3],
            "config": self.compile_config(),
            "openvino": self._ov.get_version(),
            "device": self.ov_device,
            "device_name": self.core.get_property(self.ov_device, "FULL_DEVICE_NAME"),
            "cpu": _cpu_signature(),
        }
        return hashlib.sha256(json.dumps(setting, sort_keys=True).encode()).hexdigest()[:40]

    def _compiled_for(self, height: int, width: int) -> _Compiled:
        key = (height, width)
        found = self.shapes.get(key)
        if found is not None:
            self.shapes.move_to_end(key)
            return found
        found = _Compiled(self._load_or_compile(height, width))
        self.shapes[key] = found
        while len(self.shapes) > self.options.shape_cache:
            self.shapes.popitem(last=False)
        return found

    def _load_or_compile(self, height: int, width: int):
        blob = self.cache_root / f"{self.compile_key(height, width)}.blob"
        if blob.is_file():
            try:
                compiled = self.core.import_model(blob.read_bytes(), self.ov_device, self.compile_config())
                self.cache_hits += 1
                return compiled
            except Exception:  # noqa: BLE001 - a stale or truncated blob: compile afresh and replace it
                pass
        model = self.graph().clone()
        model.reshape({model.inputs[0]: [1, height, width, 3]})
        compiled = self.core.compile_model(model, self.ov_device, self.compile_config())
        try:
            stream = io.BytesIO()
            compiled.export_model(stream)
            with atomic_path(blob) as tmp:
                tmp.write_bytes(stream.getvalue())
        except OSError:
            pass  # a read-only cache folder costs the next run a compile, nothing else
        return compiled

    def graph(self):
        """The dynamic-shape ``ov.Model`` taking and returning uint8 NHWC frames."""
        if self._model is None:
            model = self.core.read_model(str(self.source.path)) if self.source.is_onnx else self._convert()
            self._model = model if self.source.uint8_io else _frame_io(model, self._ov)
        return self._model

    def _convert(self):
        ckpt = load_checkpoint(self.source.path)
        module = bind_style(ckpt, self.source.style or StyleChoice(), self.source.path.name).eval()
        return self.core.read_model(onnx_bytes(module))

    # -- running ----------------------------------------------------------------------------

    def _run(self, frames: torch.Tensor) -> torch.Tensor:
        frames = frames.cpu().contiguous()
        n, h, w, _ = frames.shape
        out = torch.empty((n, h * self.scale, w * self.scale, 3), dtype=torch.uint8)
        self._compiled_for(h, w).run(frames.numpy(), out.numpy())
        return out

    def describe(self) -> str:
        return f"openvino on {self.ov_device} ({self.precision}, {self.threads} threads, async requests)"


def onnx_bytes(module: torch.nn.Module) -> bytes:
    """``module`` (float NCHW [0, 1] in and out) as ONNX with dynamic batch, height and width.

    torch's TorchScript-based exporter: well under a second for these nets, and it needs
    neither onnx nor onnxscript installed (rtstyle.export's exporter does, for its checks)."""
    buffer = io.BytesIO()
    dynamic = {0: "batch", 2: "height", 3: "width"}
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")  # constant-folding notes and the exporter's deprecation notice
        torch.onnx.export(module, (torch.rand(1, 3, 64, 64),), buffer, dynamo=False, opset_version=ONNX_OPSET,
                          input_names=["images"], output_names=["output"],
                          dynamic_axes={"images": dynamic, "output": dynamic})
    return buffer.getvalue()


def _frame_io(model, ov):
    """Add uint8 NHWC in -> float NCHW /255, and float NCHW out -> x255, clamp, round, uint8
    NHWC (``frames.to_float``/``to_uint8``, rounding half to even like torch.round)."""
    import openvino.opset13 as ops
    from openvino.preprocess import PrePostProcessor

    if len(model.inputs) != 1:
        names = [i.get_any_name() for i in model.inputs]
        raise CheckpointError(f"this graph takes {names}: an AdaIN graph with the style as inputs; export with "
                              "--style-image (the style baked in) or use --backend torch")
    ppp = PrePostProcessor(model)
    ppp.input().tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC"))
    ppp.input().model().set_layout(ov.Layout("NCHW"))
    ppp.input().preprocess().convert_element_type(ov.Type.f32).scale(255.0)

    def to_uint8(node):
        scaled = ops.multiply(ops.convert(node, "f32"), ops.constant(np.float32(255.0)))
        return ops.round(ops.clamp(scaled, 0.0, 255.0), "half_to_even").output(0)

    ppp.output().postprocess().custom(to_uint8)
    ppp.output().postprocess().convert_element_type(ov.Type.u8)
    ppp.output().model().set_layout(ov.Layout("NCHW"))
    ppp.output().tensor().set_layout(ov.Layout("NHWC"))
    return ppp.build()


def _cpu_signature() -> str:
    """CPU model and flags (a compiled CPU model uses the instructions of the CPU it was built on)."""
    return hashlib.sha256(f"{cpu_model()}|{' '.join(sorted(cpu_flags()))}".encode()).hexdigest()[:16]


def _ov_device(requested: str, given: str | None, core) -> str:
    implied = {"auto": None, "cpu": "CPU", "GPU": "GPU"}.get(requested, requested)
    if given is not None and implied is not None and given.split(".")[0] != implied:
        raise InputError(f"OpenVINOOptions(device={given!r}) contradicts --device {requested}; give one of them")
    name = given or implied or "CPU"
    if name not in ("CPU", "GPU") and not name.startswith(("GPU.", "NPU", "AUTO", "HETERO", "MULTI")):
        raise InputError(f"the openvino backend runs on --device cpu or GPU (an Intel GPU), not {requested!r}; "
                         "for an NVIDIA GPU use --backend torch, onnxruntime or tensorrt")
    available = core.available_devices
    if name not in available and not (name == "GPU" and any(d.startswith("GPU") for d in available)):
        raise BackendUnavailableError(f"OpenVINO finds no {name} device here (it has {', '.join(available)}); "
                                      "use --device cpu")
    return name


def _precision(requested: str, ov_device: str) -> str:
    kind = "GPU" if ov_device.startswith("GPU") else "CPU"
    if requested == "auto":
        # bf16 on CPUs with bf16 instructions: 1.9x fp32 here, within 2/255 of it (benchmarks/results).
        return "fp16" if kind == "GPU" else "bf16" if cpu_has_native_bf16() else "fp32"
    if requested not in _PRECISIONS[kind]:
        raise InputError(f"precision {requested!r} is not supported by openvino on {kind}; "
                         f"choose from {list(_PRECISIONS[kind])} or auto")
    return requested


def _source(path: Path, options: EngineOptions, core) -> _Source:
    style = options.style
    if path.suffix.lower() == ".onnx":
        refuse_style(style, "openvino", path.name)
        model = _read_onnx(path, core)
        if _meta(model, META_TASK) == "texture":
            raise InputError(f"{path.name} is a texture generator (noise in, no video in); sample it with `rtstyle synth`")
        if len(model.inputs) != 1:
            names = [i.get_any_name() for i in model.inputs]
            raise CheckpointError(f"{path.name} takes {names}: an AdaIN graph with the style as inputs; export with "
                                  "--style-image (the style baked in) or use --backend torch")
        uint8_io = model.inputs[0].get_element_type().get_type_name() == "u8"
        scale = _meta(model, META_SCALE)
        return _Source(path, sha256_file(path), True, int(scale) if scale else _probe_scale(model, uint8_io), uint8_io)
    if path.suffix.lower() != ".safetensors":
        raise InputError(f"the openvino backend opens a checkpoint (.safetensors) or an .onnx file, not {path.name}")
    ckpt = load_checkpoint(path)
    bind_style(ckpt, style, path.name)  # refuses texture generators and unusable style choices now, not later
    digest = hashlib.sha256(sha256_file(path).encode())
    digest.update(json.dumps(asdict(style), default=str, sort_keys=True).encode())
    if style.style_image is not None:
        digest.update(sha256_file(style.style_image).encode())
    return _Source(path, digest.hexdigest(), False, output_scale(ckpt.config), False, style)


def _read_onnx(path: Path, core):
    try:
        return core.read_model(str(path))
    except Exception as exc:  # noqa: BLE001 - OpenVINO raises its own RuntimeError subclasses
        raise CheckpointError(f"OpenVINO cannot read {path}: {first_line(exc)}") from None


def _meta(model, key: str) -> str | None:
    if model.has_rt_info(["framework", key]):
        return str(model.get_rt_info(["framework", key]).astype(str))
    return None


def _probe_scale(model, uint8_io: bool) -> int:
    """Output side / input side of a foreign ONNX graph, from its static output width ratio, else 1."""
    out, inp = model.outputs[0].get_partial_shape(), model.inputs[0].get_partial_shape()
    axis = 2 if uint8_io else 3
    if out[axis].is_static and inp[axis].is_static and inp[axis].get_length() > 0:
        return out[axis].get_length() // inp[axis].get_length()
    return 1


_CORE_LOCK = threading.Lock()


@functools.cache
def _ov_core():
    """The one ``ov.Core`` of this process, never destroyed (OpenVINO advises one per process).

    One per engine crashed processes: each Core's CPU plugin sets a new signal stack
    (``sigaltstack``) on the thread that loads it, and when the Core goes, puts back the one it
    found and unmaps its own. Two Cores freed in the order they were made (engines are freed in
    any order) left the main thread with an unmapped signal stack, so the next signal handled
    there (Ctrl-C, SIGTERM; Python's handlers run on that stack) killed the process with SIGSEGV,
    before faulthandler, which runs on it too, could say where (issue 29;
    tests/test_openvino.py::test_engines_freed_in_any_order_leave_signals_working)."""
    import openvino as ov

    return ov.Core()


def shared_core():
    with _CORE_LOCK:  # functools.cache alone may build two under a race, and free one
        return _ov_core()


def open(path: Path, options: EngineOptions, reason: str) -> OpenVINOEngine:
    try:
        import openvino  # noqa: F401 - its absence is the one-line error below
    except ImportError:
        raise BackendUnavailableError("backend 'openvino' needs the openvino package; "
                                      "install with: pip install 'rtstyle[openvino]'") from None
    ov_options = options.backend_settings(OpenVINOOptions)
    core = shared_core()
    ov_device = _ov_device(options.device, ov_options.device, core)
    precision = _precision(options.precision, ov_device)
    source = _source(path, options, core)
    threads = ov_options.threads or plan_threads().engine
    if ov_device == "CPU":
        keep_freed_memory()  # no page faults per batch (cpu_memory.py)
    return OpenVINOEngine(source, core, ov_device, precision, ov_options, threads, reason)
