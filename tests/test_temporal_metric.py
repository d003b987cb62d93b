"""The flicker metric of ``rtstyle eval temporal`` (issue 18): Lai et al.'s occlusion test, the
squared and absolute warping error, scene-cut skipping, the measurement of the encoded output,
and the study script's summaries. Tiny generated clips: each test runs in a second or two."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from rtstyle import eval_temporal
from rtstyle.cli import main
from rtstyle.errors import InputError
from rtstyle.eval_temporal import TemporalEvalConfig, evaluate_temporal, format_table, stylize_encoder
from rtstyle.temporal import CUT_THRESHOLD, WarpingErrorMeter, inside_mask, valid_mask, warping_error, warping_error_abs
from rtstyle.video import VideoReader
from rtstyle.video.writer import AUTO_PRESETS
from tests.helpers_video import FailingEngine, IdentityEngine
from tests.test_temporal import FlickerEngine, panning, texture, write_clip

# ------------------------------------------------------------------------ Lai et al.'s occlusion test


def lai_bilinear(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Resample2d of FlowNet2 (Lai et al.'s warp): out(p) = image(p + flow(p)), bilinear, sample
    positions clamped to the frame. Float64, written out corner by corner."""
    h, w = flow.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    x = np.clip(xs + flow[..., 0], 0, w - 1)
    y = np.clip(ys + flow[..., 1], 0, h - 1)
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    ax, ay = (x - x0)[..., None], (y - y0)[..., None]
    img = image.astype(np.float64)
    return ((1 - ax) * (1 - ay) * img[y0, x0] + ax * (1 - ay) * img[y0, x1]
            + (1 - ax) * ay * img[y1, x0] + ax * ay * img[y1, x1])


def lai_detect_occlusion(fw: np.ndarray, bw: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Straight from the formula of Lai et al.'s detect_occlusion: returns (fb lhs, fb rhs,
    boundary lhs, boundary rhs); a pixel is occluded where either lhs exceeds its rhs."""
    fw_w = lai_bilinear(fw, bw)
    s = fw_w + bw
    fb_lhs = s[..., 0] ** 2 + s[..., 1] ** 2
    fb_rhs = 0.01 * ((fw_w[..., 0] ** 2 + fw_w[..., 1] ** 2) + (bw[..., 0] ** 2 + bw[..., 1] ** 2)) + 0.5
    u, v = bw[..., 0].astype(np.float64), bw[..., 1].astype(np.float64)
    u_x, u_y, v_x, v_y = (np.zeros_like(u) for _ in range(4))
    u_x[:, :-1] = u[:, :-1] - u[:, 1:]
    u_y[:-1, :] = u[:-1, :] - u[1:, :]
    v_x[:, :-1] = v[:, :-1] - v[:, 1:]
    v_y[:-1, :] = v[:-1, :] - v[1:, :]
    mb_lhs = (u_x ** 2 + u_y ** 2) + (v_x ** 2 + v_y ** 2)
    mb_rhs = 0.01 * (u ** 2 + v ** 2) + 0.002
    return fb_lhs, fb_rhs, mb_lhs, mb_rhs


def smooth_field(rng: np.random.Generator, h: int, w: int, amplitude: float, sigma: float) -> np.ndarray:
    import cv2

    f = cv2.GaussianBlur(rng.standard_normal((h, w, 2)).astype(np.float32), (0, 0), sigma)
    return (amplitude * f / f.std()).astype(np.float32)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_valid_mask_matches_lai_detect_occlusion_on_random_flows(seed):
    rng = np.random.default_rng(seed)
    h, w = 40, 56
    bw = smooth_field(rng, h, w, 2.0, 8.0)
    fw = -bw + smooth_field(rng, h, w, 0.6, 2.0)  # roughly consistent: both outcomes of the test occur
    fb_lhs, fb_rhs, mb_lhs, mb_rhs = lai_detect_occlusion(fw, bw)
    occluded, boundary = fb_lhs > fb_rhs, mb_lhs > mb_rhs
    for m in (occluded, boundary):  # the comparison below means something only if both sides occur
        assert 0.05 < m.mean() < 0.95, m.mean()
    expected = ~occluded & ~boundary & inside_mask(bw)
    got = valid_mask(bw, fw)
    # cv2.remap interpolates with 1/32 px weights: a pixel may differ only where the forward-backward
    # test is that close to its threshold; the motion-boundary test (no warp) must agree exactly.
    differ = got != expected
    near = np.abs(fb_lhs - fb_rhs) < 0.05
    assert not (differ & ~near).any(), np.argwhere(differ & ~near)[:5]
    assert differ.mean() < 0.01
    assert not (got & boundary).any()
    # These flows tell the squared test from one on plain lengths (|s| > 0.01 (|F_w| + |B|) + 0.5).
    fw_w = lai_bilinear(fw, bw)
    plain = np.hypot(*np.moveaxis(fw_w + bw, -1, 0)) > 0.01 * (np.hypot(*np.moveaxis(fw_w, -1, 0))
                                                                + np.hypot(*np.moveaxis(bw, -1, 0))) + 0.5
    assert (plain != occluded).sum() > 20


# ------------------------------------------------------------------------ squared and absolute forms

def test_absolute_and_squared_forms_on_a_known_difference():
    prev = np.full((8, 10, 3), 100, np.uint8)
    current = prev.copy()
    current[..., 0] += 10  # one channel 10 levels up, one 4 down
    current[..., 2] -= 4
    still = np.zeros((8, 10, 2), np.float32)
    valid = np.ones((8, 10), bool)
    assert warping_error(prev, current, still, valid) == pytest.approx((10 / 255) ** 2 + (4 / 255) ** 2, rel=1e-5)
    assert warping_error_abs(prev, current, still, valid) == pytest.approx(14 / 255, rel=1e-5)
    assert np.isnan(warping_error_abs(prev, current, still, np.zeros_like(valid)))


def test_both_forms_grow_with_injected_flicker(tmp_path):
    clip = write_clip(tmp_path / "pan.mkv", panning(8))
    reports = [evaluate_temporal(TemporalEvalConfig(video=clip, losses=False, progress=False, batch_size=3),
                                 engine=FlickerEngine(a)) for a in (0, 12)]
    steady, flicker = reports
    assert steady["skipped_pairs"] == 0 and steady["pairs"] == 7
    # +-12 on every channel: 3 * 24/255 more in the absolute form, 3 * (24/255)^2 in the squared one.
    assert flicker["warping_error_abs"] - steady["warping_error_abs"] == pytest.approx(3 * 24 / 255, rel=0.2)
    assert flicker["warping_error"] - steady["warping_error"] == pytest.approx(3 * (24 / 255) ** 2, rel=0.25)
    assert steady["input_warping_error_abs"] == pytest.approx(steady["warping_error_abs"], rel=1e-6)  # identity
    assert all({"warping_error_abs", "input_warping_error_abs", "skipped"} <= set(p) for p in flicker["per_pair"])


# ------------------------------------------------------------------------ scene cuts

def test_black_first_frame_is_skipped_and_counted(tmp_path):
    frames = panning(8)
    frames[0] = np.zeros_like(frames[0])
    clip = write_clip(tmp_path / "black.mkv", frames)
    report = evaluate_temporal(TemporalEvalConfig(video=clip, losses=False, progress=False), engine=IdentityEngine())
    assert report["skipped_pairs"] == 1 and report["skipped_times"] == [pytest.approx(0.1)]
    assert report["pairs"] == 6 and report["frames"] == 8
    assert [p["skipped"] for p in report["per_pair"]] == [True] + [False] * 6
    assert report["per_pair"][0]["input_warping_error"] > CUT_THRESHOLD
    assert report["warping_error"] < 2e-3  # the means hold the six ordinary pairs only
    # Without the rule the black pair alone dominates the mean.
    counted = evaluate_temporal(TemporalEvalConfig(video=clip, losses=False, progress=False, cut_threshold=1e9),
                                engine=IdentityEngine())
    assert counted["skipped_pairs"] == 0 and counted["pairs"] == 7
    assert counted["warping_error"] > 20 * report["warping_error"]


def test_hard_cut_in_the_middle_is_skipped_in_raw_and_encoded(tmp_path):
    other = [np.ascontiguousarray(np.roll(texture(seed=5), -i, axis=1)) for i in range(4)]
    clip = write_clip(tmp_path / "cut.mkv", panning(4) + other)
    report = evaluate_temporal(TemporalEvalConfig(video=clip, losses=False, progress=False, encoded=True),
                               engine=FlickerEngine(4))
    assert report["skipped_times"] == [pytest.approx(0.4)] and report["pairs"] == 6
    assert report["encoded"]["skipped_pairs"] == 1 and report["encoded"]["pairs"] == 6
    assert "| 1 |" in format_table([report])


def test_meter_skips_pairs_with_too_few_valid_pixels():
    meter = WarpingErrorMeter()
    a = texture(32, 32, seed=1)
    meter.update(a, a, 0.0)
    pair = meter.update(texture(32, 32, seed=9), a, 0.1)  # unrelated pictures: nothing to follow
    assert pair.skipped and meter.errors == [] and len(meter.pairs) == 1
    with pytest.raises(InputError, match="--cut-threshold must be > 0"):
        WarpingErrorMeter(cut_threshold=0.0)
    with pytest.raises(InputError, match="--cut-threshold must be > 0.*got nan"):
        TemporalEvalConfig(video=Path("x.mp4"), cut_threshold=float("nan"))


# ------------------------------------------------------------------------ the encoded output

def test_encoded_output_is_measured_with_stylize_encoder_and_folder_removed(tmp_path, monkeypatch):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(scratch))
    clip = write_clip(tmp_path / "pan.mkv", panning(8))
    report = evaluate_temporal(TemporalEvalConfig(video=clip, losses=False, progress=False, encoded=True, batch_size=3),
                               engine=IdentityEngine())
    enc = report["encoded"]
    assert enc["codec"] == "libx264" and enc["preset"] == AUTO_PRESETS["cpu"] and enc["crf"] == 18
    assert enc == {**enc, **{k: getattr(stylize_encoder("cpu"), k) for k in ("codec", "preset", "crf")}}
    assert enc["pairs"] == report["pairs"] == 7 and enc["skipped_pairs"] == 0
    # An identity model: the raw frames are the input (the floor); the encoded ones add the codec's loss.
    assert report["warping_error"] == pytest.approx(report["input_warping_error"])
    assert report["warping_error"] < enc["warping_error"] < 0.02
    assert report["warping_error_abs"] < enc["warping_error_abs"] < 0.2
    assert os.listdir(scratch) == []  # the private folder is gone
    # ... also when the engine fails half way.
    with pytest.raises(RuntimeError):
        evaluate_temporal(TemporalEvalConfig(video=clip, losses=False, progress=False, encoded=True, batch_size=2),
                          engine=FailingEngine(2))
    assert os.listdir(scratch) == []
    # Without --encoded there is no "encoded" entry and the table keeps its columns.
    raw = evaluate_temporal(TemporalEvalConfig(video=clip, losses=False, progress=False), engine=IdentityEngine())
    assert raw["encoded"] is None and "encoded" not in format_table([raw])
    assert "encoded abs" in format_table([raw, report])


def test_encoded_frame_count_mismatch_is_one_clear_error(tmp_path, monkeypatch):
    clip = write_clip(tmp_path / "pan.mkv", panning(6))

    def short_reader(path):  # a decoder that loses the last frame
        return list(VideoReader(path))[:-1]

    monkeypatch.setattr(eval_temporal, "VideoReader", short_reader)
    with pytest.raises(InputError, match=r"decodes to 5 frame\(s\), 6 were stylized and 6 read again"):
        evaluate_temporal(TemporalEvalConfig(video=clip, losses=False, progress=False, encoded=True),
                          engine=IdentityEngine())


def test_cli_encoded_and_cut_threshold(tmp_path, tiny_style_ckpt, capsys):
    frames = panning(6, 40, 48)
    frames[0] = np.zeros_like(frames[0])
    clip = write_clip(tmp_path / "pan.mkv", frames)
    js = tmp_path / "t.json"
    code = main(["eval", "temporal", str(clip), "--model", str(tiny_style_ckpt), "--no-losses", "--encoded",
                 "--json", str(js), "--no-progress", "--device", "cpu", "--max-side", "32"])
    out = capsys.readouterr()
    assert code == 0, out.err
    report = json.loads(js.read_text())
    assert report["encoded"]["codec"] == "libx264" and report["encoded"]["pairs"] == report["pairs"] == 4
    assert report["skipped_pairs"] == 1 and "1 more skipped as scene cuts, at 0.10 s" in out.out
    assert "encoded: libx264 preset faster crf 18" in out.out
    code = main(["eval", "temporal", str(clip), "--model", str(tiny_style_ckpt), "--no-losses", "--no-progress",
                 "--cut-threshold", "-1"])
    err = capsys.readouterr().err
    assert code == 2 and "--cut-threshold must be > 0" in err and err.count("\n") == 1, err


# ------------------------------------------------------------------------ the study script

def _run(label, config, seed, warp, warp_abs, encoded=None, skipped=0):
    return {"label": label, "config": config, "seed": seed, "warping_error": warp, "warping_error_abs": warp_abs,
            "input_warping_error": 0.001, "input_warping_error_abs": 0.01, "skipped_pairs": skipped,
            "encoded": None if encoded is None else {"warping_error": encoded, "warping_error_abs": 2 * encoded,
                                                     "pairs": 9, "skipped_pairs": skipped, "codec": "libx264",
                                                     "preset": "faster", "crf": 18.0},
            "style_loss": 4.0, "content_loss": 1.0, "smoothing_ms_per_frame": 0.0, "engine_ms_per_frame": 1.0,
            "video": "clip.mp4", "frames": 10}


def test_bench_reports_both_forms_encoded_and_skipped_pairs():
    from rtstyle.benchmarks.temporal import across_seeds, markdown, summarise

    runs = [_run("base@great_wave-1", "base", "great_wave-1", 0.010, 0.20, 0.012, skipped=1),
            _run("motion150@great_wave-1", "motion150", "great_wave-1", 0.006, 0.15, 0.009, skipped=1),
            _run("base@great_wave-2", "base", "great_wave-2", 0.020, 0.40, 0.016),
            _run("motion150@great_wave-2", "motion150", "great_wave-2", 0.010, 0.36, 0.012)]
    rows = summarise(runs)
    motion = [r for r in rows if r["config"] == "motion150"]
    assert [r["seed"] for r in motion] == ["great_wave-1", "great_wave-2"]
    assert [round(r["warping_error_abs_change"], 3) for r in motion] == [-0.25, -0.1]
    assert [round(r["encoded_warping_error_change"], 3) for r in motion] == [-0.25, -0.25]
    assert motion[0]["skipped_pairs"] == 1
    seeds = next(r for r in across_seeds(rows) if r["config"] == "motion150")
    assert seeds["warping_error_change"]["mean"] == pytest.approx(-0.45)
    assert seeds["warping_error_abs_change"]["min"] == pytest.approx(-0.25)
    assert seeds["encoded_warping_error_change"]["max"] == pytest.approx(-0.25)
    result = {"date": "d", "machine": "m", "summary": rows, "across_seeds": across_seeds(rows), "runs": runs, "fps": None,
              "settings": {"videos": ["clip.mp4"], "duration": 4, "max_side": 320, "loss_every": 4,
                           "cut_threshold": CUT_THRESHOLD}}
    text = markdown(result)
    assert "| motion150@great_wave-1 | 0.00600 (-40%) | 0.1500 (-25%) | 0.00900 (-25%) |" in text
    assert "| motion150 | great_wave-1, great_wave-2 | -45% (-50% .. -40%) | -18% (-25% .. -10%) |" in text
    assert "libx264, preset faster, crf 18" in text
    # Reports made without --encoded: the encoded columns say n/a, nothing breaks.
    raw = [_run("base@1", "base", "1", 0.01, 0.2), _run("stab@1", "stab", "1", 0.005, 0.1)]
    rows = summarise(raw)
    assert "encoded_warping_error" not in rows[1] and rows[1]["warping_error_abs_change"] == pytest.approx(-0.5)
    assert "n/a" in markdown({**result, "summary": rows, "across_seeds": across_seeds(rows), "runs": raw})


def test_bench_evaluate_all_measures_the_encoded_output_by_default(tmp_path):
    """``flicker_study`` calls ``evaluate_all`` with its own arguments, which do not name --raw-only."""
    import argparse

    from rtstyle.benchmarks.temporal import evaluate_all

    clip = write_clip(tmp_path / "pan.mkv", panning(5, 24, 32))
    args = argparse.Namespace(start=None, duration=None, max_side=24, loss_every=4, smooth=[], out=tmp_path / "r")
    (run,) = evaluate_all({"base@starry_night-1": Path("starry_night")}, [clip], [], args)
    assert run["seed"] == "starry_night-1" and run["config"] == "base"
    assert run["encoded"]["pairs"] == run["pairs"] == 4 and run["warping_error_abs"] > 0
    assert (tmp_path / "r-pan.png").stat().st_size > 1000
