"""File jobs: an uploaded video or photo stylized in the background, then downloaded once.

Both go through ``rtstyle.stylize`` (the code behind ``rtstyle stylize``: audio and timestamps
kept, photos through the same engine path), with the limits of ``rtstyle.limits`` that the server
sets (``JobRequest.limits``), held before decoding (``stylize.check_input``, also at upload) and
while decoding. Jobs run one at a time on a worker thread (they would only share the same cores);
the app submits one only with a job slot taken (``Slots``), which the job gives back when it ends.
Progress is counted by a thin engine wrapper, so the stylize code needs no hook; the same wrapper
stops a job whose result would pass the studio's disk cap.

A failed job's files are deleted at once (its record stays, with the error, until its time
limit); a finished one's after download or its time limit.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ..conditioning import StyleChoice
from ..counting import CountingEngine
from ..errors import RtstyleError
from ..limits import Limits
from ..strength import with_strength
from .security import Slots, UploadStore

VIDEO_OUTPUT, PHOTO_OUTPUT = "output.mp4", "output.png"


@dataclass(frozen=True)
class JobRequest:
    model: str
    kind: str  # video | image
    input: Path  # inside the job's private folder, named by the server
    style: StyleChoice = field(default_factory=StyleChoice)
    temporal_smoothing: float = 0.0
    max_side: int | None = None
    strength: float = 1.0  # any model: blend with the input (rtstyle.strength)
    limits: Limits = field(default_factory=Limits)  # the server's, tightened by the client's own values

    def stylize_config(self):
        """The ``StylizeConfig`` of this job: the same checks and path as ``rtstyle stylize``."""
        from ..stylize import StylizeConfig

        output = self.input.parent / (PHOTO_OUTPUT if self.kind == "image" else VIDEO_OUTPUT)
        return StylizeConfig(inputs=(self.input,), model=self.model, output=output, batch_size=2, progress=False,
                             max_side=self.max_side, temporal_smoothing=self.temporal_smoothing, style=self.style,
                             limits=self.limits)


@dataclass
class Job:
    id: str
    request: JobRequest
    status: str = "queued"  # queued | running | done | failed
    frames_done: int = 0
    frames_total: int | None = None
    error: str | None = None
    output: Path | None = None
    downloaded: bool = False
    created: float = field(default_factory=time.time)
    finished: float | None = None
    counter: CountingEngine | None = None

    def to_dict(self, download_url: str | None) -> dict:
        done = self.counter.frames if self.counter is not None else self.frames_done
        if self.status == "done":
            progress = 1.0
        elif self.frames_total:
            progress = min(0.99, done / self.frames_total)
        else:
            progress = 0.0
        return {"id": self.id, "status": self.status, "kind": self.request.kind, "model": self.request.model,
                "progress": round(progress, 3), "frames_done": done, "frames_total": self.frames_total,
                "error": self.error, "download": download_url if self.status == "done" and not self.downloaded else None,
                "downloaded": self.downloaded}


class JobManager:
    def __init__(self, store: UploadStore, open_engine_for, max_jobs: int = 2,
                 check_disk: Callable[[], None] | None = None, public: Callable[[str], str] = str):
        """``open_engine_for(model, style, batch_size)`` opens an engine for one of the served
        models; ``check_disk()`` raises when the store is past its cap (called between batches);
        ``public(text)`` makes an error message fit for a client (no server paths)."""
        self.store = store
        self.open_engine_for = open_engine_for
        self.check_disk = check_disk
        self.public = public
        self.slots = Slots(max_jobs, "file job")
        self.jobs: dict[str, Job] = {}
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rtstyle-job")
        self._stop = threading.Event()

    def reserve(self) -> bool:
        """Take a job slot, once an upload is complete on disk (``submit`` hands it to the job)."""
        return self.slots.acquire()

    def submit(self, job_id: str, request: JobRequest) -> Job:
        """Run ``request`` with the slot the caller reserved; the job releases it when it ends."""
        job = Job(job_id, request)
        self.jobs[job_id] = job
        self._pool.submit(self._run, job)
        return job

    def _run(self, job: Job) -> None:
        job.status = "running"
        status, error = "failed", "stopped"
        try:
            self._stylize(job)
            status, error = "done", None
        except RtstyleError as exc:
            error = self.public(str(exc))
        except Exception as exc:  # noqa: BLE001 - a bug or a codec failure: still an answer for the page
            error = f"unexpected {type(exc).__name__}: {self.public(' '.join(str(exc).split()))}"
        finally:
            if status == "failed":
                self.store.delete(job.id)  # nothing a failed job uploaded stays on disk
            job.finished = time.time()
            self.slots.release()
            job.status, job.error = status, error  # last: a client that sees the end sees it all done

    def _stylize(self, job: Job) -> None:
        from ..stylize import check_input, plan_batch, stylize_batch

        req = job.request
        config = req.stylize_config()
        info = check_input(req.input, config)  # the limits from the header, before anything is decoded
        job.frames_total = 1 if info is None else info.num_frames
        job.counter = CountingEngine(with_strength(self.open_engine_for(req.model, req.style, config.batch_size),
                                                   req.strength),
                                     after_batch=self.check_disk)
        report = stylize_batch(config, job.counter, self._stop, plan_batch(config))
        if self.check_disk is not None:
            self.check_disk()  # the frames written after the last batch's check count too
        job.output = report.done[0].output
        job.frames_done = report.done[0].frames_out

    def get(self, job_id: str) -> Job | None:
        return self.jobs.get(job_id)

    def forget(self, job_id: str) -> None:
        """Delete a job's files and record (after download or its time limit)."""
        job = self.jobs.get(job_id)
        if job is not None and job.status in ("queued", "running"):
            return  # never pull files from under a running job; the next purge gets it
        self.jobs.pop(job_id, None)
        self.store.delete(job_id)

    def purge_expired(self) -> list[str]:
        """Forget finished jobs past the store's time limit: their files, and the records of
        failed jobs (whose files went when they failed)."""
        now = time.time()
        gone = [j for j in self.store.expired() if j not in self.jobs or self.jobs[j].status not in ("queued", "running")]
        gone += [j for j, job in self.jobs.items() if job.status == "failed" and j not in gone
                 and job.finished is not None and now - job.finished > self.store.ttl_s]
        for job_id in gone:
            self.forget(job_id)
        return gone

    def close(self) -> None:
        self._stop.set()
        self._pool.shutdown(wait=True, cancel_futures=True)
