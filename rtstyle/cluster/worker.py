"""The worker side of a cluster job: ``run_item`` runs one item (a file, a segment, a join) in a Ray
worker process, through the single-machine frame path.

* Threads: the task tells the process how many CPUs Ray reserved for it (``RTSTYLE_CORES``, read by
  ``threads.plan_threads``), so torch, ONNX Runtime and OpenVINO size their pools to those, and the
  decoder and encoder theirs beside them.
* Engines: Ray runs a job's later CPU tasks in the processes it already started, so the engine the
  first task opened is kept for the next (one per process, for one set of engine settings). Ray
  starts a fresh process for every GPU task (its default for tasks that hold a GPU, which frees the
  GPU's memory; a reused process could not follow a task to another GPU): there each item opens
  its engine.
* Retries are Ray's: a task whose process or node died runs again elsewhere. An attempt that finds
  its output already finished by an earlier attempt of the same job (the run id in the output's
  run tag, ``video.tag``) returns that instead of writing it twice.
* ``Journal`` (made a Ray actor by the driver) hears which attempt of an item runs where and its
  frames so far: progress, retries per file and the partial files of dead attempts. It has no say
  in what runs where.

This module does not import Ray at module level: the driver decides how its functions run.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import socket
import time
from collections.abc import Callable
from pathlib import Path

from ..counting import CountingEngine
from ..engine import Engine
from ..stylize import StylizeConfig, open_chain, stylize_files
from ..threads import CORES_ENV, plan_threads
from ..video.tag import read_tag
from .plan import Item
from .segments import SegmentResult, join_segments, stylize_segment

EngineFactory = Callable[[StylizeConfig], Engine]
_REPORT_EVERY_S = 0.5
_ENGINES: dict[bytes, Engine] = {}  # this process's open engine, by its settings


class Journal:
    """Per job (its run id) and item: the item's attempts (host, pid, node, start time) and the
    frames of the latest so far. One per driver, kept from job to job (``run._journal``)."""

    def __init__(self) -> None:
        self.runs: dict[str, dict] = {}

    def _run(self, run: str) -> dict:
        return self.runs.setdefault(run, {"attempts": {}, "frames": {}})

    def started(self, run: str, key: str, where: dict) -> None:
        record = self._run(run)
        record["attempts"].setdefault(key, []).append(where)
        record["frames"][key] = 0

    def progress(self, run: str, key: str, frames: int) -> None:
        self._run(run)["frames"][key] = frames

    def snapshot(self, run: str) -> dict:
        return self.runs.get(run, {"attempts": {}, "frames": {}})

    def forget(self, run: str) -> None:
        self.runs.pop(run, None)


class _Reporting(CountingEngine):
    """Counts the item's frames and tells the journal, at most every ``_REPORT_EVERY_S``."""

    def __init__(self, inner: Engine, journal, run: str, key: str):
        super().__init__(inner)
        self.journal, self.run, self.key, self._last = journal, run, key, 0.0

    def __call__(self, frames):
        out = super().__call__(frames)
        now = time.monotonic()
        if self.journal is not None and now - self._last >= _REPORT_EVERY_S:
            self._last = now
            self.journal.progress.remote(self.run, self.key, self.frames)  # fire and forget
        return out


def _engine_key(config: StylizeConfig, factory: EngineFactory | None) -> bytes:
    fields = (config.model, config.sr_model, config.backend, config.device, config.precision, config.batch_size,
              config.style, config.trust_model)
    return pickle.dumps((fields, factory))


def _engine(config: StylizeConfig, factory: EngineFactory | None) -> tuple[Engine, float]:
    """This process's engine for ``config`` and the seconds it took to open (0: kept from before)."""
    key = _engine_key(config, factory)
    if key in _ENGINES:
        return _ENGINES[key], 0.0
    _ENGINES.clear()  # one engine per process
    started = time.perf_counter()
    _ENGINES[key] = (factory or open_chain)(config)
    return _ENGINES[key], time.perf_counter() - started


def where() -> dict:
    import ray

    return {"host": socket.gethostname(), "node_ip": ray.util.get_node_ip_address(),
            "node_id": ray.get_runtime_context().get_node_id(), "pid": os.getpid(), "started": time.time()}


def run_item(config: StylizeConfig, item: Item, cores: int, device_type: str, journal=None,
             engine_factory: EngineFactory | None = None, *parts: dict) -> dict:
    """Run one item; ``cores``: the CPUs Ray reserved for this task; ``parts``: a join's segment
    results, in order. Returns what the driver reports (frames, timings, warnings, where it ran)."""
    os.environ[CORES_ENV] = str(cores)
    info = where()
    if journal is not None:
        # Waited for, so that a process killed right after still counts as an attempt; through the
        # ref's future, not ray.get, which would hand this task's CPUs to the next task meanwhile.
        journal.started.remote(config.run_id, item.key, info).future().result(timeout=60)
    started = time.perf_counter()
    out: dict = {"worker": info, "engine_open_s": 0.0, "warnings": []}
    done = _finished_by_earlier_attempt(config, item)
    if done is not None:
        out.update(frames=done, reused=True)
    elif item.kind == "join":
        frames, warnings = join_segments(config, item.src, item.dst, [p["segment"] for p in parts], device_type)
        out.update(frames=frames, warnings=warnings)
    else:
        engine, out["engine_open_s"] = _engine(config, engine_factory)
        counted = _Reporting(engine, journal, config.run_id, item.key)
        out.update(device=engine.describe(), threads=plan_threads().engine)
        if item.kind == "segment":
            seg: SegmentResult = stylize_segment(config, counted, item.src, item.segment, item.part)
            out.update(frames=len(seg.pts), warnings=seg.warnings, segment=seg)
        else:
            cfg = dataclasses.replace(config, inputs=(item.src,), output=item.dst, progress=False, preview=False,
                                      stats_path=None)
            (result,) = stylize_files(cfg, counted)
            out.update(frames=result.frames_out, warnings=result.warnings)
    out["wall_s"] = time.perf_counter() - started
    return out


def _finished_by_earlier_attempt(config: StylizeConfig, item: Item) -> int | None:
    """Frames of ``item``'s output when an earlier attempt of this job finished it (its worker died
    after the rename, before its result reached the driver), else None."""
    if item.kind == "segment" or config.run_id is None or not Path(item.dst).exists():
        return None
    tag = read_tag(item.dst)
    if tag is None or tag.run != config.run_id or tag.why_not_complete(item.src, config.start, config.duration):
        return None
    return tag.frames
