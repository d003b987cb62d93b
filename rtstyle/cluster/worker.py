"""The worker side of a cluster job: one actor per GPU (or per CPU slot) holding one open engine.

``StylizeWorker`` is a plain class; the scheduler turns it into a Ray actor (``ray.remote``), so
this module does not import Ray. The actor runs with ``max_concurrency=2``: one thread runs the
current task while the scheduler's ``progress()`` calls are answered on the other.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from ..counting import CountingEngine
from ..engine import Engine
from ..stylize import StylizeConfig, open_chain, stylize_files
from .plan import Segment
from .segments import SegmentResult, join_segments, stylize_segment

EngineFactory = Callable[[StylizeConfig], Engine]


@dataclass(frozen=True)
class Task:
    """One unit of work: a whole file, one segment of a file, or the join of a file's segments."""

    kind: str  # file | segment | join
    src: Path
    dst: Path
    segment: Segment | None = None
    part: Path | None = None  # segment: the lossless file it writes
    parts: tuple[SegmentResult, ...] = ()  # join: the segments, in order

    @property
    def label(self) -> str:
        if self.kind == "segment":
            return f"{self.src.name} segment {self.segment.index}"
        return f"{self.src.name} (join)" if self.kind == "join" else self.src.name


class StylizeWorker:
    def __init__(self, config: StylizeConfig, engine_factory: EngineFactory | None = None, threads: int = 0):
        if threads:
            torch.set_num_threads(threads)  # Ray sets OMP_NUM_THREADS=1 in workers; use the CPUs reserved
        self.config = config
        self.engine = CountingEngine((engine_factory or open_chain)(config))

    def info(self) -> dict:
        import ray

        return {"host": socket.gethostname(), "node_ip": ray.util.get_node_ip_address(),
                "node_id": ray.get_runtime_context().get_node_id(), "pid": os.getpid(), "device": self.engine.describe()}

    def progress(self) -> int:
        return self.engine.frames

    def run(self, task: Task) -> dict:
        self.engine.frames = 0
        started = time.perf_counter()
        out: dict = {"kind": task.kind}
        if task.kind == "file":
            cfg = dataclasses.replace(self.config, inputs=(task.src,), output=task.dst, progress=False, preview=False,
                                      stats_path=None)
            (result,) = stylize_files(cfg, self.engine)
            out.update(frames=result.frames_out, warnings=result.warnings)
        elif task.kind == "segment":
            seg = stylize_segment(self.config, self.engine, task.src, task.segment, task.part)
            out.update(frames=len(seg.pts), warnings=seg.warnings, segment=seg)
        elif task.kind == "join":
            frames, warnings = join_segments(self.config, task.src, task.dst, list(task.parts))
            out.update(frames=frames, warnings=warnings)
        else:
            raise ValueError(f"unknown task kind {task.kind!r}")
        out["wall_s"] = time.perf_counter() - started
        return out
