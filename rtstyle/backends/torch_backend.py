"""PyTorch backend.

* CPU: eager fp32, or bf16 autocast (``precision="bf16"``); CPUs have no fast fp16 convs.
* CUDA: fp16 (default) or bf16 weights, channels_last, and one CUDA graph per input shape
  (uint8 frames in -> uint8 frames out, conversions included), kept in a small LRU. Optional
  ``torch.compile`` before capture.

``EngineOptions.extra`` keys: ``cuda_graphs`` (bool, default True), ``graph_cache`` (shapes
kept captured, default 4), ``compile`` (False, True or a torch.compile mode), and the style
choice of multi-style models (``style_image``, ``alpha``, ``style_index``, ``style_size``; see
``rtstyle.conditioning``). AdaIN engines switch style images live with ``set_style``.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from builtins import open as open_text  # this module's open() opens engines
from pathlib import Path
from typing import Callable

import torch

from ..checkpoint import load_checkpoint
from ..cpu_memory import keep_freed_memory
from ..conditioning import StyleChoice, bind_style
from ..engine import BaseEngine, EngineOptions, resolve_device
from ..errors import InputError
from ..frames import to_float, to_uint8
from ..nets import output_scale

_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
_CPU_PRECISIONS = ("fp32", "bf16")


class CapturedShape:
    """One CUDA graph of ``fn`` for one input shape, with static input and output buffers."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor], example: torch.Tensor):
        self.input = example.clone()
        side = torch.cuda.Stream(device=example.device)
        side.wait_stream(torch.cuda.current_stream(example.device))
        with torch.cuda.stream(side):
            for _ in range(2):  # lazy initialisation and cuDNN autotuning must not be captured
                fn(self.input)
        torch.cuda.current_stream(example.device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.output = fn(self.input)

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        self.input.copy_(frames)
        self.graph.replay()
        # The next replay overwrites the static output; the caller may still hold this batch.
        return self.output.clone()


class GraphCache:
    """CUDA graphs by input shape, least recently used evicted first (each holds its own pool)."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor], capacity: int):
        if capacity < 1:
            raise InputError(f"graph_cache must be >= 1, got {capacity}")
        self.fn = fn
        self.capacity = capacity
        self.graphs: OrderedDict[tuple[int, ...], CapturedShape] = OrderedDict()

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        key = tuple(frames.shape)
        graph = self.graphs.get(key)
        if graph is None:
            graph = CapturedShape(self.fn, frames)
            self.graphs[key] = graph
            while len(self.graphs) > self.capacity:
                self.graphs.popitem(last=False)
        else:
            self.graphs.move_to_end(key)
        return graph(frames)


class TorchEngine(BaseEngine):
    backend = "torch"

    def __init__(
        self,
        model: torch.nn.Module,
        device: torch.device,
        precision: str,
        scale: int,
        *,
        cuda_graphs: bool = True,
        graph_cache: int = 4,
        compile: bool | str = False,
    ):
        self.device = device
        self.precision = precision
        self.scale = scale
        on_gpu = device.type == "cuda"
        # On the CPU, bf16 runs as autocast over fp32 weights; on the GPU the weights convert.
        self.dtype = _DTYPES[precision] if on_gpu else torch.float32
        self.memory_format = torch.channels_last if on_gpu else torch.contiguous_format
        self.model = model.to(device=device, dtype=self.dtype, memory_format=self.memory_format).eval()
        self._bound = self.model  # before torch.compile: the module that owns the style buffers
        self.compiled = bool(compile)
        if compile:
            mode = compile if isinstance(compile, str) else "max-autotune-no-cudagraphs" if cuda_graphs else "max-autotune"
            self.model = torch.compile(self.model, mode=mode, dynamic=False)
        self.graphs = GraphCache(self._forward, graph_cache) if on_gpu and cuda_graphs else None

    def _autocast(self):
        if self.device.type == "cpu" and self.precision == "bf16":
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _forward(self, frames: torch.Tensor) -> torch.Tensor:
        x = to_float(frames, self.dtype).contiguous(memory_format=self.memory_format)
        with self._autocast():
            return to_uint8(self.model(x))

    @torch.inference_mode()
    def _run(self, frames: torch.Tensor) -> torch.Tensor:
        frames = frames.to(self.device, non_blocking=True)
        if self.graphs is not None:
            return self.graphs(frames)
        return self._forward(frames)

    def set_style(self, image, alpha: float | None = None) -> None:
        """AdaIN models: apply another style image (uint8 RGB HWC) and strength from the next batch on."""
        setter = getattr(self._bound, "set_style", None)
        if setter is None:
            raise InputError("this model has its style trained in; only AdaIN models take another style image")
        setter(image, alpha)

    def describe(self) -> str:
        extras = [name for name, on in (("CUDA graphs", self.graphs), ("torch.compile", self.compiled)) if on]
        return f"torch on {self.device} ({self.precision}{''.join(', ' + e for e in extras)})"


def cpu_has_native_bf16() -> bool:
    """True on x86 CPUs with AVX512-BF16 or AMX (Linux /proc/cpuinfo); False where unknown."""
    try:
        with open_text("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def open(path: Path, options: EngineOptions) -> TorchEngine:
    device = resolve_device(options.device)
    precision = options.precision
    if precision == "auto":
        # fp16 halves memory traffic on GPUs; CPUs have no fast fp16 convs, but those with
        # native bf16 instructions run bf16 autocast 1.7-1.9x faster than fp32
        # (benchmarks/results/cpu-quick-*.md), within 3/255 of the fp32 output.
        precision = "fp16" if device.type == "cuda" else "bf16" if cpu_has_native_bf16() else "fp32"
    if device.type == "cpu" and precision not in _CPU_PRECISIONS:
        raise InputError(f"precision {precision!r} is not supported by torch on the CPU; choose from {list(_CPU_PRECISIONS)}")
    if device.type == "cpu":
        keep_freed_memory()  # no page faults per batch (cpu_memory.py)
    extra = options.extra
    ckpt = load_checkpoint(path)
    return TorchEngine(
        bind_style(ckpt, StyleChoice.from_extra(extra), path.name),
        device,
        precision,
        output_scale(ckpt.config),
        cuda_graphs=bool(extra.get("cuda_graphs", True)),
        graph_cache=int(extra.get("graph_cache", 4)),
        compile=extra.get("compile", False),
    )
