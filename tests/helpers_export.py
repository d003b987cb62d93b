"""Shared exports for the export/engine tests: each (net, precision, io) ONNX model is exported
once per session, since a dynamo export takes seconds on the CPU."""

from __future__ import annotations

from pathlib import Path

import torch

from rtstyle.checkpoint import save_checkpoint
from rtstyle.export.onnx_export import OnnxExportConfig, OnnxExportResult, export_onnx
from rtstyle.nets import build_model
from tests.conftest import TINY_SR, TINY_STYLE

CONFIGS = {"style": TINY_STYLE, "sr": TINY_SR}
_EXPORTS: dict[tuple[str, bool, str], OnnxExportResult] = {}


def tiny_checkpoint(root: Path, arch: str) -> Path:
    path = root / f"tiny_{arch}.safetensors"
    if not path.is_file():
        torch.manual_seed(0)
        model = build_model(CONFIGS[arch]).eval()
        save_checkpoint(path, model, {"task": arch, "name": f"tiny_{arch}", "train": {"iterations": 0}})
    return path


def exported(tmp_path_factory, arch: str, fp16: bool, io: str) -> tuple[Path, OnnxExportResult]:
    """(checkpoint, export result) for a tiny net, exported with the default parity check."""
    root = tmp_path_factory.getbasetemp() / "shared-exports"
    root.mkdir(exist_ok=True)
    ckpt = tiny_checkpoint(root, arch)
    key = (arch, fp16, io)
    if key not in _EXPORTS:
        out = root / f"{arch}-{'fp16' if fp16 else 'fp32'}-{io}.onnx"
        _EXPORTS[key] = export_onnx(ckpt, out, OnnxExportConfig(fp16=fp16, io=io))
    return ckpt, _EXPORTS[key]


def frames(n: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, h, w, 3), dtype=torch.uint8, generator=generator)
