"""Count the work a network does -- FLOPs and bytes moved -- from the model itself.

The model runs once on the ``meta`` device (shapes only, no arithmetic, so counting a 1080p
frame costs milliseconds) under a dispatch mode that sees every ATen operator. Composite
operators are decomposed until they reach ones torch's own ``FlopCounterMode`` knows, so:

* ``flops``: matmul-class FLOPs (convolutions, matmuls) exactly as ``FlopCounterMode``
  counts them: 2 per multiply-accumulate, bias not counted. This is the work the measured
  matmul ceiling applies to.
* ``other_flops``: element-wise and normalisation arithmetic, a documented estimate:
  1 per output element for arithmetic ops, ``NORM_FLOPS_WITH_STATS`` per element for a norm
  that computes its own statistics (instance norm), ``NORM_FLOPS_RUNNING`` for one that uses
  running statistics (eval-mode batch norm). It runs on vector units, not matmul units, so the
  roofline does not add it to ``flops``.
* ``bytes``: what an operator-by-operator (unfused) execution reads and writes: every
  non-view operator reads its tensor inputs (parameters included) and writes its outputs.
  Views and allocations move nothing. A fusing backend moves less.
* ``matmul_bytes``: the bytes read and written by the matmul-class operators alone -- the
  traffic left when every element-wise, padding and normalisation operator is fused into the
  convolutions around it. The roofline's memory floor uses this figure; ``bytes`` shows what
  unfused execution costs.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import flop_registry

from rtstyle.frames import to_float, to_uint8

# mean (1), variance (3: subtract, square, accumulate), normalise (2), affine (2)
NORM_FLOPS_WITH_STATS = 8
# normalise (2), affine (2) with stored statistics
NORM_FLOPS_RUNNING = 4

_ELEMENTWISE = frozenset(
    "add sub mul div neg relu tanh sigmoid clamp clamp_min clamp_max round rsqrt sqrt pow exp "
    "hardtanh leaky_relu gelu silu abs minimum maximum where".split()
)
_NORMS_WITH_STATS = frozenset({"_native_batch_norm_legit"})
_NORMS_RUNNING = frozenset({"_native_batch_norm_legit_no_training"})
_NORMS_FLAGGED = frozenset({"native_batch_norm", "cudnn_batch_norm", "miopen_batch_norm"})  # args[5] = training
_ALLOCATIONS = frozenset({"empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided"})
_SHAPE_QUERIES = frozenset({"sym_size", "sym_stride", "sym_numel", "sym_storage_offset", "size", "stride", "dim"})


@dataclass
class WorkCount:
    """FLOPs and bytes of one forward pass (see the module docstring for the conventions)."""

    flops: int = 0
    other_flops: int = 0
    bytes_read: int = 0
    bytes_written: int = 0
    matmul_bytes: int = 0
    by_op: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def bytes(self) -> int:
        return self.bytes_read + self.bytes_written

    def per_item(self, n: int) -> "WorkCount":
        """This count divided by ``n`` (frames in the batch), rounded down."""
        return WorkCount(
            self.flops // n, self.other_flops // n, self.bytes_read // n, self.bytes_written // n,
            self.matmul_bytes // n,
            {op: {k: v // n for k, v in d.items()} for op, d in self.by_op.items()},
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "flops": self.flops, "other_flops": self.other_flops, "bytes_read": self.bytes_read,
            "bytes_written": self.bytes_written, "bytes": self.bytes, "matmul_bytes": self.matmul_bytes,
            "by_op": self.by_op,
        }


_COMPOSITE = torch._C.DispatchKey.CompositeImplicitAutograd


def _has_composite_kernel(func: Any) -> bool:
    # The C++ composite kernel only: Python decompositions (e.g. nearest upsampling as an fp32
    # gather) describe what a compiler may emit, not what eager kernels move.
    return torch._C._dispatch_has_kernel_for_dispatch_key(func.name(), _COMPOSITE)


def _op_name(func: Any) -> str:
    return func.overloadpacket.__name__


def _tensors(tree: Any) -> list[torch.Tensor]:
    return [t for t in tree_flatten(tree)[0] if isinstance(t, torch.Tensor)]


def _nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


def _is_view(func: Any) -> bool:
    returns = func._schema.returns
    return bool(returns) and all(r.alias_info is not None and not r.alias_info.is_write for r in returns)


def _other_flops(name: str, args: tuple, out: Any) -> int:
    base = name.rstrip("_")
    outputs = _tensors(out)
    if not outputs:
        return 0
    elements = outputs[0].numel()
    if base in _ELEMENTWISE:
        return elements
    if base in _NORMS_WITH_STATS:
        return NORM_FLOPS_WITH_STATS * elements
    if base in _NORMS_RUNNING:
        return NORM_FLOPS_RUNNING * elements
    if base in _NORMS_FLAGGED:
        training = bool(args[5]) if len(args) > 5 else True
        return (NORM_FLOPS_WITH_STATS if training else NORM_FLOPS_RUNNING) * elements
    return 0


class _WorkCounter(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.count = WorkCount()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func.overloadpacket not in flop_registry and _has_composite_kernel(func):
            # Reach the operators FlopCounterMode counts (conv2d -> convolution, ...) and the
            # ones devices run as kernels (instance_norm -> batch norm).
            with self:
                return func._op_dk(_COMPOSITE, *args, **kwargs)
        out = func(*args, **kwargs)
        self._record(func, args, kwargs, out)
        return out

    def _record(self, func: Any, args: tuple, kwargs: dict, out: Any) -> None:
        name = _op_name(func)
        if name in _SHAPE_QUERIES or _is_view(func):
            return
        flops = 0
        if func.overloadpacket in flop_registry:
            flops = int(flop_registry[func.overloadpacket](*args, **kwargs, out_val=out))
        other = _other_flops(name, args, out)
        if name in _ALLOCATIONS:
            read = written = 0
        else:
            # Distinct storages only: an in-place op's output is its input, read then written.
            read = sum(_nbytes(t) for t in {id(t): t for t in _tensors((args, kwargs))}.values())
            written = sum(_nbytes(t) for t in _tensors(out))
        c = self.count
        c.flops += flops
        c.other_flops += other
        c.bytes_read += read
        c.bytes_written += written
        if func.overloadpacket in flop_registry:
            c.matmul_bytes += read + written
        entry = c.by_op.setdefault(name, defaultdict(int))
        for key, value in (("calls", 1), ("flops", flops), ("other_flops", other), ("bytes", read + written)):
            entry[key] += value


def count_work(fn: Callable[..., Any], *inputs: torch.Tensor) -> WorkCount:
    """Count the FLOPs and bytes of ``fn(*inputs)`` (run it on meta tensors for free counting)."""
    counter = _WorkCounter()
    with torch.inference_mode(), counter:
        fn(*inputs)
    counter.count.by_op = {k: dict(v) for k, v in sorted(counter.count.by_op.items())}
    return counter.count


def count_engine_work(
    model: torch.nn.Module, batch: int, height: int, width: int, dtype: torch.dtype = torch.float32
) -> WorkCount:
    """The work of one engine call on ``batch`` frames of ``height`` x ``width``: uint8 frames ->
    float ``dtype`` -> network -> uint8 frames, counted on the meta device (the model is copied,
    never moved)."""
    meta_model = copy.deepcopy(model).to(device="meta", dtype=dtype).eval()
    frames = torch.empty((batch, height, width, 3), dtype=torch.uint8, device="meta")
    return count_work(lambda f: to_uint8(meta_model(to_float(f, dtype))), frames)
