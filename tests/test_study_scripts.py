"""The study scripts behind committed results (issues 18, 22) on tiny inputs: they run, they measure
what they say, and they refuse bad arguments by name."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from rtstyle.benchmarks import cpu_speed, encoder_presets, flicker_study
from rtstyle.checkpoint import load_checkpoint, read_metadata
from rtstyle.video import EncoderConfig, VideoWriter

from .conftest import SAMPLES


def test_psnr_y_of_equal_and_shifted_frames():
    a = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    assert encoder_presets.psnr_y(a, a) == 99.0
    b = np.clip(a.astype(int) + 5, 0, 255).astype(np.uint8)
    assert 20 < encoder_presets.psnr_y(a, b) < 40


def test_encode_times_and_fidelity_of_a_preset(tmp_path):
    rng = np.random.default_rng(1)
    frames = [np.repeat(np.repeat(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8), 8, 0), 8, 1) for _ in range(5)]
    seconds = encoder_presets.encode(frames, tmp_path / "a.mp4", "ultrafast", crf=10)
    assert seconds > 0
    assert encoder_presets.fidelity(frames, tmp_path / "a.mp4") > 30  # blocky frames at crf 10 survive
    with VideoWriter(tmp_path / "short.mp4", 64, 48, Fraction(1, 30), Fraction(30),
                     EncoderConfig(preset="ultrafast", audio="none")) as w:
        w.write(frames[0], pts=0)
    with pytest.raises(RuntimeError, match="1 frames decoded, 5 written"):
        encoder_presets.fidelity(frames, tmp_path / "short.mp4")


def test_fresh_checkpoint_is_the_johnson_size_net(tmp_path):
    path = cpu_speed.fresh_checkpoint("style", tmp_path / "j.safetensors")
    model = load_checkpoint(path).model
    assert sum(p.numel() for p in model.parameters()) == 1_679_235  # 32 wide, 5 residual blocks
    assert read_metadata(path)["name"] == "fresh-style"


def test_flicker_study_trains_each_unit_once_and_records_the_protocol(tmp_path, monkeypatch):
    monkeypatch.setattr(flicker_study, "ITERATIONS", 2)
    monkeypatch.setattr(flicker_study, "STYLE_SIZE", 64)
    data, style = SAMPLES / "samples" / "photos", SAMPLES / "samples" / "styles" / "starry_night.jpg"
    path, seconds = flicker_study.train_one("motion150", style, 3, data, tmp_path)
    assert path.name == "motion150@starry_night-3.safetensors" and seconds is not None
    meta = read_metadata(path)
    assert meta["stability"]["weight"] == 150.0 and meta["stability"]["occlusion"] == 0.5
    assert meta["train"]["iterations"] == 2 and meta["train"]["seed"] == 3 and meta["train"]["batch_size"] == 2
    assert flicker_study.train_one("motion150", style, 3, data, tmp_path) == (path, None)  # kept, not retrained
    # The held-out styles and clips are never among the tuning ones.
    assert not set(flicker_study.REPORT_STYLES) & set(flicker_study.TUNING_STYLES)
    assert not set(flicker_study.REPORT_CLIPS) & set(flicker_study.TUNING_CLIPS)


def test_flicker_study_refuses_unknown_configs(tmp_path, capsys):
    args = ["report", "--data", str(tmp_path), "--styles", str(tmp_path), "--videos", str(tmp_path), "--work",
            str(tmp_path), "--out", str(tmp_path / "r")]
    with pytest.raises(SystemExit):
        flicker_study.main([*args, "--config", "bogus"])
    assert "unknown --config bogus" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        flicker_study.main(args)
    assert "report needs --config" in capsys.readouterr().err
