"""What a cluster job does: one task per file, or per segment of a long file plus a join.

* ``plan_job(config, cluster) -> JobPlan``: the (input, output) pairs of a single-machine run (same
  names, same checks), minus complete outputs under ``skip_existing``; long files cut at keyframes.
  ``FileJob.items()`` are its tasks (``Item``: a file, a segment, a join).
* ``why_incomplete(src, dst, config)``: the ``--skip-existing`` test: what the output's run tag
  (``video.tag``) says, not a count of its frames.
* ``find_cuts(path, ...)``: keyframe timestamps about every ``segment_seconds``.

A segment covers [its keyframe, the next cut) of the input. Its reader seeks to the keyframe and
re-bases timestamps to that frame, so adding ``offset`` (the keyframe's pts minus the pts of the
file's first frame) gives back the timestamps a single-machine run would write.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from ..errors import InputError, RtstyleError
from ..photos import is_photo
from ..stylize import StylizeConfig, plan_outputs
from ..video import VideoInfo, VideoReader
from ..video.tag import read_tag

# A file is split only when it is this many segments long at least: shorter tails are not worth a join.
MIN_SPLIT_SEGMENTS = 1.5


@dataclass(frozen=True)
class ClusterConfig:
    address: str = "local"  # local | auto | HOST:PORT
    workers: int | None = None  # None: one per GPU, else one per node (resources.plan_workers)
    max_retries: int = 2  # Ray's task retries: reruns of a file or segment whose worker or node died
    segment_seconds: float = 120.0  # split files longer than 1.5x this at keyframes; 0 = never split
    skip_existing: bool = False
    stall_timeout: float = 120.0  # seconds without any node able to host a worker before the job gives up

    def __post_init__(self) -> None:
        if self.workers is not None and self.workers < 1:
            raise InputError(f"--workers must be >= 1, got {self.workers}")
        if self.max_retries < 0:
            raise InputError(f"--max-retries must be >= 0, got {self.max_retries}")
        if self.segment_seconds < 0:
            raise InputError(f"--segment-seconds must be >= 0 (0 = never split), got {self.segment_seconds}")
        if not self.stall_timeout > 0:
            raise InputError(f"--stall-timeout must be > 0 seconds, got {self.stall_timeout}")


@dataclass(frozen=True)
class Segment:
    index: int
    start: float | None  # seconds, for VideoReader (None: the file's own start)
    duration: float | None  # seconds (None: to the end of the file or window)
    offset: int  # added to the segment's re-based pts (time-base units)


@dataclass(frozen=True)
class Item:
    """One task: a whole file, one segment of a file (into the lossless ``part``), or the join of a
    file's segments (which takes their results as arguments)."""

    kind: str  # file | segment | join
    key: str  # unique in the job: "3", "3/s1", "3/join"
    src: Path
    dst: Path
    segment: Segment | None = None
    part: Path | None = None

    @property
    def label(self) -> str:
        if self.kind == "segment":
            return f"{self.src.name} segment {self.segment.index}"
        return f"{self.src.name} (join)" if self.kind == "join" else self.src.name


@dataclass
class FileJob:
    src: Path
    dst: Path
    frames: int | None  # expected frames (for the progress bar), None if unknown
    segments: list[Segment] = field(default_factory=list)  # empty: the file is one task
    index: int = 0  # place in the job (item keys)

    @property
    def parts_dir(self) -> Path:
        """Hidden folder beside the output for the lossless segment files (removed after the join)."""
        return self.dst.with_name(f".{self.dst.stem}.rtstyle-segments")

    def items(self) -> list[Item]:
        """Its tasks: the file, or each segment then the join."""
        if not self.segments:
            return [Item("file", str(self.index), self.src, self.dst)]
        parts = [Item("segment", f"{self.index}/s{seg.index}", self.src, self.dst, seg,
                      self.parts_dir / f"{seg.index:05d}.mkv") for seg in self.segments]
        return [*parts, Item("join", f"{self.index}/join", self.src, self.dst)]


@dataclass
class JobPlan:
    files: list[FileJob]
    skipped: list[tuple[Path, Path]]  # complete outputs left alone
    failed: list[tuple[Path, Path, str]]  # inputs that cannot be done, with the reason


def plan_job(config: StylizeConfig, cluster: ClusterConfig) -> JobPlan:
    # plan_outputs applies the single-machine rules (names, output == input, writable folders, and
    # "exists: pass -y"); under --skip-existing existing outputs are judged one by one instead.
    pairs = plan_outputs(dataclasses.replace(config, overwrite=True) if cluster.skip_existing else config)
    plan = JobPlan([], [], [])
    for src, dst in pairs:
        if cluster.skip_existing and dst.exists():
            why = why_incomplete(src, dst, config)
            if why is None:
                plan.skipped.append((src, dst))
                continue
            if not config.overwrite:
                plan.failed.append((src, dst, f"output exists but is incomplete ({why}): {dst}; pass -y to replace it"))
                continue
        if is_photo(src):  # one picture, one task (the worker checks it as a single-machine run does)
            plan.files.append(FileJob(src, dst, 1, index=len(plan.files)))
            continue
        try:
            reader = VideoReader(src, config.start, config.duration, decoder=config.decoder)
        except RtstyleError as exc:
            plan.failed.append((src, dst, str(exc)))
            continue
        job = FileJob(src, dst, expected_frames(reader), index=len(plan.files))
        if cluster.segment_seconds > 0 and reader.decoder == "pyav" and not reader.info.decode_order_timestamps:
            job.segments = split(reader, cluster.segment_seconds)
        plan.files.append(job)
    return plan


def why_incomplete(src: Path, dst: Path, config: StylizeConfig) -> str | None:
    """``--skip-existing``: None when ``dst`` is a finished output of ``src`` for this window, else
    why not. A video output says so itself: its run tag (``video.tag``), sealed at finalisation,
    names the source (size, modification time), the window and how the run ended (an interrupted
    run finalises a playable but partial file under the final name). A photo output is written
    whole or not at all."""
    if is_photo(src):
        return None
    tag = read_tag(dst)
    if tag is None:
        return "no rtstyle run tag: written by another program or an older rtstyle"
    return tag.why_not_complete(src, config.start, config.duration)


def window(reader: VideoReader) -> tuple[float, float | None]:
    """[start, end) in seconds of the part of the input a run stylizes."""
    info = reader.info
    end = reader.end
    if info.duration is not None:
        end = info.duration if end is None else min(end, info.duration)
    return reader.start, end


def expected_frames(reader: VideoReader) -> int | None:
    info = reader.info
    if not info.num_frames:
        return None
    start, end = window(reader)
    if start == 0 and reader.end is None or not info.duration:
        return info.num_frames
    return max(0, round(info.num_frames * ((end or info.duration) - start) / info.duration))


def split(reader: VideoReader, segment_seconds: float) -> list[Segment]:
    """Segments of about ``segment_seconds`` starting at keyframes; [] when the window is too short
    or has no keyframe to cut at."""
    info = reader.info
    start, end = window(reader)
    if end is None or end - start < MIN_SPLIT_SEGMENTS * segment_seconds:
        return []
    cuts = find_cuts(info, start, end, segment_seconds)
    if not cuts:
        return []
    origin = first_pts(info, start)
    tb = info.time_base
    bounds = [start] + [float(c * tb) for c in cuts]
    segments = []
    for i, t in enumerate(bounds):
        last = i == len(bounds) - 1
        duration = (reader.end - t if reader.end is not None else None) if last else bounds[i + 1] - t
        segments.append(Segment(i, reader.start if i == 0 and reader.start else (t if i else None), duration,
                                0 if i == 0 else cuts[i - 1] - origin))
    return segments


def find_cuts(info: VideoInfo, start: float, end: float, every: float) -> list[int]:
    """Keyframe pts about every ``every`` seconds inside (start, end), none closer than half of
    ``every`` to another cut or to either end. Seeks, so it reads a packet per cut, not the file."""
    import av

    cuts: list[int] = []
    tb = info.time_base
    with av.open(str(info.path)) as container:
        stream = container.streams.video[0]
        target = start + every
        while target < end - every / 2:
            container.seek(int(target / tb), stream=stream, backward=True)
            packet = next((p for p in container.demux(stream) if p.pts is not None), None)
            target += every
            if packet is None or not packet.is_keyframe:
                continue
            t = float(packet.pts * tb)
            previous = float(cuts[-1] * tb) if cuts else start
            if t - previous >= every / 2 and end - t >= every / 2:
                cuts.append(packet.pts)
    return cuts


def first_pts(info: VideoInfo, start: float) -> int:
    """The pts of the first frame a reader of the window [start, ...) yields, before re-basing."""
    import av

    tb: Fraction = info.time_base
    with av.open(str(info.path)) as container:
        stream = container.streams.video[0]
        if start > 0:
            container.seek(int(start / tb), stream=stream, backward=True)
        for frame in container.decode(stream):
            if frame.pts is not None and float(frame.pts * tb) >= start - 1e-9:
                return frame.pts
    raise InputError(f"no frames in {info.path} after {start}s")
