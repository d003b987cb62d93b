"""What this machine's CPU is, read once: Linux's /proc/cpuinfo (first processor entry).

Backends pick precisions from the CPU's instruction sets, caches key compiled models by the CPU
they were built for, and benchmark reports name the machine; they all ask here. Where the file
does not exist (macOS, Windows) the answers fall back to ``platform`` and an empty flag set.
"""

from __future__ import annotations

import functools
import platform
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")


@functools.cache
def cpuinfo() -> dict[str, str]:
    """The first processor's ``key: value`` fields (every core repeats them); {} if unreadable."""
    fields: dict[str, str] = {}
    try:
        with open(CPUINFO, encoding="utf-8", errors="replace") as f:
            for line in f:
                if not line.strip():
                    if fields:
                        break  # end of the first processor's block
                    continue
                key, sep, value = line.partition(":")
                if sep:
                    fields.setdefault(key.strip(), value.strip())
    except OSError:
        return {}
    return fields


def cpu_model() -> str:
    """The CPU's marketing name ("AMD EPYC 9654 96-Core Processor"), else what ``platform`` knows."""
    return cpuinfo().get("model name") or platform.processor() or platform.machine()


def cpu_flags() -> frozenset[str]:
    """The instruction-set flags (``avx2``, ``avx512_bf16``, ``amx_bf16``...); empty where unknown."""
    info = cpuinfo()
    # x86 says "flags"; arm64 says "Features".
    return frozenset((info.get("flags") or info.get("Features") or "").split())


def cpu_has_native_bf16() -> bool:
    """True on x86 CPUs with AVX512-BF16 or AMX; False where unknown."""
    return bool({"avx512_bf16", "amx_bf16"} & cpu_flags())
