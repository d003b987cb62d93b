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


# ---- issue 31: the photo split, the architecture study and the training-speed benchmark ----------

def _photo_folder(tmp_path):
    from rtstyle.benchmarks import photo_split

    folder = tmp_path / "photos"
    folder.mkdir()
    src = SAMPLES / "samples" / "photos" / "caer_puppy.jpg"
    names = [*photo_split.YARDSTICK, "caer_tent.jpg", "gcompris-animals_bison.jpg", "interior_pexels-1.jpg",
             "interior_pexels-2.jpg"]
    for name in names:
        (folder / name).write_bytes(src.read_bytes())
    return folder


def test_photo_split_holds_out_whole_sources_and_links_only_training_photos(tmp_path):
    from rtstyle.benchmarks import photo_split

    parts = photo_split.split(_photo_folder(tmp_path))
    assert parts["train"] == ["gcompris-animals_bison.jpg", "interior_pexels-1.jpg", "interior_pexels-2.jpg"]
    assert {photo_split.source_of(n) for n in parts["held_out"]} == {"caer", "opencv", "skimage"}
    assert set(parts["yardstick"]) <= set(parts["held_out"]) and "caer_tent.jpg" in parts["held_out"]
    linked = photo_split.link_train(tmp_path / "photos", tmp_path / "train")
    assert sorted(p.name for p in linked.iterdir()) == parts["train"]
    (tmp_path / "photos" / "opencv_baboon.jpg").unlink()
    with pytest.raises(SystemExit, match="opencv_baboon.jpg"):
        photo_split.split(tmp_path / "photos")


def test_photo_split_of_the_shared_photos_is_the_committed_one(shared_data):
    import json

    from rtstyle.benchmarks import photo_split

    from .conftest import REPO

    committed = json.loads((REPO / "benchmarks" / "results" / "photo-split-2026-12-04.json").read_text())
    parts = photo_split.split(shared_data / "photos")
    assert {k: committed[k] for k in parts} == parts
    assert (len(parts["train"]), len(parts["held_out"])) == (154, 32)


def test_arch_study_measures_a_checkpoint_and_finds_the_pareto_front(tmp_path):
    import torch

    from rtstyle.benchmarks import arch_study
    from rtstyle.checkpoint import save_checkpoint
    from rtstyle.nets import StyleNetConfig, build_model, config_to_dict

    cfg = StyleNetConfig.preset("lowres")
    torch.manual_seed(0)
    path = save_checkpoint(tmp_path / "lowres.safetensors", build_model(cfg).eval(),
                           {"task": "style", "name": "x", "train": {"iterations": 7, "cpu_seconds": 12.0}})
    row = arch_study.measure(path, {}, tmp_path, with_quality=False)
    assert row["arch"] == "lowres" and row["config"] == config_to_dict(cfg) and row["iterations"] == 7
    assert row["params"] == sum(p.numel() for p in build_model(cfg).parameters())
    assert 80 < row["kflop_per_pixel"] < 95 and set(row["border"]) == {"top", "bottom", "left", "right", "max"}

    def net(arch, fps, total):
        return {"arch": arch, "fps": {"b1": fps}, "objective_held_out": {"total": total}}
    rows = [net("slow-good", 5, 10.0), net("fast-bad", 50, 20.0), net("dominated", 4, 11.0), net("mid", 20, 15.0)]
    assert arch_study.pareto(rows) == ["slow-good", "fast-bad", "mid"]


def test_train_speed_times_the_real_trainer_per_configuration(tmp_path, monkeypatch):
    from rtstyle.benchmarks import train_speed

    monkeypatch.setattr(train_speed, "IMAGE_SIZE", 48)
    data, style = SAMPLES / "samples" / "photos", SAMPLES / "samples" / "styles" / "starry_night.jpg"
    cell = train_speed.measure("fast", train_speed.BEFORE, data, style, tmp_path, steps=2, warmup=1)
    assert cell["steps_timed"] == 2 and cell["amp"] == "off" and not cell["channels_last"]
    assert cell["seconds_per_step"] > 0 and cell["images_per_s"] == pytest.approx(4 / cell["seconds_per_step"], rel=0.01)
    from rtstyle.checkpoint import read_metadata

    meta = read_metadata(next(tmp_path.glob("fast-0.safetensors")))["train"]
    assert (meta["amp"], meta["channels_last"], meta["compiled"]) == ("off", False, False)
