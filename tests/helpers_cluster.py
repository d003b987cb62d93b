"""Clips and engines for the Ray cluster tests: a clip with regular keyframes and B-frames (so it
can be cut into segments), a folder of every container rtstyle reads (an AVI with packed B-frames,
XviD/DivX style, among them), and an engine factory that is slow and reports its worker's pid."""

from __future__ import annotations

import os
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from rtstyle.engine import Engine
from rtstyle.stylize import open_chain
from tests.helpers_video import _write_sine, frame_pattern, make_clip, make_packed_avi


def make_keyframed_clip(path: Path, frames: int = 72, fps: int = 24, gop: int = 12, size=(64, 48),
                        audio: bool = True) -> Path:
    """H.264 with a keyframe every ``gop`` frames and B-frames (display order != decode order)."""
    width, height = size
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        vs.time_base = vs.codec_context.time_base = Fraction(1, 1000)
        vs.codec_context.options = {"crf": "12", "preset": "veryfast",
                                    "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes=2"}
        aus = out.add_stream("aac", rate=8000, layout="mono") if audio else None
        for i in range(frames):
            f = av.VideoFrame.from_ndarray(frame_pattern(i, width, height), format="rgb24").reformat(format="yuv420p")
            f.pts, f.time_base = round(1000 * i / fps), Fraction(1, 1000)
            for p in vs.encode(f):
                out.mux(p)
        for p in vs.encode(None):
            out.mux(p)
        if aus is not None:
            _write_sine(out, aus, frames / fps)
    return path


def make_mixed_folder(folder: Path, frames: int = 8, size=(40, 32)) -> list[Path]:
    """One short clip in each container rtstyle reads: MP4, MKV (VFR), MOV, WebM (VP9), AVI with
    packed B-frames, animated GIF."""
    folder.mkdir(parents=True, exist_ok=True)
    return [
        make_clip(folder / "a.mp4", frames=frames, size=size),
        make_clip(folder / "b.mkv", frames=frames, size=size, vfr=True),
        make_clip(folder / "c.mov", frames=frames, size=size, audio=False),
        make_clip(folder / "d.webm", frames=frames, size=size, codec="libvpx-vp9", audio=False),
        make_packed_avi(folder / "e.avi", frames=frames + 4, size=(48, 32), audio=False),
        make_clip(folder / "f.gif", frames=frames, size=size, codec="gif", pix_fmt="rgb8", audio=False),
    ]


def keyframe_times(path: Path) -> list[float]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return sorted(float(p.pts * s.time_base) for p in c.demux(s) if p.is_keyframe and p.pts is not None)


def audio_packets(path: Path) -> list[tuple[int, bytes]]:
    """(pts, payload) of every audio packet: equal lists mean the same audio, copied once."""
    with av.open(str(path)) as c:
        return [(p.pts, bytes(p)) for p in c.demux(audio=0) if p.size]


class SlowEngine(Engine):
    """The real engine, ``delay`` seconds slower per batch; writes its worker's pid to ``pid_dir``
    before its first batch, so a test can kill the process mid-file."""

    backend = "slow"

    def __init__(self, inner: Engine, delay: float, pid_dir: Path):
        super().__init__(device=inner.device, precision=inner.precision, scale=inner.scale, reason=inner.reason)
        self.inner, self.delay, self.pid_dir = inner, delay, pid_dir
        self.calls = 0

    def _run(self, frames):
        if self.calls == 0:
            tmp = self.pid_dir / f".{os.getpid()}.tmp"
            tmp.write_text(str(os.getpid()))
            os.replace(tmp, self.pid_dir / f"{os.getpid()}.pid")
        self.calls += 1
        time.sleep(self.delay)
        return self.inner(frames)

    def describe(self) -> str:
        return f"slow {self.inner.describe()}"


class SlowEngineFactory:
    def __init__(self, delay: float, pid_dir: Path):
        self.delay, self.pid_dir = delay, Path(pid_dir)

    def __call__(self, config):
        return SlowEngine(open_chain(config), self.delay, self.pid_dir)


class DyingEngine(SlowEngine):
    """Kills its own process (SIGKILL, as the OOM killer would) at its first batch: every attempt of
    every item it runs dies."""

    def _run(self, frames):
        super()._run(frames)
        os.kill(os.getpid(), 9)


class DyingEngineFactory(SlowEngineFactory):
    def __call__(self, config):
        return DyingEngine(open_chain(config), self.delay, self.pid_dir)


def same_video(a: Path, b: Path) -> tuple[bool, str]:
    """Decoded frames and timestamps equal (exactly)."""
    from tests.helpers_video import read_frames

    fa, ta = read_frames(a)
    fb, tb = read_frames(b)
    if len(fa) != len(fb):
        return False, f"{len(fa)} vs {len(fb)} frames"
    if ta != tb:
        return False, f"timestamps differ: {ta[:5]} vs {tb[:5]}"
    bad = [i for i, (x, y) in enumerate(zip(fa, fb)) if not np.array_equal(x, y)]
    return not bad, f"frames differ at {bad[:5]}"
