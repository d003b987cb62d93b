"""Temporal stability (issue 7): warping, occlusion masks, the warping error, runtime smoothing,
the stabilisation loss and ``rtstyle eval temporal``. Tiny frames and clips: the file runs in
well under a minute on two cores."""

from __future__ import annotations

import csv
import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rtstyle.checkpoint import read_metadata
from rtstyle.cli import main
from rtstyle.errors import InputError
from rtstyle.eval_temporal import TemporalEvalConfig, evaluate_temporal
from rtstyle.frames import to_gray
from rtstyle.stylize import StylizeConfig, stylize_video
from rtstyle.temporal import (
    FlowEstimator,
    TemporalSmoother,
    WarpingErrorMeter,
    inside_mask,
    valid_mask,
    warp,
    warping_error,
)
from rtstyle.trainers import StyleTrainConfig, train_style
from rtstyle.trainers.stability import StabilityConfig, StabilityLoss, translate
from tests.helpers_video import IdentityEngine, read_frames

from .conftest import SAMPLES

STYLE = SAMPLES / "samples" / "styles" / "starry_night.jpg"
PHOTOS = SAMPLES / "samples" / "photos"


def texture(h: int = 48, w: int = 64, seed: int = 0) -> np.ndarray:
    """Blurred noise: enough structure everywhere for optical flow to lock on."""
    import cv2

    rng = np.random.default_rng(seed)
    big = cv2.GaussianBlur(rng.random((h + 40, w + 40, 3)).astype(np.float32), (0, 0), 2.0)
    big = (big - big.min()) / (big.max() - big.min())
    return (255 * big).astype(np.uint8)


def panning(frames: int, h: int = 48, w: int = 64, step: int = 1) -> list[np.ndarray]:
    """A camera pan over a larger texture: content moves ``step`` px left per frame."""
    world = texture(h, w + step * frames)
    return [np.ascontiguousarray(world[:h, i * step:i * step + w]) for i in range(frames)]


class FlickerEngine(IdentityEngine):
    """Identity plus a brightness offset of +-``amplitude`` alternating per frame (whatever the
    batch size): the per-frame instability the metric must catch."""

    backend = "flicker"

    def __init__(self, amplitude: int):
        super().__init__()
        self.amplitude = amplitude
        self.count = 0

    def _run(self, frames: torch.Tensor) -> torch.Tensor:
        signs = torch.tensor([1 if (self.count + i) % 2 else -1 for i in range(len(frames))])
        self.count += len(frames)
        out = frames.short() + (signs * self.amplitude).view(-1, 1, 1, 1)
        return out.clamp(0, 255).to(torch.uint8)


def write_clip(path: Path, images: list[np.ndarray], fps: int = 10) -> Path:
    """Lossless H.264 (qp 0), so identical frames decode identically."""
    h, w = images[0].shape[:2]
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264rgb", rate=fps, options={"qp": "0", "preset": "ultrafast"})
        s.width, s.height, s.pix_fmt = w, h, "rgb24"
        s.time_base = Fraction(1, fps)
        for i, im in enumerate(images):
            f = av.VideoFrame.from_ndarray(im, format="rgb24")
            f.pts = i
            for p in s.encode(f):
                out.mux(p)
        for p in s.encode(None):
            out.mux(p)
    return path


# ------------------------------------------------------------------------ warping and masks

def test_warp_with_known_integer_shift_reproduces_shifted_frame():
    a = texture()
    b = np.roll(a, 3, axis=1)  # content moves 3 px right: b(x) = a(x - 3)
    bw = np.zeros(a.shape[:2] + (2,), np.float32)
    bw[..., 0] = -3.0  # flow(b, a): b's pixel x is a's pixel x - 3
    valid = inside_mask(bw)
    assert not valid[:, :3].any() and valid[:, 3:].all()
    np.testing.assert_array_equal(warp(a, bw)[valid], b[valid])
    # DIS recovers the shift on the textured frames.
    est = FlowEstimator()(to_gray(b), to_gray(a))
    assert abs(float(np.median(est[..., 0])) + 3.0) < 0.2 and abs(float(np.median(est[..., 1]))) < 0.2


def test_occlusion_mask_excludes_out_of_frame_pixels():
    h, w = 30, 40
    bw = np.zeros((h, w, 2), np.float32)
    bw[..., 0], bw[..., 1] = 4.0, -2.0  # each pixel's match lies 4 right, 2 up in frame t
    fw = -bw  # consistent: no occlusion anywhere inside
    valid = valid_mask(bw, fw)
    expected = np.zeros((h, w), bool)
    expected[2:, :w - 4] = True
    np.testing.assert_array_equal(valid, expected)
    # An inconsistent forward flow marks pixels occluded too.
    fw_bad = fw.copy()
    fw_bad[10:20, 10:20] = 0.0  # in frame t: the matches of frame t+1's rows 12..21, columns 6..15
    bad = valid_mask(bw, fw_bad)
    assert not bad[12:22, 6:16].any()
    assert bad[2:10, :w - 4].all() and bad[24:, :w - 4].all()  # elsewhere as before


# ------------------------------------------------------------------------ warping error

def test_warping_error_zero_for_static_clip_and_identity_model(tmp_path):
    clip = write_clip(tmp_path / "static.mkv", [texture()] * 6)
    report = evaluate_temporal(TemporalEvalConfig(video=clip, losses=False, progress=False, batch_size=4),
                               engine=IdentityEngine())
    assert report["frames"] == 6 and report["pairs"] == 5
    assert report["warping_error"] == pytest.approx(0.0, abs=1e-9)
    assert report["valid_fraction"] == pytest.approx(1.0)


def test_warping_error_grows_with_injected_flicker(tmp_path):
    clip = write_clip(tmp_path / "pan.mkv", panning(8))
    errors = []
    for amplitude in (0, 4, 12):
        report = evaluate_temporal(TemporalEvalConfig(video=clip, losses=False, progress=False, batch_size=3),
                                   engine=FlickerEngine(amplitude))
        errors.append(report["warping_error"])
    assert errors[0] < 2e-3, errors  # moving content, steady model: only interpolation error
    assert errors[0] < errors[1] < errors[2], errors
    # +-12 on every channel of [0, 255] frames: about 3 * (24/255)^2 = 0.027 more.
    assert errors[2] - errors[0] == pytest.approx(3 * (24 / 255) ** 2, rel=0.25)


def test_runtime_smoothing_reduces_warping_error_on_flickering_clip():
    frames = panning(12)
    engine = FlickerEngine(10)
    raw, smoothed = WarpingErrorMeter(), WarpingErrorMeter()
    smoother = TemporalSmoother(0.6)
    for frame in frames:
        out = engine(torch.from_numpy(frame)[None])[0].numpy()
        raw.update(frame, out)
        smoothed.update(frame, smoother(out, to_gray(frame)))
    assert smoother.frames == len(frames) and smoother.ms_per_frame > 0
    assert raw.mean(smoothed.errors) < 0.5 * raw.mean(raw.errors), (smoothed.errors, raw.errors)


def test_smoothing_in_stylize_keeps_every_frame_in_order(tmp_path):
    clip = write_clip(tmp_path / "pan.mkv", panning(9))
    out = tmp_path / "out.mp4"
    result = stylize_video(StylizeConfig(inputs=(clip,), output=out, batch_size=4, temporal_smoothing=0.5,
                                         progress=False), engine=IdentityEngine())
    images, times = read_frames(out)
    assert result.frames_out == len(images) == 9
    assert times == sorted(times)
    # Identity model: smoothing blends the frame with its own warped past, so it stays close.
    assert np.abs(images[5].astype(int) - panning(9)[5].astype(int)).mean() < 6


def test_warping_error_helper_is_nan_without_valid_pixels():
    a = texture()
    flow = np.full(a.shape[:2] + (2,), 1000.0, np.float32)
    assert np.isnan(warping_error(a, a, flow, inside_mask(flow)))


# ------------------------------------------------------------------------ stabilisation loss

def test_stability_loss_zero_for_translation_equivariant_identity():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 32, 40)
    shift_only = {"rotate": 0.0, "zoom": 0.0, "flow": 0.0, "occlusion": 0.0}  # issue 7's term
    clean = StabilityLoss(StabilityConfig(weight=10.0, shift=2.0, noise=0.0, brightness=0.0, **shift_only))
    extra_in, shifts = clean.inputs(x)
    assert clean(x, extra_in, shifts).item() == pytest.approx(0.0, abs=1e-10)  # f = identity
    # A net that is not translation equivariant (a fixed positional pattern) is penalised...
    ramp = torch.linspace(0.5, 1.0, 40).view(1, 1, 1, 40)
    assert clean(x * ramp, extra_in * ramp, shifts).item() > 1e-4
    # ... and so is an identity that passes the input noise through.
    noisy = StabilityLoss(StabilityConfig(weight=1.0, shift=1.0, noise=0.05, brightness=0.0, **shift_only))
    extra_in, shifts = noisy.inputs(x)
    assert noisy(x, extra_in, shifts).item() == pytest.approx(0.05 ** 2, rel=0.3)


def test_translate_moves_content_by_integer_pixels():
    x = torch.rand(1, 3, 16, 20)
    moved = translate(x, torch.tensor([[2.0, 1.0]]))
    torch.testing.assert_close(moved[..., 1:, 2:], x[..., :-1, :-2], atol=1e-5, rtol=0)


def test_synthetic_motion_loss_zero_for_equivariant_nets_and_skips_occluders():
    torch.manual_seed(0)
    x = F.avg_pool2d(torch.rand(4, 3, 64, 80), 5, 1, 2)
    cfg = StabilityConfig(weight=1.0, shift=3.0, noise=0.0, brightness=0.0, rotate=3.0, zoom=0.05, flow=2.0,
                          occlusion=1.0)
    term = StabilityLoss(cfg)
    extra_in, motion = term.inputs(x)
    # Every image got an occluder: the moved input differs from the moved clean batch there only.
    mask, _ = motion.occluder
    assert mask.any(dim=(1, 2, 3)).all()
    assert torch.equal(extra_in[~mask.expand_as(extra_in)], motion.apply(x)[~mask.expand_as(x)].clamp(0, 1))
    assert not (motion.valid & mask).any()  # occluded pixels never count
    assert 0.3 < motion.valid.float().mean() < 0.95
    assert term(x, extra_in, motion).item() == pytest.approx(0.0, abs=1e-10)  # f = identity
    # A net that ignores the motion (output = its clean input) is penalised.
    assert term(x, x, motion).item() > 1e-3
    # The motion is more than a translation: a row of pixels is not moved rigidly.
    field = motion.grid[0] - motion.grid[0, :1, :1]
    assert field.std(dim=(0, 1)).max() > 1e-3


def test_synthetic_motion_settings_are_checked():
    with pytest.raises(InputError, match="stability-occlusion"):
        StabilityConfig(occlusion=1.5)
    with pytest.raises(InputError, match="stability-zoom"):
        StabilityConfig(zoom=0.7)
    assert StabilityConfig().moves  # synthetic motion is the default (issue 18)
    assert not StabilityConfig(rotate=0, zoom=0, flow=0, occlusion=0).moves


def test_training_with_stability_logs_and_records_it(tmp_path):
    cfg = StyleTrainConfig(style=STYLE, data=PHOTOS, out=tmp_path / "s.safetensors", iterations=2, batch_size=2,
                           image_size=48, style_size=64, arch="fast", width=8, num_residual=1, log_every=1,
                           device="cpu", progress=False, stability_weight=100.0)
    result = train_style(cfg)
    with open(result.csv, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and all(float(r["stability"]) > 0 for r in rows)
    meta = read_metadata(result.checkpoint)
    assert meta["stability"] == {"weight": 100.0, "shift": 2.0, "noise": 0.02, "brightness": 0.05,
                                 "rotate": 2.0, "zoom": 0.03, "flow": 1.5, "occlusion": 0.5}
    with pytest.raises(InputError, match="stability-noise"):
        StyleTrainConfig(style=STYLE, data=PHOTOS, out=tmp_path / "t.safetensors",
                         stability_noise=-1.0).stability_config()


# ------------------------------------------------------------------------ the command

def test_cli_eval_temporal_writes_json_plot_and_table(tmp_path, tiny_style_ckpt, capsys):
    clip = write_clip(tmp_path / "pan.mkv", panning(6, 40, 48))
    js, png = tmp_path / "t.json", tmp_path / "t.png"
    code = main(["eval", "temporal", str(clip), "--model", str(tiny_style_ckpt), "--style", str(STYLE),
                 "--json", str(js), "--plot", str(png), "--no-progress", "--device", "cpu", "--max-side", "32"])
    out = capsys.readouterr()
    assert code == 0, out.err
    report = json.loads(js.read_text())
    assert report["frames"] == 6 and report["pairs"] == 5 and report["size"] == [32, 27]
    assert report["warping_error"] > 0 and report["style_loss"] > 0 and report["content_loss"] > 0
    assert len(report["per_pair"]) == 5 and png.stat().st_size > 1000
    assert "| pan.mkv |" in out.out


@pytest.mark.parametrize("extra, needle", [
    (["--temporal-smoothing", "1.5"], "--temporal-smoothing must be in [0, 1)"),
    (["--plot", "out.jpg"], "--plot must end in .png"),
    (["--max-side", "4"], "--max-side must be >= 16"),
    ([], "records no style image; pass --style"),
])
def test_cli_errors_are_one_line(tmp_path, tiny_style_ckpt, capsys, extra, needle):
    clip = write_clip(tmp_path / "pan.mkv", panning(3, 32, 32))
    code = main(["eval", "temporal", str(clip), "--model", str(tiny_style_ckpt), "--no-progress", *extra])
    err = capsys.readouterr().err
    assert code == 2 and needle in err and err.count("\n") == 1, err


def test_cli_missing_video_and_single_frame(tmp_path, tiny_style_ckpt, capsys):
    code = main(["eval", "temporal", str(tmp_path / "nope.mp4"), "--model", str(tiny_style_ckpt), "--no-losses"])
    err = capsys.readouterr().err
    assert code == 2 and "input not found" in err and err.count("\n") == 1
    clip = write_clip(tmp_path / "one.mkv", [texture()])
    code = main(["eval", "temporal", str(clip), "--model", str(tiny_style_ckpt), "--no-losses", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "needs at least 2" in err and err.count("\n") == 1


def test_live_with_smoothing_runs_and_validates():
    from rtstyle.live import LiveConfig, run_live
    from tests.test_live import FakeCapture

    engine = FlickerEngine(10)
    cfg = LiveConfig(models=("fake",), window=False, max_frames=6, source="0", temporal_smoothing=0.5)
    result = run_live(cfg, open_capture=lambda src: FakeCapture(interval=0.002), engines=[engine])
    # The frames already in the pipeline when the limit is reached (at most one per queue and stage)
    # are stylized but never shown.
    assert result.frames_shown == 6 and 6 <= engine.count <= 9
    with pytest.raises(InputError, match="temporal-smoothing"):
        LiveConfig(models=("fake",), temporal_smoothing=-0.1)


def test_bench_compares_each_seed_with_its_own_baseline():
    from rtstyle.benchmarks.temporal import across_seeds, summarise

    def run(label, config, seed, warp, style):
        return {"label": label, "config": config, "seed": seed, "warping_error": warp, "style_loss": style,
                "content_loss": 1.0, "smoothing_ms_per_frame": 0.0, "engine_ms_per_frame": 1.0}

    runs = [run("base@1", "base", "1", 0.010, 4.0), run("stab@1", "stab", "1", 0.006, 4.2),
            run("base@2", "base", "2", 0.020, 5.0), run("stab@2", "stab", "2", 0.015, 5.2)]
    rows = summarise(runs)
    assert [round(r["warping_error_change"], 3) for r in rows] == [0.0, -0.4, 0.0, -0.25]
    stab = next(r for r in across_seeds(rows) if r["config"] == "stab")
    assert stab["warping_error_change"]["mean"] == pytest.approx(-0.325)
    assert stab["style_loss_change"]["max"] == pytest.approx(0.05)
    assert stab["meets_target"] is False  # seed 2 removes only 25% of the flicker
    runs[3] = run("stab@2", "stab", "2", 0.012, 5.2)
    assert next(r for r in across_seeds(summarise(runs)) if r["config"] == "stab")["meets_target"] is True
