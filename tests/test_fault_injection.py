"""Issue 15 fault injection on generated media (no network, no external files): late-starting
and offset streams in TS/MKV/MP4, edit lists and B-frames, priming packets, exact windows,
corrupt packets, truncated files, concurrent writers and a full disk.

Signals (SIGINT/SIGTERM/SIGHUP/SIGKILL) are in test_signals.py and test_reliability.py; crafted
checkpoints, .pt2 packages and engines in test_checkpoint.py and test_trust.py; the output rule in
test_outputs.py / test_output_commands.py; bad inputs in test_bad_inputs.py."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from rtstyle.stylize import StylizeConfig, stylize_video
from rtstyle.video import EncoderConfig, VideoReader
from tests.conftest import REPO
from tests.helpers_video import IdentityEngine, frame_pattern

FPS = 25


def encode(path: Path, frames: int = 75, gop: int = 10, bframes: int = 0, audio: str | None = "aac",
           size: tuple[int, int] = (48, 32)) -> Path:
    """An MP4 (or MKV for Opus) whose frame i shows frame_pattern(i): GOP ``gop``, ``bframes``
    B-frames, and a sine in AAC (8 kHz, with its priming packet) or Opus (pre-skip)."""
    w, h = size
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=FPS)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        vs.codec_context.options = {"g": str(gop), "bf": str(bframes), "crf": "8", "preset": "ultrafast",
                                    "x264-params": "scenecut=0"}
        rate = 48000 if audio == "libopus" else 8000
        aus = out.add_stream(audio, rate=rate, layout="mono") if audio else None
        for i in range(frames):
            f = av.VideoFrame.from_ndarray(frame_pattern(i, w, h), format="rgb24").reformat(format="yuv420p")
            f.pts, f.time_base = i, Fraction(1, FPS)
            for p in vs.encode(f):
                out.mux(p)
        for p in vs.encode(None):
            out.mux(p)
        if aus is not None:
            n = frames * rate // FPS
            samples = (0.3 * np.sin(2 * np.pi * 440 * np.arange(n) / rate)).astype(np.float32)[None]
            chunk = 960 if audio == "libopus" else 1024
            for start in range(0, n, chunk):
                block = samples[:, start:start + chunk]
                if block.shape[1] < chunk and audio == "libopus":
                    block = np.pad(block, ((0, 0), (0, chunk - block.shape[1])))
                af = av.AudioFrame.from_ndarray(np.ascontiguousarray(block), format="flt", layout="mono")
                af.sample_rate, af.pts, af.time_base = rate, start, Fraction(1, rate)
                for p in aus.encode(af):
                    out.mux(p)
            for p in aus.encode(None):
                out.mux(p)
    return path


def remux(src: Path, dst: Path, video_offset: float = 0.0, audio_offset: float = 0.0) -> Path:
    """``src``'s packets in the container of ``dst``, each stream moved by its offset (seconds)."""
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        streams = {s.index: out.add_stream_from_template(s) for s in inp.streams}
        for p in inp.demux():
            if p.dts is None:
                continue
            shift = round((video_offset if p.stream.type == "video" else audio_offset) / p.time_base)
            p.pts += shift
            p.dts += shift
            p.stream = streams[p.stream.index]
            out.mux(p)
    return dst


def packets(path: Path, kind: str) -> list[tuple[float, int]]:
    """(time in seconds, size) of every non-empty packet of the first ``kind`` stream."""
    with av.open(str(path)) as c:
        stream = getattr(c.streams, kind)[0]
        return [(float(p.pts * p.time_base), p.size) for p in c.demux(stream) if p.size and p.pts is not None]


def av_offset(path: Path) -> float:
    return min(t for t, _ in packets(path, "audio")) - min(t for t, _ in packets(path, "video"))


def stylize(src: Path, out: Path, **kw):
    config = StylizeConfig(inputs=(src,), output=out, progress=False, encoder=EncoderConfig(preset="ultrafast"), **kw)
    return stylize_video(config, engine=IdentityEngine())


def frame_indices(path: Path) -> list[int]:
    """Which generated frame each decoded frame shows (nearest pattern)."""
    with av.open(str(path)) as c:
        images = [f.to_ndarray(format="rgb24").astype(np.int32) for f in c.decode(video=0)]
    h, w = images[0].shape[:2]
    bank = [frame_pattern(i, w, h).astype(np.int32) for i in range(200)]
    return [int(np.argmin([np.abs(im - b).mean() for b in bank])) for im in images]


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    return encode(tmp_path_factory.mktemp("fault") / "base.mp4")


# ------------------------------------------------------------------- timestamps and audio


@pytest.mark.parametrize("suffix, video_offset, audio_offset", [
    (".ts", 1.4, 1.4),   # what ffmpeg's MPEG-TS muxer does to every file
    (".ts", 1.4, 1.0),   # audio starting before video
    (".mkv", 1.0, 0.6),
    (".mp4", 0.5, 0.0),  # video delayed by an edit list
], ids=["ts-1.4s", "ts-audio-first", "mkv-offset", "mp4-editlist"])
def test_late_and_offset_streams_keep_their_av_offset_and_every_packet(tmp_path, base, suffix, video_offset,
                                                                       audio_offset):
    src = remux(base, tmp_path / f"in{suffix}", video_offset, audio_offset)
    out = stylize(src, tmp_path / "out.mp4").output
    assert abs(av_offset(out) - av_offset(src)) <= 1 / FPS  # within one frame
    assert len(packets(out, "audio")) == len(packets(src, "audio"))
    assert min(t for t, _ in packets(out, "video")) == 0
    assert frame_indices(out) == list(range(75))


@pytest.mark.parametrize("codec, suffix", [("aac", ".mp4"), ("libopus", ".mkv")], ids=["aac-priming", "opus-preskip"])
def test_priming_packets_with_negative_times_are_copied(tmp_path, codec, suffix):
    src = encode(tmp_path / f"in{suffix}", frames=25, audio=codec)
    assert min(t for t, _ in packets(src, "audio")) < 0  # the encoder's priming / pre-skip
    out = stylize(src, tmp_path / f"out{suffix}").output
    assert [size for _, size in packets(out, "audio")] == [size for _, size in packets(src, "audio")]


def test_opencv_decoder_keeps_the_audio(tmp_path, base):
    src = remux(base, tmp_path / "in.ts", 1.4, 1.4)
    config = StylizeConfig(inputs=(src,), output=tmp_path / "out.mp4", progress=False, decoder="opencv",
                           encoder=EncoderConfig(preset="ultrafast"))
    out = stylize_video(config, engine=IdentityEngine()).output
    assert len(packets(out, "audio")) == len(packets(src, "audio"))
    assert abs(av_offset(out) - av_offset(src)) <= 1 / FPS


@pytest.mark.parametrize("suffix, offset", [(".mp4", 0.0), (".ts", 1.4), (".mkv", 1.0)])
@pytest.mark.parametrize("bframes", [0, 2], ids=["no-b", "b-frames"])
def test_start_and_duration_count_from_the_file_start_and_seek_exactly(tmp_path, suffix, offset, bframes):
    src = encode(tmp_path / "gop10.mp4", frames=75, gop=10, bframes=bframes)
    if suffix != ".mp4" or offset:
        src = remux(src, tmp_path / f"in{suffix}", offset, offset)
    out = stylize(src, tmp_path / "out.mp4", start=1.0, duration=1.0).output
    assert frame_indices(out) == list(range(25, 50))  # 25 frames from 1.0 s, as in every container
    assert min(t for t, _ in packets(out, "audio")) <= 0.0 + 1 / FPS


def test_single_gop_file_seeks_to_its_only_keyframe(tmp_path):
    src = remux(encode(tmp_path / "one_gop.mp4", frames=75, gop=300), tmp_path / "in.ts", 1.4, 1.4)
    frames = list(VideoReader(src, start=2.5))
    assert len(frames) in (12, 13) and frames[0].pts == 0
    out = stylize(src, tmp_path / "out.mp4", start=2.5).output
    assert frame_indices(out)[0] in (62, 63) and frame_indices(out)[-1] == 74


# ------------------------------------------------------------------------ damaged files


def test_corrupt_packets_are_skipped_not_fatal(tmp_path, base):
    data = bytearray(base.read_bytes())
    mdat = data.find(b"mdat")
    rng = np.random.default_rng(0)
    for pos in rng.integers(mdat + 2000, mdat + 6000, 40):  # garbage inside the media data
        data[pos] ^= 0xFF
    src = tmp_path / "corrupt.mp4"
    src.write_bytes(bytes(data))
    result = stylize(src, tmp_path / "out.mp4")
    assert result.frames_out >= 60 and Path(result.output).is_file()


def test_truncated_file_keeps_every_decodable_frame(tmp_path, base):
    ts = remux(base, tmp_path / "full.ts", 1.4, 1.4)
    data = ts.read_bytes()
    src = tmp_path / "cut.ts"
    src.write_bytes(data[: len(data) * 6 // 10])
    result = stylize(src, tmp_path / "out.mp4")
    indices = frame_indices(result.output)
    assert 30 <= len(indices) < 75 and indices == list(range(len(indices)))


# ------------------------------------------------------------------------ writers


def test_concurrent_runs_writing_one_path_cannot_both_succeed(tmp_path, base, tiny_style_ckpt):
    out = tmp_path / "same.mp4"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    argv = [sys.executable, "-m", "rtstyle", "stylize", str(base), "-o", str(out), "--model", str(tiny_style_ckpt),
            "--no-progress", "--preset", "ultrafast", "--device", "cpu"]
    procs = [subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [(p.wait(timeout=300), p.communicate()[1]) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    loser = next(err for code, err in results if code == 2)
    assert "same.mp4" in loser and ("exists" in loser or "appeared" in loser)
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".mp4") == ["same.mp4"]  # no partial left
    assert len(frame_indices(out)) == 75


def test_disk_full_on_a_small_tmpfs(tmp_path, base):
    """A real ENOSPC (a 300 KB tmpfs) where the machine allows mounting one; skipped elsewhere."""
    mount = tmp_path / "small"
    mount.mkdir()
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("needs root and mount for a tmpfs")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        big = encode(tmp_path / "big.mp4", frames=100, size=(320, 240), gop=1)
        from rtstyle.errors import OutputError

        with pytest.raises(OutputError, match="disk full|No space"):
            stylize(big, mount / "out.mp4")
        assert list(mount.iterdir()) == []  # neither the output nor a partial
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True)
