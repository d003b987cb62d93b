"""What this machine's CPU is, read once: Linux's /proc/cpuinfo (first processor entry).

Backends pick precisions from the CPU's instruction sets, caches key compiled models by the CPU
they were built for, and benchmark reports name the machine; they all ask here. Where the file
does not exist (macOS, Windows) the answers fall back to ``platform`` and an empty flag set.
"""

from __future__ import annotations

import contextlib
import functools
import os
import platform
import time
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")
PROC_STAT = Path("/proc/stat")


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


def _busy_cpu_seconds() -> float | None:
    """CPU-seconds every CPU of the machine spent busy since boot (/proc/stat: all but idle and
    iowait); None where the file is missing (macOS, Windows)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        with open(PROC_STAT) as f:
            values = [int(v) for v in f.readline().split()[1:]]
        idle = values[3] + (values[4] if len(values) > 4 else 0)
        return (sum(values) - idle) / os.sysconf("SC_CLK_TCK")
    return None


def _own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system  # every thread of this process, not its children


class OtherLoad:
    """How many cores *other* processes kept busy while a ``with`` block ran: the machine's busy
    time minus this process's own, over the block's wall time. ``cores`` is None where the OS
    does not say (no /proc/stat). Unlike the load average, which trails by minutes, this is the
    load during the block itself, and this process's own work does not count."""

    cores: float | None = None

    def __enter__(self) -> "OtherLoad":
        self._start = (time.monotonic(), _busy_cpu_seconds(), _own_cpu_seconds())
        return self

    def __exit__(self, *exc) -> None:
        wall = time.monotonic() - self._start[0]
        busy, before = _busy_cpu_seconds(), self._start[1]
        if busy is None or before is None or wall <= 0:
            return
        others = (busy - before) - (_own_cpu_seconds() - self._start[2])
        self.cores = round(max(0.0, others / wall), 2)


def busy_cores(seconds: float = 2.0) -> float | None:
    """How many cores other processes keep busy, measured over ``seconds`` while this one sleeps;
    None where the OS does not say."""
    with OtherLoad() as load:
        time.sleep(seconds)
    return load.cores
