"""The driver of a cluster job: a pool of engine actors fed one task at a time, with retries.

Why Ray core actors and not Ray Data (``map_batches`` with an ``ActorPoolStrategy``): the unit of
work here is a whole file or segment, not a batch of rows. A task must decode, stylize and encode
in one place (the encoder's state spans the file) and write its output with an atomic rename;
Ray Data would move decoded frames through its object store between stages and retry at the block
level, which neither keeps a file together nor tells us which file a lost worker was writing. With
actors we keep one open engine per GPU for the whole job, choose explicitly what a worker's death
costs (a retry of that file or segment, on another worker, up to ``max_retries``) and clean up the
hidden partial file the dead process left, by its pid.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError, RtstyleError
from ..models import resolve_model
from ..stylize import StylizeConfig
from .plan import ClusterConfig, FileJob, JobPlan, plan_job
from .report import ClusterReport, FileReport
from .worker import EngineFactory, StylizeWorker, Task

_POLL_S = 0.5  # how often the driver asks busy workers how far they are


@dataclass
class _Work:
    task: Task
    file: _FileState
    attempts: int = 0  # times a worker died while running it
    avoid: set = field(default_factory=set)  # workers it died on: retry elsewhere when possible


@dataclass
class _FileState:
    job: FileJob
    report: FileReport
    parts: dict = field(default_factory=dict)  # segment index -> SegmentResult
    in_flight: int = 0
    started: float | None = None
    failed: bool = False


@dataclass
class _Slot:
    id: int
    handle: object
    info_ref: object
    info: dict | None = None
    work: _Work | None = None
    ref: object = None


class _Pool:
    """The actors, replaced when they die (at most ``spares`` times in all)."""

    def __init__(self, ray, make: Callable[[], object], size: int, spares: int):
        self.ray, self.make, self.spares = ray, make, spares
        self.slots: list[_Slot] = []
        self.retired: list[_Slot] = []  # dead workers, for the report
        self._next = 0
        for _ in range(size):
            self.add()

    def add(self) -> _Slot | None:
        handle = self.make()
        slot = _Slot(self._next, handle, handle.info.remote())
        self._next += 1
        self.slots.append(slot)
        return slot

    def replace(self, dead: _Slot) -> None:
        self.slots.remove(dead)
        self.retired.append(dead)
        if self.spares > 0:
            self.spares -= 1
            self.add()

    def describe(self, slot: _Slot) -> dict:
        if slot.info is None:
            try:
                slot.info = self.ray.get(slot.info_ref, timeout=120)
            except Exception as exc:  # noqa: BLE001 - the actor could not start (engine failed to open, node lost)
                slot.info = {"error": reason(exc)}
        return slot.info


def reason(exc: BaseException) -> str:
    """One line for a task's failure: the worker's own exception where there is one."""
    cause = getattr(exc, "cause", None)
    if cause is not None and cause is not exc and not isinstance(cause, str):
        return reason(cause)
    if isinstance(exc, RtstyleError):
        return str(exc)
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else "no message"
    return f"{type(exc).__name__}: {text}"


def run_cluster(config: StylizeConfig, cluster: ClusterConfig, engine_factory: EngineFactory | None = None,
                ) -> ClusterReport:
    """Stylize ``config.inputs`` on a Ray cluster; see the package docstring."""
    from .connect import check_address, connect, import_ray

    check_address(cluster.address)
    import_ray()  # without the extra: a one-line error before any work
    started = time.perf_counter()
    config = absolute_paths(config)
    if config.model is None:
        raise InputError("no model given; pass --model NAME_OR_PATH (see `rtstyle models`)")
    if config.preview:
        raise InputError("--preview does not work with --ray: the frames are on the workers")
    for model in (config.model, config.sr_model):
        if model is not None:
            resolve_model(model)  # a missing model fails here, once, not as every worker starts
    plan = plan_job(config, cluster)  # before connecting: bad arguments fail fast, without a cluster
    with connect(cluster.address) as ray:
        report = _Job(ray, config, cluster, plan, engine_factory).run()
    report.wall_s = time.perf_counter() - started
    if config.stats_path is not None:
        report.write(config.stats_path)
    return report


def absolute_paths(config: StylizeConfig) -> StylizeConfig:
    """Workers run in other folders (and on other machines): give them absolute paths. Model names
    that are not files (bundled styles) stay names."""
    def model(m):
        return str(Path(m).resolve()) if m is not None and Path(m).is_file() else m

    style = config.style
    if style.style_image is not None:
        style = dataclasses.replace(style, style_image=Path(style.style_image).resolve())
    return dataclasses.replace(
        config, inputs=tuple(Path(p).resolve() for p in config.inputs), model=model(config.model),
        sr_model=model(config.sr_model), output=Path(config.output).resolve() if config.output is not None else None,
        style=style)


class _Job:
    def __init__(self, ray, config: StylizeConfig, cluster: ClusterConfig, plan: JobPlan,
                 engine_factory: EngineFactory | None):
        self.ray, self.config, self.cluster, self.plan = ray, config, cluster, plan
        self.engine_factory = engine_factory
        self.report = ClusterReport(address=cluster.address)
        for src, dst in plan.skipped:
            self.report.files.append(FileReport(src, dst, "skipped"))
        for src, dst, why in plan.failed:
            self.report.files.append(FileReport(src, dst, "failed", error=why))
        self.pending: collections.deque[_Work] = collections.deque()
        self.files: list[_FileState] = []
        for job in plan.files:
            state = _FileState(job, FileReport(job.src, job.dst, "pending", segments=len(job.segments)))
            self.report.files.append(state.report)
            self.files.append(state)
            if job.segments:
                for seg in job.segments:
                    part = job.parts_dir / f"{seg.index:05d}.mkv"
                    self.pending.append(_Work(Task("segment", job.src, job.dst, seg, part), state))
            else:
                self.pending.append(_Work(Task("file", job.src, job.dst), state))
        self.frames_done = 0
        self.bar = None

    # ------------------------------------------------------------------ setup
    def _actor_class(self):
        ray = self.ray
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        cpus = max(1, int(resources.get("CPU", 1)))
        nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
        use_gpu = gpus > 0 and self.config.device != "cpu"
        workers = self.cluster.workers or (gpus if use_gpu else nodes)
        if use_gpu and workers > gpus:
            raise InputError(f"--workers {workers}: the cluster has {gpus} GPUs (one engine per GPU); use --workers "
                             f"{gpus} or fewer, or --device cpu")
        if not use_gpu and workers > cpus:
            raise InputError(f"--workers {workers}: the cluster has {cpus} CPUs; use --workers {cpus} or fewer")
        workers = min(workers, max(1, len(self.pending)))
        threads = 0 if use_gpu else max(1, cpus // workers)
        options = {"num_gpus": 1, "num_cpus": 1} if use_gpu else {"num_cpus": threads}
        cls = ray.remote(StylizeWorker).options(max_concurrency=2, max_restarts=0, scheduling_strategy="SPREAD",
                                                **options)
        self.report.resources = {"nodes": nodes, "cpus": cpus, "gpus": gpus, "workers": workers,
                                 "per_worker": options}

        def make():
            return cls.remote(self.config, self.engine_factory, threads)

        return make, workers

    # ------------------------------------------------------------------ running
    def run(self) -> ClusterReport:
        if not self.pending:
            return self.report
        make, workers = self._actor_class()
        self.pool = _Pool(self.ray, make, workers, spares=workers * (self.cluster.max_retries + 1))
        self._check_workers_start()
        self.report.startup_s = time.perf_counter() - self.report.created
        self.bar = self._progress_bar()
        self.started = time.perf_counter()
        try:
            self._loop()
        except BaseException:
            self._abort()
            raise
        finally:
            if self.bar is not None:
                self.bar.close()
            for slot in self.pool.slots:
                with contextlib.suppress(Exception):
                    self.ray.kill(slot.handle)
        self.report.workers = [s.info for s in self.pool.retired + self.pool.slots if s.info]
        return self.report

    def _check_workers_start(self) -> None:
        """Wait until at least one worker has its engine open; if none can, that error ends the job."""
        errors = []
        for slot in list(self.pool.slots):
            info = self.pool.describe(slot)
            if "error" in info:
                errors.append(info["error"])
                self.pool.slots.remove(slot)
        if not self.pool.slots:
            raise RtstyleError(f"no worker could start: {errors[0]}")
        self.report.worker_errors = errors

    def _loop(self) -> None:
        inflight: dict = {}
        last_poll = 0.0
        while self.pending or inflight:
            for slot in self.pool.slots:
                if slot.work is None and self.pending:
                    work = self._pick(slot)
                    slot.work, slot.ref = work, slot.handle.run.remote(work.task)
                    work.file.in_flight += 1
                    if work.file.started is None:
                        work.file.started = time.perf_counter()
                    inflight[slot.ref] = slot
            if not inflight:
                for work in self.pending:
                    self._fail(work.file, "no worker left to run it (every worker died)")
                self.pending.clear()
                break
            ready, _ = self.ray.wait(list(inflight), num_returns=1, timeout=_POLL_S)
            for ref in ready:
                slot = inflight.pop(ref)
                work, slot.work, slot.ref = slot.work, None, None
                work.file.in_flight -= 1
                self._finish(slot, work, ref)
            if time.perf_counter() - last_poll >= _POLL_S:
                self._show_progress()
                last_poll = time.perf_counter()
        self._show_progress()

    def _pick(self, slot: _Slot) -> _Work:
        for i, work in enumerate(self.pending):
            if slot.id not in work.avoid:
                del self.pending[i]
                return work
        return self.pending.popleft()

    def _finish(self, slot: _Slot, work: _Work, ref) -> None:
        from ray.exceptions import RayActorError

        state = work.file
        try:
            result = self.ray.get(ref)
        except RayActorError as exc:  # the worker process or its node died: not the file's fault
            self._worker_lost(slot, work, exc)
            return
        except Exception as exc:  # noqa: BLE001 - the task raised: a bad input, a full disk... a retry would fail the same way
            self._fail(state, reason(exc))
            return
        if state.failed:
            self._cleanup(state)
            return
        info = self.pool.describe(slot)
        rep = state.report
        rep.workers.append(f"{info.get('host')}:{info.get('pid')}")
        rep.device = info.get("device")
        rep.warnings.extend(result.get("warnings", []))
        if work.task.kind != "join":
            rep.frames += result["frames"]
            rep.busy_s += result["wall_s"]
            self.frames_done += result["frames"]
        if work.task.kind == "segment":
            state.parts[work.task.segment.index] = result["segment"]
            if len(state.parts) == len(state.job.segments):
                parts = tuple(state.parts[i] for i in sorted(state.parts))
                self.pending.appendleft(_Work(Task("join", state.job.src, state.job.dst, parts=parts), state))
            return
        rep.status = "done"
        rep.elapsed_s = time.perf_counter() - state.started
        self._cleanup(state)

    def _worker_lost(self, slot: _Slot, work: _Work, exc: BaseException) -> None:
        info = self.pool.describe(slot)
        _remove_partials(work.task, info.get("pid"))
        self.pool.replace(slot)
        state = work.file
        state.report.retries += 1
        why = reason(exc)
        if state.failed:
            self._cleanup(state)
        elif work.attempts < self.cluster.max_retries:
            work.attempts += 1
            work.avoid.add(slot.id)
            self.pending.appendleft(work)
        else:
            self._fail(state, f"{work.task.label}: its worker died {work.attempts + 1} times (last: {why})")

    def _fail(self, state: _FileState, why: str) -> None:
        if not state.failed:
            state.failed = True
            state.report.status, state.report.error = "failed", why
            self.pending = collections.deque(w for w in self.pending if w.file is not state)
        self._cleanup(state)

    def _cleanup(self, state: _FileState) -> None:
        if state.in_flight == 0 and state.job.segments:
            shutil.rmtree(state.job.parts_dir, ignore_errors=True)

    def _abort(self) -> None:
        """Ctrl-C or a driver error: stop the workers, leave no partial files behind."""
        for slot in self.pool.slots:
            with contextlib.suppress(Exception):
                self.ray.kill(slot.handle)
            if slot.work is not None:
                _remove_partials(slot.work.task, (slot.info or {}).get("pid"))
        for state in self.files:
            if state.job.segments:
                shutil.rmtree(state.job.parts_dir, ignore_errors=True)

    # ------------------------------------------------------------------ progress
    def _progress_bar(self):
        if not self.config.progress:
            return None
        from tqdm import tqdm

        totals = [s.job.frames for s in self.files]
        total = sum(totals) if all(totals) else None
        return tqdm(total=total, unit="frame", dynamic_ncols=True, desc=f"{len(self.files)} files, "
                    f"{len(self.pool.slots)} workers")

    def _show_progress(self) -> None:
        busy = [s for s in self.pool.slots if s.work is not None and s.work.task.kind != "join"]
        running = 0
        if busy and self.bar is not None:
            try:
                running = sum(self.ray.get([s.handle.progress.remote() for s in busy], timeout=5))
            except Exception:  # noqa: BLE001 - a worker died meanwhile: its task's own result reports it
                running = 0
        self.report.frames = self.frames_done
        if self.bar is None:
            return
        elapsed = max(1e-9, time.perf_counter() - self.started)
        done = self.frames_done + running
        self.bar.n = done
        finished = sum(1 for f in self.files if f.report.status in ("done", "failed"))
        self.bar.set_postfix(files=f"{finished}/{len(self.files)}", fps=f"{done / elapsed:.1f}",
                             failed=sum(1 for f in self.files if f.failed), refresh=False)
        self.bar.refresh()


def _remove_partials(task: Task, pid: int | None) -> None:
    """The hidden partial output a dead worker left (VideoWriter and PartWriter name them by pid)."""
    if pid is None:
        return
    targets = [task.dst] if task.kind in ("file", "join") else [task.part]
    for final in targets:
        suffix = final.suffix or ".mp4"
        with contextlib.suppress(OSError):
            final.with_name(f".{final.stem}.partial-{pid}{suffix}").unlink(missing_ok=True)

