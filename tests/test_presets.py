"""Training presets (issue 16): ``paper`` is Johnson et al.'s recipe, ``cpu`` (issue 31; ``fast`` before) is what the
bundled models' checkpoints record; ``rtstyle models`` names the preset of each."""

from __future__ import annotations

import json

import pytest

from rtstyle.checkpoint import read_metadata
from rtstyle.cli import main
from rtstyle.errors import InputError
from rtstyle.models import bundled_models
from rtstyle.presets import PRESETS, apply_preset, describe, preset_of, recipe_of, style_arch_name


def _bundled_style_metas():
    metas = {name: read_metadata(path) for name, path in bundled_models().items()}
    return {name: m for name, m in metas.items() if recipe_of(m) is not None}


def test_cpu_preset_is_the_recipe_the_bundled_models_record():
    metas = _bundled_style_metas()
    assert len(metas) >= 3
    cpu = {k: v for k, v in PRESETS["cpu"].items() if k not in ("iterations", "max_cpu_seconds")}
    for name, meta in metas.items():
        recipe = recipe_of(meta)
        assert {k: recipe[k] for k in cpu} == cpu, name
        assert preset_of(meta) == "cpu" and recipe["margin"] == 8
        # Trained to the preset's CPU budget (starry_night: the architecture study's run, continued).
        assert meta["train"]["cpu_seconds"] >= 0.99 * PRESETS["cpu"]["max_cpu_seconds"], name
    assert "lowres net" in describe("cpu") and "1200 CPU-s x batch 4 at 256 px" in describe("cpu")


def test_arch_names_round_trip_through_checkpoint_configs():
    from rtstyle.nets import StyleNetConfig, config_to_dict

    for arch in ("johnson", "fast", "lowres", "separable"):
        assert style_arch_name(config_to_dict(StyleNetConfig.preset(arch))) == arch
    # Checkpoints written before the study's fields existed name only width and depth.
    assert style_arch_name({"arch": "style", "width": 16, "num_residual": 3}) == "fast"
    assert style_arch_name({"arch": "style", "width": 24, "num_residual": 3}).startswith("24 wide, 3 residual blocks")


def test_paper_preset_is_johnson_et_al():
    paper = PRESETS["paper"]
    assert (paper["arch"], paper["iterations"], paper["batch_size"], paper["image_size"]) == ("johnson", 40_000, 4, 256)
    assert "40000 it x batch 4 at 256 px" in describe("paper")


def test_a_preset_fills_only_what_the_user_left_at_its_default():
    defaults = dict(PRESETS["paper"])
    given = {**defaults, "iterations": 50, "style": "s.jpg"}  # --iterations 50 on the command line
    out = apply_preset("fast", given, defaults)
    assert out["iterations"] == 50 and out["batch_size"] == 2 and out["image_size"] == 128
    assert out["style_weight"] == 2.5 and out["arch"] == "fast" and out["style"] == "s.jpg"
    with pytest.raises(InputError, match="paper, cpu, fast"):
        apply_preset("quick", given, defaults)


def test_a_custom_recipe_has_no_preset():
    meta = next(iter(_bundled_style_metas().values()))
    custom = {**meta, "loss": {**meta["loss"], "style_weight": 7.0}}
    assert preset_of(custom) is None


def test_models_command_shows_the_preset(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in _bundled_style_metas():
        assert "recipe: --preset cpu" in out.split(name, 1)[1].split("\n\n")[0]
    assert main(["models", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert all(rows[name]["preset"] == "cpu" for name in _bundled_style_metas())


def test_train_style_preset_fills_what_the_command_line_left_out(monkeypatch, capsys):
    from types import SimpleNamespace

    import rtstyle.trainers as trainers

    seen = []

    def fake_train(config):
        seen.append(config)
        return SimpleNamespace(last_losses={}, checkpoint="o.safetensors", steps=0, seconds=0, csv="log.csv", plot=None,
                               skipped_images=0)

    monkeypatch.setattr(trainers, "train_style", fake_train)
    base = ["train", "style", "--style", "s.jpg", "--data", "d", "--out", "o.safetensors"]
    assert main([*base, "--preset", "fast", "--iterations", "7"]) == 0
    fast = seen[-1]
    assert (fast.arch, fast.batch_size, fast.image_size, fast.style_weight) == ("fast", 2, 128, 2.5)
    assert fast.iterations == 7  # given on the command line: it wins
    assert main([*base, "--preset", "paper"]) == 0
    assert (seen[-1].arch, seen[-1].iterations, seen[-1].batch_size, seen[-1].image_size) == ("johnson", 40_000, 4, 256)
    assert main(base) == 0
    assert seen[-1].iterations == 40_000  # no preset: the config's own defaults (the paper's), as --help shows them


def test_defaults_are_the_paper_recipe():
    """Without --preset a style training follows Johnson et al.: the paper preset changes nothing."""
    from pathlib import Path

    from rtstyle.trainconfig import StyleTrainConfig

    cfg = StyleTrainConfig(style=Path("s.jpg"), data=Path("d"), out=Path("o.safetensors"))
    assert {key: getattr(cfg, key) for key in PRESETS["paper"]} == PRESETS["paper"]
