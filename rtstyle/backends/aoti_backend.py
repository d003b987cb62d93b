"""AOTInductor backend: runs a ``.pt2`` package from ``rtstyle export aoti`` with no Python
model code. The package's metadata names its device, precision, I/O kind and scale."""

from __future__ import annotations

from pathlib import Path

import torch

from ..dtypes import TORCH_DTYPES
from ..engine import Engine, EngineOptions, refuse_style
from ..errors import BackendUnavailableError, CheckpointError, InputError
from ..graph_format import IO_KINDS, META_DEVICE, META_IO, META_PRECISION, META_SCALE, GraphIO
from ..pt2_archive import check_pt2_entries, load_pt2
from ..textutil import first_line
from ..trust import check_trusted


class AotiEngine(Engine):
    backend = "aoti"

    def __init__(self, package, device: torch.device, io: GraphIO, precision: str, scale: int, reason: str):
        super().__init__(device=device, precision=precision, scale=scale, reason=reason)
        self.package = package
        self.io = io

    @torch.inference_mode()
    def _run(self, frames: torch.Tensor) -> torch.Tensor:
        x = self.io.prepare(frames.to(self.device, non_blocking=True))
        return self.io.finish(self.package(x))

    def describe(self) -> str:
        return f"aoti on {self.device} ({self.precision}, {self.io.kind} io)"


def open(path: Path, options: EngineOptions, reason: str) -> AotiEngine:
    refuse_style(options.style, "aoti", path.name)
    # Issue 15: a package is native code. Entry names and metadata are read (pure Python), then
    # the trust list is checked, before anything is extracted or loaded; the loader unpacks into
    # a private folder that is removed afterwards.
    check_pt2_entries(path)
    device = _device(path, options.device)
    check_trusted(path, options.trust_model, "an AOTInductor package")
    try:
        from torch._inductor import aoti_load_package  # noqa: F401 - availability check
    except ImportError:
        raise BackendUnavailableError(f"torch {torch.__version__} cannot load AOTInductor packages; pip install 'torch>=2.6'") from None
    try:
        package = load_pt2(path, device_index=device.index if device.index is not None else -1)
    except Exception as exc:  # noqa: BLE001 - the loader raises RuntimeError with C++ text
        raise CheckpointError(f"cannot load AOTInductor package {path}: {first_line(exc)}") from None
    meta = package.get_metadata()
    io_kind, precision = meta.get(META_IO), meta.get(META_PRECISION)
    if io_kind not in IO_KINDS or precision not in TORCH_DTYPES or META_SCALE not in meta:
        raise CheckpointError(f"{path} is an AOTInductor package but not one from `rtstyle export aoti` (no rtstyle metadata)")
    if options.precision not in ("auto", precision):
        raise InputError(f"{path.name} was compiled for {precision}; pass --precision auto or re-export with --precision {options.precision}")
    io = GraphIO(io_kind, TORCH_DTYPES[precision])
    return AotiEngine(package, device, io, precision, int(meta[META_SCALE]), reason)


def _device(path: Path, requested: str) -> torch.device:
    """The package's own device; asking for another one is an error, not a silent move."""
    compiled_for = _package_device(path)
    device = torch.device(compiled_for if requested == "auto" else requested)
    if device.type != compiled_for:
        raise InputError(
            f"{path.name} was compiled for {compiled_for} and cannot run on {device.type}; "
            f"pass --device {compiled_for} or re-export with `rtstyle export aoti --device {device.type}`"
        )
    if device.type == "cuda" and not torch.cuda.is_available():
        raise BackendUnavailableError(f"{path.name} was compiled for CUDA but no CUDA GPU is available here")
    return device


def _package_device(path: Path) -> str:
    """Read the device from the package's metadata without loading its kernels."""
    import json
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            for name in archive.namelist():
                if name.endswith("_metadata.json") and "/aotinductor/" in name:
                    meta = json.loads(archive.read(name))
                    return meta.get(META_DEVICE) or meta.get("AOTI_DEVICE_KEY", "cpu")
    except (zipfile.BadZipFile, OSError, json.JSONDecodeError):
        raise CheckpointError(f"{path} is not an AOTInductor package (.pt2 zip archive)") from None
    raise CheckpointError(f"{path} holds no AOTInductor model")
