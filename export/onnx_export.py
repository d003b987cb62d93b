"""``rtstyle export onnx``: checkpoint -> ONNX with dynamic batch/height/width.

Uses torch's dynamo exporter at a pinned opset. ``fp16`` exports a half-precision graph whose
InstanceNorms run in fp32 between explicit casts (see ``rtstyle/backends/onnx_graph.py``); ``io="uint8"`` takes and
returns uint8 NHWC frames. The checkpoint's metadata goes into ``metadata_props``.

A texture generator (``nets.TextureSynthNet``) exports with one input, ``noise`` (N, C, H, W,
standard normal, fp32 or the graph's precision), and returns textures (float NCHW, or uint8 NHWC
with ``io="uint8"``).

Multi-style models: a StyleBank exports one bank (``style_index``); an AdaIN model exports with
its style as graph inputs ``style_mean``, ``style_std`` ((1, 512) fp32: the style image's relu4_1
statistics, ``AdaINNet.style_stats``) and ``alpha`` ((1,) fp32), or, given ``style_image``,
with that style's statistics and ``alpha`` baked in (one input, like every other model). Unless
``check=False``, ONNX Runtime (CPU) is compared with PyTorch on random-size inputs before the
file is renamed into place, so a model that fails parity is never written.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from rtstyle.backends.onnx_graph import (  # noqa: F401 - graph names re-exported for export's users
    INPUT_NAME,
    META_STYLE_INPUTS,
    MIN_OPSET,
    NOISE_INPUT,
    OPSET,
    OUTPUT_NAME,
    STYLE_INPUTS,
    export_model,
    noise_channels,
    onnx_proto,
    set_metadata,
    style_examples,
    trace_onnx,
)
from rtstyle.checkpoint import load_checkpoint
from rtstyle.conditioning import AdaINStyled, StyleChoice
from rtstyle.errors import BackendUnavailableError, InputError
from rtstyle.graph_format import IO_KINDS, load_onnx
from rtstyle.models import resolve_model
from rtstyle.outputs import OutputPolicy

from .deploy import ParityResult, check_choice, check_output_path, check_parity, parity_shapes, parity_tolerance


@dataclass(frozen=True)
class OnnxExportConfig:
    fp16: bool = False  # half-precision graph, InstanceNorm kept in fp32
    io: str = "float"  # "float": NCHW [0, 1]; "uint8": NHWC frames, conversion inside the graph
    opset: int = OPSET
    check: bool = True  # ONNX Runtime vs PyTorch parity check before writing
    check_count: int = 3  # random-size probes in the parity check
    seed: int = 0
    overwrite: bool = False
    style: StyleChoice = field(default_factory=StyleChoice)  # StyleBank: style_index; AdaIN: optional style_image

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
    proto, model = onnx_proto(load_checkpoint(source), config.precision, config.io, config.style, source.name,
                              config.opset)

    import onnx

    parity: list[ParityResult] = []
    with OutputPolicy(overwrite=config.overwrite).writing(out, [source]) as tmp:
        onnx.save_model(proto, str(tmp))
        if config.check:
            reference, feeds = parity_reference(model, config.seed)
            runner = ort_runner(tmp, feeds) if feeds else ort_runner(tmp)
            shapes = parity_shapes(config.check_count, config.seed)
            parity = check_parity(runner, reference, config.io, config.precision, shapes, config.seed,
                                  f"ONNX export of {source.name}", noise_channels=noise_channels(model))
    return OnnxExportResult(out, config.precision, config.io, config.opset, parity, time.perf_counter() - start)


def parity_reference(model: torch.nn.Module, seed: int = 0) -> tuple[torch.nn.Module, dict]:
    """(one-input reference module, ONNX Runtime feeds for the style inputs) for a parity check."""
    examples = style_examples(model, seed)
    if not examples:
        return model, {}
    reference = AdaINStyled(model, float(examples[2]))
    reference.set_stats(examples[0], examples[1])
    return reference, {name: t.numpy() for name, t in zip(STYLE_INPUTS, examples)}


def read_metadata(path: str | Path) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file."""
    return {p.key: p.value for p in load_onnx(path).metadata_props}


def ort_runner(path: Path, feeds: dict | None = None):
    """A CPU ONNX Runtime session as a torch-in, torch-out function (for parity checks);
    ``feeds`` gives the values of any further inputs (an AdaIN graph's style)."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise BackendUnavailableError("the parity check needs onnxruntime; pip install onnxruntime, or pass --no-check") from None
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name

    def run(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(session.run(None, {input_name: x.numpy(), **(feeds or {})})[0])

    return run


