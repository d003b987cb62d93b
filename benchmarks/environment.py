"""The machine a benchmark ran on: CPU, memory, load, device, library versions, and which
precisions each backend gets by default there. Every result file carries these."""

from __future__ import annotations

import contextlib
import importlib
import os
import platform
from typing import Any

import numpy as np
import torch

from rtstyle import __version__
from rtstyle.sysinfo import busy_cores, cpu_flags, cpu_has_native_bf16, cpu_model

# The instruction sets that decide CPU speed here (bf16 and the matrix units): named in every report.
SPEED_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_tile", "avx512_fp16")


def _memory_bytes() -> int | None:
    with contextlib.suppress(ValueError, OSError, AttributeError):
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return None


def load_average() -> list[float] | None:
    with contextlib.suppress(OSError, AttributeError):
        return [round(x, 2) for x in os.getloadavg()]
    return None


def machine_line() -> str:
    """CPU model, core count and load average in one line, for the smaller benchmark scripts."""
    return f"{cpu_model()}, {os.cpu_count()} cores, load {load_average()}"


def machine_info() -> dict[str, Any]:
    return {
        "cpu": cpu_model(),
        "cpu_flags": [f for f in SPEED_FLAGS if f in cpu_flags()],
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "memory_bytes": _memory_bytes(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "load_average_before": load_average(),
        "busy_cores_before": busy_cores(),
    }


def device_info(device: torch.device) -> dict[str, Any]:
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return {
            "type": "cuda", "name": props.name, "memory_bytes": props.total_memory,
            "capability": f"{props.major}.{props.minor}", "multiprocessors": props.multi_processor_count,
        }
    return {"type": "cpu", "name": cpu_model()}


def _version(module: str) -> str | None:
    try:
        return importlib.import_module(module).__version__
    except ImportError:
        return None


def versions() -> dict[str, Any]:
    out: dict[str, Any] = {
        "rtstyle": __version__, "torch": torch.__version__, "numpy": np.__version__,
        "onnxruntime": _version("onnxruntime"), "av": _version("av"), "tensorrt": _version("tensorrt"),
        "openvino": _version("openvino"),
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
    }
    with contextlib.suppress(ImportError, AttributeError, KeyError):
        import av

        out["ffmpeg_libavcodec"] = ".".join(map(str, av.library_versions["libavcodec"]))
    return out


def default_precisions(backend: str, device: torch.device) -> list[str]:
    """What each backend is measured in: fp16/bf16 on CUDA; fp32 on CPU, plus bf16 for torch and
    OpenVINO when the CPU has native bf16 instructions (without them bf16 is emulated and only slower)."""
    if device.type == "cuda":
        if backend == "openvino":
            return []  # OpenVINO drives Intel GPUs (--device GPU), not CUDA ones
        return ["fp16", "bf16"] if backend in ("torch", "aoti") else ["fp16"]
    native_bf16 = cpu_has_native_bf16()
    return ["fp32", "bf16"] if backend in ("torch", "openvino") and native_bf16 else ["fp32"]


