"""Probing video files: size, time base, frame rate, frame count, rotation, colour tags and audio
streams of the first video stream (PyAV, OpenCV as a fallback for streams PyAV cannot decode)."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from ..errors import InputError
from ..limits import Limits

VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".ts", ".flv", ".wmv", ".gif")
DEFAULT_TIME_BASE = Fraction(1, 1000)
# Packets probe() scans to tell whether a file's pts are really decode times: pts == dts on every
# packet although the codec reorders frames (a muxer bug in some old mp4s, e.g. the OpenCV samples).
_TIMESTAMP_SCAN_PACKETS = 64


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
    frame_rate: Fraction | None  # FFmpeg's guess: the base rate, or the average if variable; None if unknown
    num_frames: int | None  # as declared by the container (may be absent or approximate)
    duration: float | None  # seconds
    rotation: int = 0  # degrees counter-clockwise the player turns the picture (display matrix)
    color: ColorInfo = field(default_factory=ColorInfo)
    audio_codecs: tuple[str, ...] = ()
    decode_order_timestamps: bool = False  # pts == dts although frames are reordered: repair on decode

    @property
    def has_audio(self) -> bool:
        return bool(self.audio_codecs)



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


def probe(path: str | Path, limits: Limits | None = None) -> VideoInfo:
    """Describe the first video stream of ``path``; decodes one frame to prove the file is usable
    (with ``limits``, only a frame within ``limits.max_pixels``: FFmpeg refuses a bigger one
    before allocating it)."""
    import av

    path = Path(path)
    _check_file(path)
    with _open_input(path) as container:
        stream = _video_stream(container, path)
        ctx = stream.codec_context
        if limits is not None:
            limits.check_frame(ctx.width, ctx.height, path)  # the header's size
            ctx.options = {"max_pixels": str(limits.max_pixels)}
        first = None
        try:
            first = next(container.decode(stream), None)
        except av.FFmpegError as exc:
            if limits is not None:
                limits.check_frame(ctx.width, ctx.height, path)  # refused by max_pixels: say so
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
            # FFmpeg's guess (av_guess_frame_rate, the rate ffmpeg gives an output): the stream's
            # base rate, or the average for variable-rate files; the average alone is 29.99 for a
            # 30 fps clip with millisecond timestamps, and an AVI keeps exactly one rate.
            frame_rate=stream.guessed_rate or stream.average_rate or None,
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
        duration=count / fps if fps > 0 and count else None, audio_codecs=demux_info(path)[0] or (),
    )


def demux_info(path: Path) -> tuple[tuple[str, ...] | None, float]:
    """(audio codecs, video start in seconds) as PyAV's demuxer sees ``path``, also when OpenCV
    decodes the video: the writer carries the audio over with PyAV. (None, 0.0) when PyAV cannot
    open the file."""
    import av

    try:
        with av.open(str(path)) as container:
            video = next(iter(container.streams.video), None)
            start = float(video.start_time * video.time_base) if video is not None and video.start_time else 0.0
            return tuple(s.codec_context.name for s in container.streams.audio), start
    except (av.FFmpegError, OSError, ValueError):
        return None, 0.0

