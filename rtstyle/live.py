"""Live stylization from a camera (or a stream/file acting as one): the library behind ``rtstyle live``.

Latency comes first: the capture keeps a buffer of one frame and a grabber thread keeps only
the newest frame, so the engine always works on the latest picture and stale ones are dropped
(counted in ``frames_dropped``). Every shown frame's capture-to-display latency is measured.

* ``run_live(config, open_capture=opencv_capture, engines=None, stop=None) -> LiveResult``.
  ``open_capture(source)`` returns anything with ``read() -> (ok, bgr_frame)`` and
  ``release()`` (``cv2.VideoCapture`` or a fake in tests). ``engines`` overrides
  ``config.models`` (tests).
* ``Display``: an OpenCV window when the OpenCV build has a GUI and a display exists, else
  headless (``show`` only reports no key).
* Keys in the window: ``q``/Esc quit, ``n``/space next style, ``p`` previous, ``1``-``9`` pick;
  with an AdaIN model and ``style_dir``, ``s`` applies the folder's next style image (``a`` the
  previous one), no training needed.
"""

from __future__ import annotations

import collections
import contextlib
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np
import torch

from .conditioning import StyleChoice, load_style_image
from .engine import Engine, EngineOptions, open_engine
from .errors import BackendUnavailableError, InputError
from .stylize import model_input_size
from .temporal import TemporalSmoother, check_smoothing
from .video import EncoderConfig, VideoWriter

_LATENCY_WINDOW = 10_000  # latencies kept for the percentile; the mean covers the whole run


class Capture(Protocol):
    def read(self) -> tuple[bool, np.ndarray | None]: ...

    def release(self) -> None: ...


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
    encoder: EncoderConfig = field(default_factory=lambda: EncoderConfig(preset="veryfast", audio="none"))
    virtual_cam: bool = False
    max_frames: int | None = None  # stop after this many shown frames
    duration: float | None = None  # stop after this many seconds
    reconnect: bool = False
    reconnect_timeout: float = 30.0  # seconds of failed reopen attempts before giving up
    show_fps: bool = True
    pace: bool | None = None  # read at the source's frame rate; None: only for files
    temporal_smoothing: float = 0.0  # flow-guided blend with the previous output (temporal.py); 0 = off
    style_dir: Path | None = None  # AdaIN models: style images to cycle with the s/a keys
    style: StyleChoice = field(default_factory=StyleChoice)  # AdaIN alpha / first image, StyleBank index

    def __post_init__(self) -> None:
        check_smoothing(self.temporal_smoothing)
        if self.style_dir is not None and self.style.style_image is not None:
            raise InputError("give either --style-dir (cycle its images with s/a) or --style-image, not both")
        if not self.models:
            raise InputError("no model given; pass --model NAME_OR_PATH (repeat it to switch styles with keys)")
        if self.max_frames is not None and self.max_frames < 1:
            raise InputError(f"--max-frames must be >= 1, got {self.max_frames}")
        if self.duration is not None and self.duration <= 0:
            raise InputError(f"--duration must be > 0 seconds, got {self.duration}")


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
        return (f"{self.frames_shown} frames shown ({self.frames_captured} captured, {self.frames_dropped} dropped) "
                f"at {self.fps:.1f} fps; latency capture->display mean {self.latency_ms_mean:.1f} ms, "
                f"p95 {self.latency_ms_p95:.1f} ms; ended by {self.ended_by}")


# ------------------------------------------------------------------------------------ capture

def is_camera(source: str) -> bool:
    return str(source).isdigit() or "://" in str(source) or str(source).startswith("/dev/video")


def opencv_capture(source: str):
    """``cv2.VideoCapture`` for an index, URL or file, with a one-frame buffer."""
    import cv2

    quiet = getattr(getattr(cv2, "utils", None), "logging", None)  # OpenCV prints a warning per failed backend
    level = quiet.getLogLevel() if quiet else None
    if quiet:
        quiet.setLogLevel(quiet.LOG_LEVEL_ERROR)
    try:
        cap = cv2.VideoCapture(int(source) if str(source).isdigit() else str(source))
    finally:
        if quiet:
            quiet.setLogLevel(level)
    if not cap.isOpened():
        kind = "camera" if is_camera(source) else "video file"
        raise InputError(f"cannot open {kind} {source!r}; check the index/URL/path (cameras: 0, 1, ...)")
    cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # ignored by some backends; the grabber drops stale frames anyway
    return cap


def source_fps(cap) -> float | None:
    try:
        import cv2

        fps = float(cap.get(cv2.CAP_PROP_FPS))
    except Exception:  # noqa: BLE001 - fakes and some backends have no properties
        return None
    return fps if 0 < fps < 1000 else None


class LatestFrameGrabber:
    """Reads the capture in a thread and keeps only the newest frame with its capture time."""

    def __init__(self, capture: Capture, pace_fps: float | None = None):
        self.capture = capture
        self.pace = 1.0 / pace_fps if pace_fps else None
        self.captured = 0
        self.dropped = 0
        self.ended = False
        self._slot: tuple[np.ndarray, float] | None = None
        self._cond = threading.Condition()
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rtstyle-grab", daemon=True)

    def start(self) -> "LatestFrameGrabber":
        self._thread.start()
        return self

    def _loop(self) -> None:
        next_due = time.perf_counter()
        try:
            while not self._halt.is_set():
                ok, frame = self.capture.read()
                if not ok or frame is None:
                    break
                stamp = time.perf_counter()
                with self._cond:
                    if self._slot is not None:
                        self.dropped += 1
                    self._slot = (frame, stamp)
                    self.captured += 1
                    self._cond.notify()
                if self.pace:
                    next_due += self.pace
                    time.sleep(max(0.0, next_due - time.perf_counter()))
        finally:
            with self._cond:
                self.ended = True
                self._cond.notify()

    def latest(self, timeout: float) -> tuple[np.ndarray, float] | None:
        """The newest unseen frame and its capture time; None on timeout or when the source ended."""
        with self._cond:
            self._cond.wait_for(lambda: self._slot is not None or self.ended, timeout)
            got, self._slot = self._slot, None
            return got

    def stop(self) -> None:
        """Stop reading and release the capture (idempotent)."""
        if self._halt.is_set():
            return
        self._halt.set()
        self._thread.join(timeout=2.0)
        self.capture.release()


def _retire(grabber: LatestFrameGrabber | None, result: "LiveResult") -> None:
    """Stop a grabber and add its counts to ``result`` (once)."""
    if grabber is None or grabber._halt.is_set():
        return
    grabber.stop()
    result.frames_captured += grabber.captured
    result.frames_dropped += grabber.dropped


# ------------------------------------------------------------------------------------ display

def gui_available() -> bool:
    """True when OpenCV has a GUI backend and there is a display to open a window on."""
    import cv2

    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False  # GUI builds abort the process without a display
    try:
        cv2.namedWindow("rtstyle-probe", cv2.WINDOW_AUTOSIZE)
        cv2.destroyWindow("rtstyle-probe")
        return True
    except cv2.error:
        return False  # opencv-python-headless


class Display:
    """Show RGB frames in an OpenCV window; headless when asked or when no GUI exists."""

    def __init__(self, title: str = "rtstyle", window: bool | None = None):
        self.title = title
        if window is None:
            window = gui_available()
        elif window and not gui_available():
            raise InputError("showing frames needs a display and an OpenCV build with GUI support "
                             "(pip install opencv-python instead of opencv-python-headless); "
                             "run headless (live: --no-window; stylize: without --preview)")
        self.window = window

    def show(self, rgb: np.ndarray, overlay: str | None = None) -> int:
        """Show one frame; returns the key pressed (-1 for none; always -1 headless)."""
        if not self.window:
            return -1
        import cv2

        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        if overlay:
            cv2.putText(bgr, overlay, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 3, cv2.LINE_AA)
            cv2.putText(bgr, overlay, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, cv2.LINE_AA)
        cv2.imshow(self.title, bgr)
        return cv2.waitKey(1) & 0xFF

    def close(self) -> None:
        if self.window:
            import cv2

            with contextlib.suppress(cv2.error):  # the user may have closed it already
                cv2.destroyWindow(self.title)


class FpsMeter:
    """Frames per second over a sliding one-second window."""

    def __init__(self, window_s: float = 1.0):
        self.window_s = window_s
        self._times: collections.deque[float] = collections.deque()

    def tick(self, now: float) -> float:
        self._times.append(now)
        while self._times and now - self._times[0] > self.window_s:
            self._times.popleft()
        span = now - self._times[0]
        return (len(self._times) - 1) / span if span > 0 else 0.0


# ---------------------------------------------------------------------------------- live loop

def style_images(folder: Path) -> list[Path]:
    """The image files in ``folder`` (sorted), or an InputError naming the folder."""
    from .frames import IMAGE_EXTENSIONS

    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"--style-dir {folder} is not a folder")
    found = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not found:
        raise InputError(f"no style images ({', '.join(IMAGE_EXTENSIONS)}) in --style-dir {folder}")
    return found


class _Styles:
    """The models to cycle through, opened on first use and kept; and, for AdaIN models, the
    style images of ``style_dir`` to cycle through."""

    def __init__(self, config: LiveConfig, engines: list[Engine] | None):
        self.names = [Path(str(m)).stem for m in config.models] if engines is None else [f"engine {i}" for i in range(len(engines))]
        self._engines: list[Engine | None] = list(engines) if engines is not None else [None] * len(config.models)
        self._config = config
        self.index = 0
        self.images = style_images(config.style_dir) if config.style_dir is not None else []
        self.image_index = 0
        self._applied: dict[int, int] = {}  # engine index -> style image index it holds

    def _style_choice(self) -> StyleChoice:
        choice = self._config.style
        if self.images:
            return StyleChoice(style_image=self.images[self.image_index], alpha=choice.alpha,
                               style_index=choice.style_index, style_size=choice.style_size)
        return choice

    def current(self) -> Engine:
        if self._engines[self.index] is None:
            c = self._config
            opts = EngineOptions(device=c.device, precision=c.precision, batch_size=1, extra=self._style_choice().to_extra())
            self._engines[self.index] = open_engine(c.models[self.index], c.backend, opts)
            self._applied[self.index] = self.image_index
        engine = self._engines[self.index]
        if self.images and self._applied.get(self.index, self.image_index) != self.image_index:
            if not hasattr(engine, "set_style"):
                raise InputError(f"--style-dir switches style images in the torch backend; {engine.describe()} cannot")
            engine.set_style(load_style_image(self.images[self.image_index], self._config.style.style_size))
            self._applied[self.index] = self.image_index
        return engine

    @property
    def label(self) -> str:
        name = self.names[self.index]
        return f"{name}: {self.images[self.image_index].stem}" if self.images else name

    def handle_key(self, key: int) -> bool:
        """Apply a key; returns True for quit."""
        if key in (ord("q"), 27):
            return True
        if key in (ord("n"), ord(" ")):
            self.index = (self.index + 1) % len(self._engines)
        elif key == ord("p"):
            self.index = (self.index - 1) % len(self._engines)
        elif ord("1") <= key <= ord("9") and key - ord("1") < len(self._engines):
            self.index = key - ord("1")
        elif key in (ord("s"), ord("a")) and self.images:
            self.image_index = (self.image_index + (1 if key == ord("s") else -1)) % len(self.images)
        return False


def _open_virtual_cam(width: int, height: int, fps: float):
    try:
        import pyvirtualcam
    except ImportError:
        raise BackendUnavailableError("--virtual-cam needs pyvirtualcam: pip install 'rtstyle[camera]' "
                                      "(and a virtual camera driver such as v4l2loopback or OBS)") from None
    try:
        return pyvirtualcam.Camera(width=width, height=height, fps=fps, fmt=pyvirtualcam.PixelFormat.RGB)
    except RuntimeError as exc:
        raise BackendUnavailableError(f"no virtual camera device: {exc}") from None


def _check_virtual_cam_installed() -> None:
    import importlib.util

    if importlib.util.find_spec("pyvirtualcam") is None:
        _open_virtual_cam(0, 0, 0)  # raises the install hint


def _stylize_frame(engine: Engine, bgr: np.ndarray, max_side: int | None) -> np.ndarray:
    import cv2

    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB) if bgr.ndim == 3 else cv2.cvtColor(bgr, cv2.COLOR_GRAY2RGB)
    h, w = rgb.shape[:2]
    size = model_input_size(w, h, None, max_side)
    if size != (w, h):
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    batch = torch.from_numpy(np.ascontiguousarray(rgb))[None].to(engine.device, non_blocking=True)
    return engine(batch)[0].cpu().numpy()


def _gray(frame: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame


class _Recorder:
    """Optional outputs opened on the first frame, when the size is known."""

    def __init__(self, config: LiveConfig, fps: float | None):
        self.config = config
        self.fps = fps or 30.0
        self.writer: VideoWriter | None = None
        self.vcam = None
        self.size: tuple[int, int] | None = None

    def send(self, rgb: np.ndarray, t: float) -> None:
        import cv2

        h, w = rgb.shape[:2]
        if self.size is None:
            self.size = (w, h)
            if self.config.output is not None:
                self.writer = VideoWriter(self.config.output, w, h, Fraction(1, 1000),
                                          Fraction(self.fps).limit_denominator(1001), self.config.encoder,
                                          overwrite=self.config.overwrite)
            if self.config.virtual_cam:
                self.vcam = _open_virtual_cam(w, h, self.fps)
        if (w, h) != self.size:  # a style switch to a model of another scale
            rgb = cv2.resize(rgb, self.size, interpolation=cv2.INTER_AREA)
        if self.writer is not None:
            self.writer.write(rgb, round(t * 1000))  # capture times: the recording keeps real timing
        if self.vcam is not None:
            self.vcam.send(rgb)

    def close(self) -> Path | None:
        if self.vcam is not None:
            self.vcam.close()
        return self.writer.close(keep=True) if self.writer is not None else None


def run_live(config: LiveConfig, open_capture: Callable[[str], Any] = opencv_capture,
             engines: list[Engine] | None = None, stop: threading.Event | None = None) -> LiveResult:
    """Capture -> engine -> display/record until quit, a limit, the source's end, or ``stop``."""
    if config.output is not None and Path(config.output).exists() and not config.overwrite:
        from .errors import OutputError

        raise OutputError(f"output exists: {config.output}; pass -y to overwrite")
    if config.virtual_cam:
        _check_virtual_cam_installed()
    stop = stop or threading.Event()
    styles = _Styles(config, engines)
    styles.current()  # open the first model before the camera, so errors come early
    display = Display("rtstyle live", config.window)
    result = LiveResult(headless=not display.window)
    grabber = _start_grabber(config, open_capture(config.source))
    recorder = _Recorder(config, source_fps(grabber.capture))
    latencies: collections.deque[float] = collections.deque(maxlen=_LATENCY_WINDOW)
    latency_sum = 0.0
    meter = FpsMeter()
    smoother = TemporalSmoother(config.temporal_smoothing) if config.temporal_smoothing > 0 else None
    t0 = time.perf_counter()
    try:
        while True:
            result.ended_by = _limit_reached(config, result, stop, t0)
            if result.ended_by:
                break
            got = grabber.latest(timeout=0.5)
            if got is None:
                if not grabber.ended:
                    continue
                _retire(grabber, result)
                if not (config.reconnect and is_camera(config.source)):
                    result.ended_by = "disconnected" if is_camera(config.source) else "source_ended"
                    break
                grabber = _reconnect(config, open_capture, stop, result)
                if grabber is None:
                    result.ended_by = "interrupted" if stop.is_set() else "disconnected"
                    break
                continue
            frame, captured_at = got
            out = _stylize_frame(styles.current(), frame, config.max_side)
            if smoother is not None:
                out = smoother(out, _gray(frame))
            fps = meter.tick(time.perf_counter())
            overlay = f"{fps:5.1f} fps  {styles.label}" if config.show_fps else None
            key = display.show(out, overlay)
            shown_at = time.perf_counter()
            latencies.append(shown_at - captured_at)
            latency_sum += shown_at - captured_at
            recorder.send(out, captured_at - t0)
            result.frames_shown += 1
            if key != -1:
                shown_style = (styles.index, styles.image_index)
                if styles.handle_key(key):
                    result.ended_by = "quit"
                    break
                if smoother is not None and (styles.index, styles.image_index) != shown_style:
                    smoother.reset()  # never blend the previous style into the new one
    except KeyboardInterrupt:
        result.ended_by = "interrupted"
    finally:
        _retire(grabber, result)
        result.output = recorder.close()
        display.close()
        result.wall_s = time.perf_counter() - t0
    if latencies:
        result.latency_ms_mean = 1000 * latency_sum / result.frames_shown
        result.latency_ms_p95 = 1000 * float(np.percentile(np.fromiter(latencies, float), 95))
    if recorder.writer is not None:
        result.warnings += recorder.writer.warnings
    return result


def _start_grabber(config: LiveConfig, capture) -> LatestFrameGrabber:
    pace = config.pace if config.pace is not None else not is_camera(config.source)
    return LatestFrameGrabber(capture, (source_fps(capture) or 30.0) if pace else None).start()


def _limit_reached(config: LiveConfig, result: LiveResult, stop: threading.Event, t0: float) -> str:
    if stop.is_set():
        return "interrupted"
    if config.max_frames is not None and result.frames_shown >= config.max_frames:
        return "max_frames"
    if config.duration is not None and time.perf_counter() - t0 >= config.duration:
        return "duration"
    return ""


def _reconnect(config: LiveConfig, open_capture, stop: threading.Event, result: LiveResult) -> LatestFrameGrabber | None:
    """Reopen the camera with backoff until it works, ``stop`` is set, or the timeout passes."""
    deadline = time.perf_counter() + config.reconnect_timeout
    wait = 0.25
    while not stop.wait(wait) and time.perf_counter() < deadline:
        wait = min(2 * wait, 2.0)
        try:
            capture = open_capture(config.source)
        except InputError:
            continue
        result.reconnects += 1
        result.warnings.append(f"camera {config.source} reconnected after a disconnect")
        return _start_grabber(config, capture)
    return None
