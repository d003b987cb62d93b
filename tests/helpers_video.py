"""Synthetic clips for the runtime tests: PyAV-encoded, tiny, with an AAC track, VFR and odd-size
options and 10-bit / alpha / gray variants; plus tiny engines for pipeline tests."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

from rtstyle.engine import Engine

VFR_STEPS_MS = (33, 50, 20, 67, 40)  # irregular frame intervals


def frame_pattern(i: int, width: int, height: int) -> np.ndarray:
    """A smooth moving pattern (codecs keep it well, so identity round trips compare closely)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    r = 128 + 100 * np.sin((x + 3 * i) / 7.0)
    g = 128 + 100 * np.cos((y + 2 * i) / 5.0)
    b = np.full_like(x, (40 + 9 * i) % 256)
    return np.stack([r, g, b], -1).clip(0, 255).astype(np.uint8)


def frame_times_ms(frames: int, fps: int, vfr: bool) -> list[int]:
    if not vfr:
        return [round(1000 * i / fps) for i in range(frames)]
    return [int(t) for t in np.cumsum([0] + [VFR_STEPS_MS[i % len(VFR_STEPS_MS)] for i in range(frames - 1)])]


def make_clip(path: Path, frames: int = 24, size: tuple[int, int] = (64, 48), fps: int = 24, vfr: bool = False,
              audio: bool = True, codec: str = "libx264", pix_fmt: str | None = None, rotation: int = 0,
              video: bool = True) -> Path:
    """Write a clip; time base 1/1000 so VFR pts are exact. Audio (AAC, mono 8 kHz sine) spans the
    video's duration."""
    width, height = size
    times = frame_times_ms(frames, fps, vfr)
    last_ms = 1000 // fps if not vfr else VFR_STEPS_MS[0]
    with av.open(str(path), "w") as out:
        vs = None
        if video:
            vs = out.add_stream(codec, rate=fps)
            vs.width, vs.height = width, height
            vs.pix_fmt = pix_fmt or ("yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p")
            vs.time_base = vs.codec_context.time_base = Fraction(1, 1000)
            if codec == "libx264":
                vs.codec_context.options = {"crf": "10", "preset": "ultrafast"}
            if rotation:
                vs.set_display_rotation(rotation)
        aus = out.add_stream("aac", rate=8000, layout="mono") if audio else None
        for i, t in enumerate(times if video else []):
            f = av.VideoFrame.from_ndarray(frame_pattern(i, width, height), format="rgb24").reformat(format=vs.pix_fmt)
            f.pts, f.time_base = t, Fraction(1, 1000)
            for p in vs.encode(f):
                out.mux(p)
        if vs is not None:
            for p in vs.encode(None):
                out.mux(p)
        if aus is not None:
            seconds = (times[-1] + last_ms) / 1000 if video else 1.0
            _write_sine(out, aus, seconds)
    return path


def _write_sine(out, stream, seconds: float, rate: int = 8000) -> None:
    n = int(round(seconds * rate))
    t = np.arange(n) / rate
    samples = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
    for start in range(0, n, 1024):
        chunk = samples[:, start:start + 1024]
        f = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format="flt", layout="mono")
        f.sample_rate, f.pts, f.time_base = rate, start, Fraction(1, rate)
        for p in stream.encode(f):
            out.mux(p)
    for p in stream.encode(None):
        out.mux(p)


def read_frames(path: Path) -> tuple[list[np.ndarray], list[float]]:
    """All frames (RGB) and their times in seconds; for small test clips only."""
    images, times = [], []
    with av.open(str(path)) as c:
        for f in c.decode(video=0):
            images.append(f.to_ndarray(format="rgb24"))
            times.append(float(f.pts * f.time_base))
    return images, times


def audio_duration(path: Path) -> float:
    """Seconds of audio: the end of the last decoded audio frame."""
    with av.open(str(path)) as c:
        end = 0.0
        for f in c.decode(audio=0):
            end = max(end, float(f.pts * f.time_base) + f.samples / f.sample_rate)
    return end


class IdentityEngine(Engine):
    """Returns its input: the output must match the input within codec error."""

    backend = "identity"

    def __init__(self, scale: int = 1, device: torch.device | None = None):
        super().__init__(device=device or torch.device("cpu"), precision="fp32", scale=scale, reason="test engine")
        self.batches: list[int] = []

    def _run(self, frames: torch.Tensor) -> torch.Tensor:
        self.batches.append(len(frames))
        if self.scale == 1:
            return frames.clone()
        return frames.repeat_interleave(self.scale, 1).repeat_interleave(self.scale, 2)


class FailingEngine(IdentityEngine):
    """Raises on the ``fail_at``-th batch (1-based)."""

    backend = "failing"

    def __init__(self, fail_at: int):
        super().__init__()
        self.fail_at = fail_at

    def _run(self, frames: torch.Tensor) -> torch.Tensor:
        if len(self.batches) + 1 >= self.fail_at:
            raise RuntimeError(f"engine failure at batch {self.fail_at}")
        return super()._run(frames)


def make_packed_avi(path: Path, frames: int = 20, fps: int = 24, size: tuple[int, int] = (64, 48),
                    audio: bool = True) -> Path:
    """An MPEG-4 Part 2 AVI with *packed B-frames*, as DivX 5 and XviD write them (FFmpeg's own
    encoder cannot): AVI has no presentation times, one chunk per frame, so each anchor frame
    carries the B-frame shown before it and the next chunk is a placeholder (an N-VOP); a "DivX503b1393p"
    user-data string tells decoders. Frame ``i`` is ``frame_pattern(i)`` (blue = 40 + 9 i). Audio:
    a PCM sine as long as the video."""
    width, height = size
    ctx = av.CodecContext.create("mpeg4", "w")
    ctx.width, ctx.height, ctx.pix_fmt = width, height, "yuv420p"
    ctx.time_base, ctx.framerate = Fraction(1, fps), Fraction(fps)
    ctx.max_b_frames, ctx.gop_size, ctx.bit_rate = 1, 12, 4_000_000
    packets = []  # decode order: I0 P2 B1 P4 B3 ...
    for i in range(frames):
        f = av.VideoFrame.from_ndarray(frame_pattern(i, width, height), format="rgb24").reformat(format="yuv420p")
        f.pts, f.time_base = i, ctx.time_base
        packets += [bytes(p) for p in ctx.encode(f)]
    packets += [bytes(p) for p in ctx.encode(None)]

    def coding_type(data: bytes) -> str:  # the two bits after the VOP start code
        return "IPBS"[data[data.index(b"\x00\x00\x01\xb6") + 4] >> 6]

    first = packets[0].index(b"\x00\x00\x01\xb6")
    chunks = [packets[0][:first] + b"\x00\x00\x01\xb2DivX503b1393p" + packets[0][first:]]
    k = 1
    while k < len(packets):
        if k + 1 < len(packets) and coding_type(packets[k + 1]) == "B":
            chunks += [packets[k] + packets[k + 1], b"\x7f"]  # the anchor with its B-frame, then the N-VOP's chunk
            k += 2
        else:
            chunks.append(packets[k])
            k += 1
    assert len(chunks) == frames
    with av.open(str(path), "w", format="avi") as out:
        vs = out.add_stream("mpeg4", rate=fps)
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        vs.time_base = Fraction(1, fps)
        aus = out.add_stream("pcm_s16le", rate=8000, layout="mono") if audio else None
        for n, data in enumerate(chunks):
            p = av.Packet(data)
            p.stream, p.time_base, p.pts, p.dts = vs, vs.time_base, n, n
            p.is_keyframe = n == 0
            out.mux(p)
        if aus is not None:
            _write_sine(out, aus, frames / fps)
    return path
