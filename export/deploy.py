"""What every exporter shares: the deployable module (precision, I/O kind), its example input
and dynamic dimensions, the metadata written beside the graph, and the parity check against
the fp32 PyTorch model.

Precision: an fp16/bf16 module keeps every InstanceNorm in fp32. Its mean/variance reductions
over a whole feature map overflow or lose too much precision in fp16, and TensorRT's strongly
typed mode and ONNX Runtime run a graph in exactly the types it names, so the casts have to be
in the graph (``FP32Norm`` puts them there).
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import random
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch
from torch import nn

from rtstyle.checkpoint import Checkpoint
from rtstyle.dtypes import TORCH_DTYPES
from rtstyle.errors import ExportError, InputError, OutputError
from rtstyle.frames import to_float, to_uint8
from rtstyle.graph_format import (
    IO_KINDS,
    LAYOUTS,
    META_CHECKPOINT,
    META_IO,
    META_LAYOUT,
    META_PRECISION,
    META_SCALE,
    META_TASK,
)
from rtstyle.nets import MIN_SIDE, output_scale

DTYPES = TORCH_DTYPES  # rtstyle/dtypes.py
# Max abs error against fp32 PyTorch on the [0, 1] scale.
TOLERANCES = {"fp32": 1e-3, "fp16": 1e-2, "bf16": 3e-2}
# A uint8 output is rounded: it may sit half a step from the float reference.
UINT8_ROUNDING = 0.5 / 255


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


def first_line(exc: BaseException) -> str:
    """An exception's first message line: tracers and compilers raise pages of context."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else exc.__class__.__name__


def parity_tolerance(precision: str, io: str) -> float:
    return TOLERANCES[precision] + (UINT8_ROUNDING if io == "uint8" else 0.0)


def check_choice(what: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise InputError(f"unknown {what} {value!r}; choose from {list(allowed)}")


def _keep_norms_fp32(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, nn.InstanceNorm2d):
            setattr(module, name, FP32Norm(child))
        else:
            _keep_norms_fp32(child)


def deployable(model: nn.Module, precision: str, io: str) -> nn.Module:
    """A copy of ``model`` in ``precision`` (norms in fp32) with ``io`` ("float"/"uint8")."""
    check_choice("precision", precision, tuple(DTYPES))
    check_choice("io", io, IO_KINDS)
    dtype = DTYPES[precision]
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
    return NoiseIO(net, DTYPES[precision]).eval() if io == "uint8" else net


def example_noise(channels: int, io: str, precision: str) -> torch.Tensor:
    """A texture generator's trace input, off every stride like ``example_input``'s."""
    noise = torch.randn(2, channels, 2 * MIN_SIDE + 1, 3 * MIN_SIDE - 1)
    return noise if io == "uint8" else noise.to(DTYPES[precision])


def example_input(io: str, precision: str, device: torch.device | str = "cpu") -> torch.Tensor:
    """A small batch to trace with. Its sizes are not multiples of the style net's stride, so
    nothing in the trace can assume the internal padding is empty."""
    n, h, w = 2, 2 * MIN_SIDE + 1, 3 * MIN_SIDE - 1
    if io == "uint8":
        return torch.randint(0, 256, (n, h, w, 3), dtype=torch.uint8, device=device)
    return torch.rand(n, 3, h, w, device=device).to(DTYPES[precision])


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


def check_output_path(out: Path, overwrite: bool, source: Path, suffixes: tuple[str, ...]) -> None:
    """One-line errors for an output that would clobber a file or the input, or is misnamed."""
    if out.suffix.lower() not in suffixes:
        raise OutputError(f"output {out} should end in {' or '.join(suffixes)}")
    if out.resolve() == source.resolve():
        raise OutputError(f"output {out} is the input file; choose another path")
    if out.exists() and not overwrite:
        raise OutputError(f"{out} exists; pass -y/--overwrite to replace it")
    if out.is_dir():
        raise OutputError(f"output {out} is a folder; give a file path")


@dataclass(frozen=True)
class ParityResult:
    """One parity probe: the input shape and the max abs error on the [0, 1] scale."""

    shape: tuple[int, ...]
    max_abs_error: float

    def describe(self) -> str:
        return f"{'x'.join(map(str, self.shape))}: {self.max_abs_error:.2e}"


def parity_shapes(count: int, seed: int, max_side: int = 4 * MIN_SIDE) -> list[tuple[int, int, int]]:
    """``count`` random (batch, height, width) probes, batch 2 and 1 in turn; the first has odd
    sides (off every stride)."""
    rng = random.Random(seed)
    shapes = []
    for i in range(count):
        h, w = rng.randrange(MIN_SIDE, max_side), rng.randrange(MIN_SIDE, max_side)
        if i == 0:
            h, w = h | 1, w | 1
        shapes.append((2 - i % 2, h, w))
    return shapes


def check_parity(
    run: Callable[[torch.Tensor], torch.Tensor],
    reference: nn.Module,
    io: str,
    precision: str,
    shapes: list[tuple[int, int, int]],
    seed: int = 0,
    label: str = "exported model",
    noise_channels: int | None = None,
) -> list[ParityResult]:
    """Run ``run`` (the exported graph, fed in its own I/O kind and dtype, on CPU tensors)
    against the fp32 ``reference`` on random inputs; raise ExportError past the tolerance.
    ``noise_channels``: the models are texture generators fed (N, noise_channels, H, W) noise."""
    reference = reference.float().eval()
    tolerance = parity_tolerance(precision, io)
    generator = torch.Generator().manual_seed(seed)
    results = []
    for n, h, w in shapes:
        if noise_channels is None:
            frames = torch.randint(0, 256, (n, h, w, 3), dtype=torch.uint8, generator=generator)
            images = to_float(frames)
            graph_input = frames if io == "uint8" else images.to(DTYPES[precision])
        else:
            images = torch.randn(n, noise_channels, h, w, generator=generator)
            graph_input = images if io == "uint8" else images.to(DTYPES[precision])
        with torch.inference_mode():
            expected = reference(images)
            got = run(graph_input)
            got = to_float(got) if io == "uint8" else got.float()
        if got.shape != expected.shape:
            raise ExportError(f"{label} returned shape {tuple(got.shape)} for input {n}x{h}x{w}, PyTorch {tuple(expected.shape)}")
        results.append(ParityResult((n, h, w), (got - expected).abs().max().item()))
    worst = max(results, key=lambda r: r.max_abs_error)
    if not worst.max_abs_error <= tolerance:  # also catches NaN
        raise ExportError(
            f"{label} fails parity with PyTorch: max abs error {worst.max_abs_error:.3g} at {worst.describe().split(':')[0]} "
            f"exceeds {tolerance:.3g} ({precision}, {io} io); not written"
        )
    return results


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
