"""Stylizing one segment of a long file, and joining the segments into the output.

A segment's stylized frames go to a lossless file (FFV1 on RGB: an exact round trip) and its
timestamps and durations come back to the driver as lists. The join decodes those frames and
encodes them once, with the single-machine run's writer settings, timestamps and audio (copied
once, for the whole file). So the output is the same stream a single-machine run writes, frame for
frame, at the cost of one encode pass per file on the joining worker and temporary lossless files
(about 1-3 bytes per pixel) on the shared filesystem.

Temporal smoothing restarts at the first frame of each segment (it needs the previous output).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..engine import Engine
from ..errors import InputError
from ..frames import Frame, fit_size
from ..pipeline import PipelineConfig, run_pipeline
from ..sinks import CallbackSink, build_sinks
from ..sources import FileSource, Resized
from ..stylize import StylizeConfig
from ..threads import plan_threads
from ..video import VideoReader, VideoWriter
from ..video.tag import RunTag
from .plan import Segment

_PART_CODEC = "ffv1"
_PART_PIX_FMT = "bgr0"  # packed RGB: rgb24 <-> bgr0 is a pure reshuffle, so lossless
_PART_TIME_BASE = Fraction(1, 1000)  # the part file's own clock; real timestamps travel beside it


@dataclass
class SegmentResult:
    path: Path
    pts: list[int]  # output timestamps (input time base), as a single-machine run writes them
    durations: list[int | None]
    frames_in: int
    wall_s: float
    warnings: list[str]


class PartWriter:
    """Lossless frames into ``path``, via a hidden temporary name renamed at the end (never half-written)."""

    def __init__(self, path: Path):
        import av

        self.path = path
        self.tmp = path.with_name(f".{path.stem}.partial-{os.getpid()}{path.suffix}")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.container = av.open(str(self.tmp), "w", format="matroska")
        self.stream = None
        self.count = 0

    def write(self, image: np.ndarray) -> None:
        import av

        if self.stream is None:
            self.stream = self.container.add_stream(_PART_CODEC, rate=1000)
            self.stream.width, self.stream.height = image.shape[1], image.shape[0]
            self.stream.pix_fmt = _PART_PIX_FMT
            self.stream.time_base = self.stream.codec_context.time_base = _PART_TIME_BASE
            self.stream.thread_type = "AUTO"
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24").reformat(format=_PART_PIX_FMT)
        frame.pts, frame.time_base = self.count, _PART_TIME_BASE
        for packet in self.stream.encode(frame):
            self.container.mux(packet)
        self.count += 1

    def close(self, keep: bool) -> None:
        try:
            if keep and self.stream is not None:
                for packet in self.stream.encode(None):
                    self.container.mux(packet)
            self.container.close()
        except BaseException:
            keep = False
            raise
        finally:
            if keep and self.stream is not None:
                os.replace(self.tmp, self.path)
            else:
                with contextlib.suppress(FileNotFoundError):
                    self.tmp.unlink()


def read_part(path: Path):
    """The frames of a part file, in order, as uint8 RGB."""
    import av

    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            yield frame.to_ndarray(format="rgb24")


def stylize_segment(config: StylizeConfig, engine: Engine, src: Path, segment: Segment, path: Path) -> SegmentResult:
    """Stylize one segment of ``src`` into the lossless part file ``path``, through the same source,
    pipeline and sink chain as a single-machine run (the writer replaced by the part file)."""
    source = FileSource(src, segment.start, segment.duration, decoder=config.decoder)
    info = source.info
    size = fit_size(info.width, info.height, config.resize, config.max_side)
    writer = PartWriter(path)
    pts: list[int] = []
    durations: list[int | None] = []

    def record(image: np.ndarray, frame: Frame) -> None:
        writer.write(image)
        pts.append(frame.pts + segment.offset)
        durations.append(frame.duration)

    # Smoothing (first in the chain) restarts here: the previous segment's last output is on another worker.
    chain = build_sinks(config.temporal_smoothing, measure=[CallbackSink(record)])
    try:
        stats = run_pipeline(Resized(source, size), engine, chain, PipelineConfig(batch_size=config.batch_size))
    except BaseException:
        chain.close("failed")
        writer.close(keep=False)
        raise
    chain.close("done")
    writer.close(keep=True)
    if not pts:
        raise InputError(f"no frames decoded from {src} segment {segment.index} (from {segment.start or 0}s)")
    return SegmentResult(path, pts, durations, stats.frames_in, stats.wall_s, source.warnings)


def join_segments(config: StylizeConfig, src: Path, dst: Path, parts: list[SegmentResult],
                  device_type: str = "cpu") -> tuple[int, list[str]]:
    """Encode the segments' frames into ``dst`` as a single-machine run would with its engine on
    ``device_type`` (the encoder settings follow it: ``EncoderConfig.beside_engine``); returns
    (frames, warnings)."""
    reader = VideoReader(src, config.start, config.duration, decoder=config.decoder)  # the whole window: audio, tags
    info = reader.info
    audio = None
    if info.has_audio:
        # The audio follows the video's shift (the A/V offset is kept, priming packets too), exactly as
        # a single-machine run: the first decoded frame fixes that shift (reader.origin_time).
        frames = iter(reader)
        next(frames, None)
        frames.close()
        audio = reader.audio_source()
    encoder = config.encoder.beside_engine(device_type, plan_threads(engine_device=device_type).encode)
    writer = None
    last = None
    try:
        for part in parts:
            frames = 0
            for image, pts, duration in zip(read_part(part.path), part.pts, part.durations):
                if writer is None:
                    writer = VideoWriter(dst, image.shape[1], image.shape[0], info.time_base, info.frame_rate,
                                         encoder, rotation=info.rotation, color=info.color,
                                         overwrite=config.overwrite, audio=audio,
                                         tag=RunTag.for_source(src, config.start, config.duration, config.run_id))
                if last is not None and pts <= last:
                    raise InputError(f"{src}: segment timestamps overlap at pts {pts} (after {last}); the file's "
                                     f"keyframes cannot be cut exactly, run it with --segment-seconds 0")
                writer.write(image, pts, duration)
                last = pts
                frames += 1
            if frames != len(part.pts):
                raise InputError(f"{part.path}: {frames} frames, {len(part.pts)} expected; damaged segment file")
    except BaseException:
        if writer is not None:
            writer.close(keep=False)
        raise
    if writer is None:
        raise InputError(f"no frames decoded from {src}")
    writer.close(keep=True)
    return writer.frames_written, writer.warnings
