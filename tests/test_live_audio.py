"""Issue 29: ``rtstyle live --camera FILE --output rec.mp4`` keeps the file's sound, in sync and cut
where the run stopped; a camera's recording has none; ``--max-frames`` counts frames shown and says so."""

from __future__ import annotations

import time
from fractions import Fraction

import av
import numpy as np
import pytest

from rtstyle.cli import build_parser, main, subparsers_of
from rtstyle.live import LiveConfig, run_live
from rtstyle.video import probe
from tests.helpers_video import IdentityEngine, audio_duration, read_frames
from tests.test_live import FakeCapture

FPS, RATE = 24, 48000
FLASH_S = 1.0  # a white picture and a beep both start here


def flash_and_beep(path, seconds: float = 2.0, size=(64, 48)) -> None:
    """Dark frames with a white flash from ``FLASH_S`` on, and silence with a beep from ``FLASH_S`` on."""
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=FPS)
        vs.width, vs.height, vs.pix_fmt = *size, "yuv420p"
        vs.codec_context.options = {"preset": "ultrafast", "crf": "10"}
        aus = out.add_stream("aac", rate=RATE, layout="mono")
        for i in range(int(seconds * FPS)):
            level = 235 if i >= FLASH_S * FPS else 20
            frame = av.VideoFrame.from_ndarray(np.full((size[1], size[0], 3), level, np.uint8), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, FPS)
            out.mux(vs.encode(frame.reformat(format="yuv420p")))
        out.mux(vs.encode(None))
        t = np.arange(int(seconds * RATE)) / RATE
        samples = np.where(t >= FLASH_S, 0.5 * np.sin(2 * np.pi * 1000 * t), 0.0).astype(np.float32)[None]
        for start in range(0, samples.shape[1], 1024):
            chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[:, start:start + 1024]), format="flt",
                                               layout="mono")
            chunk.sample_rate, chunk.pts, chunk.time_base = RATE, start, Fraction(1, RATE)
            out.mux(aus.encode(chunk))
        out.mux(aus.encode(None))


def onsets(path) -> tuple[float, float]:
    """(first bright frame's time, first loud sample's time) in seconds."""
    images, times = read_frames(path)
    flash = next(t for image, t in zip(images, times) if image.mean() > 128)
    with av.open(str(path)) as c:
        for frame in c.decode(audio=0):
            loud = np.flatnonzero(np.abs(frame.to_ndarray()[0]) > 0.25)
            if len(loud):
                return flash, float(frame.pts * frame.time_base) + loud[0] / frame.sample_rate
    raise AssertionError("no beep in the recording")


class SlowEngine(IdentityEngine):
    """Slower than the clip's frame rate: the live path drops frames to keep up."""

    def _run(self, frames):
        time.sleep(0.07)
        return super()._run(frames)


def live_on(clip, out, engine=None, **kw):
    config = LiveConfig(source=str(clip), models=("fake",), window=False, output=out, **kw)
    return run_live(config, engines=[engine or IdentityEngine()])


@pytest.mark.parametrize("engine", [IdentityEngine, SlowEngine], ids=["keeps-up", "drops-frames"])
def test_recording_of_a_file_keeps_its_audio_in_sync(tmp_path, engine):
    clip = tmp_path / "clip.mp4"
    flash_and_beep(clip)
    result = live_on(clip, tmp_path / "rec.mp4", engine())
    assert result.ended_by == "source_ended" and probe(tmp_path / "rec.mp4").audio_codecs == ("aac",)
    _, audio = onsets(tmp_path / "rec.mp4")
    source_video, source_audio = onsets(clip)
    assert source_video == FLASH_S and abs(source_audio - FLASH_S) < 0.01
    # The sound starts when it does in the file, and every frame shown keeps the file's time: frames
    # dropped to keep up leave gaps, never a drift. So each recorded frame is dark before the flash's
    # time and bright after it, however many were dropped (and however loaded the machine is).
    assert audio == pytest.approx(source_audio, abs=1e-3)
    images, times = read_frames(tmp_path / "rec.mp4")
    assert all(abs(t * FPS - round(t * FPS)) < 1e-3 for t in times), times
    assert [image.mean() > 128 for image in images] == [t >= FLASH_S - 1e-6 for t in times], times
    assert any(t >= FLASH_S for t in times) and any(t < FLASH_S for t in times)
    if engine is SlowEngine:
        assert result.frames_dropped > 0


def test_a_run_stopped_early_cuts_the_audio_with_the_last_frame_shown(tmp_path):
    clip = tmp_path / "clip.mp4"
    flash_and_beep(clip, seconds=4.0)  # 96 frames: 10 are shown long before the end, even on a loaded CPU
    result = live_on(clip, tmp_path / "rec.mp4", max_frames=10)
    images, times = read_frames(tmp_path / "rec.mp4")
    assert result.ended_by == "max_frames" and result.frames_shown == len(images) == 10
    assert audio_duration(tmp_path / "rec.mp4") == pytest.approx(times[-1] + 1 / FPS, abs=0.1)  # not the clip's 4 s


def test_a_camera_recording_has_no_sound_and_capture_timing(tmp_path):
    config = LiveConfig(source="0", models=("fake",), window=False, output=tmp_path / "cam.mp4", max_frames=5)
    result = run_live(config, open_capture=lambda src: FakeCapture(interval=0.01), engines=[IdentityEngine()])
    assert result.frames_shown == 5 and probe(tmp_path / "cam.mp4").audio_codecs == ()
    _, times = read_frames(tmp_path / "cam.mp4")
    assert times[-1] >= 0.03  # capture clock: ~10 ms apart, not the frame counter


def test_max_frames_is_said_to_count_frames_shown(tmp_path, capsys, tiny_style_ckpt):
    text = " ".join(subparsers_of(build_parser())["live"].format_help().split())
    assert "stop after N frames shown: frames skipped to keep up with the camera do not count" in text
    assert "cameras record none" in text  # --audio says why a camera's sound is not kept
    clip = tmp_path / "clip.mp4"
    flash_and_beep(clip, seconds=1.0)
    # --every-frame: no frame skipped, so exactly 6 are shown however loaded the machine is
    code = main(["live", "--camera", str(clip), "--model", str(tiny_style_ckpt), "--backend", "torch", "--no-window",
                 "--every-frame", "--max-frames", "6", "--output", str(tmp_path / "rec.mp4")])
    out = capsys.readouterr().out
    assert code == 0 and "6 frames shown" in out and "ended by --max-frames (6 frames shown)" in out
    assert len(read_frames(tmp_path / "rec.mp4")[0]) == 6 and probe(tmp_path / "rec.mp4").audio_codecs == ("aac",)
