"""``rtstyle live`` with fake capture sources, headless."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from rtstyle.cli import main
from rtstyle.errors import BackendUnavailableError, InputError, OutputError
from rtstyle.live import LiveConfig, Styles, run_live
from rtstyle.sinks import Display, FpsMeter, gui_available
from rtstyle.sources import LatestFrameGrabber
from tests.helpers_video import IdentityEngine, frame_pattern, make_clip, read_frames


class FakeCapture:
    """Frames like a camera: ``frames`` BGR pictures, ``interval`` seconds apart, then a failed read."""

    def __init__(self, frames: int = 1000, interval: float = 0.0, size=(32, 24)):
        self.left, self.interval, self.size = frames, interval, size
        self.released = False
        self.n = 0

    def read(self):
        if self.left <= 0:
            return False, None
        time.sleep(self.interval)
        self.left -= 1
        self.n += 1
        return True, frame_pattern(self.n, *self.size)[..., ::-1].copy()

    def release(self):
        self.released = True


class SlowEngine(IdentityEngine):
    def _run(self, frames):
        time.sleep(0.01)
        return super()._run(frames)


def live(tmp_path=None, engines=None, capture=None, **kw):
    cfg = LiveConfig(models=("fake",), window=False, **kw)
    cap = capture or FakeCapture(interval=0.002)
    return run_live(cfg, open_capture=lambda src: cap, engines=engines or [IdentityEngine()]), cap


def test_headless_run_measures_latency():
    result, cap = live(max_frames=8, source="0")
    assert result.frames_shown == 8 and result.ended_by == "max_frames" and result.headless
    assert result.latency_ms_mean > 0 and result.latency_ms_p95 >= result.latency_ms_mean * 0.5
    assert cap.released and "latency" in result.summary()


def test_stale_frames_are_dropped():
    result, _ = live(engines=[SlowEngine()], capture=FakeCapture(frames=300, interval=0.0005), source="0")
    assert result.ended_by == "disconnected"
    assert result.frames_dropped > 0
    assert result.frames_shown + result.frames_dropped <= result.frames_captured == 300


def test_grabber_keeps_only_newest_frame():
    g = LatestFrameGrabber(FakeCapture(frames=5)).start()
    time.sleep(0.2)
    frame, _ = g.latest(timeout=1)
    assert np.array_equal(frame, frame_pattern(5, 32, 24)[..., ::-1])
    assert g.latest(timeout=0.1) is None and g.ended and g.dropped == 4
    g.stop()


def test_disconnect_then_reconnect():
    caps = [FakeCapture(frames=3), FakeCapture(frames=3)]
    opened = []

    def open_capture(src):
        opened.append(src)
        if len(opened) == 2 or not caps:
            raise InputError("camera busy")  # the first reopen attempt fails; later the camera is gone
        return caps.pop(0)

    cfg = LiveConfig(source="0", models=("fake",), window=False, reconnect=True, reconnect_timeout=1)
    result = run_live(cfg, open_capture=open_capture, engines=[IdentityEngine()])
    assert result.reconnects == 1 and result.ended_by == "disconnected"
    assert result.frames_captured == 6 and len(opened) >= 3


def test_stop_event_and_duration():
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    cfg = LiveConfig(source="0", models=("fake",), window=False)
    result = run_live(cfg, open_capture=lambda s: FakeCapture(interval=0.01), engines=[IdentityEngine()], stop=stop)
    assert result.ended_by == "interrupted" and result.frames_shown > 0
    result, _ = live(duration=0.2, capture=FakeCapture(interval=0.01), source="0")
    assert result.ended_by == "duration"


def test_recording_keeps_every_shown_frame(tmp_path):
    out = tmp_path / "rec.mp4"
    result, _ = live(max_frames=6, output=out, capture=FakeCapture(interval=0.01), source="0")
    assert result.output == out
    images, times = read_frames(out)
    assert len(images) == 6 and images[0].shape == (24, 32, 3)
    assert all(b > a for a, b in zip(times, times[1:]))
    with pytest.raises(OutputError, match="-y"):
        live(max_frames=1, output=out)


def test_video_file_as_camera_via_cli(tmp_path, tiny_style_ckpt, capsys):
    clip = make_clip(tmp_path / "cam.mp4", frames=6, fps=30, audio=False)
    code = main(["live", "--camera", str(clip), "--model", str(tiny_style_ckpt), "--no-window", "--device", "cpu",
                 "--output", str(tmp_path / "rec.mp4")])
    out = capsys.readouterr().out
    assert code == 0 and "source_ended" in out and "frames shown" in out


def test_style_keys():
    styles = Styles(("a", "b", "c"), engines=[IdentityEngine()] * 3)
    styles.handle_key(ord("n"))
    assert styles.index == 1
    styles.handle_key(ord("p")), styles.handle_key(ord("p"))
    assert styles.index == 2
    styles.handle_key(ord("1"))
    assert styles.index == 0 and styles.handle_key(ord("q")) and not styles.handle_key(ord("9"))


def test_headless_display_and_fps_meter():
    assert Display(window=False).show(np.zeros((4, 4, 3), np.uint8), "x") == -1
    if not gui_available():
        with pytest.raises(InputError, match="--no-window"):
            Display(window=True)
    meter = FpsMeter()
    fps = [meter.tick(t / 10) for t in range(5)]
    assert fps[-1] == pytest.approx(10.0)


def test_virtual_cam_missing_is_clear():
    pytest.importorskip("cv2")
    try:
        import pyvirtualcam  # noqa: F401
    except ImportError:
        with pytest.raises(BackendUnavailableError, match="pyvirtualcam"):
            live(max_frames=1, virtual_cam=True)
    else:
        pytest.skip("pyvirtualcam installed")


def test_config_errors():
    with pytest.raises(InputError, match="--model"):
        LiveConfig(models=())
    with pytest.raises(InputError, match="cannot open video file"):
        run_live(LiveConfig(source="/nonexistent/cam.mp4", models=("x",), window=False), engines=[IdentityEngine()])


# ------------------------------------------------------------------ one frame path: --every-frame

LOSSLESS = ["--crf", "0", "--pix-fmt", "yuv444p"]  # x264 at qp 0: the decoded frames are exactly what was encoded


@pytest.mark.parametrize("extra", [[], ["--temporal-smoothing", "0.5", "--max-side", "40"]], ids=["plain", "smoothed"])
def test_every_frame_gives_the_same_frames_as_stylize(tmp_path, tiny_style_ckpt, capsys, extra):
    clip = make_clip(tmp_path / "in.mp4", frames=12, size=(64, 48), fps=30, audio=False)
    model = ["--model", str(tiny_style_ckpt), "--device", "cpu", *LOSSLESS, *extra]
    assert main(["stylize", str(clip), "-o", str(tmp_path / "stylize.mp4"), "--no-progress", *model]) == 0
    assert main(["live", "--camera", str(clip), "--every-frame", "--no-window", "--output", str(tmp_path / "live.mp4"),
                 *model]) == 0
    out = capsys.readouterr().out
    assert "12 frames shown (12 captured, 0 dropped)" in out and "source_ended" in out
    (want, want_t), (got, got_t) = read_frames(tmp_path / "stylize.mp4"), read_frames(tmp_path / "live.mp4")
    assert len(want) == len(got) == 12 and got_t == want_t
    for i, (a, b) in enumerate(zip(want, got)):
        assert np.array_equal(a, b), f"frame {i} differs"


def test_every_frame_processes_every_frame_unpaced(tmp_path):
    """A slow engine on a file: --every-frame drops nothing and does not wait for real time; the
    raw engine outputs arrive in order (checked with a sink)."""
    from rtstyle.sinks import CallbackSink

    clip = make_clip(tmp_path / "in.mp4", frames=10, size=(32, 24), fps=2, audio=False)  # 5 s of video
    seen = []
    cfg = LiveConfig(source=str(clip), models=("fake",), window=False, every_frame=True)
    result = run_live(cfg, engines=[SlowEngine()], extra_sinks=[CallbackSink(lambda im, f: seen.append(f.index))])
    assert result.ended_by == "source_ended" and result.frames_shown == result.frames_captured == 10
    assert result.frames_dropped == 0 and seen == list(range(10)) and result.wall_s < 4
    with pytest.raises(InputError, match="--every-frame"):
        LiveConfig(source="0", models=("fake",), every_frame=True)


def test_file_as_camera_plays_in_real_time(tmp_path):
    clip = make_clip(tmp_path / "in.mp4", frames=6, size=(32, 24), fps=20, audio=False)  # 0.3 s of video
    result = run_live(LiveConfig(source=str(clip), models=("fake",), window=False), engines=[IdentityEngine()])
    assert result.ended_by == "source_ended" and result.frames_captured == 6
    assert result.wall_s >= 0.2  # paced: the 5 frame intervals after the first take 0.25 s
