"""The deployable graph of a checkpoint, below both the exporters and the runtime: the module
that export traces (precision with InstanceNorm kept in fp32, float or uint8 frame I/O), its example
inputs and dynamic dimensions, the metadata written beside it, and its ONNX graph. The tensorrt
backend turns a checkpoint into an engine through ``cached_onnx``; ``rtstyle export onnx`` adds the
output checks and the parity check against PyTorch on top.

Precision: an fp16/bf16 module keeps every InstanceNorm in fp32. Its mean/variance reductions
over a whole feature map overflow or lose too much precision in fp16, and TensorRT's strongly
typed mode and ONNX Runtime run a graph in exactly the types it names, so the casts have to be
in the graph (``FP32Norm`` puts them there).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import warnings
from pathlib import Path
from typing import Iterator

import torch
from torch import nn

from ..checkpoint import Checkpoint, load_checkpoint
from ..conditioning import StyleChoice, bind_style
from ..dtypes import TORCH_DTYPES
from ..errors import ExportError, InputError
from ..frames import to_float, to_uint8
from ..fsutil import atomic_path, cache_dir, sha256_file
from ..graph_format import (
    IO_KINDS,
    LAYOUTS,
    META_CHECKPOINT,
    META_IO,
    META_LAYOUT,
    META_PRECISION,
    META_SCALE,
    META_TASK,
)
from ..nets import MIN_SIDE, AdaINNet, TextureSynthNet, output_scale
from ..textutil import first_line

# TensorRT 10 and ONNX Runtime >= 1.14 both read opset 18; newer opsets add nothing these nets use.
OPSET = 18
MIN_OPSET = 17
INPUT_NAME = {"float": "images", "uint8": "frames"}
NOISE_INPUT = "noise"  # a texture generator's one input
STYLE_INPUTS = ("style_mean", "style_std", "alpha")  # an unbound AdaIN graph's further inputs
META_STYLE_INPUTS = "rtstyle.style_inputs"
OUTPUT_NAME = "output"


class FP32Norm(nn.Module):
    """Runs the wrapped normalisation in fp32 whatever the dtype around it."""

    def __init__(self, norm: nn.Module):
        super().__init__()
        self.norm = norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.float()).to(x.dtype)


class FrameIO(nn.Module):
    """uint8 NHWC frames in and out, so pre- and post-processing run inside the engine.

    The division by 255 happens in fp32 before the cast to the compute dtype.
    """

    def __init__(self, model: nn.Module, dtype: torch.dtype):
        super().__init__()
        self.model = model
        self.dtype = dtype

    def forward(self, frames: torch.Tensor, *style: torch.Tensor) -> torch.Tensor:
        # ``style``: an AdaIN graph's style-statistics inputs, passed through unchanged.
        return to_uint8(self.model(to_float(frames).to(self.dtype), *style))


class NoiseIO(nn.Module):
    """A texture generator with uint8 NHWC output; its noise input stays float (fp32)."""

    def __init__(self, model: nn.Module, dtype: torch.dtype):
        super().__init__()
        self.model = model
        self.dtype = dtype

    def forward(self, noise: torch.Tensor) -> torch.Tensor:
        return to_uint8(self.model(noise.to(self.dtype)))


def _keep_norms_fp32(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, nn.InstanceNorm2d):
            setattr(module, name, FP32Norm(child))
        else:
            _keep_norms_fp32(child)


def deployable(model: nn.Module, precision: str, io: str) -> nn.Module:
    """A copy of ``model`` in ``precision`` (norms in fp32) with ``io`` ("float"/"uint8")."""
    if precision not in TORCH_DTYPES:
        raise InputError(f"unknown precision {precision!r}; choose from {list(TORCH_DTYPES)}")
    if io not in IO_KINDS:
        raise InputError(f"unknown io {io!r}; choose from {list(IO_KINDS)}")
    dtype = TORCH_DTYPES[precision]
    net = copy.deepcopy(model).eval().float()
    if dtype != torch.float32:
        _keep_norms_fp32(net)
        net.to(dtype)
        for module in net.modules():
            if isinstance(module, FP32Norm):
                module.norm.float()
    return FrameIO(net, dtype).eval() if io == "uint8" else net


def noise_deployable(model: nn.Module, precision: str, io: str) -> nn.Module:
    """``deployable`` for a texture generator: noise in (fp32 with uint8 io), textures out."""
    net = deployable(model, precision, "float")
    return NoiseIO(net, TORCH_DTYPES[precision]).eval() if io == "uint8" else net


def example_noise(channels: int, io: str, precision: str) -> torch.Tensor:
    """A texture generator's trace input, off every stride like ``example_input``'s."""
    noise = torch.randn(2, channels, 2 * MIN_SIDE + 1, 3 * MIN_SIDE - 1)
    return noise if io == "uint8" else noise.to(TORCH_DTYPES[precision])


def example_input(io: str, precision: str, device: torch.device | str = "cpu") -> torch.Tensor:
    """A small batch to trace with. Its sizes are not multiples of the style net's stride, so
    nothing in the trace can assume the internal padding is empty."""
    n, h, w = 2, 2 * MIN_SIDE + 1, 3 * MIN_SIDE - 1
    if io == "uint8":
        return torch.randint(0, 256, (n, h, w, 3), dtype=torch.uint8, device=device)
    return torch.rand(n, 3, h, w, device=device).to(TORCH_DTYPES[precision])


def dynamic_shapes(io: str) -> tuple[dict[int, torch.export.Dim]]:
    """Batch, height and width are dynamic; sides down to the networks' minimum."""
    batch = torch.export.Dim("batch", min=1)
    height = torch.export.Dim("height", min=MIN_SIDE)
    width = torch.export.Dim("width", min=MIN_SIDE)
    if io == "uint8":
        return ({0: batch, 1: height, 2: width},)
    return ({0: batch, 2: height, 3: width},)


def deploy_metadata(ckpt: Checkpoint, precision: str, io: str) -> dict[str, str]:
    """String metadata for the exported file: the checkpoint's own plus how to feed the graph."""
    return {
        META_CHECKPOINT: json.dumps(ckpt.meta, sort_keys=True),
        META_TASK: ckpt.task,
        META_SCALE: str(output_scale(ckpt.config)),
        META_IO: io,
        META_LAYOUT: LAYOUTS[io],
        META_PRECISION: precision,
    }


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


def noise_channels(model: torch.nn.Module) -> int | None:
    """The noise channels of a texture generator's input; None for image -> image models."""
    return model.config.noise_channels if isinstance(model, TextureSynthNet) else None


def trace_onnx(model: torch.nn.Module, precision: str, io: str, opset: int = OPSET, label: str = "model"):
    """The ``onnx.ModelProto`` of ``model`` deployed at ``precision`` with ``io`` frames."""
    channels = noise_channels(model)
    if channels is None:
        module = deployable(model, precision, io)
        example, dims, input_name = example_input(io, precision), dynamic_shapes(io), INPUT_NAME[io]
    else:
        module = noise_deployable(model, precision, io)
        example = example_noise(channels, io, precision)
        dims, input_name = dynamic_shapes("float"), NOISE_INPUT  # NCHW whatever the output's layout
    style = style_examples(model)  # fp32 whatever the precision: AdaIN computes in fp32
    try:
        with quiet_tracing():
            program = torch.onnx.export(
                module,
                (example, *style),
                dynamo=True,
                dynamic_shapes=(*dims, *[None] * len(style)),
                opset_version=opset,
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


def check_graph(proto, label: str) -> None:
    import onnx

    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"the ONNX graph exported from {label} is invalid: {first_line(exc)}") from exc


@contextlib.contextmanager
def quiet_tracing() -> Iterator[None]:
    """Silence tracer chatter that says nothing about this model (optional torchvision ops the
    ONNX exporter skips, torch-internal deprecations); real errors still raise."""
    registry_log = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registry_log.level
    registry_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning, module="copyreg")
            warnings.filterwarnings("ignore", message=r".*isinstance\(treespec", category=FutureWarning)
            yield
    finally:
        registry_log.setLevel(level)


def onnx_proto(ckpt: Checkpoint, precision: str, io: str, style: StyleChoice, label: str, opset: int = OPSET):
    """The checked ``onnx.ModelProto`` of ``ckpt`` with its metadata, and the module it traced."""
    model = export_model(ckpt, style, label)
    proto = trace_onnx(model, precision, io, opset, label=label)
    metadata = deploy_metadata(ckpt, precision, io)
    if isinstance(model, AdaINNet):
        metadata[META_STYLE_INPUTS] = ",".join(STYLE_INPUTS)
    set_metadata(proto, metadata)
    check_graph(proto, label)
    return proto, model


def cached_onnx(checkpoint: Path, precision: str, io: str) -> Path:
    """``checkpoint`` as an ONNX model (its style trained in), traced once into the cache: what a
    runtime that builds from ONNX (the tensorrt backend) opens a checkpoint with."""
    import onnx

    digest = hashlib.sha256(f"{sha256_file(checkpoint)}-{precision}-{io}-{OPSET}".encode()).hexdigest()[:32]
    path = cache_dir() / "onnx" / f"{digest}.onnx"
    if not path.is_file():
        proto, _ = onnx_proto(load_checkpoint(checkpoint), precision, io, StyleChoice(), checkpoint.name)
        with atomic_path(path) as tmp:
            onnx.save_model(proto, str(tmp))
    return path
