"""Live sessions: a browser's camera track in, the stylized track out, over aiortc.

Frame path, the same as ``rtstyle live``'s: an asyncio task reads the remote track and keeps only
the newest frame (``NewestFrame``); ``TrackSource`` (a live ``sources.Source``) hands it to the
shared runtime (``pipeline.run_pipeline``: batch 1, newest frame only) on a session thread; the
sink chain smooths (optional, ``LiveSmoothing``), measures (``sinks.StatsSink``), re-stamps and
hands the frame to the output track, which aiortc encodes back to the page. Frames that arrive
while the engine is busy are dropped, never queued, so latency stays at about one engine call.

Settings (model, style strength, AdaIN alpha and style image, StyleBank bank, temporal smoothing)
change at any time; ``SessionEngine`` applies them on the engine thread before the next frame.

Latency stamps (``stamps.py``): the server copies a client's frame-number code onto the stylized
frame. Network policy (host candidates, ICE servers, mDNS): ``ice.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from ..conditioning import load_style_image
from ..engine import style_switcher
from ..frames import Frame
from ..pipeline import PipelineConfig, run_pipeline
from ..sinks import CallbackSink, Sink, SinkChain, SmoothingSink, StatsSink
from ..sources import Resized, Source
from ..strength import apply_strength, check_strength
from ..temporal import check_smoothing
from .catalog import Catalog
from .params import OFFER, SESSION, parse_params
from .stamps import read_stamp, write_stamp

log = logging.getLogger("rtstyle.serve")

# ------------------------------------------------------------------------------------- source

class NewestFrame:
    """A one-frame mailbox between the event loop (writer) and the pipeline (reader)."""

    def __init__(self):
        self._cond = threading.Condition()
        self._item: tuple[Any, float] | None = None
        self.closed = False
        self.received = 0
        self.dropped = 0

    def put(self, frame, arrived: float) -> None:
        with self._cond:
            if self._item is not None:
                self.dropped += 1
            self._item = (frame, arrived)
            self.received += 1
            self._cond.notify()

    def take(self, timeout: float):
        with self._cond:
            self._cond.wait_for(lambda: self._item is not None or self.closed, timeout)
            got, self._item = self._item, None
            return got

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()


@dataclass
class TrackFrame(Frame):
    stamp: int | None = None  # the client's frame number (latency stamp), when it drew one


class TrackSource(Source):
    """The newest frame of a WebRTC track (fed into ``mailbox`` by the event loop) as a live
    source: the pipeline keeps only the newest frame for the engine, like a camera's."""

    live = True

    def __init__(self, mailbox: NewestFrame):
        super().__init__()
        self.mailbox = mailbox

    def read(self) -> TrackFrame | None:
        while True:
            got = self.mailbox.take(timeout=0.25)
            self.frames_dropped = self.mailbox.dropped
            if got is not None:
                break
            if self.mailbox.closed:
                self.end_reason = "disconnected"
                return None
        frame, arrived = got
        image = frame.to_ndarray(format="rgb24")
        index, self.frames_read = self.frames_read, self.frames_read + 1
        return TrackFrame(image=image, pts=frame.pts if frame.pts is not None else index, time_base=frame.time_base
                          or Fraction(1, 90000), index=index, captured_at=arrived, stamp=read_stamp(image))

    def stop(self) -> None:
        self.mailbox.close()


# ----------------------------------------------------------------------------------- settings

@dataclass(frozen=True)
class Settings:
    model: str
    alpha: float | None = None  # AdaIN
    style_index: int | None = None  # StyleBank
    smoothing: float = 0.0
    style_image: Path | None = None  # AdaIN: an uploaded image in the session's private folder
    strength: float = 1.0  # any model: blend with the camera picture (rtstyle.strength)

    def check(self, catalog: Catalog) -> Settings:
        catalog.default_choice(self.model, self.alpha, self.style_index)  # raises for a bad model/index/alpha
        check_smoothing(self.smoothing)
        check_strength(self.strength)
        return self


def offered(params: dict, catalog: Catalog) -> Settings:
    """A new session's settings from an offer's JSON (``params.PARAMS``, checked in one place)."""
    typed = parse_params({k: v for k, v in params.items() if k not in ("sdp", "type")}, OFFER)
    typed.setdefault("model", next(iter(catalog.models)))
    return Settings(**typed).check(catalog)


def updated(settings: Settings, changes: dict, catalog: Catalog) -> Settings:
    """``settings`` with the JSON ``changes`` applied (``params.PARAMS``: unknown keys and bad
    values are an error naming the setting)."""
    typed = parse_params(changes, SESSION)
    if "model" in typed and typed["model"] != settings.model:
        typed.setdefault("style_index", None)  # bank numbers belong to one model
    return replace(settings, **typed).check(catalog)


class SessionEngine:
    """What the pipeline calls: the engine for the session's current settings, opened on first use
    and kept; style changes are applied here, on the engine thread, between frames."""

    backend = "session"
    scale = 1

    def __init__(self, catalog: Catalog, settings: Settings):
        self.catalog = catalog
        self.settings = settings
        self.version = 0  # bumped on every change; the sink resets smoothing when it moves
        self._engines: dict[tuple, Any] = {}
        self._applied: dict[tuple, tuple] = {}
        self._lock = threading.Lock()
        self.current = self._engine_for(settings)  # open now: a bad model fails the offer, not the stream
        self.device = self.current.device
        self.reason = self.current.reason

    def update(self, settings: Settings) -> None:
        with self._lock:
            self.settings = settings
            self.version += 1

    def _engine_for(self, s: Settings):
        key = (s.model, s.style_index)
        engine = self._engines.get(key)
        style = (s.style_image, s.alpha)
        if engine is None:
            choice = self.catalog.default_choice(s.model, s.alpha, s.style_index, s.style_image)
            engine = self._engines[key] = self.catalog.open(s.model, choice)
        elif self.catalog.get(s.model).arch == "adain" and self._applied.get(key) != style:
            choice = self.catalog.default_choice(s.model, s.alpha, s.style_index, s.style_image)
            image = load_style_image(choice.style_image, choice.style_size)
            style_switcher(engine).set_style(image, 1.0 if s.alpha is None else s.alpha)
        self._applied[key] = style
        return engine

    def __call__(self, frames):
        with self._lock:
            settings = self.settings
        self.current = self._engine_for(settings)
        return apply_strength(frames, self.current(frames), settings.strength)

    def describe(self) -> str:
        return self.current.describe()


# ------------------------------------------------------------------------------------- session

class LiveSmoothing(Sink):
    """Temporal smoothing that follows the session's settings: on, off, or another strength at any
    time, and reset on every style change (never blend the previous style into the new one)."""

    def __init__(self, engine: SessionEngine):
        self.engine = engine
        self._sink: SmoothingSink | None = None
        self._version = -1

    def write(self, image, frame):
        alpha, version = self.engine.settings.smoothing, self.engine.version
        if alpha <= 0:
            self._sink = None
            return image
        if self._sink is None or self._sink.smoother.alpha != alpha:
            self._sink = SmoothingSink(alpha)
        elif version != self._version:
            self._sink.reset()
        self._version = version
        return self._sink.write(image, frame)


def make_output_track():
    """An aiortc video track fed from another thread through ``push`` (newest frame wins)."""
    from aiortc import MediaStreamTrack
    from aiortc.mediastreams import MediaStreamError

    class StylizedTrack(MediaStreamTrack):
        kind = "video"

        def __init__(self):
            super().__init__()
            self._frame = None
            self._event = asyncio.Event()
            self._ended = False
            self.replaced = 0

        def push(self, frame) -> None:
            if self._frame is not None:
                self.replaced += 1
            self._frame = frame
            self._event.set()

        def end(self) -> None:
            self._ended = True
            self._event.set()

        async def recv(self):
            while self._frame is None:
                if self._ended or self.readyState != "live":
                    raise MediaStreamError
                self._event.clear()
                await self._event.wait()
            frame, self._frame = self._frame, None
            return frame

    return StylizedTrack()


class LiveSession:
    """One peer connection: the remote camera track through the pipeline and back."""

    def __init__(self, session_id: str, pc, engine: SessionEngine, folder: Path, max_side: int | None):
        self.id = session_id
        self.pc = pc
        self.engine = engine
        self.folder = folder  # private: uploaded style images
        self.style_images: list[Path] = []  # deleted when the session ends
        self.max_side = max_side
        self.mailbox = NewestFrame()
        self.output = make_output_track()
        self.stats = StatsSink()  # after smoothing: arrival at the server -> handed to the encoder
        self.stop = threading.Event()
        self.error: str | None = None
        self.closed = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._thread: threading.Thread | None = None
        self._pump: asyncio.Task | None = None
        self.watchdog: asyncio.Task | None = None  # the app ends the session when no frame comes

    def attach(self, track) -> None:
        """Start reading the remote video track and the pipeline thread."""
        self._pump = asyncio.ensure_future(self._read(track))
        self._thread = threading.Thread(target=self._run, name=f"rtstyle-session-{self.id[:6]}", daemon=True)
        self._thread.start()

    async def _read(self, track) -> None:
        from aiortc.mediastreams import MediaStreamError

        try:
            while True:
                frame = await track.recv()
                self.mailbox.put(frame, time.perf_counter())
        except (MediaStreamError, asyncio.CancelledError):
            pass
        finally:
            self.mailbox.close()

    def _run(self) -> None:
        """The same path as ``rtstyle live``: a live source (newest frame only), batch 1, the
        session's engine, a sink chain; here the chain ends in the WebRTC track."""
        chain = SinkChain([LiveSmoothing(self.engine), self.stats, CallbackSink(self._send)])
        outcome = "done"
        try:
            run_pipeline(Resized(TrackSource(self.mailbox), max_side=self.max_side), self.engine, chain,
                         PipelineConfig(batch_size=1, queue_batches=1, drop_stale=True), self.stop)
        except Exception as exc:  # noqa: BLE001 - reported on the session's status and the log
            outcome = "failed"
            self.error = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
            log.warning("session %s stopped: %s", self.id, self.error)
        finally:
            chain.close(outcome)
            with contextlib.suppress(RuntimeError):  # the loop may already be closed at shutdown
                self._loop.call_soon_threadsafe(self.output.end)

    def _send(self, image: np.ndarray, item: TrackFrame) -> None:
        import av

        image = np.ascontiguousarray(image)
        if item.stamp is not None:
            image = image if image.flags.writeable else image.copy()
            write_stamp(image, item.stamp)
        frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
        frame.pts, frame.time_base = item.pts, item.time_base
        self._loop.call_soon_threadsafe(self.output.push, frame)

    def set_style_image(self, path: Path) -> None:
        """Apply an uploaded style image (AdaIN models); raises InputError if it does not read."""
        load_style_image(path)  # check before the engine thread sees it
        self.engine.update(replace(self.engine.settings, style_image=path))

    def status(self) -> dict:
        s = self.engine.settings
        return {"id": self.id, "model": s.model, "alpha": s.alpha, "style_index": s.style_index,
                "smoothing": s.smoothing, "strength": s.strength, "style_image": s.style_image is not None,
                "engine": self.engine.describe(), "error": self.error,
                "frames_in": self.mailbox.received, "frames_out": self.stats.frames,
                "dropped": max(0, self.mailbox.received - self.stats.frames),  # replaced by newer ones (or in flight)
                "fps": round(self.stats.fps, 2), "server_ms_mean": round(self.stats.latency_ms_mean, 1),
                "server_ms_p95": round(self.stats.latency_ms_p95, 1)}

    async def close(self) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        self.stop.set()
        self.mailbox.close()
        if self._pump is not None:
            self._pump.cancel()
        await self.pc.close()
        if self._thread is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._thread.join, 5.0)
