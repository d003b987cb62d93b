"""Decoding video files into ``Frame``s (uint8 RGB HWC + pts), in presentation order."""

from __future__ import annotations

import heapq
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import InputError
from ..frames import Frame, bgr_to_rgb
from ..limits import Limits
from .animated import WEBP_TIME_BASE, is_animated_image, iter_webp, probe_webp
from .probe import (
    VideoInfo,
    _check_file,
    _ffmpeg_reason,
    _open_input,
    _probe_opencv,
    _UndecodableStream,
    demux_info,
    probe,
)
from .writer import AudioSource


class VideoReader:
    """Iterate the frames of a video file in display order, optionally a [start, start+duration)
    window; timestamps are re-based so the first frame of the window has pts 0.

    Times count from the video stream's own start (an MPEG-TS often starts at 1.4 s), seeking is
    exact in every container (seek to the keyframe before, decode, drop what precedes), and
    ``origin_time`` (the raw time of the first frame handed out) is the shift every other stream
    of the file must get too (``audio_source``), so their offset is kept.

    ``limits`` (``rtstyle.limits.Limits``) hold while decoding, whatever the header said: FFmpeg
    refuses to allocate a frame over ``max_pixels`` (a stream may change size midway), and the
    window's frames and length stop at ``max_frames`` / ``max_seconds`` with an InputError."""

    def __init__(self, path: str | Path, start: float | None = None, duration: float | None = None,
                 decoder: str = "auto", threads: int = 0, limits: Limits | None = None):
        if decoder not in ("auto", "pyav", "opencv"):
            raise InputError(f"unknown decoder {decoder!r}; choose from auto, pyav, opencv")
        if start is not None and start < 0:
            raise InputError(f"--start must be >= 0 seconds, got {start}")
        if duration is not None and duration <= 0:
            raise InputError(f"--duration must be > 0 seconds, got {duration}")
        self.path = Path(path)
        self.start = start or 0.0
        self.end = self.start + duration if duration is not None else None
        self.threads = threads
        self.limits = limits
        self.warnings: list[str] = []
        self.video_start = 0.0  # raw seconds of the video stream's first frame (set when decoding starts)
        self.origin_time: float | None = None  # raw seconds of the first frame handed out
        self._decode_delay = 0  # AVI: ticks between a chunk's time and the decoder's time for its frame
        self._first_dts: int | None = None  # of the first packet decoding started from
        self._opencv_start = 0.0
        self.decoder = decoder
        if decoder != "opencv" and _is_animated_webp(self.path):
            self.info = _probe_pil(self.path)  # FFmpeg decodes still WebP only; PIL reads every frame
            self.decoder = "pil"
        elif decoder == "opencv":
            _check_file(self.path)
            self.info = _probe_opencv(self.path)
        else:
            try:
                self.info = probe(self.path, limits)
                self.decoder = "pyav"
            except _UndecodableStream as exc:
                if decoder == "pyav":
                    raise
                try:
                    self.info = _probe_opencv(self.path)
                except InputError:
                    raise exc from None
                self.decoder = "opencv"
        if self.decoder == "opencv":
            self._note_opencv_audio()

    @property
    def time_base(self) -> Fraction:
        return self.info.time_base

    def _note_opencv_audio(self) -> None:
        """OpenCV decodes no audio: the writer demuxes it with PyAV; say so when PyAV cannot."""
        codecs, self._opencv_start = demux_info(self.path)
        if codecs is None:
            self.warnings.append(f"{self.path.name}: PyAV cannot read this file, so any audio track is not carried "
                                 "over (OpenCV decodes video only)")

    def __iter__(self) -> Iterator[Frame]:
        raw = {"pyav": self._iter_pyav, "pil": self._iter_pil}.get(self.decoder, self._iter_opencv)()
        return self._window(raw)

    def audio_source(self) -> AudioSource:
        """The file's audio for this window, shifted by the same amount as the video."""
        start = self.video_start + self.start
        return AudioSource(self.path, start, None if self.end is None else self.video_start + self.end,
                           shift=lambda: self.origin_time, from_file_start=self.start == 0)

    def _window(self, raw: Iterator[tuple[np.ndarray, int | None, int | None]]) -> Iterator[Frame]:
        """Apply the time window, fill missing pts, keep pts strictly increasing, re-base to 0."""
        tb = self.time_base
        step = _frame_step(self.info)
        origin = None
        last = None
        index = 0
        repaired = 0
        limits = self.limits
        for image, pts, duration in raw:
            if limits is not None:
                limits.check_frame(image.shape[1], image.shape[0], f"frame {index} of {self.path}")
            if pts is None:
                pts = 0 if last is None else last + (duration or step)
            if last is not None and pts <= last:
                repaired += 1
                pts = last + 1
            last = pts
            t = float(pts * tb) - self.video_start  # from the stream's start, not the raw clock
            if t < self.start - 1e-9:
                continue
            if self.end is not None and t >= self.end - 1e-9:
                break
            if origin is None:
                origin = pts
                # OpenCV counts from the stream's start: add it back, as the audio keeps raw times
                opencv_start = self._opencv_start if self.decoder == "opencv" else 0.0
                self.origin_time = float((pts - self._decode_delay) * tb) + opencv_start
            if limits is not None:
                limits.check_frames(index + 1, self.path, more=True)
                limits.check_seconds(float((pts - origin) * tb), self.path, more=True)
            yield Frame(image, pts - origin, tb, index, duration)
            index += 1
        if repaired:
            self.warnings.append(f"{self.path.name}: {repaired} non-increasing timestamps repaired")
        if self.start == 0 and self.end is None and last is not None:
            self._check_complete(index, float(last * tb))

    def _check_complete(self, frames: int, last_time: float) -> None:
        """Warn when the file ended early: fewer frames, or less time, than its header declares."""
        info = self.info
        interval = float(1 / info.frame_rate) if info.frame_rate else 0.04
        short_count = info.num_frames is not None and frames < info.num_frames - 1
        short_time = info.duration is not None and last_time + 3 * interval < info.duration
        if short_count or short_time:
            declared = f"{info.num_frames} frames" if short_count else f"{info.duration:.2f} s"
            self.warnings.append(f"{self.path.name}: ended after {frames} frames ({last_time:.2f} s) of {declared} "
                                 f"declared; truncated file?")

    def _iter_pyav(self) -> Iterator[tuple[np.ndarray, int | None, int | None]]:

        with _open_input(self.path) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            if self.threads:
                stream.thread_count = self.threads
            if self.limits is not None:  # FFmpeg's own check, before it allocates a picture
                stream.codec_context.options = {"max_pixels": str(self.limits.max_pixels)}
            if stream.start_time is not None:
                self.video_start = float(stream.start_time * stream.time_base)
            frames = self._frames_from(container, stream, self.video_start + self.start)
            for frame, pts in frames:
                yield frame.to_ndarray(format="rgb24"), pts, frame.duration or None

    def _frames_from(self, container, stream, target: float):
        """(frame, display pts) from the last keyframe at or before ``target`` raw seconds on.
        A seek that lands after the target (MPEG-TS seeks by byte estimate; a one-GOP file's only
        keyframe is far back) is retried from further back, at last from the beginning."""
        import av

        backs = (0.0, 1.0, 4.0, 16.0, None) if self.start > 0 else (None,)
        eps = 0.5 / float(self.info.frame_rate or 25)
        for back in backs:
            if back is not None or self.start > 0:
                where = self.video_start if back is None else max(self.video_start, target - back)
                try:
                    container.seek(int(where / stream.time_base), stream=stream, backward=True, any_frame=False)
                except av.FFmpegError:
                    continue
            reorder = _PacketTimestamps() if self.info.decode_order_timestamps else None
            decoded = self._decode_pyav(container, stream, reorder)
            frames = ((f, reorder.pop()) for f in decoded) if reorder is not None else best_effort_times(decoded)
            first = next(frames, None)
            if self.info.container == "avi" and first is not None and first[1] is not None \
                    and self._first_dts is not None:
                # AVI has no presentation times: chunk k is frame k and the audio starts with chunk 0.
                # FFmpeg times a frame by its decoder's delay later (a frame, with B-frames): that
                # delay must not move the audio against the video.
                self._decode_delay = max(0, first[1] - self._first_dts)
            if first is None and back is not None:
                continue  # the seek landed at the end
            if first is not None and back is not None and first[1] is not None \
                    and float(first[1] * stream.time_base) > target + eps:
                continue  # landed after the target: frames before it would be lost
            if first is not None:
                yield first
                yield from frames
            return

    def _decode_pyav(self, container, stream, reorder: "_PacketTimestamps | None"):
        import av

        self._first_dts = None
        try:
            for packet in container.demux(stream):
                if self._first_dts is None:
                    self._first_dts = packet.dts
                if reorder is not None and packet.pts is not None and not packet.is_discard:
                    reorder.push(packet.pts)
                try:
                    frames = packet.decode()
                except av.InvalidDataError as exc:
                    self._check_refused_size(stream)
                    self.warnings.append(f"{self.path.name}: skipped a corrupt packet at pts {packet.pts} ({_ffmpeg_reason(exc)})")
                    continue
                yield from frames
        except av.FFmpegError as exc:
            self._check_refused_size(stream)
            # Truncated files end here: keep every frame decoded so far.
            self.warnings.append(f"{self.path.name}: stopped reading at a damaged part ({_ffmpeg_reason(exc)})")

    def _check_refused_size(self, stream) -> None:
        """A decode error because a frame is over ``max_pixels`` is the limit, not damage."""
        ctx = stream.codec_context
        if self.limits is not None and ctx.width and ctx.height:
            self.limits.check_frame(ctx.width, ctx.height, f"a frame of {self.path}")

    def _iter_pil(self) -> Iterator[tuple[np.ndarray, int | None, int | None]]:
        yield from iter_webp(self.path)

    def _iter_opencv(self) -> Iterator[tuple[np.ndarray, int | None, int | None]]:
        import cv2

        cap = cv2.VideoCapture(str(self.path))
        try:
            if self.start > 0:
                cap.set(cv2.CAP_PROP_POS_MSEC, self.start * 1000.0)
            while True:
                ok, bgr = cap.read()
                if not ok:
                    break
                ms = cap.get(cv2.CAP_PROP_POS_MSEC)
                yield bgr_to_rgb(bgr), (round(ms) if ms >= 0 else None), None
        finally:
            cap.release()


class _BestEffortTimestamps:
    """FFmpeg's ``best_effort_timestamp`` (libavcodec's guess_correct_pts, which ``ffmpeg`` and
    players use; PyAV does not expose it): a frame's pts while they increase, else its decode
    time if those have been wrong less often."""

    def __init__(self) -> None:
        self.faulty_pts = self.faulty_dts = 0
        self.last_pts: int | None = None
        self.last_dts: int | None = None

    def count(self, pts: int | None, dts: int | None) -> None:
        if dts is not None:
            self.faulty_dts += self.last_dts is not None and dts <= self.last_dts
            self.last_dts = dts
        elif pts is not None:
            self.last_dts = pts
        if pts is not None:
            self.faulty_pts += self.last_pts is not None and pts <= self.last_pts
            self.last_pts = pts
        elif dts is not None:
            self.last_pts = dts

    def choose(self, pts: int | None, dts: int | None) -> int | None:
        return pts if pts is not None and (self.faulty_pts <= self.faulty_dts or dts is None) else dts


def best_effort_times(frames: Iterator, lookahead: int = 8) -> Iterator[tuple[object, int | None]]:
    """(frame, presentation time) for decoded frames, by FFmpeg's best-effort rule, with the first
    ``lookahead`` frames judged by what they show too (FFmpeg decides frame by frame, so the first
    frames of a file whose pts are wrong keep them until the errors show). AVI stores no
    presentation times: packed B-frames (DivX/XviD) give frames shuffled pts (1, 3, 2, 5, 4...)
    but increasing decode times, and repairing the pts instead moved frames by a frame interval."""
    best = _BestEffortTimestamps()
    head: list | None = []
    for frame in frames:
        best.count(frame.pts, frame.dts)
        if head is None:
            yield frame, best.choose(frame.pts, frame.dts)
            continue
        head.append(frame)
        if len(head) == lookahead:
            yield from ((f, best.choose(f.pts, f.dts)) for f in head)
            head = None
    yield from ((f, best.choose(f.pts, f.dts)) for f in head or ())


class _PacketTimestamps:
    """Display times for files whose muxer stored decode times: the decoder emits frames in display
    order, so each frame's time is the smallest packet time fed so far and not yet handed out."""

    def __init__(self) -> None:
        self._heap: list[int] = []

    def push(self, pts: int) -> None:
        heapq.heappush(self._heap, pts)

    def pop(self) -> int | None:
        return heapq.heappop(self._heap) if self._heap else None


def _is_animated_webp(path: Path) -> bool:
    return path.suffix.lower() == ".webp" and is_animated_image(path)


def _probe_pil(path: Path) -> VideoInfo:
    width, height, frames, seconds = probe_webp(path)
    rate = Fraction(frames / seconds).limit_denominator(1001) if seconds > 0 else None
    return VideoInfo(path=path, container="webp", codec="webp", width=width, height=height, pix_fmt="rgb24",
                     time_base=WEBP_TIME_BASE, frame_rate=rate, num_frames=frames, duration=seconds or None)


def _frame_step(info: VideoInfo) -> int:
    """One frame interval in time-base units (for frames without timestamps)."""
    rate = info.frame_rate or Fraction(25)
    return max(1, round(1 / (rate * info.time_base)))

