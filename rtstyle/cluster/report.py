"""What a cluster job did: per file (status, workers, device, frames, fps, retries) and in total."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..fsutil import atomic_path


@dataclass
class FileReport:
    input: Path
    output: Path
    status: str  # pending | done | failed | skipped
    error: str | None = None
    frames: int = 0
    segments: int = 0  # 0: stylized as one task
    retries: int = 0  # tasks of this file rerun after their worker died
    busy_s: float = 0.0  # worker seconds spent stylizing (all segments, the join not included)
    elapsed_s: float = 0.0  # first task started to output in place
    workers: list[str] = field(default_factory=list)  # host:pid of each task that finished
    device: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def fps(self) -> float:
        return self.frames / self.busy_s if self.busy_s > 0 else 0.0

    def to_dict(self) -> dict:
        return {"input": str(self.input), "output": str(self.output), "status": self.status, "error": self.error,
                "frames": self.frames, "segments": self.segments, "retries": self.retries,
                "fps": round(self.fps, 3), "busy_s": round(self.busy_s, 3), "elapsed_s": round(self.elapsed_s, 3),
                "workers": sorted(set(self.workers)), "device": self.device, "warnings": self.warnings}


@dataclass
class ClusterReport:
    address: str
    files: list[FileReport] = field(default_factory=list)
    workers: list[dict] = field(default_factory=list)  # host, node_ip, pid, device of every worker that started
    worker_errors: list[str] = field(default_factory=list)
    resources: dict = field(default_factory=dict)
    frames: int = 0
    wall_s: float = 0.0
    startup_s: float = 0.0  # from planning done to every worker up with its engine open
    created: float = field(default_factory=time.perf_counter)

    def by_status(self, status: str) -> list[FileReport]:
        return [f for f in self.files if f.status == status]

    @property
    def failed(self) -> list[FileReport]:
        return [f for f in self.files if f.status != "done" and f.status != "skipped"]

    def totals(self) -> dict:
        done = self.by_status("done")
        frames = sum(f.frames for f in done)
        wall = self.wall_s or 1e-9
        return {"address": self.address, "files": len(self.files), "done": len(done),
                "skipped": len(self.by_status("skipped")), "failed": len(self.failed), "frames": frames,
                "retries": sum(f.retries for f in self.files), "wall_s": round(self.wall_s, 3),
                "startup_s": round(self.startup_s, 3),
                "fps": round(frames / wall, 3), "files_per_s": round(len(done) / wall, 4),
                "workers": len(self.workers), "nodes": len({w.get("node_id") for w in self.workers}),
                "resources": self.resources, "worker_errors": self.worker_errors}

    def to_dict(self) -> dict:
        return {"videos": [f.to_dict() for f in self.files], "cluster": self.totals(), "workers": self.workers}

    def write(self, path: Path) -> Path:
        path = Path(path)
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    def summary_lines(self) -> list[str]:
        t = self.totals()
        first = (f"{t['done']} done, {t['skipped']} skipped, {t['failed']} failed; {t['frames']} frames in "
                 f"{t['wall_s']:.1f} s ({t['fps']:.1f} fps, {t['files_per_s']:.3f} files/s) on {t['workers']} "
                 f"workers, {t['nodes']} nodes; {t['retries']} retries")
        lines = [first]
        lines += [f"failed: {f.input}: {f.error}" for f in self.failed]
        return lines
