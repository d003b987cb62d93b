"""Bundled models, `rtstyle models`, `models pack`, the demo, and the README evidence tools."""

from __future__ import annotations

import json

import av
import pytest
import torch

from rtstyle.checkpoint import load_checkpoint, read_metadata
from rtstyle.cli import main
from rtstyle.commands.demo import SAMPLE_CLIP
from rtstyle.errors import CheckpointError
from rtstyle.gallery import style_grid
from rtstyle.models import bundled_models, describe_bundled, pack_model, resolve_model
from rtstyle.sr_eval import sr_comparison

from .conftest import SAMPLES

PHOTOS = SAMPLES / "samples" / "photos"


def test_at_least_four_styles_and_one_sr_model_are_bundled_with_provenance():
    rows = describe_bundled()
    tasks = [r["meta"]["task"] for r in rows]
    assert tasks.count("style") >= 4 and tasks.count("sr") >= 2, tasks  # sr_x4 and sr_x8
    for row in rows:
        meta = row["meta"]
        # A schedule cut short by a time box says so in its recipe (sr_x4, sr_x8: "stopped by the time box at N").
        assert meta["train"]["iterations"] > 0 and (meta["train"]["finished"] or "stopped" in meta.get("recipe", ""))
        assert meta["train"]["device"] and meta["train"]["image_size"] > 0 and meta["loss"]
        assert "optimizer" not in meta and row["size_mb"] < 10
        if meta["task"] == "style":
            assert meta["style_image"]["name"].endswith(".jpg") and len(meta["style_image"]["sha256"]) == 64
        schedule = meta["train"].get("lr_schedule", [])
        if len(schedule) > 1:  # resumed at a lower rate: the description gives every step of the schedule
            assert "; lr " + ", ".join(f"{lr:g}" + (f" from {step}" if step else "") for step, lr in schedule) in row["provenance"]
        if meta["task"] == "sr":
            assert " at relu" in row["provenance"]  # which VGG layers the feature loss used
        load_checkpoint(row["path"])  # strict load works


def test_models_command_lists_names_and_provenance(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in bundled_models():
        assert name in out
    assert "style image" in out and "trained on" in out
    assert main(["models", "--json"]) == 0
    assert {r["name"] for r in json.loads(capsys.readouterr().out)} == set(bundled_models())


def test_unknown_model_name_lists_the_bundled_ones():
    with pytest.raises(CheckpointError, match="not a file and not a bundled model"):
        resolve_model("no_such_style")


def test_pack_makes_fp16_release_without_optimiser(tmp_path, tiny_style_ckpt):
    out = pack_model(tiny_style_ckpt, tmp_path / "release.safetensors", name="release")
    meta = read_metadata(out)
    assert meta["name"] == "release" and meta["weights_dtype"] == "float16" and "optimizer" not in meta
    x = torch.rand(1, 3, 24, 32)
    a = load_checkpoint(tiny_style_ckpt).model(x)
    b = load_checkpoint(out).model(x)
    assert (a - b).abs().max() < 1e-2


def test_demo_stylizes_the_sample_clip_with_a_bundled_style(tmp_path, capsys):
    assert main(["demo", "-o", str(tmp_path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    output = tmp_path / "cup_starry_night.mp4"
    assert str(output.resolve()) in out and "fps" in out
    with av.open(str(output)) as c, av.open(str(SAMPLE_CLIP)) as src:
        assert sum(1 for _ in c.decode(video=0)) == src.streams.video[0].frames
        assert len(c.streams.audio) == 1


def test_style_grid_and_sr_comparison(tmp_path, tiny_style_ckpt, tiny_sr_ckpt):
    grid = style_grid([str(tiny_style_ckpt), str(tiny_style_ckpt)], PHOTOS, tmp_path / "grid.png", size=64, limit=2)
    from PIL import Image

    assert Image.open(grid).size == (3 * 64, 2 * 64)
    report = sr_comparison(str(tiny_sr_ckpt), PHOTOS, tmp_path / "sr.png", crop=64, limit=2)
    assert len(report.per_image) == 2
    for method in ("bicubic", "model"):
        assert set(report.mean[method]) == {"psnr", "ssim", "lpips", "colour_shift"}
    assert report.mean["bicubic"]["psnr"] > 15  # blur+bicubic of a real photo is close to it
    assert report.mean["bicubic"]["colour_shift"] < 2  # bicubic keeps the mean colour
    assert Image.open(report.figure).size == (4 * 64, 2 * 64)
    for metric, higher in (("psnr", True), ("ssim", True), ("lpips", False)):
        wins = sum((r["model"][metric] > r["bicubic"][metric]) == higher for r in report.per_image)
        assert report.wins[metric] == wins


def test_eval_sr_cli_reports_wins_and_json(tmp_path, capsys):
    """A residual net at initialisation is bicubic to ~1e-3: eval sr says so, per image and on average."""
    from rtstyle.checkpoint import save_checkpoint
    from rtstyle.nets import SRNetConfig, build_model

    ckpt = tmp_path / "res.safetensors"
    net = build_model(SRNetConfig(scale=4, width=8, num_residual=1, norm="none", residual=True))
    save_checkpoint(ckpt, net, {"task": "sr", "name": "res"})
    argv = ["eval", "sr", "--model", str(ckpt), "--images", str(PHOTOS), "-o", str(tmp_path / "sr.png"),
            "--crop", "64", "--limit", "2", "--json", str(tmp_path / "sr.json"), "--per-image"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "beats bicubic on PSNR-Y" in out and "mean bicubic" in out and "mean res" in out
    data = json.loads((tmp_path / "sr.json").read_text())
    assert data["images"] == 2 and set(data["wins"]) == {"psnr", "ssim", "lpips", "colour_shift"}
    b, m = data["mean"]["bicubic"], data["mean"]["model"]
    assert abs(b["psnr"] - m["psnr"]) < 0.2 and abs(b["lpips"] - m["lpips"]) < 0.01


def test_pack_records_the_recipe_and_listing_names_the_sr_kind(tmp_path):
    from rtstyle.checkpoint import save_checkpoint
    from rtstyle.models import _what
    from rtstyle.nets import SRNetConfig, build_model

    ckpt = save_checkpoint(tmp_path / "res.safetensors", build_model(SRNetConfig(width=8, num_residual=1, residual=True)),
                           {"task": "sr", "name": "res", "degradation": {"blur_sigma": 1.0}})
    out = pack_model(ckpt, tmp_path / "packed.safetensors", recipe="rtstyle train sr --arch residual; 10 min")
    meta = read_metadata(out)
    assert meta["recipe"] == "rtstyle train sr --arch residual; 10 min" and meta["weights_dtype"] == "float16"
    assert "correction on top of bicubic" in _what(meta)[0]


def test_colour_shift_measures_a_cast_not_detail():
    from rtstyle.sr_eval import colour_shift

    img = torch.rand(1, 3, 32, 32) * 0.5 + 0.25
    cast = img.clone()
    cast[:, 0] += 10 / 255
    assert abs(float(colour_shift(cast, img)[0]) - 10.0) < 1e-3
    blurred = torch.nn.functional.avg_pool2d(img, 3, 1, 1, count_include_pad=False)
    assert float(colour_shift(blurred, img)[0]) < 1.0


@pytest.mark.parametrize("meta, expect", [
    ({"task": "texture", "model": {"arch": "texture_synth", "scales": 5, "width": 8}, "style_image": {"name": "a.jpg"}},
     ("texture generator", "a.jpg")),
    ({"task": "style", "model": {"arch": "adain", "width": 32}, "styles": [{"name": "a.jpg"}, {"name": "b.jpg"}],
      "held_out_styles": ["c.jpg"]}, ("AdaIN", "2 training paintings (held out: c.jpg)")),
    ({"task": "style", "model": {"arch": "stylebank", "num_styles": 2}, "styles": [{"name": "a.jpg"}, {"name": "b.jpg"}]},
     ("StyleBank: 2 styles", "a.jpg, b.jpg")),
], ids=["texture", "adain", "stylebank"])
def test_model_listing_describes_every_kind(meta, expect):
    from rtstyle.models import _what

    summary, source = _what(meta)
    assert expect[0] in summary and expect[1] in source


def test_bundled_texture_generator_samples_a_tileable_texture(tmp_path):
    from rtstyle.synth import SynthConfig, synthesize

    result = synthesize(SynthConfig(model="starry_night_texture", out=tmp_path / "t.png", width=64, height=32,
                                    tile=2, device="cpu"))
    assert result.tileable and result.paths[0].stat().st_size > 0


def test_measurements_are_stored_in_a_model_without_touching_its_weights(tmp_path):
    """benchmarks/style_models.py --write-metadata: the figures go into the file's metadata, the
    fp16 weights and the embedded style image stay as they were, and `rtstyle models` prints them."""
    import shutil

    import torch

    from rtstyle.checkpoint import load_checkpoint, read_metadata, read_style_target
    from rtstyle.models import bundled_models, measured_line, write_measurements

    path = shutil.copy(bundled_models()["starry_night"], tmp_path / "m.safetensors")
    before, size, style = load_checkpoint(path), path.stat().st_size, read_style_target(path)
    measured = {"yardstick": {"lbfgs_matches_at": 57, "photos": 8, "size": 256},
                "cpu_fps_640x360": {"b1": 31.5, "b4": 60.2, "backend": "openvino bf16", "cpu": "Xeon"}, "date": "2026-12-04"}
    write_measurements(path, measured)
    after = load_checkpoint(path)
    assert all(torch.equal(a, b) for a, b in zip(before.model.state_dict().values(), after.model.state_dict().values()))
    assert abs(path.stat().st_size - size) < 2000 and (read_style_target(path) == style).all()  # still fp16
    line = measured_line(read_metadata(path))
    assert "matches it at 57 iterations" in line and "31.5 fps at batch 1" in line and "openvino bf16, Xeon" in line
    assert measured_line({"task": "style"}) is None

