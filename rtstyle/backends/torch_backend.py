"""PyTorch backend.

* CPU: eager fp32, or bf16 autocast (``precision="bf16"``); CPUs have no fast fp16 convs.
* CUDA: fp16 (default) or bf16 weights, channels_last, and one CUDA graph per input shape
  (uint8 frames in -> uint8 frames out, conversions included), kept in a small LRU. Optional
  ``torch.compile`` before capture.

Settings: ``engine.TorchOptions`` (CUDA graphs, graph cache, torch.compile); the style choice of
multi-style models comes in ``EngineOptions.style`` (see ``rtstyle.conditioning``). AdaIN models
open as ``AdaINTorchEngine``, the one engine that is ``StyleSwitchable``.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from pathlib import Path
from typing import Callable

import torch

from ..checkpoint import load_checkpoint
from ..conditioning import AdaINStyled, bind_style
from ..cpu_memory import keep_freed_memory
from ..dtypes import TORCH_DTYPES
from ..engine import Engine, EngineOptions, TorchOptions, resolve_device
from ..errors import InputError
from ..frames import finite_flag, nonfinite_error, to_float, to_uint8
from ..nets import output_scale
from ..sysinfo import cpu_has_native_bf16
from ..threads import plan_threads

DEFAULT_GRAPH_CACHE = 4
_CPU_PRECISIONS = ("fp32", "bf16")


class CapturedShape:
    """One CUDA graph of ``fn`` for one input shape, with static input and output buffers.

    Captured and replayed under a guard for the input's device (the current device may be
    another GPU), with ``capture_error_mode="thread_local"``: the default "global" mode makes
    any other thread's unsafe CUDA call (the decode thread pinning memory) fail the capture.
    ``pool`` shares one memory pool across the shapes of a cache: graphs replay one at a time
    on one stream and each keeps its own output alive, so their intermediates can share memory."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor], example: torch.Tensor, pool=None):
        device = example.device
        with torch.cuda.device(device):
            self.input = example.clone()
            side = torch.cuda.Stream(device=device)
            side.wait_stream(torch.cuda.current_stream(device))
            with torch.cuda.stream(side):
                for _ in range(2):  # lazy initialisation and cuDNN autotuning must not be captured
                    fn(self.input)
            torch.cuda.current_stream(device).wait_stream(side)
            self.pool = torch.cuda.graph_pool_handle() if pool is None else pool
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph, pool=self.pool, capture_error_mode="thread_local"):
                self.output = fn(self.input)

    def __call__(self, frames: torch.Tensor):
        with torch.cuda.device(self.input.device):
            self.input.copy_(frames)
            self.graph.replay()
            # The next replay overwrites the static outputs; the caller may still hold this batch.
            if isinstance(self.output, tuple):
                return tuple(o.clone() for o in self.output)
            return self.output.clone()


class GraphCache:
    """CUDA graphs by input shape, least recently used evicted first, sharing one memory pool."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor], capacity: int):
        if capacity < 1:
            raise InputError(f"graph_cache must be >= 1, got {capacity}")
        self.fn = fn
        self.capacity = capacity
        self.pool = None  # made by the first capture, on the engine's device
        self.graphs: OrderedDict[tuple[int, ...], CapturedShape] = OrderedDict()

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        key = tuple(frames.shape)
        graph = self.graphs.get(key)
        if graph is None:
            graph = CapturedShape(self.fn, frames, self.pool)
            self.pool = graph.pool
            self.graphs[key] = graph
            while len(self.graphs) > self.capacity:
                self.graphs.popitem(last=False)
        else:
            self.graphs.move_to_end(key)
        return graph(frames)


class TorchEngine(Engine):
    backend = "torch"

    def __init__(
        self,
        model: torch.nn.Module,
        device: torch.device,
        precision: str,
        scale: int,
        reason: str = "torch module",
        *,
        cuda_graphs: bool = True,
        graph_cache: int = DEFAULT_GRAPH_CACHE,
        compile: bool | str = False,
    ):
        super().__init__(device=device, precision=precision, scale=scale, reason=reason)
        on_gpu = device.type == "cuda"
        # On the CPU, bf16 runs as autocast over fp32 weights; on the GPU the weights convert.
        self.dtype = TORCH_DTYPES[precision] if on_gpu else torch.float32
        self.memory_format = torch.channels_last if on_gpu else torch.contiguous_format
        self.model = model.to(device=device, dtype=self.dtype, memory_format=self.memory_format).eval()
        self._bound = self.model  # before torch.compile: the module that owns the style buffers
        self.compiled = bool(compile)
        if compile:
            mode = compile if isinstance(compile, str) else "max-autotune-no-cudagraphs" if cuda_graphs else "max-autotune"
            self.model = torch.compile(self.model, mode=mode, dynamic=False)
        self.graphs = GraphCache(self._captured, graph_cache) if on_gpu and cuda_graphs else None

    def _autocast(self):
        if self.device.type == "cpu" and self.precision == "bf16":
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _output(self, frames: torch.Tensor) -> torch.Tensor:
        x = to_float(frames, self.dtype).contiguous(memory_format=self.memory_format)
        with self._autocast():
            return self.model(x)

    def _forward(self, frames: torch.Tensor) -> torch.Tensor:
        return to_uint8(self._output(frames))

    def _captured(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # A capture must not sync with the host (the check in to_uint8 does): the finite check
        # becomes a flag the graph computes and _run reads after the replay.
        output = self._output(frames)
        return to_uint8(output, check_finite=False), finite_flag(output)

    @torch.inference_mode()
    def _run(self, frames: torch.Tensor) -> torch.Tensor:
        frames = frames.to(self.device, non_blocking=True)
        if self.graphs is None:
            return self._forward(frames)
        out, finite = self.graphs(frames)
        if not bool(finite):  # one host sync per batch, as the eager path's check
            raise nonfinite_error(None, out.numel())
        return out

    def describe(self) -> str:
        extras = [name for name, on in (("CUDA graphs", self.graphs), ("torch.compile", self.compiled)) if on]
        return f"torch on {self.device} ({self.precision}{''.join(', ' + e for e in extras)})"


class AdaINTorchEngine(TorchEngine):
    """An AdaIN model: ``set_style`` swaps the bound style in place (``engine.StyleSwitchable``),
    so captured CUDA graphs and compiled models pick it up without a rebuild."""

    def set_style(self, image, alpha: float | None = None) -> None:
        """Apply another style image (uint8 RGB HWC) and strength from the next batch on."""
        self._bound.set_style(image, alpha)


def open(path: Path, options: EngineOptions, reason: str) -> TorchEngine:
    device = resolve_device(options.device)
    precision = options.precision
    if precision == "auto":
        # fp16 halves memory traffic on GPUs; CPUs have no fast fp16 convs, but those with
        # native bf16 instructions run bf16 autocast 1.7-1.9x faster than fp32
        # (benchmarks/results/cpu-quick-*.md), within 3/255 of the fp32 output.
        precision = "fp16" if device.type == "cuda" else "bf16" if cpu_has_native_bf16() else "fp32"
    if device.type == "cpu" and precision not in _CPU_PRECISIONS:
        raise InputError(f"precision {precision!r} is not supported by torch on the CPU; choose from {list(_CPU_PRECISIONS)}")
    settings = options.backend_settings(TorchOptions)
    cuda_graphs = _cuda_graphs(settings, device)
    if device.type == "cpu":
        keep_freed_memory()  # no page faults per batch (cpu_memory.py)
        torch.set_num_threads(plan_threads().engine)  # the cores the decoder and encoder leave (threads.py)
    ckpt = load_checkpoint(path)
    model = bind_style(ckpt, options.style, path.name)
    engine_type = AdaINTorchEngine if isinstance(model, AdaINStyled) else TorchEngine
    return engine_type(
        model, device, precision, output_scale(ckpt.config), reason,
        cuda_graphs=cuda_graphs,
        graph_cache=settings.graph_cache or DEFAULT_GRAPH_CACHE,
        compile=settings.compile,
    )


def _cuda_graphs(settings: TorchOptions, device: torch.device) -> bool:
    """Whether to capture CUDA graphs; settings that cannot apply on ``device`` are refused."""
    if settings.cuda_graphs and device.type != "cuda":
        raise InputError(f"cuda_graphs=True needs a CUDA device; this engine runs on {device} (choose None or False)")
    graphs = device.type == "cuda" if settings.cuda_graphs is None else settings.cuda_graphs
    if settings.graph_cache is not None and not graphs:
        raise InputError(f"graph_cache={settings.graph_cache} sizes the CUDA graph cache, and this engine on {device} "
                         "captures no CUDA graphs (leave graph_cache None)")
    return graphs
