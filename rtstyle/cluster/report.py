"""What a cluster job did: per file (status, workers, device, frames, fps, retries) and in total,
with the job's fixed costs apart (joining or starting the cluster, reserving the workers, the first
task starting, engines opening, segment joins)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..fsutil import atomic_path


@dataclass
class FileReport:
    input: Path
    output: Path
    status: str  # pending | done | failed | skipped | interrupted (partial output finalised) | not started
    error: str | None = None
    frames: int = 0
    segments: int = 0  # 0: stylized as one task
    retries: int = 0  # tasks of this file rerun after their worker died
    busy_s: float = 0.0  # worker seconds spent stylizing (all segments, the join not included)
    join_s: float = 0.0  # the segments' join (long files only)
    elapsed_s: float = 0.0  # tasks submitted to output in place
    workers: list[str] = field(default_factory=list)  # host:pid of each task that finished
    device: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def fps(self) -> float:
        return self.frames / self.busy_s if self.busy_s > 0 else 0.0

    def to_dict(self) -> dict:
        return {"input": str(self.input), "output": str(self.output), "status": self.status, "error": self.error,
                "frames": self.frames, "segments": self.segments, "retries": self.retries,
                "fps": round(self.fps, 3), "busy_s": round(self.busy_s, 3), "join_s": round(self.join_s, 3),
                "elapsed_s": round(self.elapsed_s, 3),
                "workers": sorted(set(self.workers)), "device": self.device, "warnings": self.warnings}


@dataclass
class ClusterReport:
    address: str
    files: list[FileReport] = field(default_factory=list)
    workers: dict[str, dict] = field(default_factory=dict)  # host:pid -> host, node_ip, node_id, pid, device, threads
    resources: dict = field(default_factory=dict)  # the nodes, the workers and what each reserves
    frames: int = 0
    wall_s: float = 0.0
    connect_s: float = 0.0  # starting (--ray local) or joining the cluster
    reserve_s: float = 0.0  # the placement group of the workers, ready
    first_start_s: float | None = None  # tasks submitted to the first one running (a worker process up)
    engine_open_s: float = 0.0  # the slowest engine open in a worker
    interrupted: str | None = None  # why the job stopped early (Ctrl-C, SIGTERM), else None

    def by_status(self, status: str) -> list[FileReport]:
        return [f for f in self.files if f.status == status]

    @property
    def failed(self) -> list[FileReport]:
        return [f for f in self.files if f.status == "failed"]

    def totals(self) -> dict:
        done = self.by_status("done")
        frames = sum(f.frames for f in done)
        wall = self.wall_s or 1e-9
        first = self.first_start_s
        return {"address": self.address, "files": len(self.files), "done": len(done),
                "skipped": len(self.by_status("skipped")), "failed": len(self.failed),
                "interrupted": len(self.by_status("interrupted")), "not_started": len(self.by_status("not started")),
                "frames": frames, "retries": sum(f.retries for f in self.files), "wall_s": round(self.wall_s, 3),
                "connect_s": round(self.connect_s, 3), "reserve_s": round(self.reserve_s, 3),
                "first_start_s": None if first is None else round(first, 3),
                "engine_open_s": round(self.engine_open_s, 3), "join_s": round(sum(f.join_s for f in self.files), 3),
                "fps": round(frames / wall, 3), "files_per_s": round(len(done) / wall, 4),
                "workers": len(self.workers), "nodes": len({w.get("node_id") for w in self.workers.values()}),
                "resources": self.resources, "stopped": self.interrupted}

    def to_dict(self) -> dict:
        return {"videos": [f.to_dict() for f in self.files], "cluster": self.totals(),
                "workers": list(self.workers.values())}

    def write(self, path: Path) -> Path:
        path = Path(path)
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    def summary_lines(self) -> list[str]:
        t = self.totals()
        stopped = "".join(f", {t[k]} {k.replace('_', ' ')}" for k in ("interrupted", "not_started") if t[k])
        res = self.resources
        workers = f"{res['workers']} worker{'s' if res.get('workers') != 1 else ''}" if res else ""
        where = f"on {workers} of {_bundle(res['per_worker'])} ({res['nodes']}); " if res else ""
        first = (f"{t['done']} done, {t['skipped']} skipped, {t['failed']} failed{stopped}; {t['frames']} frames in "
                 f"{t['wall_s']:.1f} s ({t['fps']:.1f} fps, {t['files_per_s']:.3f} files/s) {where}"
                 f"{t['retries']} retries")
        lines = [first]
        lines += [f"failed: {f.input}: {f.error}" for f in self.failed]
        return lines


def _bundle(resources: dict) -> str:
    return " + ".join(f"{v:g} {k}" for k, v in sorted(resources.items(), key=lambda kv: kv[0] != "GPU"))
