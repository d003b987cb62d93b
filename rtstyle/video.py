"""Video files in and out: probing, decoding and encoding with PyAV (OpenCV as a decode fallback).

Public API
----------
* ``probe(path) -> VideoInfo``: size, time base, frame rate, frame count, rotation, colour tags and
  audio streams of the first video stream; raises ``InputError`` (one line) for a missing, empty,
  non-video or frameless file.
* ``VideoReader(path, start=None, duration=None, decoder="auto")``: iterate ``DecodedFrame``s
  (uint8 RGB HWC + pts in the stream's time base) in presentation order, threaded decoding.
  10-bit, alpha and grayscale sources come out as RGB. A truncated or corrupt file ends at the
  last good frame and records a line in ``reader.warnings``.
* ``VideoWriter(path, width, height, time_base, ...)``: encode RGB frames with their pts (VFR
  stays VFR), copy rotation, colour tags and audio (stream copy, AAC re-encode where the
  container cannot hold the source codec). It writes to a hidden file beside ``path``;
  ``close()`` always finalises the container and renames it into place, ``close(keep=False)``
  removes it instead.

Frames follow ``frames.py``: uint8 RGB, channels last.
"""

from __future__ import annotations

import contextlib
import errno
import heapq
import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np

from .errors import InputError, OutputError

VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".ts", ".flv", ".wmv", ".gif")
DEFAULT_TIME_BASE = Fraction(1, 1000)
# Packets probe() scans to tell whether a file's pts are really decode times: pts == dts on every
# packet although the codec reorders frames (a muxer bug in some old mp4s, e.g. the OpenCV samples).
_TIMESTAMP_SCAN_PACKETS = 64
# CRF-like quality option per encoder family; encoders not listed get no quality option.
_QUALITY_OPTION = {"libx264": "crf", "libx265": "crf", "libvpx-vp9": "crf", "libaom-av1": "crf", "libsvtav1": "crf",
                   "h264_nvenc": "cq", "hevc_nvenc": "cq", "av1_nvenc": "cq"}
_PRESET_CODECS = ("libx264", "libx265", "h264_nvenc", "hevc_nvenc", "av1_nvenc", "libsvtav1")


@dataclass(frozen=True)
class ColorInfo:
    """FFmpeg colour tags (AVColorRange/AVColorSpace/... integers; 2 = unspecified)."""

    color_range: int = 0
    colorspace: int = 2
    color_primaries: int = 2
    color_trc: int = 2


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    container: str
    codec: str
    width: int
    height: int
    pix_fmt: str | None
    time_base: Fraction
    frame_rate: Fraction | None  # average rate; None if unknown
    num_frames: int | None  # as declared by the container (may be absent or approximate)
    duration: float | None  # seconds
    rotation: int = 0  # degrees counter-clockwise the player turns the picture (display matrix)
    color: ColorInfo = field(default_factory=ColorInfo)
    audio_codecs: tuple[str, ...] = ()
    decode_order_timestamps: bool = False  # pts == dts although frames are reordered: repair on decode

    @property
    def has_audio(self) -> bool:
        return bool(self.audio_codecs)


@dataclass
class DecodedFrame:
    image: np.ndarray  # uint8 (H, W, 3) RGB
    pts: int  # in time_base units, strictly increasing within a reader
    time_base: Fraction
    index: int  # 0-based position in the output
    duration: int | None = None  # in time_base units when the decoder knows it

    @property
    def time(self) -> float:
        return float(self.pts * self.time_base)


# ----------------------------------------------------------------------------------- probing

class _UndecodableStream(InputError):
    """The container opened but PyAV cannot decode its video: worth trying OpenCV."""


def _check_file(path: Path) -> None:
    if not path.exists():
        raise InputError(f"input not found: {path}")
    if path.is_dir():
        raise InputError(f"input is a folder, not a video file: {path}")
    if path.stat().st_size == 0:
        raise InputError(f"input is an empty file: {path}")


def _open_input(path: Path):
    import av

    try:
        return av.open(str(path), "r")
    except av.FFmpegError as exc:
        raise InputError(f"not a readable video: {path} ({_ffmpeg_reason(exc)}; not a video, or damaged/truncated "
                         f"before its index)") from None


def _ffmpeg_reason(exc: Exception) -> str:
    return getattr(exc, "strerror", None) or str(exc).split(";")[0]


def _video_stream(container, path: Path):
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams}) or ["none"]
        raise InputError(f"no video stream in {path} (streams: {', '.join(kinds)}); give a video file")
    return container.streams.video[0]


def _decode_order_timestamps(container, stream) -> bool:
    """True when every scanned packet has pts == dts but the codec reorders frames, i.e. the muxer
    wrote decode times as presentation times. Decoded frames then carry shuffled pts."""
    if not stream.codec_context.has_b_frames:
        return False
    scanned = 0
    for packet in container.demux(stream):
        if packet.pts is None or packet.dts is None:
            continue
        if packet.pts != packet.dts:
            return False
        scanned += 1
        if scanned >= _TIMESTAMP_SCAN_PACKETS:
            break
    return scanned > 1


def probe(path: str | Path) -> VideoInfo:
    """Describe the first video stream of ``path``; decodes one frame to prove the file is usable."""
    import av

    path = Path(path)
    _check_file(path)
    with _open_input(path) as container:
        stream = _video_stream(container, path)
        ctx = stream.codec_context
        first = None
        try:
            first = next(container.decode(stream), None)
        except av.FFmpegError as exc:
            raise _UndecodableStream(f"cannot decode the video stream of {path} ({_ffmpeg_reason(exc)})") from None
        if first is None:
            raise InputError(f"no decodable video frames in {path} (zero frames or corrupt stream)")
        rotation = int(first.rotation or 0) or _metadata_rotation(stream.metadata)
        duration = None
        if stream.duration is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        info = dict(
            path=path,
            container=container.format.name,
            codec=ctx.name,
            width=first.width,
            height=first.height,
            pix_fmt=first.format.name,
            time_base=stream.time_base or DEFAULT_TIME_BASE,
            frame_rate=stream.average_rate or stream.guessed_rate or None,
            num_frames=stream.frames or None,
            duration=duration,
            rotation=rotation,
            color=ColorInfo(int(first.color_range), int(first.colorspace), int(first.color_primaries), int(first.color_trc)),
            audio_codecs=tuple(s.codec_context.codec.canonical_name for s in container.streams.audio),
        )
    with _open_input(path) as container:
        info["decode_order_timestamps"] = _decode_order_timestamps(container, container.streams.video[0])
    return VideoInfo(**info)


def _metadata_rotation(metadata: dict) -> int:
    try:
        return -int(metadata.get("rotate", 0)) % 360  # legacy tag is clockwise
    except ValueError:
        return 0


def _probe_opencv(path: Path) -> VideoInfo:
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        ok, frame = cap.read() if cap.isOpened() else (False, None)
        if not ok:
            raise InputError(f"not a readable video: {path} (neither PyAV nor OpenCV can decode it)")
        fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    finally:
        cap.release()
    rate = Fraction(fps).limit_denominator(1001) if fps > 0 else None
    return VideoInfo(
        path=path, container="opencv", codec="unknown", width=frame.shape[1], height=frame.shape[0], pix_fmt="bgr24",
        time_base=DEFAULT_TIME_BASE, frame_rate=rate, num_frames=count or None,
        duration=count / fps if fps > 0 and count else None,
    )


# ---------------------------------------------------------------------------------- decoding

class VideoReader:
    """Iterate the frames of a video file in display order, optionally a [start, start+duration)
    window; timestamps are re-based so the first frame of the window has pts 0."""

    def __init__(self, path: str | Path, start: float | None = None, duration: float | None = None,
                 decoder: str = "auto", threads: int = 0):
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
        self.warnings: list[str] = []
        self.decoder = decoder
        if decoder == "opencv":
            _check_file(self.path)
            self.info = _probe_opencv(self.path)
        else:
            try:
                self.info = probe(self.path)
                self.decoder = "pyav"
            except _UndecodableStream as exc:
                if decoder == "pyav":
                    raise
                try:
                    self.info = _probe_opencv(self.path)
                except InputError:
                    raise exc from None
                self.decoder = "opencv"

    @property
    def time_base(self) -> Fraction:
        return self.info.time_base

    def __iter__(self) -> Iterator[DecodedFrame]:
        raw = self._iter_pyav() if self.decoder == "pyav" else self._iter_opencv()
        return self._window(raw)

    def _window(self, raw: Iterator[tuple[np.ndarray, int | None, int | None]]) -> Iterator[DecodedFrame]:
        """Apply the time window, fill missing pts, keep pts strictly increasing, re-base to 0."""
        tb = self.time_base
        step = _frame_step(self.info)
        origin = None
        last = None
        index = 0
        repaired = 0
        for image, pts, duration in raw:
            if pts is None:
                pts = 0 if last is None else last + (duration or step)
            if last is not None and pts <= last:
                repaired += 1
                pts = last + 1
            last = pts
            t = float(pts * tb)
            if t < self.start - 1e-9:
                continue
            if self.end is not None and t >= self.end - 1e-9:
                break
            if origin is None:
                origin = pts
            yield DecodedFrame(image, pts - origin, tb, index, duration)
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
        import av

        with _open_input(self.path) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            if self.threads:
                stream.thread_count = self.threads
            if self.start > 0:
                with contextlib.suppress(av.FFmpegError):
                    container.seek(int(self.start / stream.time_base), stream=stream, backward=True)
            reorder = _PacketTimestamps() if self.info.decode_order_timestamps else None
            for frame in self._decode_pyav(container, stream, reorder):
                pts = reorder.pop() if reorder is not None else frame.pts
                yield frame.to_ndarray(format="rgb24"), pts, frame.duration or None

    def _decode_pyav(self, container, stream, reorder: "_PacketTimestamps | None"):
        import av

        try:
            for packet in container.demux(stream):
                if reorder is not None and packet.pts is not None and not packet.is_discard:
                    reorder.push(packet.pts)
                try:
                    frames = packet.decode()
                except av.InvalidDataError as exc:
                    self.warnings.append(f"{self.path.name}: skipped a corrupt packet at pts {packet.pts} ({_ffmpeg_reason(exc)})")
                    continue
                yield from frames
        except av.FFmpegError as exc:
            # Truncated files end here: keep every frame decoded so far.
            self.warnings.append(f"{self.path.name}: stopped reading at a damaged part ({_ffmpeg_reason(exc)})")

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
                yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), (round(ms) if ms >= 0 else None), None
        finally:
            cap.release()


class _PacketTimestamps:
    """Display times for files whose muxer stored decode times: the decoder emits frames in display
    order, so each frame's time is the smallest packet time fed so far and not yet handed out."""

    def __init__(self) -> None:
        self._heap: list[int] = []

    def push(self, pts: int) -> None:
        heapq.heappush(self._heap, pts)

    def pop(self) -> int | None:
        return heapq.heappop(self._heap) if self._heap else None


def _frame_step(info: VideoInfo) -> int:
    """One frame interval in time-base units (for frames without timestamps)."""
    rate = info.frame_rate or Fraction(25)
    return max(1, round(1 / (rate * info.time_base)))


# ---------------------------------------------------------------------------------- encoding

@dataclass(frozen=True)
class EncoderConfig:
    codec: str = "libx264"
    crf: float | None = 18.0  # quality (lower is better); mapped to the codec's own option
    preset: str | None = "medium"
    pix_fmt: str | None = None  # None: yuv420p when both sides are even, else yuv444p (no padding, exact size)
    audio: str = "copy"  # copy (re-encode to AAC where the container cannot hold it) | aac | none
    options: dict[str, str] = field(default_factory=dict)  # passed to the encoder as-is

    def __post_init__(self) -> None:
        if self.audio not in ("copy", "aac", "none"):
            raise InputError(f"unknown audio mode {self.audio!r}; choose from copy, aac, none")


def choose_pix_fmt(codec, width: int, height: int, requested: str | None) -> str:
    names = [f.name for f in (codec.video_formats or [])]
    if requested:
        if names and requested not in names:
            raise InputError(f"codec {codec.name} cannot encode pixel format {requested!r}; choose from {names}")
        return requested
    preferred = ["yuv420p"] if width % 2 == 0 and height % 2 == 0 else []
    preferred += ["yuv444p", "yuv420p", "nv12", "rgb24"]
    for name in preferred:
        if not names or name in names:
            return name
    return names[0]


@dataclass
class AudioSource:
    """Audio to carry into the output: the streams of ``path`` within [start, end) seconds."""

    path: Path
    start: float = 0.0
    end: float | None = None


class VideoWriter:
    """Encode uint8 RGB frames with given pts; finalised on close() even after errors."""

    def __init__(self, path: str | Path, width: int, height: int, time_base: Fraction = DEFAULT_TIME_BASE,
                 frame_rate: Fraction | None = None, config: EncoderConfig | None = None,
                 rotation: int = 0, color: ColorInfo | None = None, audio: AudioSource | None = None,
                 overwrite: bool = False):
        import av

        self.path = Path(path)
        self.config = config or EncoderConfig()
        if self.path.exists() and not overwrite:
            raise OutputError(f"output exists: {self.path}; pass -y to overwrite")
        if self.path.is_dir():
            raise OutputError(f"output is a folder: {self.path}; give a file name such as out.mp4")
        self.width, self.height = width, height
        self.time_base = time_base
        self.frames_written = 0
        self.warnings: list[str] = []
        self._last_pts: int | None = None
        self._video_end = 0.0  # seconds: end of the last frame written
        self._closed = False
        self._audio_in = None
        self.tmp = self.path.with_name(f".{self.path.stem}.partial-{os.getpid()}{self.path.suffix or '.mp4'}")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.container = av.open(str(self.tmp), "w", format=_format_for(self.path))
        except (OSError, av.FFmpegError, ValueError) as exc:
            raise OutputError(f"cannot write {self.path} ({_ffmpeg_reason(exc)}); check the folder and extension") from None
        try:
            self.stream = self._add_video_stream(frame_rate, rotation, color or ColorInfo())
            if audio is not None and self.config.audio != "none":
                self._open_audio(audio)
            self.container.start_encoding()
        except av.FFmpegError as exc:
            self._discard()
            if _is_file_error(exc):  # FFmpeg opens the file only here: a folder problem, not a codec one
                raise self._write_error("creating", exc) from None
            raise OutputError(f"cannot start encoding {self.path} with {self.config.codec} ({_ffmpeg_reason(exc)}); "
                              f"try --codec libx264 or another --pix-fmt") from None
        except BaseException:
            self._discard()
            raise

    # -- setup
    def _add_video_stream(self, frame_rate, rotation: int, color: ColorInfo):
        import av

        cfg = self.config
        try:
            codec = av.Codec(cfg.codec, "w")
        except (av.FFmpegError, ValueError):
            h264 = sorted(c for c in av.codecs_available if "264" in c or "265" in c or "hevc" in c)
            raise InputError(f"unknown video encoder {cfg.codec!r}; available H.264/HEVC encoders: {', '.join(h264)}") from None
        options = {k: str(v) for k, v in cfg.options.items()}
        if cfg.crf is not None and cfg.codec in _QUALITY_OPTION:
            options.setdefault(_QUALITY_OPTION[cfg.codec], f"{cfg.crf:g}")
            if cfg.codec == "libvpx-vp9":
                options.setdefault("b", "0")  # constant-quality mode
        if cfg.preset and cfg.codec in _PRESET_CODECS:
            options.setdefault("preset", cfg.preset)
        stream = self.container.add_stream(codec.name, rate=frame_rate or Fraction(30), options=options)
        stream.width, stream.height = self.width, self.height
        self.pix_fmt = choose_pix_fmt(codec, self.width, self.height, cfg.pix_fmt)
        stream.pix_fmt = self.pix_fmt
        stream.time_base = self.time_base
        stream.codec_context.time_base = self.time_base
        ctx = stream.codec_context
        ctx.color_range, ctx.colorspace = color.color_range, color.colorspace
        ctx.color_primaries, ctx.color_trc = color.color_primaries, color.color_trc
        if rotation % 360:
            stream.set_display_rotation(rotation % 360)
        self._color = color
        return stream

    def _open_audio(self, source: AudioSource) -> None:
        import av

        self._audio_in = _open_input(source.path)
        streams = list(self._audio_in.streams.audio)
        if not streams:
            self._audio_in.close()
            self._audio_in = None
            return
        self._audio_window = source
        self._audio_map = {}
        supported = self.container.supported_codecs
        for s in streams:
            name = s.codec_context.codec.canonical_name
            if self.config.audio == "copy" and name in supported:
                self._audio_map[s.index] = (self.container.add_stream_from_template(s), None)
                continue
            try:
                out = self.container.add_stream("aac", rate=s.codec_context.sample_rate or 48000)
                out.layout = s.codec_context.layout
            except (av.FFmpegError, ValueError) as exc:
                self.warnings.append(f"audio stream {s.index} ({name}) dropped: cannot re-encode to AAC ({exc})")
                continue
            if self.config.audio == "copy":
                self.warnings.append(f"audio {name} cannot be stored in {self.path.suffix}; re-encoded to AAC")
            self._audio_map[s.index] = (out, s)
        self._audio_packets = self._audio_in.demux(*streams)
        self._pending_audio = None

    # -- writing
    def write(self, image: np.ndarray, pts: int | None = None, duration: int | None = None) -> None:
        import av

        if image.shape != (self.height, self.width, 3) or image.dtype != np.uint8:
            raise InputError(f"frame {self.frames_written}: expected uint8 ({self.height}, {self.width}, 3), got {image.dtype} {image.shape}")
        if pts is None:
            pts = 0 if self._last_pts is None else self._last_pts + (duration or 1)
        if self._last_pts is not None and pts <= self._last_pts:
            pts = self._last_pts + 1  # encoders reject repeated timestamps
        self._last_pts = pts
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        frame = frame.reformat(format=self.pix_fmt, dst_colorspace=self._color.colorspace or None,
                               dst_color_range=self._color.color_range or None)
        frame.pts, frame.time_base = pts, self.time_base
        if duration:
            frame.duration = duration
        self._mux(self.stream.encode(frame))
        self.frames_written += 1
        self._video_end = float((pts + (duration or 0)) * self.time_base)
        if self._audio_in is not None:
            # Interleave audio up to the video's time (not ahead: an interrupted file ends both together).
            self._mux_audio_until(self._video_end)

    def _mux(self, packets) -> None:
        import av

        try:
            for packet in packets:
                self.container.mux(packet)
        except (OSError, av.FFmpegError) as exc:
            raise self._write_error("writing", exc) from None

    def _write_error(self, action: str, exc: Exception) -> OutputError:
        reason = _ffmpeg_reason(exc)
        if getattr(exc, "errno", None) == errno.ENOSPC:
            return OutputError(f"disk full while {action} {self.path} ({reason}); free some space or choose another "
                               f"output folder")
        return OutputError(f"{action} {self.path} failed ({reason}); check the output folder")

    def _mux_audio_until(self, until: float | None) -> None:
        """Interleave audio up to ``until`` seconds of output time (None: to the end)."""
        import av

        window = self._audio_window
        while True:
            packet = self._pending_audio or next(self._audio_packets, None)
            self._pending_audio = None
            if packet is None:
                return
            if packet.pts is None or packet.size == 0:
                continue
            t = float(packet.pts * packet.time_base)
            if window.end is not None and t >= window.end:
                return
            if t < window.start:
                continue
            if until is not None and t - window.start > until:
                self._pending_audio = packet
                return
            out, decode_from = self._audio_map.get(packet.stream.index, (None, None))
            if out is None:
                continue
            shift = int(window.start / packet.time_base)
            try:
                if decode_from is None:
                    packet.pts -= shift
                    if packet.dts is not None:
                        packet.dts -= shift
                    packet.stream = out
                    self._mux((packet,))  # write errors (disk full) must stop the run, not become warnings
                else:
                    for frame in packet.decode():
                        frame.pts = None if frame.pts is None else frame.pts - shift
                        self._mux(out.encode(frame))
            except av.FFmpegError as exc:
                self.warnings.append(f"audio packet at {t:.3f}s skipped ({_ffmpeg_reason(exc)})")

    # -- finishing
    def close(self, keep: bool = True, partial: bool = False) -> Path | None:
        """Flush the encoders and finalise the container; rename it into place if ``keep`` (and at
        least one frame was written), else delete it. ``partial`` (an interrupted run) ends the
        audio with the last video frame instead of the source's end. Safe to call twice."""
        import av

        if self._closed:
            return self.path if keep else None
        self._closed = True
        keep = keep and self.frames_written > 0
        try:
            if keep:
                self._mux(self.stream.encode(None))
                if self._audio_in is not None:
                    self._mux_audio_until(self._video_end if partial else None)
                    for out, decoded in self._audio_map.values():
                        if decoded is not None:
                            self._mux(out.encode(None))
                try:
                    self.container.close()
                except (OSError, av.FFmpegError) as exc:
                    raise self._write_error("finalising", exc) from None
        except BaseException:
            self._discard()  # a file that could not be finalised is never left behind, not even hidden
            raise
        finally:
            if self._audio_in is not None:
                self._audio_in.close()
        if not keep:
            self._discard()
            return None
        os.replace(self.tmp, self.path)
        return self.path

    def _discard(self) -> None:
        with contextlib.suppress(Exception):
            self.container.close()
        if os.path.lexists(self.tmp):  # ask first: unlink on a read-only file system fails even for no file
            self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        # Finalise a partial file on Ctrl-C; drop it on real errors.
        interrupted = exc_type is not None and issubclass(exc_type, KeyboardInterrupt)
        self.close(keep=exc_type is None or interrupted, partial=interrupted)


def _is_file_error(exc: Exception) -> bool:
    """An OS-level file problem (permission, read-only or full disk, missing folder)."""
    return getattr(exc, "errno", None) in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.ENOENT,
                                           errno.ENOTDIR, errno.EISDIR)


def _format_for(path: Path) -> str | None:
    """Container by extension; the hidden temp name keeps the extension, so this is a safety net."""
    return {".mkv": "matroska", ".webm": "webm", ".mov": "mov", ".mp4": "mp4", ".m4v": "mp4", ".avi": "avi"}.get(
        path.suffix.lower())
