"""What every exporter shares on top of the deployable graph (``rtstyle.backends.onnx_graph``,
re-exported here): output-path checks and the parity check against the fp32 PyTorch model.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from rtstyle.backends.onnx_graph import (  # noqa: F401 - the deployable graph, re-exported for the exporters
    FP32Norm,
    FrameIO,
    NoiseIO,
    deploy_metadata,
    deployable,
    dynamic_shapes,
    example_input,
    example_noise,
    noise_deployable,
    quiet_tracing,
)
from rtstyle.dtypes import TORCH_DTYPES
from rtstyle.errors import ExportError, InputError, OutputError
from rtstyle.frames import to_float
from rtstyle.nets import MIN_SIDE
from rtstyle.outputs import OutputPolicy
from rtstyle.textutil import first_line  # noqa: F401 - re-exported

DTYPES = TORCH_DTYPES  # rtstyle/dtypes.py
# Max abs error against fp32 PyTorch on the [0, 1] scale.
TOLERANCES = {"fp32": 1e-3, "fp16": 1e-2, "bf16": 3e-2}
# A uint8 output is rounded: it may sit half a step from the float reference.
UINT8_ROUNDING = 0.5 / 255


def parity_tolerance(precision: str, io: str) -> float:
    return TOLERANCES[precision] + (UINT8_ROUNDING if io == "uint8" else 0.0)


def check_choice(what: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise InputError(f"unknown {what} {value!r}; choose from {list(allowed)}")


def check_output_path(out: Path, overwrite: bool, source: Path, suffixes: tuple[str, ...]) -> None:
    """One-line errors for an output that would clobber a file or the input, or is misnamed."""
    if out.suffix.lower() not in suffixes:
        raise OutputError(f"output {out} should end in {' or '.join(suffixes)}")
    OutputPolicy(overwrite=overwrite).check(out, [source])  # the one output rule (rtstyle.outputs)


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


