"""``rtstyle export onnx``: checkpoint -> ONNX with dynamic batch/height/width.

Uses torch's dynamo exporter at a pinned opset. ``fp16`` exports a half-precision graph whose
InstanceNorms run in fp32 between explicit casts (see ``deploy.py``); ``io="uint8"`` takes and
returns uint8 NHWC frames. The checkpoint's metadata goes into ``metadata_props``. Unless
``check=False``, ONNX Runtime (CPU) is compared with PyTorch on random-size inputs before the
file is renamed into place, so a model that fails parity is never written.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from rtstyle.backends.graph_io import IO_KINDS
from rtstyle.checkpoint import load_checkpoint
from rtstyle.errors import BackendUnavailableError, ExportError, InputError
from rtstyle.fsutil import atomic_path
from rtstyle.models import resolve_model

from .deploy import (
    ParityResult,
    check_choice,
    check_output_path,
    check_parity,
    deploy_metadata,
    deployable,
    dynamic_shapes,
    example_input,
    first_line,
    parity_shapes,
    parity_tolerance,
    quiet_tracing,
)

# TensorRT 10 and ONNX Runtime >= 1.14 both read opset 18; newer opsets add nothing these nets use.
OPSET = 18
MIN_OPSET = 17
INPUT_NAME = {"float": "images", "uint8": "frames"}
OUTPUT_NAME = "output"


@dataclass(frozen=True)
class OnnxExportConfig:
    fp16: bool = False  # half-precision graph, InstanceNorm kept in fp32
    io: str = "float"  # "float": NCHW [0, 1]; "uint8": NHWC frames, conversion inside the graph
    opset: int = OPSET
    check: bool = True  # ONNX Runtime vs PyTorch parity check before writing
    check_count: int = 3  # random-size probes in the parity check
    seed: int = 0
    overwrite: bool = False

    def __post_init__(self) -> None:
        check_choice("io", self.io, IO_KINDS)
        import onnx

        newest = onnx.defs.onnx_opset_version()
        if not MIN_OPSET <= self.opset <= newest:
            raise InputError(f"opset {self.opset} is unsupported; choose {MIN_OPSET}..{newest} (default {OPSET})")
        if self.check_count < 1:
            raise InputError(f"parity check needs at least 1 probe, got {self.check_count}")

    @property
    def precision(self) -> str:
        return "fp16" if self.fp16 else "fp32"


@dataclass(frozen=True)
class OnnxExportResult:
    path: Path
    precision: str
    io: str
    opset: int
    parity: list[ParityResult] = field(default_factory=list)  # empty when the check was skipped
    seconds: float = 0.0

    @property
    def tolerance(self) -> float:
        return parity_tolerance(self.precision, self.io)


def export_onnx(checkpoint: str | Path, out: str | Path, config: OnnxExportConfig = OnnxExportConfig()) -> OnnxExportResult:
    """Export ``checkpoint`` (a path or bundled model name) to ``out`` (.onnx)."""
    start = time.perf_counter()
    source = resolve_model(checkpoint)
    out = Path(out)
    check_output_path(out, config.overwrite, source, (".onnx",))
    ckpt = load_checkpoint(source)
    proto = trace_onnx(ckpt.model, config, label=source.name)
    set_metadata(proto, deploy_metadata(ckpt, config.precision, config.io))
    _check_graph(proto, source.name)

    import onnx

    parity: list[ParityResult] = []
    with atomic_path(out) as tmp:
        onnx.save_model(proto, str(tmp))
        if config.check:
            runner = ort_runner(tmp)
            shapes = parity_shapes(config.check_count, config.seed)
            parity = check_parity(runner, ckpt.model, config.io, config.precision, shapes, config.seed, f"ONNX export of {source.name}")
    return OnnxExportResult(out, config.precision, config.io, config.opset, parity, time.perf_counter() - start)


def trace_onnx(model: torch.nn.Module, config: OnnxExportConfig, label: str = "model"):
    """The ``onnx.ModelProto`` of ``model`` deployed at ``config``'s precision and I/O kind."""
    module = deployable(model, config.precision, config.io)
    example = example_input(config.io, config.precision)
    try:
        with quiet_tracing():
            program = torch.onnx.export(
                module,
                (example,),
                dynamo=True,
                dynamic_shapes=dynamic_shapes(config.io),
                opset_version=config.opset,
                input_names=[INPUT_NAME[config.io]],
                output_names=[OUTPUT_NAME],
                verbose=False,
            )
    except Exception as exc:  # noqa: BLE001 - the exporter raises many types; keep the cause chained
        raise ExportError(f"torch.onnx could not export {label}: {exc.__class__.__name__}: {first_line(exc)}") from exc
    return program.model_proto


def set_metadata(proto, metadata: dict[str, str]) -> None:
    """Replace ``metadata_props`` entries with ``metadata`` (string keys and values)."""
    existing = {p.key: p for p in proto.metadata_props}
    for key, value in metadata.items():
        prop = existing.get(key) or proto.metadata_props.add()
        prop.key, prop.value = key, value


def load_onnx(path: str | Path):
    """An ONNX file's ``ModelProto`` without its external weights, or a one-line InputError."""
    import onnx

    try:
        return onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf decode errors have several types
        raise InputError(f"{path} is not a readable ONNX model ({exc.__class__.__name__})") from None


def read_metadata(path: str | Path) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file."""
    return {p.key: p.value for p in load_onnx(path).metadata_props}


def ort_runner(path: Path):
    """A CPU ONNX Runtime session as a torch-in, torch-out function (for parity checks)."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise BackendUnavailableError("the parity check needs onnxruntime; pip install onnxruntime, or pass --no-check") from None
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name

    def run(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(session.run(None, {input_name: x.numpy()})[0])

    return run


def _check_graph(proto, label: str) -> None:
    import onnx

    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"the ONNX graph exported from {label} is invalid: {first_line(exc)}") from exc
