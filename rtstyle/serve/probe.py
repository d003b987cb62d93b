"""A WebRTC client for the studio without a browser: sends synthetic stamped frames, receives the
stylized track and times each frame from send to return (the tests and the latency benchmark).

``await probe(base_url, seconds=3, size=(320, 240), fps=15, settings=None, token=None,
change=None, frames=None) -> ProbeResult`` runs for ``seconds`` (or until ``frames`` frames came
back, whichever is first). ``change=(after_frames, {"model": ...})`` posts a settings change to the
session once ``after_frames`` frames came back and records which frames came after it. Timing starts
when the first stylized frame is back (plus ``warmup_s``), so connection set-up is not counted.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from .ice import host_candidates, rtc_configuration
from .stamps import STAMP_ROWS, read_stamp, write_stamp

VIDEO_CLOCK = Fraction(1, 90000)


def probe_pattern(i: int, width: int, height: int) -> np.ndarray:
    """A moving colour pattern with texture (style networks change it visibly)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    r = 128 + 90 * np.sin((x + 4 * i) / 11.0) * np.cos(y / 17.0)
    g = 128 + 90 * np.cos((y + 3 * i) / 9.0)
    b = 128 + 90 * np.sin((x + y + 5 * i) / 23.0)
    return np.stack([r, g, b], -1).clip(0, 255).astype(np.uint8)


@dataclass
class Received:
    stamp: int
    latency_ms: float
    image: np.ndarray
    after_change: bool  # sent after the server acknowledged the change: stylized with the new settings
    before_change: bool = False  # back before the change was asked for: stylized with the old ones


@dataclass
class ProbeResult:
    session: str
    answer: dict
    frames_sent: int = 0
    received: list[Received] = field(default_factory=list)
    sent_images: dict[int, np.ndarray] = field(default_factory=dict)  # stamp -> the frame sent (recent ones)
    unstamped: int = 0
    server: dict = field(default_factory=dict)  # the session's status at the end (server-side timings)
    wall_s: float = 0.0

    @property
    def latencies_ms(self) -> list[float]:
        return [r.latency_ms for r in self.received]

    @property
    def fps(self) -> float:
        return len(self.received) / self.wall_s if self.wall_s > 0 else 0.0

    def summary(self) -> dict:
        lat = np.asarray(self.latencies_ms or [np.nan])
        return {"frames_sent": self.frames_sent, "frames_received": len(self.received), "fps": round(self.fps, 2),
                "latency_ms_median": round(float(np.median(lat)), 1),
                "latency_ms_p95": round(float(np.percentile(lat, 95)), 1), "wall_s": round(self.wall_s, 2)}


def _stamped_track(size: tuple[int, int], fps: float, result: ProbeResult, sent_at: dict[int, float]):
    import av
    from aiortc import MediaStreamTrack

    width, height = size

    class StampedTrack(MediaStreamTrack):
        kind = "video"

        def __init__(self):
            super().__init__()
            self.count = 0
            self.start: float | None = None

        async def recv(self):
            if self.start is None:
                self.start = time.perf_counter()
            due = self.start + self.count / fps
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            image = probe_pattern(self.count, width, height)
            number = self.count % 4096
            write_stamp(image, number)
            result.sent_images[number] = image
            if len(result.sent_images) > 600:  # a long run keeps the recent frames only
                del result.sent_images[next(iter(result.sent_images))]
            frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
            frame.pts, frame.time_base = round(self.count / fps / VIDEO_CLOCK), VIDEO_CLOCK
            sent_at[number] = time.perf_counter()
            self.count += 1
            result.frames_sent = self.count
            return frame

    return StampedTrack()


async def probe(base_url: str, seconds: float = 3.0, size: tuple[int, int] = (320, 240), fps: float = 15.0,
                settings: dict | None = None, token: str | None = None,
                change: tuple[int, dict] | None = None, warmup_s: float = 0.0, frames: int | None = None) -> ProbeResult:
    import aiohttp
    from aiortc import RTCPeerConnection, RTCSessionDescription

    base_url = base_url.split("?")[0].rstrip("/")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    sent_at: dict[int, float] = {}
    result = ProbeResult(session="", answer={})
    pc = RTCPeerConnection(rtc_configuration())
    pc.addTrack(_stamped_track(size, fps, result, sent_at))
    changing = asyncio.Event()  # the change is on its way: frames back from now may have either settings
    changed_at: list[float] = []  # when the server acknowledged it: frames sent later have the new ones
    counting = asyncio.Event()
    first = asyncio.Event()
    done = asyncio.Event()

    async def consume(track) -> None:
        from aiortc.mediastreams import MediaStreamError

        try:
            while not done.is_set():
                frame = await track.recv()
                now = time.perf_counter()
                image = frame.to_ndarray(format="rgb24")
                stamp = read_stamp(image)
                if stamp is None or stamp not in sent_at:
                    result.unstamped += 1
                    continue
                first.set()
                if counting.is_set():
                    after = bool(changed_at) and sent_at[stamp] > changed_at[0]
                    result.received.append(Received(stamp, 1000 * (now - sent_at[stamp]), image, after,
                                                    not changing.is_set()))
        except MediaStreamError:
            pass

    consumers: list[asyncio.Task] = []
    pc.on("track", lambda track: consumers.append(asyncio.ensure_future(consume(track))))
    try:
        with host_candidates(("127.0.0.1",)):
            await pc.setLocalDescription(await pc.createOffer())
        async with aiohttp.ClientSession(headers=headers) as http:
            body = {"sdp": pc.localDescription.sdp, "type": pc.localDescription.type, **(settings or {})}
            async with http.post(f"{base_url}/offer", json=body) as r:
                answer = await r.json()
                if r.status != 200:
                    raise RuntimeError(f"offer refused: HTTP {r.status} {answer}")
            result.answer, result.session = answer, answer["session"]
            await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type=answer["type"]))
            await asyncio.wait_for(first.wait(), timeout=60)  # connection set up, first frame back
            await asyncio.sleep(warmup_s)
            counting.set()
            t0 = time.perf_counter()
            deadline = t0 + seconds
            if change is not None:
                while len(result.received) < change[0] and time.perf_counter() < deadline:
                    await asyncio.sleep(0.02)
                changing.set()
                async with http.post(f"{base_url}/api/sessions/{result.session}", json=change[1]) as r:
                    if r.status != 200:
                        raise RuntimeError(f"settings refused: HTTP {r.status} {await r.text()}")
                changed_at.append(time.perf_counter())
            while time.perf_counter() < deadline and (frames is None or len(result.received) < frames):
                await asyncio.sleep(0.02)
            result.wall_s = time.perf_counter() - t0
            done.set()
            async with http.get(f"{base_url}/api/sessions/{result.session}") as r:
                result.server = await r.json()
            async with http.delete(f"{base_url}/api/sessions/{result.session}"):
                pass
    finally:
        done.set()
        await pc.close()
        for task in consumers:
            task.cancel()
    return result


__all__ = ["STAMP_ROWS", "ProbeResult", "Received", "probe", "probe_pattern"]
