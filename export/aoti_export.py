"""``rtstyle export aoti``: checkpoint -> AOTInductor package (.pt2).

The package holds compiled kernels and weights for one device (CPU or CUDA) and loads with
``torch._inductor.aoti_load_package`` alone: no rtstyle network code, no Python tracing.
Batch, height and width stay dynamic. By default the package takes and returns uint8 NHWC
frames, so the uint8<->float conversions fuse into its first and last kernels.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from rtstyle.checkpoint import load_checkpoint
from rtstyle.engine import DEVICES, resolve_device
from rtstyle.errors import ExportError, InputError
from rtstyle.graph_format import IO_KINDS, META_DEVICE
from rtstyle.models import resolve_model
from rtstyle.outputs import OutputPolicy
from rtstyle.pt2_archive import load_pt2
from rtstyle.trust import record_trusted

from .deploy import (
    DTYPES,
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

PRECISIONS = ("auto", *DTYPES)


@dataclass(frozen=True)
class AotiExportConfig:
    device: str = "auto"  # the package runs only on the device it was compiled for
    precision: str = "auto"  # fp16 on CUDA, fp32 on the CPU
    io: str = "uint8"  # uint8 NHWC frames in/out, or "float" NCHW [0, 1]
    check: bool = True  # compare the compiled package with PyTorch before writing
    check_count: int = 2
    seed: int = 0
    overwrite: bool = False

    def __post_init__(self) -> None:
        check_choice("io", self.io, IO_KINDS)
        check_choice("precision", self.precision, PRECISIONS)
        if self.device not in DEVICES and not self.device.startswith("cuda:"):
            raise InputError(f"unknown device {self.device!r}; choose from {list(DEVICES)} or cuda:N")

    def resolved(self) -> tuple[torch.device, str]:
        device = resolve_device(self.device)
        precision = self.precision
        if precision == "auto":
            precision = "fp16" if device.type == "cuda" else "fp32"
        if device.type == "cpu" and precision == "fp16":
            raise InputError("precision 'fp16' is not supported for CPU packages (no fast fp16 kernels); choose fp32 or bf16")
        return device, precision


@dataclass(frozen=True)
class AotiExportResult:
    path: Path
    device: str
    precision: str
    io: str
    parity: list[ParityResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def tolerance(self) -> float:
        return parity_tolerance(self.precision, self.io)


def export_aoti(checkpoint: str | Path, out: str | Path, config: AotiExportConfig = AotiExportConfig()) -> AotiExportResult:
    """Compile ``checkpoint`` (a path or bundled model name) into the package ``out`` (.pt2)."""
    start = time.perf_counter()
    device, precision = config.resolved()
    source = resolve_model(checkpoint)
    out = Path(out)
    check_output_path(out, config.overwrite, source, (".pt2",))
    ckpt = load_checkpoint(source)
    if ckpt.config.arch in ("adain", "stylebank", "texture_synth"):
        raise InputError(f"{source.name} is a {ckpt.config.arch} model: AOTInductor export takes one-style video models; "
                         "use `rtstyle export onnx` (--style-image / --style-index for multi-style models)")
    module = deployable(ckpt.model, precision, config.io).to(device)
    example = example_input(config.io, precision, device)
    metadata = {**deploy_metadata(ckpt, precision, config.io), META_DEVICE: device.type}
    try:
        with torch.inference_mode(), quiet_tracing():
            program = torch.export.export(module, (example,), dynamic_shapes=dynamic_shapes(config.io))
    except Exception as exc:  # noqa: BLE001 - torch.export raises many types; keep the cause chained
        raise ExportError(f"torch.export could not trace {source.name}: {exc.__class__.__name__}: {first_line(exc)}") from exc

    parity: list[ParityResult] = []
    with OutputPolicy(overwrite=config.overwrite).writing(out, [source]) as tmp:
        try:
            with quiet_tracing():
                torch._inductor.aoti_compile_and_package(
                    program, package_path=str(tmp), inductor_configs={"aot_inductor.metadata": metadata}
                )
        except Exception as exc:  # noqa: BLE001 - compiler errors (C++ toolchain, Triton) vary
            raise ExportError(f"AOTInductor could not compile {source.name}: {exc.__class__.__name__}: {first_line(exc)}") from exc
        if config.check:
            package = load_pt2(tmp)  # our own fresh package, unpacked privately

            def run(x: torch.Tensor) -> torch.Tensor:
                return package(x.to(device)).cpu()

            shapes = parity_shapes(config.check_count, config.seed)
            parity = check_parity(run, ckpt.model, config.io, precision, shapes, config.seed, f"AOTInductor package of {source.name}")
        record_trusted(tmp, out.name)  # rtstyle.trust: hashed before the rename, so what we vouch for is what we wrote
    return AotiExportResult(out, device.type, precision, config.io, parity, time.perf_counter() - start)
