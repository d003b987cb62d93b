"""Live stylization from a camera (or a stream, or a file acting as one): the library behind
``rtstyle live``.

It runs through the same pipeline as ``stylize`` (source -> pinned-memory batcher -> engine
thread -> sinks), with batch 1 and the newest-frame policy: a grabber keeps only the latest
camera picture and a full engine queue keeps only the latest batch, so the engine always works
on the newest picture; stale frames are dropped and counted. Every shown frame's
capture-to-display latency is measured.

* ``run_live(config, open_capture=opencv_capture, engines=None, stop=None) -> LiveResult``.
  ``open_capture(source)`` returns anything with ``read() -> (ok, bgr_frame)`` and
  ``release()`` (``cv2.VideoCapture`` or a fake in tests). ``engines`` overrides
  ``config.models`` (tests). A video file plays in real time; with ``every_frame`` it is read
  frame by frame instead (no dropping, no pacing) and gives the same frames as ``stylize``.

A recording (``output``) of a file keeps the file's own timestamps (frames dropped to keep up
leave gaps, not drift) and its audio, cut where the run stopped, so sound and picture stay in
sync as in ``stylize``. A camera's recording is timed by the capture clock and has no sound:
OpenCV delivers none, and a microphone is another device on another clock, opened through
OS-specific FFmpeg inputs (ALSA/PulseAudio, AVFoundation, DirectShow) -- not kept in sync here.
``max_frames`` counts frames shown (after the engine; dropped ones never count).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable

from ..conditioning import StyleChoice
from ..engine import Engine
from ..errors import InputError
from ..frames import MILLISECONDS
from ..outputs import OutputPolicy
from ..pipeline import PipelineConfig, StopFlag, run_pipeline
from ..sinks import (
    Display,
    PreviewSink,
    Sink,
    SinkChain,
    StatsSink,
    VirtualCamSink,
    WriterSink,
    build_sinks,
    check_virtual_cam_installed,
)
from ..sources import CameraSource, FileSource, Resized, Source, is_camera, opencv_capture
from ..strength import check_strength
from ..temporal import check_smoothing
from ..video import EncoderConfig, VideoWriter
from .styles import Styles


@dataclass(frozen=True)
class LiveConfig:
    source: str = "0"  # camera index, URL, or a video file (played at its own frame rate)
    models: tuple[str | Path, ...] = ()  # several: switch with keys
    backend: str = "auto"
    device: str = "auto"
    precision: str = "auto"
    max_side: int | None = None  # shrink the model input so its longer side is at most this
    window: bool | None = None  # None: a window when possible, else headless
    output: Path | None = None  # record the stylized feed
    overwrite: bool = False
    trust_model: bool = False  # load a .pt2 / TensorRT engine rtstyle did not produce (rtstyle.trust)
    encoder: EncoderConfig = field(default_factory=lambda: EncoderConfig(preset="veryfast"))  # audio: a file's
    virtual_cam: bool = False
    max_frames: int | None = None  # stop after this many shown frames
    duration: float | None = None  # stop after this many seconds
    reconnect: bool = False
    reconnect_timeout: float = 30.0  # seconds of failed reopen attempts before giving up
    show_fps: bool = True
    pace: bool | None = None  # read at the source's frame rate; None: only for files
    every_frame: bool = False  # a file: every frame, in order, no pacing (the same frames as stylize)
    temporal_smoothing: float = 0.0  # flow-guided blend with the previous output (sinks.SmoothingSink); 0 = off
    style_dir: Path | None = None  # AdaIN models: style images to cycle with the s/a keys
    style: StyleChoice = field(default_factory=StyleChoice)  # AdaIN alpha / first image, StyleBank index
    strength: float = 1.0  # blend with the camera picture (rtstyle.strength); the [ and ] keys change it

    def __post_init__(self) -> None:
        object.__setattr__(self, "strength", check_strength(self.strength))
        if isinstance(self.models, (str, Path)):  # one model, not one per letter of its name
            object.__setattr__(self, "models", (self.models,))
        check_smoothing(self.temporal_smoothing)
        if self.style_dir is not None and self.style.style_image is not None:
            raise InputError("give either --style-dir (cycle its images with s/a) or --style-image, not both")
        if not self.models:
            raise InputError("no model given; pass --model NAME_OR_PATH (repeat it to switch styles with keys)")
        if self.max_frames is not None and self.max_frames < 1:
            raise InputError(f"--max-frames must be >= 1, got {self.max_frames}")
        if self.duration is not None and self.duration <= 0:
            raise InputError(f"--duration must be > 0 seconds, got {self.duration}")
        if self.every_frame and is_camera(self.source):
            raise InputError(f"--every-frame reads a video file frame by frame; {self.source!r} is a camera or stream "
                             f"(give --camera FILE)")


@dataclass
class LiveResult:
    frames_captured: int = 0
    frames_shown: int = 0
    frames_dropped: int = 0  # captured but replaced by a newer frame before the engine took it
    wall_s: float = 0.0
    latency_ms_mean: float = 0.0  # capture -> display
    latency_ms_p95: float = 0.0
    reconnects: int = 0
    ended_by: str = ""  # quit | max_frames | duration | source_ended | disconnected | interrupted
    output: Path | None = None
    headless: bool = True
    warnings: list[str] = field(default_factory=list)

    @property
    def fps(self) -> float:
        return self.frames_shown / self.wall_s if self.wall_s > 0 else 0.0

    def summary(self) -> str:
        ended = f"--max-frames ({self.frames_shown} frames shown)" if self.ended_by == "max_frames" else self.ended_by
        return (f"{self.frames_shown} frames shown ({self.frames_captured} captured, {self.frames_dropped} dropped) "
                f"at {self.fps:.1f} fps; latency capture->display mean {self.latency_ms_mean:.1f} ms, "
                f"p95 {self.latency_ms_p95:.1f} ms; ended by {ended}")


class _Ending:
    """Why the run ends (the first reason wins) and the stop flag it sets."""

    def __init__(self, halt: StopFlag):
        self.halt = halt
        self.reason = ""

    def __call__(self, reason: str) -> None:
        if not self.reason:
            self.reason = reason
        self.halt.set()


class _Gate(Sink):
    """Lets frames through until the run ends: exactly ``max_frames`` are shown, none after quit."""

    def __init__(self, ending: _Ending, max_frames: int | None):
        self.ending, self.max_frames, self.passed = ending, max_frames, 0

    def write(self, image, frame):
        if self.ending.reason:
            return None
        self.passed += 1
        if self.max_frames is not None and self.passed >= self.max_frames:
            self.ending("max_frames")
        return image


def open_live_source(config: LiveConfig, open_capture: Callable[[str], Any], halt: StopFlag) -> Source:
    """A camera or stream through OpenCV (newest frame first), or a video file through the same
    decoder as ``stylize`` (in real time, or every frame with ``every_frame``)."""
    if is_camera(config.source):
        camera = CameraSource(config.source, open_capture, halt, config.reconnect, config.reconnect_timeout)
        if config.pace:
            camera.pace_fps = camera.fps or 30.0
        return camera
    try:
        return FileSource(config.source, realtime=not config.every_frame and config.pace is not False)
    except InputError as exc:
        raise InputError(f"cannot open video file {config.source!r} ({exc})") from None


def _open_writer(config: LiveConfig, source: Source, fps: float) -> Callable[[int, int], VideoWriter]:
    info = getattr(source, "info", None)

    def open_writer(width: int, height: int) -> VideoWriter:
        if isinstance(source, FileSource):  # the file's own timestamps, rotation, colour tags and audio: as stylize
            audio = source.reader.audio_source() if info.has_audio else None
            return VideoWriter(config.output, width, height, info.time_base, info.frame_rate, config.encoder,
                               rotation=info.rotation, color=info.color, overwrite=config.overwrite, audio=audio)
        return VideoWriter(config.output, width, height, MILLISECONDS, Fraction(fps).limit_denominator(1001),
                           config.encoder, rotation=info.rotation if info is not None else 0,
                           color=info.color if info is not None else None, overwrite=config.overwrite)

    return open_writer


def run_live(config: LiveConfig, open_capture: Callable[[str], Any] = opencv_capture,
             engines: list[Engine] | None = None, stop: threading.Event | None = None,
             extra_sinks: list[Sink] | None = None) -> LiveResult:
    """Capture -> engine -> display/record until quit, a limit, the source's end, or ``stop``.
    ``extra_sinks`` see every shown frame after smoothing (measurements, tests)."""
    if config.output is not None:  # the one output rule (rtstyle.outputs), before the camera opens
        OutputPolicy(overwrite=config.overwrite).check(config.output, [config.source])
    if config.virtual_cam:
        check_virtual_cam_installed()
    halt = StopFlag(stop)
    ending = _Ending(halt)
    styles = Styles(config.models, config.backend, config.device, config.precision, config.style, config.style_dir,
                    engines, trust_model=config.trust_model, strength=config.strength)
    styles.current()  # open the first model before the camera, so errors come early
    display = Display("rtstyle live", config.window)
    result = LiveResult(headless=not display.window)
    raw = open_live_source(config, open_capture, halt)
    stats = StatsSink()
    chain: SinkChain | None = None
    timer: threading.Timer | None = None
    t0 = time.perf_counter()
    try:
        info = getattr(raw, "info", None)
        fps = getattr(raw, "fps", None) or (float(info.frame_rate) if info is not None and info.frame_rate else 30.0)
        chain = _live_sinks(config, styles, display, stats, ending, extra_sinks, _open_writer(config, raw, fps), fps)
        pipeline = PipelineConfig(batch_size=1, queue_batches=3 if config.every_frame else 1,
                                  drop_stale=not config.every_frame)
        if config.duration:
            timer = threading.Timer(config.duration, ending, ["duration"])
            timer.daemon = True
            timer.start()
        pstats = run_pipeline(Resized(raw, max_side=config.max_side), styles, chain, pipeline, halt)
        result.frames_dropped += pstats.frames_dropped
        if pstats.interrupted and not ending.reason:
            ending("interrupted")
    except KeyboardInterrupt:
        ending("interrupted")
    finally:
        if timer is not None:
            timer.cancel()
        raw.stop()
        if chain is not None:
            # Also after an error the recording so far stays playable; stopped before the source's end,
            # it ends its audio with the last frame shown ("interrupted": the writer's partial file).
            chain.close("done" if not ending.reason and not halt.is_set() else "interrupted")
        else:
            display.close()
        result.wall_s = time.perf_counter() - t0
    result.ended_by = ending.reason or ("interrupted" if halt.is_set() else raw.end_reason or "source_ended")
    _fill_result(result, raw, stats, chain)
    return result


def _live_sinks(config: LiveConfig, styles: Styles, display: Display, stats: StatsSink, ending: _Ending,
                extra: list[Sink] | None, open_writer, fps: float) -> SinkChain:
    def overlay() -> str | None:
        return f"{stats.fps:5.1f} fps  {styles.label}" if config.show_fps else None

    def on_key(key: int) -> None:
        if key == ord("h"):
            display.toggle_help()
        elif styles.handle_key(key):
            ending("quit")

    writer = WriterSink(open_writer=open_writer, capture_clock=is_camera(config.source)) if config.output else None
    chain = build_sinks(config.temporal_smoothing, measure=[_Gate(ending, config.max_frames), *(extra or [])],
                        preview=PreviewSink(display, overlay, on_key), stats=stats, writer=writer,
                        virtual_cam=VirtualCamSink(fps) if config.virtual_cam else None,
                        style_of=styles.served_style)  # a style switch restarts the smoothing
    return chain


def _fill_result(result: LiveResult, raw: Source, stats: StatsSink, chain: SinkChain | None) -> None:
    result.frames_captured = getattr(raw, "frames_captured", raw.frames_read)
    result.frames_dropped += raw.frames_dropped
    result.frames_shown = stats.frames
    result.reconnects = getattr(raw, "reconnects", 0)
    result.latency_ms_mean, result.latency_ms_p95 = stats.latency_ms_mean, stats.latency_ms_p95
    result.output = chain.output if chain is not None else None
    result.warnings += raw.warnings
    for sink in chain.sinks if chain is not None else []:
        if isinstance(sink, WriterSink):
            result.warnings += sink.warnings

