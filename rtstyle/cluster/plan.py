"""What a cluster job does: one task per file, or per segment of a long file plus a join.

* ``plan_job(config, cluster) -> JobPlan``: the (input, output) pairs of a single-machine run (same
  names, same checks), minus complete outputs under ``skip_existing``; long files cut at keyframes.
* ``output_complete(src, dst, config)``: the ``--skip-existing`` test (see there).
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
from ..stylize import StylizeConfig, plan_outputs
from ..video import VideoInfo, VideoReader, probe

# A file is split only when it is this many segments long at least: shorter tails are not worth a join.
MIN_SPLIT_SEGMENTS = 1.5


@dataclass(frozen=True)
class ClusterConfig:
    address: str = "local"  # local | auto | HOST:PORT
    workers: int | None = None  # None: one per GPU, else one per node
    max_retries: int = 2  # per file or segment, after its worker died
    segment_seconds: float = 120.0  # split files longer than 1.5x this at keyframes; 0 = never split
    skip_existing: bool = False

    def __post_init__(self) -> None:
        if self.workers is not None and self.workers < 1:
            raise InputError(f"--workers must be >= 1, got {self.workers}")
        if self.max_retries < 0:
            raise InputError(f"--max-retries must be >= 0, got {self.max_retries}")
        if self.segment_seconds < 0:
            raise InputError(f"--segment-seconds must be >= 0 (0 = never split), got {self.segment_seconds}")


@dataclass(frozen=True)
class Segment:
    index: int
    start: float | None  # seconds, for VideoReader (None: the file's own start)
    duration: float | None  # seconds (None: to the end of the file or window)
    offset: int  # added to the segment's re-based pts (time-base units)


@dataclass
class FileJob:
    src: Path
    dst: Path
    frames: int | None  # expected frames (for the progress bar), None if unknown
    segments: list[Segment] = field(default_factory=list)  # empty: the file is one task

    @property
    def parts_dir(self) -> Path:
        """Hidden folder beside the output for the lossless segment files (removed after the join)."""
        return self.dst.with_name(f".{self.dst.stem}.rtstyle-segments")


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
        try:
            reader = VideoReader(src, config.start, config.duration, decoder=config.decoder)
        except RtstyleError as exc:
            plan.failed.append((src, dst, str(exc)))
            continue
        if cluster.skip_existing and dst.exists():
            if output_complete(reader, dst):
                plan.skipped.append((src, dst))
                continue
            if not config.overwrite:
                plan.failed.append((src, dst, f"output exists but is incomplete: {dst}; pass -y to replace it"))
                continue
        job = FileJob(src, dst, expected_frames(reader))
        if cluster.segment_seconds > 0 and reader.decoder == "pyav" and not reader.info.decode_order_timestamps:
            job.segments = split(reader, cluster.segment_seconds)
        plan.files.append(job)
    return plan


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


def output_complete(reader: VideoReader, dst: Path) -> bool:
    """``--skip-existing``: an output is complete when it has as many video frames as the input has in
    the stylized window (outputs only ever reach their final name finalised, by an atomic rename, so
    this tells a finished output from an interrupted run's shorter one). Frames are counted as
    packets, without decoding: containers such as Matroska declare no frame count, and durations
    differ between containers (audio, last-frame length)."""
    try:
        probe(dst)
    except InputError:
        return False
    start, _ = window(reader)
    return count_frames(dst) == count_frames(reader.path, start, reader.end)


def count_frames(path: Path, start: float = 0.0, end: float | None = None) -> int:
    """Video packets of ``path`` whose timestamps fall in [start, end) seconds."""
    import av

    n = 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        tb = stream.time_base
        for packet in container.demux(stream):
            if packet.pts is None or not packet.size:
                continue
            t = float(packet.pts * tb)
            if t >= start - 1e-9 and (end is None or t < end - 1e-9):
                n += 1
    return n


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
