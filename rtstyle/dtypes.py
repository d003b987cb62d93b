"""Precision names and the torch dtypes they stand for, written once.

``"fp32" | "fp16" | "bf16"`` are the names the command line, checkpoints' export metadata and
engines use; every module that turns one into a dtype (or back) reads this table.
"""

from __future__ import annotations

import torch

TORCH_DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
PRECISION_OF: dict[torch.dtype, str] = {dtype: name for name, dtype in TORCH_DTYPES.items()}
ENGINE_PRECISIONS = tuple(TORCH_DTYPES)  # what an open engine reports: never "auto"


def torch_dtype(precision: str) -> torch.dtype:
    """The dtype of a precision name; a ValueError naming the allowed names otherwise."""
    try:
        return TORCH_DTYPES[precision]
    except KeyError:
        raise ValueError(f"unknown precision {precision!r}; choose from {list(TORCH_DTYPES)}") from None
