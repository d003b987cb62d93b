"""How the engine, the decoder and the encoder share the CPU cores: one plan, used everywhere.

On a CPU the three stages of the pipeline run at once on the same cores. Each library left to
itself sizes its pool for the whole machine (torch and OpenVINO one thread per core, ffmpeg's
decoder cores + 1 frame threads, x264 1.5 x cores + lookahead), so together they oversubscribe
the cores and an engine thread that is preempted stalls its siblings at every barrier.

``plan_threads()`` decides once: the decoder and the encoder get ``DECODE_THREADS`` and
``ENCODE_THREADS``, the engine's intra-op pool gets the cores left after the decoder's and the
encoder's *measured* share of the work (``DECODE_SHARE`` + ``ENCODE_SHARE`` of a core: they are
light next to a style network on a CPU), never fewer than one. Torch, ONNX Runtime and
OpenVINO all take ``ThreadPlan.engine``; the video reader and writer take ``decode``/``encode``.
``RTSTYLE_ENGINE_THREADS`` overrides the engine's share (benchmarks, shared machines).
``RTSTYLE_CORES`` caps the cores the plan starts from: a Ray worker sets it to the CPUs Ray
reserved for it (Ray does not pin a worker to cores, so its affinity still shows the whole machine),
and it suits containers whose CPU quota their affinity does not show.

With the engine on a GPU (``plan_threads(engine_device="cuda")``) the CPU runs only the decoder
and the encoder, and x264 is then its heaviest stage: one encoder thread caps a 1080p pipeline
near 15 fps (x264 medium) while the GPU idles. There the encoder gets the cores the decoder
leaves (``GPU_ENGINE_DECODE_SHARE`` of them go to the decoder's frame threads, at least one).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from .errors import InputError

DECODE_THREADS = 1
ENCODE_THREADS = 1
# Share of one core the decoder and the encoder keep busy while a CPU engine is the slowest stage
# (640x272 H.264, x264 medium: ~4 and ~20 ms per frame against >=100 ms for the engine).
DECODE_SHARE = 0.1
ENCODE_SHARE = 0.25
ENV = "RTSTYLE_ENGINE_THREADS"
CORES_ENV = "RTSTYLE_CORES"
# Engine on a GPU: the decoder's share of the cores (its frame threads, when it decodes on the CPU);
# the encoder takes the rest. The engine's host thread only queues kernels.
GPU_ENGINE_DECODE_SHARE = 0.25


@dataclass(frozen=True)
class ThreadPlan:
    cores: int  # cores this process may run on
    engine: int  # intra-op threads of torch / ONNX Runtime / OpenVINO
    decode: int  # decoder threads (ffmpeg)
    encode: int  # encoder threads (x264 'threads')


def available_cores() -> int:
    """Cores this process may use: its CPU affinity (where the OS has one), at most ``RTSTYLE_CORES``."""
    try:
        cores = max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        cores = max(1, os.cpu_count() or 1)
    if cap := os.environ.get(CORES_ENV):
        if not cap.isdigit() or int(cap) < 1:
            raise InputError(f"{CORES_ENV}={cap!r}: expected a positive whole number of cores")
        cores = min(cores, int(cap))
    return cores


def plan_threads(cores: int | None = None, engine_device: str = "cpu") -> ThreadPlan:
    """The thread counts of every stage on ``cores`` cores (default: this process's), for an
    engine on ``engine_device`` ("cpu", or a GPU's device type such as "cuda")."""
    cores = available_cores() if cores is None else cores
    if cores < 1:
        raise InputError(f"cores must be >= 1, got {cores}")
    if engine_device != "cpu":
        decode = max(1, int(cores * GPU_ENGINE_DECODE_SHARE))
        return ThreadPlan(cores, 1, decode, max(1, cores - decode))
    engine = max(1, int(cores - DECODE_SHARE - ENCODE_SHARE + 0.5))
    if env := os.environ.get(ENV):
        if not env.isdigit() or int(env) < 1:
            raise InputError(f"{ENV}={env!r}: expected a positive whole number of threads")
        engine = int(env)
    return ThreadPlan(cores, engine, DECODE_THREADS, ENCODE_THREADS)
