"""PyTorch backend: eager on CPU; on CUDA fp16/bf16 with channels_last."""

from __future__ import annotations

from pathlib import Path

import torch

from ..checkpoint import load_checkpoint
from ..engine import BaseEngine, EngineOptions, resolve_device
from ..frames import to_float, to_uint8
from ..nets import output_scale

_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


class TorchEngine(BaseEngine):
    backend = "torch"

    def __init__(self, model: torch.nn.Module, device: torch.device, precision: str, scale: int):
        self.device = device
        self.precision = precision
        self.scale = scale
        self.dtype = _DTYPES[precision]
        memory_format = torch.channels_last if device.type == "cuda" else torch.contiguous_format
        self.memory_format = memory_format
        self.model = model.to(device=device, dtype=self.dtype, memory_format=memory_format).eval()

    @torch.inference_mode()
    def _run(self, frames: torch.Tensor) -> torch.Tensor:
        x = to_float(frames.to(self.device, non_blocking=True), self.dtype)
        x = x.contiguous(memory_format=self.memory_format)
        return to_uint8(self.model(x))


def open(path: Path, options: EngineOptions) -> TorchEngine:
    device = resolve_device(options.device)
    precision = options.precision
    if precision == "auto":
        # fp16 halves memory traffic on GPUs; CPUs have no fast fp16 convs.
        precision = "fp16" if device.type == "cuda" else "fp32"
    ckpt = load_checkpoint(path)
    return TorchEngine(ckpt.model, device, precision, output_scale(ckpt.config))
