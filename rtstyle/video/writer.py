"""Encoding uint8 RGB frames with their timestamps, with rotation, colour tags and audio carried over."""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..errors import InputError, OutputError
from ..outputs import OutputPolicy, commit
from .animated import set_last_frame_duration
from .probe import DEFAULT_TIME_BASE, ColorInfo, _ffmpeg_reason, _open_input
from .tag import RunTag, embed, muxer_options, seal

# CRF-like quality option per encoder family; encoders not listed get no quality option.
_QUALITY_OPTION = {"libx264": "crf", "libx265": "crf", "libvpx-vp9": "crf", "libaom-av1": "crf", "libsvtav1": "crf",
                   "h264_nvenc": "cq", "hevc_nvenc": "cq", "av1_nvenc": "cq"}
_PRESET_CODECS = ("libx264", "libx265", "h264_nvenc", "hevc_nvenc", "av1_nvenc", "libsvtav1")
# preset="auto" (the default) for the x264/x265 family: beside a CPU engine the encoder takes its
# time from the engine's cores, and "faster" costs 0.55x medium's encode time for the same file size
# and 0.16 dB less PSNR-Y (benchmarks/results/cpu-encoder-presets-2026-11-29.md); with the engine on
# a GPU the encoder has the CPU to itself and keeps x264's own default, "medium". Other codecs get
# their own default (their preset names differ: NVENC p1-p7, SVT-AV1 numbers).
AUTO_PRESETS = {"cpu": "faster", "other": "medium"}
_AUTO_PRESET_CODECS = ("libx264", "libx265")


@dataclass(frozen=True)
class EncoderConfig:
    codec: str = "libx264"
    crf: float | None = 18.0  # quality (lower is better); mapped to the codec's own option
    preset: str | None = "auto"  # auto: see AUTO_PRESETS (resolved by ``beside_engine``)
    pix_fmt: str | None = None  # None: yuv420p when both sides are even, else yuv444p (no padding, exact size)
    audio: str = "copy"  # copy (re-encode to AAC where the container cannot hold it) | aac | none
    options: dict[str, str] = field(default_factory=dict)  # passed to the encoder as-is

    def __post_init__(self) -> None:
        if self.audio not in ("copy", "aac", "none"):
            raise InputError(f"unknown audio mode {self.audio!r}; choose from copy, aac, none")

    def resolved_preset(self, device_type: str | None) -> str | None:
        """The preset to pass: the user's, or for "auto" AUTO_PRESETS' choice beside an engine on
        ``device_type`` (None: not known, x264's own default)."""
        if self.preset != "auto":
            return self.preset
        if self.codec not in _AUTO_PRESET_CODECS:
            return None
        return AUTO_PRESETS["cpu" if device_type == "cpu" else "other"]

    def beside_engine(self, device_type: str, threads: int | None = None) -> "EncoderConfig":
        """This config for an encoder that runs beside an engine on ``device_type`` ("cpu", "cuda",
        ...): preset "auto" resolved (AUTO_PRESETS) and ffmpeg's ``threads`` set to ``threads``
        unless the user set them."""
        preset = self.resolved_preset(device_type)
        options = self.options if threads is None or "threads" in self.options else {**self.options, "threads": str(threads)}
        return dataclasses.replace(self, preset=preset, options=options)


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
    """Audio to carry into the output: the streams of ``path`` within [start, end) raw seconds,
    moved by ``shift()`` seconds (the video's shift, so the A/V offset is kept; default ``start``).
    ``from_file_start``: every packet before ``end`` is kept, the ones with negative times included
    (AAC priming, Opus pre-skip): stream copy is a copy."""

    path: Path
    start: float = 0.0
    end: float | None = None
    shift: Callable[[], float | None] | None = None
    from_file_start: bool = False

    def offset(self) -> float:
        value = self.shift() if self.shift is not None else None
        return self.start if value is None else value


class VideoWriter:
    """Encode uint8 RGB frames with given pts; finalised on close() even after errors. ``tag``: the
    run tag (``video.tag``) sealed into the file at finalisation."""

    def __init__(self, path: str | Path, width: int, height: int, time_base: Fraction = DEFAULT_TIME_BASE,
                 frame_rate: Fraction | None = None, config: EncoderConfig | None = None,
                 rotation: int = 0, color: ColorInfo | None = None, audio: AudioSource | None = None,
                 overwrite: bool = False, tag: RunTag | None = None):
        import av

        self.path = Path(path)
        check_video_extension(self.path)  # every output holds every frame, or is refused now
        self.config, self._audio_codec, fit_note = fit_container(self.path, config or EncoderConfig())
        # The one output rule (rtstyle.outputs): '-', folders, names too long for the temporary
        # name, existing files without -y; stale partials of killed runs are removed.
        OutputPolicy(overwrite=overwrite).check(self.path)
        self.overwrite = overwrite
        self.width, self.height = width, height
        self.time_base = time_base  # of the pts given to write()
        # AVI stores no timestamps, only a frame rate and one chunk per frame: a 1/600 time base
        # would declare a 600 fps file of mostly empty chunks. There, one tick per frame of the
        # source's rate (and no B-frames, see _add_video_stream).
        self._avi = OUTPUT_FORMATS.get(self.path.suffix.lower(), ("",))[0] == "avi"
        self._stream_time_base = 1 / Fraction(frame_rate or 30).limit_denominator(1001) if self._avi else time_base
        self.frames_written = 0
        self.warnings: list[str] = []
        if fit_note:
            self.warnings.append(fit_note)
        self._last_pts: int | None = None
        self._last_duration: int | None = None  # time-base units: given, else the last interval
        self._durations: dict[int, int] = {}  # pts -> duration of frames not yet out of the encoder
        self._step = max(1, round(1 / ((frame_rate or Fraction(30)) * self._stream_time_base)))  # one frame at the stream's rate, in its ticks
        self._video_end = 0.0  # seconds: end of the last frame written
        self._closed = False
        self._audio_in = None
        self.tag = tag
        self.tmp = self.path.with_name(f".{self.path.stem}.partial-{os.getpid()}{self.path.suffix or '.mp4'}")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            muxer, options = OUTPUT_FORMATS[self.path.suffix.lower()]
            options = {**dict(options), **muxer_options(muxer)}  # muxer_options: the run tag can be sealed in place
            self.container = av.open(str(self.tmp), "w", format=muxer, options=options or None)
        except (OSError, av.FFmpegError, ValueError) as exc:
            raise OutputError(f"cannot write {self.path} ({_ffmpeg_reason(exc)}); check the folder and extension") from None
        try:
            self.stream = self._add_video_stream(frame_rate, rotation, color or ColorInfo())
            if audio is not None and self.config.audio != "none":
                self._open_audio(audio)
            if tag is not None:
                embed(self.container, tag)
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
        options = {**_CODEC_DEFAULTS.get(cfg.codec, {}), **{k: str(v) for k, v in cfg.options.items()}}
        if cfg.crf is not None and cfg.codec in _QUALITY_OPTION:
            options.setdefault(_QUALITY_OPTION[cfg.codec], f"{cfg.crf:g}")
            if cfg.codec == "libvpx-vp9" or cfg.codec.endswith("_nvenc"):
                # Constant-quality mode; NVENC otherwise also caps the rate at its 2 Mbit/s default.
                options.setdefault("b", "0")
        preset = cfg.resolved_preset(None)
        if preset and cfg.codec in _PRESET_CODECS:
            options.setdefault("preset", preset)
        stream = self.container.add_stream(codec.name, rate=frame_rate or Fraction(30), options=options)
        stream.width, stream.height = self.width, self.height
        self.pix_fmt = choose_pix_fmt(codec, self.width, self.height, cfg.pix_fmt)
        stream.pix_fmt = self.pix_fmt
        stream.time_base = self._stream_time_base
        stream.codec_context.time_base = self._stream_time_base
        ctx = stream.codec_context
        if self._avi:
            # Reordered frames have no place in AVI (no presentation times): they would come back
            # shuffled or a frame late in players that trust the chunk order, behind empty chunks.
            ctx.max_b_frames = 0
        ctx.color_range, ctx.colorspace = color.color_range, color.colorspace
        ctx.color_primaries, ctx.color_trc = color.color_primaries, color.color_trc
        if rotation % 360:
            stream.set_display_rotation(rotation % 360)
        self._color = color
        return stream

    def _open_audio(self, source: AudioSource) -> None:
        import av

        if self._audio_codec is None:  # GIF, APNG, WebP: the container holds no sound
            self.warnings.append(f"{self.path.suffix} holds no audio; the sound of {source.path.name} is not kept")
            return
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
                rate = s.codec_context.sample_rate or 48000
                if self._audio_codec == "libopus":
                    rate = min((r for r in (8000, 12000, 16000, 24000, 48000) if r >= rate), default=48000)
                out = self.container.add_stream(self._audio_codec, rate=rate)
                out.layout = s.codec_context.layout
            except (av.FFmpegError, ValueError) as exc:
                self.warnings.append(f"audio stream {s.index} ({name}) dropped: cannot re-encode to "
                                     f"{self._audio_codec} ({exc})")
                continue
            if self.config.audio == "copy":
                self.warnings.append(f"audio {name} cannot be stored in {self.path.suffix}; re-encoded to "
                                     f"{self._audio_codec}")
            self._audio_map[s.index] = (out, s)
        self._audio_packets = self._audio_in.demux(*streams)
        self._pending_audio = None

    # -- writing
    def write(self, image: np.ndarray, pts: int | None = None, duration: int | None = None) -> None:
        import av

        if image.shape != (self.height, self.width, 3) or image.dtype != np.uint8:
            raise InputError(f"frame {self.frames_written}: expected uint8 ({self.height}, {self.width}, 3), got {image.dtype} {image.shape}")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        frame = frame.reformat(format=self.pix_fmt, dst_colorspace=self._color.colorspace or None,
                               dst_color_range=self._color.color_range or None)
        self._encode(frame, pts, duration)

    def write_nv12(self, nv12: np.ndarray, pts: int | None = None, duration: int | None = None) -> None:
        """Encode one frame already converted to 8-bit NV12 (H*3/2, W) uint8 with this writer's
        colour conversion (``gpu.colour.rgb_to_nv12(rgb, gpu.colour.output_spec(*self.color_tags))``,
        on the engine's GPU): only the chroma planes are repacked here, no colour arithmetic."""
        import av

        if nv12.shape != (self.height * 3 // 2, self.width) or nv12.dtype != np.uint8 or self.height % 2 or self.width % 2:
            raise InputError(f"frame {self.frames_written}: expected uint8 NV12 ({self.height * 3 // 2}, {self.width}) "
                             f"for {self.width}x{self.height}, got {nv12.dtype} {nv12.shape}")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(nv12), format="nv12")
        if self.pix_fmt != "nv12":
            frame = frame.reformat(format=self.pix_fmt)
        self._encode(frame, pts, duration)

    @property
    def color_tags(self) -> tuple[int, int]:
        """(AVColorSpace, AVColorRange) the RGB frames are converted with (0: untagged, swscale's
        defaults)."""
        return int(self._color.colorspace or 0), int(self._color.color_range or 0)

    def _encode(self, frame, pts: int | None, duration: int | None) -> None:
        if self._stream_time_base != self.time_base:  # into the stream's ticks (AVI: frames)
            scale = self.time_base / self._stream_time_base
            pts = None if pts is None else round(pts * scale)
            duration = duration and max(1, round(duration * scale))
        if pts is None:
            pts = 0 if self._last_pts is None else self._last_pts + (duration or 1)
        if self._last_pts is not None and pts <= self._last_pts:
            pts = self._last_pts + 1  # encoders reject repeated timestamps
        # A frame without a duration lasts as long as the one before (or one frame at the rate);
        # packets carry it, so the last frame of a GIF or an MP4 keeps its length.
        interval = pts - self._last_pts if self._last_pts is not None else self._step
        self._last_duration = duration or interval
        self._durations[pts] = self._last_duration
        self._last_pts = pts
        frame.pts, frame.time_base = pts, self._stream_time_base
        if duration:
            frame.duration = duration
        self._mux(self._timed(self.stream.encode(frame)))
        self.frames_written += 1
        self._video_end = float((pts + (duration or 0)) * self._stream_time_base)
        if self._audio_in is not None:
            # Interleave audio up to the video's time (not ahead: an interrupted file ends both together).
            self._mux_audio_until(self._video_end)

    def _timed(self, packets):
        """Video packets with their frame's duration where the encoder left none (GIF's, APNG's)."""
        for packet in packets:
            duration = self._durations.pop(packet.pts, None) if packet.pts is not None else None
            if not packet.duration and duration:
                packet.duration = duration
            yield packet

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
            end_t = t + float((packet.duration or 0) * packet.time_base)
            if not window.from_file_start and end_t <= window.start:
                continue  # before the window (the packet overlapping its start is kept)
            offset = window.offset()
            if until is not None and t - offset > until:
                self._pending_audio = packet
                return
            if self._avi and end_t - offset <= 0:
                continue  # AVI has no negative times (AAC priming): the muxer would delay the video instead
            out, decode_from = self._audio_map.get(packet.stream.index, (None, None))
            if out is None:
                continue
            shift = round(offset / packet.time_base)
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
                self._mux(self._timed(self.stream.encode(None)))
                if self._audio_in is not None:
                    self._mux_audio_until(self._video_end if partial else None)
                    for out, decoded in self._audio_map.values():
                        if decoded is not None:
                            self._mux(out.encode(None))
                try:
                    self.container.close()
                    if self.path.suffix.lower() in _LAST_DELAY_PATCHED and self._last_duration:
                        set_last_frame_duration(self.tmp, float(self._last_duration * self.time_base))
                except (OSError, av.FFmpegError) as exc:
                    raise self._write_error("finalising", exc) from None
                if self.tag is not None:
                    self._seal(partial)
        except BaseException:
            self._discard()  # a file that could not be finalised is never left behind, not even hidden
            raise
        finally:
            if self._audio_in is not None:
                self._audio_in.close()
        if not keep:
            self._discard()
            return None
        try:  # without -y, never replace a file that appeared during the run; outputs 0666-umask
            commit(self.tmp, self.path, replace=self.overwrite)
        except BaseException:
            self._discard()
            raise
        return self.path

    def _seal(self, partial: bool) -> None:
        try:
            seal(self.tmp, self.tag.sealed(self.frames_written, "stop" if partial else "done"))
        except (OSError, ValueError) as exc:  # the video is fine; --skip-existing will call it incomplete
            self.warnings.append(f"{self.path.name}: no run tag written ({exc}); --skip-existing will redo it")

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


# Output extensions -> (FFmpeg muxer, muxer options). Each holds every frame of a video with its
# time: .gif, .png (APNG) and .webp (animated WebP) are animations that loop like a GIF (browsers
# play all three; a still-image viewer may show the first frame). Extensions of formats that hold
# one picture (STILL_IMAGE_EXTENSIONS) are refused, as are ones not listed: .mpg and .wmv (MPEG-PS
# and ASF through FFmpeg lose the frame times of H.264) among them. libwebp stores identical
# consecutive frames once, with their delays added: the animation plays the same.
OUTPUT_FORMATS: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {
    ".mp4": ("mp4", ()), ".m4v": ("mp4", ()), ".mov": ("mov", ()), ".mkv": ("matroska", ()),
    ".webm": ("webm", ()), ".avi": ("avi", ()), ".ts": ("mpegts", ()), ".flv": ("flv", ()),
    ".gif": ("gif", (("loop", "0"),)), ".png": ("apng", (("plays", "0"),)), ".webp": ("webp", (("loop", "0"),)),
}
STILL_IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
_LAST_DELAY_PATCHED = (".png", ".webp")  # muxers that ignore the last packet's duration (animated.py)
_CODEC_DEFAULTS = {"libwebp_anim": {"quality": "90"}}  # libwebp's 75 blurs stylized detail; photos get 95


def check_video_extension(path: Path) -> None:
    """Refuse an output extension that cannot hold every frame of a video, naming the ones that can."""
    ext = path.suffix.lower()
    if ext in OUTPUT_FORMATS:
        return
    if ext in STILL_IMAGE_EXTENSIONS:
        raise OutputError(f"{path.name}: a {ext} file holds one picture, not every frame of a video; give a video "
                          "extension (.mp4, .mkv, .webm, .mov; animated: .gif, .png (APNG), .webp)")
    what = f"unknown video extension {ext}" if ext else "no extension"
    raise OutputError(f"{path.name}: {what}; use one of {', '.join(OUTPUT_FORMATS)}")


# Containers that hold only some codecs: (video codecs they take, the one to use instead, the audio
# codec to re-encode to, or None for no sound). Everything else takes H.264/HEVC and AAC.
_CONTAINER_CODECS = {
    ".webm": (("libvpx-vp9", "libvpx", "vp8", "vp9", "libsvtav1", "libaom-av1", "av1"), "libvpx-vp9", "libopus"),
    ".gif": (("gif",), "gif", None),
    ".png": (("apng",), "apng", None),
    ".webp": (("libwebp_anim",), "libwebp_anim", None),
}


def fit_container(path: Path, config: EncoderConfig) -> tuple[EncoderConfig, str | None, str | None]:
    """(the encoder config with a codec the container can hold, the audio codec to re-encode to,
    a note when the codec was changed). A .webm or .gif asked for with libx264 (the default) gets
    VP9 + Opus, or FFmpeg's GIF, APNG or animated WebP encoder, instead of failing deep in FFmpeg."""
    import dataclasses

    allowed = _CONTAINER_CODECS.get(path.suffix.lower())
    if allowed is None:
        return config, "aac", None
    codecs, instead, audio = allowed
    if config.codec in codecs:
        return config, audio, None
    note = f"{config.codec} cannot be stored in {path.suffix}; encoding with {instead}"
    return dataclasses.replace(config, codec=instead, preset=None, pix_fmt=None), audio, note
