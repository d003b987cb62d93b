"""What exported graphs (ONNX, TensorRT, AOTInductor) take and return, and the metadata keys
that describe them.

An exported graph has one of two I/O kinds:

* ``"float"``: float NCHW RGB in [0, 1] in, the same out (fp32, fp16 or bf16, as exported);
* ``"uint8"``: uint8 RGB NHWC frames in and out, the conversion compiled into the graph.

``GraphIO`` turns the engine contract (uint8 NHWC on the device) into a graph's input and its
output back, through ``frames.py``; backends never convert by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from .choices import IO_KINDS, LAYOUTS  # noqa: F401 - re-exported
from .errors import InputError
from .frames import to_float, to_uint8

# Keys of the string->string metadata that export writes (ONNX metadata_props, AOTInductor
# package metadata) so a backend knows the model without its checkpoint.
META_CHECKPOINT = "rtstyle"  # the checkpoint's metadata, JSON
META_TASK = "rtstyle.task"  # checkpoint.TASKS: "style" | "sr" | "texture"
META_SCALE = "rtstyle.scale"  # output side / input side
META_IO = "rtstyle.io"  # one of IO_KINDS
META_LAYOUT = "rtstyle.layout"  # "NCHW" (float io) | "NHWC" (uint8 io)
META_PRECISION = "rtstyle.precision"  # "fp32" | "fp16" | "bf16"
META_DEVICE = "rtstyle.device"  # AOTInductor packages only: "cpu" | "cuda"


@dataclass(frozen=True)
class GraphIO:
    """How to feed one exported graph: its I/O kind and its float input dtype."""

    kind: str
    dtype: torch.dtype = torch.float32  # the graph's float input dtype (ignored for uint8 io)

    @classmethod
    def for_input_dtype(cls, dtype: torch.dtype) -> "GraphIO":
        """A uint8 input means frames in and out; any float input means [0, 1] NCHW."""
        return cls("uint8") if dtype == torch.uint8 else cls("float", dtype)

    @property
    def layout(self) -> str:
        return LAYOUTS[self.kind]

    def prepare(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 NHWC frames -> the graph's (contiguous) input, on the frames' device."""
        if self.kind == "uint8":
            return frames.contiguous()
        return to_float(frames, self.dtype).contiguous()

    def finish(self, output: torch.Tensor) -> torch.Tensor:
        """The graph's output -> uint8 NHWC frames."""
        return output if self.kind == "uint8" else to_uint8(output)

    def output_shape(self, input_shape: tuple[int, ...], scale: int) -> tuple[int, ...]:
        if self.kind == "uint8":
            n, h, w, c = input_shape
            return (n, h * scale, w * scale, c)
        n, c, h, w = input_shape
        return (n, c, h * scale, w * scale)

    def spatial(self, shape: tuple[int, ...]) -> tuple[int, int]:
        """(H, W) of a tensor in this graph's layout."""
        return (shape[1], shape[2]) if self.kind == "uint8" else (shape[2], shape[3])


def load_onnx(path: str | Path):
    """An ONNX file's ``ModelProto`` without its external weights, or a one-line InputError."""
    import onnx

    try:
        return onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf decode errors have several types
        raise InputError(f"{path} is not a readable ONNX model ({exc.__class__.__name__})") from None
