"""Keep glibc from handing large freed blocks back to the kernel between frames.

A style network on the CPU allocates and frees tens of MB of activations per batch. With glibc's
defaults, blocks that large are mmap'ed and unmapped on every call, and a heap top above 128 KiB
is trimmed, so every batch page-faults its memory in again: at 640x480, batch 4, that was 1.7 M
page faults and a third of the run in the kernel (benchmarks/results/cpu-malloc-2026-11-24.md).
Raising both thresholds keeps freed memory in the process for reuse; the cost is that the
resident size stays at its peak instead of shrinking between batches.

``keep_freed_memory()`` is called where CPU work starts (a torch CPU engine, CPU training); it
changes nothing off glibc Linux or with ``RTSTYLE_MALLOC_TUNING=0``.
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys

_M_TRIM_THRESHOLD = -1  # <malloc.h>
_M_MMAP_THRESHOLD = -3
_INT_MAX = 2**31 - 1


@functools.cache
def keep_freed_memory() -> bool:
    """Set glibc's mmap and trim thresholds to their maximum (once); True if they were set."""
    if not sys.platform.startswith("linux") or os.environ.get("RTSTYLE_MALLOC_TUNING", "1") == "0":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, ...)
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, _INT_MAX)) and bool(mallopt(_M_TRIM_THRESHOLD, _INT_MAX))
