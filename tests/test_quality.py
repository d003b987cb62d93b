"""`rtstyle eval quality`: network vs optimisation on the network's own training objective."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from rtstyle.checkpoint import load_checkpoint, save_checkpoint
from rtstyle.cli import main
from rtstyle.errors import InputError
from rtstyle.frames import load_image, numpy_to_float
from rtstyle.fsutil import sha256_file
from rtstyle.losses import LossConfig, PerceptualLoss
from rtstyle.nets import build_model
from rtstyle.quality import match_point
from rtstyle.style_lookup import find_style_image
from rtstyle.vgg import load_vgg16

from .conftest import SAMPLES, TINY_STYLE

PHOTOS = SAMPLES / "samples" / "photos"
STYLE = SAMPLES / "samples" / "styles" / "starry_night.jpg"
# Shallow layers keep VGG16 cheap; the point is that the eval reads them from the checkpoint.
LOSS = LossConfig(content_layers=("relu2_2",), style_layers=("relu1_2", "relu2_2"), style_weight=3.0, tv_weight=1e-3)
STYLE_SIZE = 64


def _style_meta() -> dict:
    return {"name": STYLE.name, "sha256": sha256_file(STYLE), "size": [51, STYLE_SIZE]}


@pytest.fixture
def trained_like_ckpt(tmp_path) -> Path:
    """A tiny random style net whose metadata looks like the style trainer's."""
    torch.manual_seed(0)
    meta = {"task": "style", "name": "tiny", "loss": LOSS.to_dict(), "style_image": _style_meta(),
            "train": {"iterations": 0}}
    return save_checkpoint(tmp_path / "tiny.safetensors", build_model(TINY_STYLE).eval(), meta)


def test_eval_quality_report_json_and_plot(tmp_path, trained_like_ckpt, capsys):
    images = [PHOTOS / "caer_puppy.jpg", PHOTOS / "skimage_coffee.jpg"]
    out = tmp_path / "q" / "quality.json"
    rc = main(["eval", "quality", "--model", str(trained_like_ckpt), "--images", *map(str, images),
               "--style-dir", str(STYLE.parent), "--iterations", "3,1", "--size", "32", "--optimizer", "adam", "--timing-runs", "1",
               "--device", "cpu", "--json", str(out), "--no-progress"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "| **average** |" in printed and "opt@1 | opt@3" in printed
    report = json.loads(out.read_text())
    assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert report["milestones"] == [1, 3] and LossConfig.from_dict(report["loss"]) == LOSS
    assert Path(report["style_image"]) == STYLE and report["optimizer"]["name"] == "adam"
    assert {"model", "device", "size", "images", "average"} <= set(report)

    # The network's objective is the training loss module's on the same tensors.
    ckpt = load_checkpoint(trained_like_ckpt, task="style")
    reference = PerceptualLoss(load_vgg16(last_layer="relu2_2"), LOSS)
    reference.set_style(numpy_to_float(load_image(STYLE, max_side=STYLE_SIZE)))
    for path, r in zip(images, report["images"]):
        content = numpy_to_float(load_image(path, max_side=32))
        with torch.no_grad():
            expected = reference(ckpt.model(content), content).as_floats()
        for key in ("total", "content", "style", "tv"):
            assert r["network"][key] == pytest.approx(expected[key], rel=1e-4)
        assert r["network"]["seconds"] > 0 and r["size"] == list(content.shape[-2:])
        history = r["history"]["total"]
        assert len(history) == 4 and len(r["history"]["seconds"]) == 4
        for m in ("1", "3"):
            assert set(r["optimization"][m]) == {"total", "content", "style", "tv", "seconds"}
            assert r["optimization"][m]["total"] == history[int(m)]
        assert r["match"] == {**match_point(history, r["history"]["seconds"], r["network"]["total"]),
                              "speed_ratio": r["match"]["speed_ratio"]}
    avg = report["average"]
    assert avg["network"]["total"] == pytest.approx(sum(r["network"]["total"] for r in report["images"]) / 2)
    assert avg["optimization"]["3"]["total"] == pytest.approx(
        sum(r["optimization"]["3"]["total"] for r in report["images"]) / 2)


def test_match_point():
    totals, seconds = [10.0, 6.0, 4.0, 3.0], [0.0, 1.0, 2.0, 3.0]
    assert match_point(totals, seconds, 4.5) == {"iteration": 2, "seconds": 2.0}
    assert match_point(totals, seconds, 4.0) == {"iteration": 2, "seconds": 2.0}
    assert match_point(totals, seconds, 1.0) == {"iteration": None, "seconds": None}


def test_style_image_lookup_checks_the_hash(tmp_path):
    meta = {"style_image": _style_meta()}
    impostor_dir = tmp_path / "styles"
    impostor_dir.mkdir()
    impostor = impostor_dir / STYLE.name
    impostor.write_bytes(STYLE.read_bytes() + b"\0")  # same name, different bytes
    # The first folder has a same-named but different file: skipped for the one that matches.
    assert find_style_image(meta, None, [impostor_dir, STYLE.parent]) == STYLE
    with pytest.raises(InputError, match="different sha256"):
        find_style_image(meta, None, [impostor_dir])
    with pytest.raises(InputError, match="not found in .*pass --style"):
        find_style_image(meta, None, [tmp_path])
    with pytest.raises(InputError, match="not the image this model was trained on"):
        find_style_image(meta, impostor, [])
    with pytest.raises(InputError, match="--style image not found"):
        find_style_image(meta, tmp_path / "nope.jpg", [])
    assert find_style_image(meta, STYLE, []) == STYLE
    with pytest.raises(InputError, match="records no style image"):
        find_style_image({}, None, [STYLE.parent])


def _cli_error(capsys, *argv: str) -> str:
    rc = main(["eval", "quality", *argv, "--device", "cpu", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1, err
    return err


def test_bad_inputs_are_one_line_errors(tmp_path, capsys, tiny_sr_ckpt, tiny_style_ckpt, trained_like_ckpt):
    photos = str(PHOTOS)
    assert "'sr' checkpoint" in _cli_error(capsys, "--model", str(tiny_sr_ckpt), "--images", photos)
    assert "records no training loss" in _cli_error(capsys, "--model", str(tiny_style_ckpt), "--images", photos)
    assert "model file not found" in _cli_error(capsys, "--model", str(tmp_path / "x.safetensors"), "--images", photos)
    not_ckpt = tmp_path / "junk.safetensors"
    not_ckpt.write_text("junk")
    assert "not a safetensors checkpoint" in _cli_error(capsys, "--model", str(not_ckpt), "--images", photos)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no images" in _cli_error(capsys, "--model", str(trained_like_ckpt), "--images", str(empty))
    assert "neither an image" in _cli_error(capsys, "--model", str(trained_like_ckpt), "--images", str(empty / "a.jpg"))
    assert "not found in" in _cli_error(capsys, "--model", str(trained_like_ckpt), "--images", photos,
                                        "--style-dir", str(empty))
    assert "--iterations" in _cli_error(capsys, "--model", str(trained_like_ckpt), "--images", photos,
                                        "--iterations", "0,10")
    bad_image = empty / "bad.png"
    bad_image.write_text("not an image")
    shutil.copy(STYLE, empty / STYLE.name)
    assert "not a readable image" in _cli_error(capsys, "--model", str(trained_like_ckpt), "--images", str(bad_image),
                                                "--style-dir", str(empty), "--size", "32")


def test_a_second_network_on_the_same_objective_reuses_the_optimisation(tmp_path, trained_like_ckpt):
    """The optimisation depends on the objective only: another network trained on the same style and
    loss reuses the cached trace (its history exactly), and a shorter run reads a longer trace."""
    from rtstyle.optimize import OptimizerSettings
    from rtstyle.quality import QualityConfig, evaluate_quality

    other = load_checkpoint(trained_like_ckpt)
    torch.manual_seed(5)
    second = save_checkpoint(tmp_path / "other.safetensors", build_model(TINY_STYLE).eval(), other.meta)

    def run(model, milestones, optimizer="adam"):
        return evaluate_quality(QualityConfig(model=model, images=[PHOTOS / "caer_puppy.jpg"], style_dirs=[STYLE.parent],
                                              milestones=milestones, size=32, timing_runs=1, device="cpu",
                                              settings=OptimizerSettings(optimizer=optimizer, init="noise"),
                                              progress=False))["images"][0]

    first = run(trained_like_ckpt, (2, 4))
    again = run(second, (2, 4))
    shorter = run(second, (3,))
    assert not first["trace_cached"] and again["trace_cached"] and shorter["trace_cached"]
    assert again["history"]["total"] == first["history"]["total"]
    assert shorter["history"]["total"] == first["history"]["total"][:4]
    assert again["network"]["total"] != first["network"]["total"]  # a different network, scored afresh
    assert not run(second, (2,), optimizer="lbfgs")["trace_cached"]  # another objective's settings: optimised


def test_stop_at_match_ends_each_optimisation_at_the_networks_objective(tmp_path, trained_like_ckpt):
    from rtstyle.optimize import OptimizerSettings
    from rtstyle.quality import QualityConfig, evaluate_quality

    def run(stop):
        return evaluate_quality(QualityConfig(model=trained_like_ckpt, images=[PHOTOS / "caer_puppy.jpg", PHOTOS / "skimage_coffee.jpg"],
                                              style_dirs=[STYLE.parent], milestones=(5, 150), size=32, timing_runs=1,
                                              device="cpu", settings=OptimizerSettings(optimizer="adam", init="noise"),
                                              stop_at_match=stop, progress=False))

    full = run(False)
    short = run(True)  # the full traces are cached: read, cut at each image's match
    for f, s in zip(full["images"], short["images"]):
        k = f["match"]["iteration"]
        assert k is not None and k < 150, "the random net must be matched for this test to mean anything"
        assert s["match"]["iteration"] == k and s["history"]["total"] == f["history"]["total"][:k + 1]
        assert s["optimization"]["150"] is None and s["optimization"]["5"] == (f["optimization"]["5"] if k >= 5 else None)
    ranked = sorted(r["match"]["iteration"] for r in full["images"])
    assert short["average"]["match"]["median_per_image"] == (ranked[0] + ranked[1]) / 2
