"""File jobs: an uploaded video or photo stylized in the background, then downloaded once.

Videos go through ``rtstyle.stylize.stylize_files`` (the code behind ``rtstyle stylize``: audio and
timestamps kept); a photo is one frame through the same engine. Jobs run one at a time on a worker
thread (they would only share the same cores); ``JobManager.submit`` refuses past ``max_jobs``
unfinished jobs. Progress is counted by a thin engine wrapper, so the stylize code needs no hook.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ..conditioning import StyleChoice
from ..counting import CountingEngine
from ..errors import InputError, RtstyleError
from ..strength import check_strength, with_strength
from .security import Slots, UploadStore


@dataclass(frozen=True)
class JobRequest:
    model: str
    kind: str  # video | image
    input: Path  # inside the job's private folder, named by the server
    style: StyleChoice = field(default_factory=StyleChoice)
    temporal_smoothing: float = 0.0
    max_side: int | None = None
    strength: float = 1.0  # any model: blend with the input (rtstyle.strength)

    def __post_init__(self) -> None:
        object.__setattr__(self, "strength", check_strength(self.strength))


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
    def __init__(self, store: UploadStore, open_engine_for, max_jobs: int = 2):
        """``open_engine_for(model, style, batch_size)`` opens an engine for one of the served models."""
        self.store = store
        self.open_engine_for = open_engine_for
        self.slots = Slots(max_jobs, "file job")
        self.jobs: dict[str, Job] = {}
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rtstyle-job")
        self._stop = threading.Event()

    def reserve(self) -> bool:
        """Take a job slot before reading an upload (released by ``submit`` failures or job end)."""
        return self.slots.acquire()

    def submit(self, job_id: str, request: JobRequest) -> Job:
        job = Job(job_id, request)
        self.jobs[job_id] = job
        self._pool.submit(self._run, job)
        return job

    def _run(self, job: Job) -> None:
        job.status = "running"
        try:
            if job.request.kind == "image":
                self._run_image(job)
            else:
                self._run_video(job)
            job.status = "done"
        except RtstyleError as exc:
            job.status, job.error = "failed", str(exc)
        except Exception as exc:  # noqa: BLE001 - a bug or a codec failure: still an answer for the page
            job.status, job.error = "failed", f"unexpected {type(exc).__name__}: {' '.join(str(exc).split())}"
        finally:
            job.finished = time.time()
            self.slots.release()

    def _run_video(self, job: Job) -> None:
        from ..stylize import StylizeConfig, stylize_files
        from ..video import VideoReader

        req = job.request
        out = req.input.parent / "output.mp4"
        config = StylizeConfig(inputs=(req.input,), model=req.model, output=out, batch_size=2, progress=False,
                               max_side=req.max_side, temporal_smoothing=req.temporal_smoothing, style=req.style)
        job.frames_total = VideoReader(req.input).info.num_frames or None  # also rejects undecodable uploads early
        job.counter = CountingEngine(with_strength(self.open_engine_for(req.model, req.style, 2), req.strength))
        results = stylize_files(config, job.counter, self._stop)
        job.output = results[0].output
        job.frames_done = results[0].frames_out

    def _run_image(self, job: Job) -> None:
        """A photo: one frame through the same pipeline (``sources.ImageSource``) into a PNG."""
        from ..frames import save_image
        from ..pipeline import run_pipeline
        from ..sinks import CallbackSink, SinkChain
        from ..sources import ImageSource

        req = job.request
        job.frames_total = 1
        job.counter = CountingEngine(with_strength(self.open_engine_for(req.model, req.style, 1), req.strength))
        results: list = []
        run_pipeline(ImageSource([req.input], max_side=req.max_side), job.counter,
                     SinkChain([CallbackSink(lambda image, frame: results.append(image))]), stop=self._stop)
        if not results:
            raise InputError("the photo gave no frame")
        job.output = save_image(req.input.parent / "output.png", results[0])
        job.frames_done = 1

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
        gone = [j for j in self.store.expired() if j not in self.jobs or self.jobs[j].status not in ("queued", "running")]
        for job_id in gone:
            self.forget(job_id)
        return gone

    def close(self) -> None:
        self._stop.set()
        self._pool.shutdown(wait=True, cancel_futures=True)
