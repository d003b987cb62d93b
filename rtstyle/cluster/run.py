"""The driver of a cluster job: every item of the plan is a Ray task; placement, queueing, retries
and node loss are Ray's.

Which Ray feature does what:

* A placement group (``ray.util.placement_group``, strategy SPREAD) reserves the job's workers:
  one bundle per worker, each fitting one node (``resources.plan_workers``: a worker's threads come
  from a node's CPUs), spread over the nodes. When a node is lost, Ray re-places its bundles as
  soon as some node has room.
* Tasks (``ray.remote`` over ``worker.run_item``) go into any bundle of the group (bundle index
  -1). Ray queues them until a bundle is free, so each worker runs one item at a time.
* ``max_retries`` (``--max-retries``) with ``retry_exceptions=False``: a task whose worker process
  or node died is run again by Ray in whichever bundle is free, on a surviving node; an exception
  the item raised itself (a bad input, a full disk) is not retried: it would fail the same way.
* Object refs as arguments: a long file's join task takes its segments' results, so Ray starts it
  when the last segment is done; a result lost with its node is recomputed from its lineage.
* ``ray.cancel``: Ctrl-C or SIGTERM interrupts the running tasks (their frame path finalises a
  playable partial output, as a single-machine run does) and drops the queued ones.

Why tasks and not actors (``ray.util.ActorPool``, or Ray Data's actor pools): Ray retries an actor's
call on that same actor once it is restarted, and a cluster at full capacity that lost a node has
no room to restart it: the job would wait for ever. A task retry goes to any free worker. The price
is paid on GPUs, where Ray gives each task a fresh process and so each item opens its engine.

The driver dispatches nothing: it submits every task at once, then collects the results as they
come (``ray.wait``) for the report and the progress bar, and watches what Ray leaves to its caller:
the signals, and whether any alive node can still host a worker at all. When none can (every such
node lost, none joined) for ``stall_timeout`` seconds, the job ends with that reason, the items
not done reported as failed, instead of waiting for ever.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ClusterError, InputError, Interrupted, RtstyleError
from ..models import resolve_model
from ..outputs import partial_path, partials_of
from ..progress import progress as progress_bar
from ..stylize import StylizeConfig
from ..video.tag import new_run_id, read_tag
from .plan import ClusterConfig, FileJob, Item, JobPlan, plan_job
from .report import ClusterReport, FileReport
from .resources import WorkerShape, describe_nodes, plan_workers
from .worker import EngineFactory, Journal, run_item

_TICK_S = 0.5  # progress and watch interval
_NODES_EVERY_S = 2.0  # how often the alive nodes are read (a GCS call)
_CANCEL_GRACE_S = 60.0  # after a stop: how long the running tasks get to finalise their partial outputs


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
                stop: threading.Event | None = None, on_done: Callable[[FileReport], None] | None = None,
                on_note: Callable[[str], None] | None = None) -> ClusterReport:
    """Stylize ``config.inputs`` on a Ray cluster; see the package docstring. ``stop`` (set by the
    caller's signal handler) interrupts the job: running items finalise their partial outputs and
    ``Interrupted`` is raised after the report is written. ``on_done`` hears of each file as it
    finishes (done or failed), ``on_note`` of what the job meets on the way (a node lost, a wait)."""
    from .connect import check_address, connect, require_ray

    check_address(cluster.address)
    require_ray()  # without the extra: a one-line error before any work
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
    config = dataclasses.replace(config, run_id=config.run_id or new_run_id())
    report = ClusterReport(address=cluster.address)
    try:
        if plan.files:  # a finished job under --skip-existing needs no cluster at all
            connecting = time.perf_counter()
            with connect(cluster.address) as ray:
                report.connect_s = time.perf_counter() - connecting
                _Job(ray, config, cluster, plan, engine_factory, report, stop or threading.Event(),
                     on_done or (lambda f: None), on_note or (lambda s: None)).run()
        else:
            _Job.report_plan(plan, report)
    finally:
        report.wall_s = time.perf_counter() - started
        if config.stats_path is not None:
            report.write(config.stats_path)
    if report.interrupted:
        raise Interrupted(report.interrupted)
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


@dataclass
class _File:
    job: FileJob
    report: FileReport
    items: list[Item]
    refs: list = field(default_factory=list)  # one per item, in order (the join last)
    finished_by: dict | None = None  # where its last item's successful attempt ran

    @property
    def finished(self) -> bool:
        return self.report.status in ("done", "failed", "interrupted", "not started")


class _Job:
    def __init__(self, ray, config: StylizeConfig, cluster: ClusterConfig, plan: JobPlan,
                 engine_factory: EngineFactory | None, report: ClusterReport, stop: threading.Event,
                 on_done: Callable[[FileReport], None], on_note: Callable[[str], None]):
        self.ray, self.config, self.cluster, self.plan = ray, config, cluster, plan
        self.engine_factory, self.report, self.stop = engine_factory, report, stop
        self.on_done, self.on_note = on_done, on_note
        self.report_plan(plan, report)
        self.files: list[_File] = []
        for job in plan.files:
            rep = FileReport(job.src, job.dst, "pending", segments=len(job.segments))
            report.files.append(rep)
            self.files.append(_File(job, rep, job.items()))
        self.owner: dict = {}  # ref -> (file, item index)
        self.by_key: dict = {}  # item key -> ref
        self.settled: set = set()  # refs whose result came back
        self.frames_done = 0
        self.journal = None  # the driver's Journal actor (_journal)
        self.snapshot: dict = {"attempts": {}, "frames": {}}

    @staticmethod
    def report_plan(plan: JobPlan, report: ClusterReport) -> None:
        report.files += [FileReport(src, dst, "skipped") for src, dst in plan.skipped]
        report.files += [FileReport(src, dst, "failed", error=why) for src, dst, why in plan.failed]

    # ------------------------------------------------------------------ setup
    def _alive_nodes(self) -> list[dict]:
        return [n for n in self.ray.nodes() if n.get("Alive")]

    def _shape(self) -> WorkerShape:
        totals = [n.get("Resources", {}) for n in self._alive_nodes()]
        use_gpu = self.config.device != "cpu" and any(r.get("GPU", 0) >= 1 for r in totals)
        shape = plan_workers(totals, use_gpu, self.cluster.workers)
        self.report.resources = {"nodes": describe_nodes(totals), "workers": shape.workers,
                                 "per_worker": shape.bundle}
        return shape

    def _reserve(self, shape: WorkerShape):
        """The placement group of the job's workers, ready; a ``ClusterError`` if the cluster cannot
        give it within ``stall_timeout`` (the resources are held by other jobs)."""
        from ray.util.placement_group import placement_group, remove_placement_group

        group = placement_group([shape.bundle] * shape.workers, strategy="SPREAD")
        ready, since, said = group.ready(), time.perf_counter(), False
        while not self.ray.wait([ready], timeout=_TICK_S)[0]:
            waited = time.perf_counter() - since
            if self.stop.is_set():
                remove_placement_group(group)
                raise Interrupted("interrupted while waiting for workers; nothing was written")
            if waited > 5 and not said:
                said = True
                self.on_note(f"waiting for {shape.describe()}: the cluster's free resources are "
                             f"{_resources(self.ray.available_resources())} (other jobs hold the rest)")
            if waited > self.cluster.stall_timeout:
                remove_placement_group(group)
                raise ClusterError(f"could not reserve {shape.describe()} within {self.cluster.stall_timeout:g} s; "
                                   f"free: {_resources(self.ray.available_resources())}; use fewer --workers or "
                                   f"wait for other jobs")
        return group

    def _submit(self, shape: WorkerShape, group) -> None:
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        ray = self.ray
        task = ray.remote(run_item)
        options = dict(num_cpus=shape.cpus, num_gpus=shape.gpus, max_retries=self.cluster.max_retries,
                       retry_exceptions=False,
                       scheduling_strategy=PlacementGroupSchedulingStrategy(group, placement_group_bundle_index=-1))
        device = "cuda" if shape.gpus else "cpu"
        config, factory, journal = ray.put(self.config), self.engine_factory, self.journal
        for f in self.files:
            for i, item in enumerate(f.items):
                parts = f.refs if item.kind == "join" else []
                ref = task.options(**options, name=f"rtstyle {item.label}").remote(
                    config, item, shape.cpus, device, journal, factory, *parts)
                f.refs.append(ref)
                self.owner[ref] = (f, i)
                self.by_key[item.key] = ref

    # ------------------------------------------------------------------ running
    def run(self) -> None:
        from ray.util.placement_group import remove_placement_group

        shape = self._shape()
        self.journal = _journal(self.ray)  # starting (a first job's) meanwhile
        reserving = time.perf_counter()
        group = self._reserve(shape)
        self.report.reserve_s = time.perf_counter() - reserving
        self.submitted, self.submitted_wall = time.perf_counter(), time.time()
        bar = progress_bar(self._total_frames(), f"{len(self.files)} files, {shape.workers} workers", "frame",
                           mode=self.config.progress)
        try:
            self._submit(shape, group)
            self._collect(shape, bar)
        except BaseException:
            self._abort()
            raise
        finally:
            bar.close()
            self._refresh()
            with contextlib.suppress(Exception):
                remove_placement_group(group)
            with contextlib.suppress(Exception):
                self.journal.forget.remote(self.config.run_id)
            for f in self.files:
                if f.job.segments:
                    shutil.rmtree(f.job.parts_dir, ignore_errors=True)
        self._finish_report()

    def _total_frames(self) -> int | None:
        totals = [f.job.frames for f in self.files]
        return sum(totals) if all(totals) else None

    def _collect(self, shape: WorkerShape, bar) -> None:
        pending = set(self.owner)
        alive = {n["NodeID"]: n for n in self._alive_nodes()}
        last_nodes = last_tick = 0.0
        stalled_since = None
        cancel_deadline = None
        while pending:
            ready, _ = self.ray.wait(list(pending), num_returns=1, timeout=_TICK_S)
            for ref in ready:
                pending.discard(ref)
                self._settle(ref)
            now = time.perf_counter()
            if now - last_tick >= _TICK_S:
                last_tick = now
                self._progress(bar)
            if self.stop.is_set() and cancel_deadline is None:
                cancel_deadline = now + _CANCEL_GRACE_S
                for ref in pending:
                    self.ray.cancel(ref)
            if cancel_deadline is not None and now > cancel_deadline:
                break  # tasks that ignore their cancel: the driver's exit ends them
            if now - last_nodes >= _NODES_EVERY_S and cancel_deadline is None:
                last_nodes = now
                nodes = {n["NodeID"]: n for n in self._alive_nodes()}
                for node_id in alive.keys() - nodes.keys():
                    self.on_note(f"node {alive[node_id].get('NodeManagerAddress')} ({node_id[:8]}) lost; Ray "
                                 f"reruns what its workers were running on the others (--max-retries)")
                alive = nodes
                if any(shape.fits(n.get("Resources", {})) for n in nodes.values()):
                    stalled_since = None
                elif stalled_since is None:
                    stalled_since = now
                    self.on_note(f"no alive node can host a worker ({shape.bundle}): "
                                 f"{describe_nodes([n.get('Resources', {}) for n in nodes.values()])}; waiting up to "
                                 f"{self.cluster.stall_timeout:g} s for one to join")
                elif now - stalled_since > self.cluster.stall_timeout:
                    self._stalled(pending, shape, nodes)
                    return
        self._progress(bar)

    def _stalled(self, pending: set, shape: WorkerShape, nodes: dict) -> None:
        why = (f"no node could host a worker ({shape.bundle}) for {self.cluster.stall_timeout:g} s: the nodes that "
               f"could were lost; alive: {describe_nodes([n.get('Resources', {}) for n in nodes.values()])}")
        for ref in pending:
            self.ray.cancel(ref, force=True)
        self._refresh()
        for f in self.files:
            if not f.finished:
                self._fail(f, why)

    def _settle(self, ref) -> None:
        from ray.exceptions import RayTaskError, TaskCancelledError

        f, index = self.owner[ref]
        item = f.items[index]
        self.settled.add(ref)
        try:
            result = self.ray.get(ref)
        except TaskCancelledError:
            self._cancelled(f)
            return
        except RayTaskError as exc:  # the item raised: a bad input, a full disk... not retried
            if isinstance(exc, Interrupted) and self.stop.is_set():  # the cancel reached its frame path
                self._cancelled(f)
            elif not f.finished:
                self._fail(f, f"{item.label}: {reason(exc)}" if f.job.segments else reason(exc))
            return
        except Exception as exc:  # noqa: BLE001 - Ray's own failures: the worker or node died on every attempt
            if not f.finished:
                # Ray gives up on a lost worker after exactly max_retries + 1 attempts; the journal may
                # miss the last ones (a worker killed before its record reached the journal actor).
                attempts = max(len(self.snapshot["attempts"].get(item.key, [])), self.cluster.max_retries + 1)
                self._fail(f, f"{item.label}: its worker was lost on every attempt ({attempts}; last: {reason(exc)})")
            return
        if f.finished:
            return
        rep = f.report
        worker = result["worker"]
        rep.workers.append(f"{worker['host']}:{worker['pid']}")
        rep.warnings.extend(result.get("warnings", []))
        rep.device = result.get("device", rep.device)
        self.report.workers.setdefault(f"{worker['host']}:{worker['pid']}", {
            **{k: worker[k] for k in ("host", "node_ip", "node_id", "pid")}, "device": result.get("device"),
            "threads": result.get("threads")})
        self.report.engine_open_s = max(self.report.engine_open_s, result.get("engine_open_s", 0.0))
        if item.kind == "join":
            rep.join_s = result["wall_s"]
        else:
            rep.frames += result["frames"]
            rep.busy_s += result["wall_s"]
            self.frames_done += result["frames"]
        if index == len(f.items) - 1:  # the file, or its join
            rep.status, rep.retries = "done", self._retries(f)
            rep.elapsed_s = time.perf_counter() - self.submitted
            f.finished_by = worker
            self._remove_dead_attempts(f, worker)
            self.on_done(rep)

    def _fail(self, f: _File, why: str) -> None:
        f.report.status, f.report.error = "failed", why
        for ref in f.refs:
            with contextlib.suppress(Exception):
                self.ray.cancel(ref)
        self._remove_partials(f)
        self.on_done(f.report)

    def _cancelled(self, f: _File) -> None:
        if f.finished:
            return
        tag = read_tag(f.job.dst) if f.job.dst.exists() else None
        if tag is not None and tag.run == self.config.run_id and tag.end == "stop":
            f.report.status, f.report.frames = "interrupted", tag.frames
            f.report.error = f"interrupted after {tag.frames} frames; partial output finalised"
        else:
            f.report.status, f.report.error = "not started", "interrupted before it was written"

    def _refresh(self) -> None:
        if self.journal is not None:
            with contextlib.suppress(Exception):  # the journal is for display and the report only
                self.snapshot = self.ray.get(self.journal.snapshot.remote(self.config.run_id), timeout=10)

    def _progress(self, bar) -> None:
        self._refresh()
        running = sum(n for key, n in self.snapshot["frames"].items() if self.by_key.get(key) not in self.settled)
        self.report.frames = self.frames_done
        if self.report.first_start_s is None and self.snapshot["attempts"]:
            first = min(a["started"] for attempts in self.snapshot["attempts"].values() for a in attempts)
            self.report.first_start_s = max(0.0, first - self.submitted_wall)  # worker clocks: roughly in step
        bar.update(self.frames_done + running - bar.n)
        finished = sum(f.finished for f in self.files)
        bar.set_postfix(files=f"{finished}/{len(self.files)}", failed=sum(f.report.status == "failed" for f in self.files),
                        refresh=False)

    def _remove_dead_attempts(self, f: _File, finished_by: dict) -> None:
        """The hidden partial files that attempts of ``f`` which died left beside the output (named
        by their pid, as every writer names them)."""
        for item in f.items:
            for attempt in self.snapshot["attempts"].get(item.key, []):
                if attempt["pid"] != finished_by["pid"] or attempt["node_id"] != finished_by["node_id"]:
                    with contextlib.suppress(OSError):
                        partial_path(f.job.dst, attempt["pid"]).unlink(missing_ok=True)

    @staticmethod
    def _remove_partials(f: _File) -> None:
        """Every partial file of ``f``'s output, for a file no attempt finished and none still runs:
        each is an attempt's that died, whether or not the journal heard of it (a worker killed at
        once may not have reported; pids name processes of other nodes too)."""
        for partial, _ in partials_of(f.job.dst):
            with contextlib.suppress(OSError):
                partial.unlink()

    def _abort(self) -> None:
        """A second Ctrl-C or a driver error: cancel at once, leave no partial files behind."""
        for ref in self.owner:
            with contextlib.suppress(Exception):
                self.ray.cancel(ref, force=True)
        for f in self.files:
            if f.report.status != "done":
                self._remove_partials(f)
                if f.report.status == "pending":
                    f.report.status, f.report.error = "not started", "interrupted"

    def _retries(self, f: _File) -> int:
        """Attempts of ``f``'s items beyond the first (Ray's retries after a lost worker or node)."""
        return sum(max(0, len(self.snapshot["attempts"].get(item.key, [])) - 1) for item in f.items)

    def _finish_report(self) -> None:
        for f in self.files:
            f.report.retries = self._retries(f)
            if f.finished_by is not None:  # again, with every attempt now in the journal's record
                self._remove_dead_attempts(f, f.finished_by)
            if self.stop.is_set() and not f.finished:  # its task ignored the cancel until the grace ran out
                self._cancelled(f)
        interrupted = [f for f in self.files if f.report.status in ("interrupted", "not started")]
        if self.stop.is_set() or interrupted:
            done = sum(f.report.status == "done" for f in self.files)
            partial = [f for f in interrupted if f.report.status == "interrupted"]
            self.report.interrupted = (f"interrupted: {done} of {len(self.files)} files done"
                                       + (f", {len(partial)} partial outputs finalised" if partial else "")
                                       + (", the rest not written" if len(interrupted) > len(partial) else ""))


def _journal(ray):
    """This driver's ``Journal`` actor: started by its first job and kept for the next ones, as Ray
    keeps the driver's worker processes (an actor is a process of its own: seconds to start, which
    every job paid before its first item could run). On the driver's node; a new one if it died."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    context = ray.get_runtime_context()
    here = context.get_node_id()
    key = (here, context.get_job_id())
    handle = _JOURNALS.get(key)
    if handle is not None:
        try:
            ray.get(handle.snapshot.remote(""), timeout=10)
            return handle
        except Exception:  # noqa: BLE001 - gone (killed, its node lost): start another
            pass
    _JOURNALS.clear()
    _JOURNALS[key] = ray.remote(Journal).options(
        num_cpus=0, max_restarts=0, scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=False)).remote()
    return _JOURNALS[key]


_JOURNALS: dict = {}  # (driver's node id, Ray job id) -> the Journal actor of that driver


def _resources(values: dict) -> str:
    shown = {k: v for k, v in values.items() if k in ("CPU", "GPU")}
    return ", ".join(f"{v:g} {k}" for k, v in sorted(shown.items())) or "none"
