"""``rtstyle export onnx``: checkpoint -> ONNX with dynamic batch/height/width.

Uses torch's dynamo exporter at a pinned opset. ``fp16`` exports a half-precision graph whose
InstanceNorms run in fp32 between explicit casts (see ``deploy.py``); ``io="uint8"`` takes and
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

from rtstyle.checkpoint import Checkpoint, load_checkpoint
from rtstyle.conditioning import AdaINStyled, StyleChoice, bind_style
from rtstyle.errors import BackendUnavailableError, ExportError, InputError
from rtstyle.fsutil import atomic_path
from rtstyle.graph_format import IO_KINDS, load_onnx
from rtstyle.models import resolve_model
from rtstyle.nets import AdaINNet, TextureSynthNet

from .deploy import (
    ParityResult,
    check_choice,
    check_output_path,
    check_parity,
    deploy_metadata,
    deployable,
    dynamic_shapes,
    example_input,
    example_noise,
    first_line,
    noise_deployable,
    parity_shapes,
    parity_tolerance,
    quiet_tracing,
)

# TensorRT 10 and ONNX Runtime >= 1.14 both read opset 18; newer opsets add nothing these nets use.
OPSET = 18
MIN_OPSET = 17
INPUT_NAME = {"float": "images", "uint8": "frames"}
NOISE_INPUT = "noise"  # a texture generator's one input
STYLE_INPUTS = ("style_mean", "style_std", "alpha")  # an unbound AdaIN graph's further inputs
META_STYLE_INPUTS = "rtstyle.style_inputs"
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
    ckpt = load_checkpoint(source)
    model = export_model(ckpt, config.style, source.name)
    proto = trace_onnx(model, config, label=source.name)
    metadata = deploy_metadata(ckpt, config.precision, config.io)
    if isinstance(model, AdaINNet):
        metadata[META_STYLE_INPUTS] = ",".join(STYLE_INPUTS)
    set_metadata(proto, metadata)
    _check_graph(proto, source.name)

    import onnx

    parity: list[ParityResult] = []
    with atomic_path(out) as tmp:
        onnx.save_model(proto, str(tmp))
        if config.check:
            reference, feeds = parity_reference(model, config.seed)
            runner = ort_runner(tmp, feeds) if feeds else ort_runner(tmp)
            shapes = parity_shapes(config.check_count, config.seed)
            parity = check_parity(runner, reference, config.io, config.precision, shapes, config.seed,
                                  f"ONNX export of {source.name}", noise_channels=noise_channels(model))
    return OnnxExportResult(out, config.precision, config.io, config.opset, parity, time.perf_counter() - start)


def export_model(ckpt: Checkpoint, style: StyleChoice, label: str) -> torch.nn.Module:
    """The module to export: the net with ``style`` bound, except an AdaIN net given no style
    image, which keeps its style inputs, and a texture generator, which takes noise."""
    if isinstance(ckpt.model, TextureSynthNet):
        if style.given:
            raise InputError(f"{label} is a texture generator: it takes no --style-image/--alpha/--style-index")
        return ckpt.model
    if isinstance(ckpt.model, AdaINNet) and style.style_image is None:
        if style.alpha is not None:
            raise InputError("--alpha needs --style-image when exporting AdaIN; without one, alpha is a graph input")
        return ckpt.model
    return bind_style(ckpt, style, label)


def style_examples(model: torch.nn.Module, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Example values of the graph's style inputs (none unless ``model`` is an unbound AdaIN net).

    Plausible relu4_1 statistics (means ~0..2, stds ~0.1..3) and a partial alpha, so a parity
    check exercises the style path and the blend."""
    if not isinstance(model, AdaINNet):
        return ()
    g = torch.Generator().manual_seed(seed)
    mean = 2 * torch.rand(1, 512, generator=g)
    std = 0.1 + 3 * torch.rand(1, 512, generator=g)
    return mean, std, torch.tensor([0.8])


def parity_reference(model: torch.nn.Module, seed: int = 0) -> tuple[torch.nn.Module, dict]:
    """(one-input reference module, ONNX Runtime feeds for the style inputs) for a parity check."""
    examples = style_examples(model, seed)
    if not examples:
        return model, {}
    reference = AdaINStyled(model, float(examples[2]))
    reference.set_stats(examples[0], examples[1])
    return reference, {name: t.numpy() for name, t in zip(STYLE_INPUTS, examples)}


def noise_channels(model: torch.nn.Module) -> int | None:
    """The noise channels of a texture generator's input; None for image -> image models."""
    return model.config.noise_channels if isinstance(model, TextureSynthNet) else None


def trace_onnx(model: torch.nn.Module, config: OnnxExportConfig, label: str = "model"):
    """The ``onnx.ModelProto`` of ``model`` deployed at ``config``'s precision and I/O kind."""
    channels = noise_channels(model)
    if channels is None:
        module = deployable(model, config.precision, config.io)
        example, dims, input_name = example_input(config.io, config.precision), dynamic_shapes(config.io), INPUT_NAME[config.io]
    else:
        module = noise_deployable(model, config.precision, config.io)
        example = example_noise(channels, config.io, config.precision)
        dims, input_name = dynamic_shapes("float"), NOISE_INPUT  # NCHW whatever the output's layout
    style = style_examples(model)  # fp32 whatever the precision: AdaIN computes in fp32
    try:
        with quiet_tracing():
            program = torch.onnx.export(
                module,
                (example, *style),
                dynamo=True,
                dynamic_shapes=(*dims, *[None] * len(style)),
                opset_version=config.opset,
                input_names=[input_name, *STYLE_INPUTS[:len(style)]],
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


def _check_graph(proto, label: str) -> None:
    import onnx

    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"the ONNX graph exported from {label} is invalid: {first_line(exc)}") from exc
