"""`rtstyle optimize`: optimisation lowers the trainers' objective, reports exactly that
objective, writes outputs atomically, and rejects bad inputs with one-line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from rtstyle.cli import main
from rtstyle.errors import InputError, Interrupted, OutputError
from rtstyle.frames import load_image, numpy_to_float
from rtstyle.losses import LossConfig, PerceptualLoss
from rtstyle.optimize import (
    OptimizeConfig,
    OptimizerSettings,
    build_loss,
    initial_image,
    intermediate_path,
    optimize_image,
    optimize_pixels,
)
from rtstyle.vgg import load_vgg16

from .conftest import SAMPLES

CONTENT = SAMPLES / "samples" / "photos" / "skimage_chelsea.jpg"
STYLE = SAMPLES / "samples" / "styles" / "starry_night.jpg"
SIZE, STYLE_SIZE = 48, 64


@pytest.fixture(scope="module")
def content() -> torch.Tensor:
    return numpy_to_float(load_image(CONTENT, max_side=SIZE))


# The optimisation tests use the shallow layers only (a fraction of VGG16's cost); the test
# that compares values with the loss module uses the training defaults.
SHALLOW = dict(content_layers=("relu2_2",), style_layers=("relu1_2", "relu2_2"))


@pytest.fixture(scope="module")
def loss_fn() -> PerceptualLoss:
    return build_loss(LossConfig(**SHALLOW), numpy_to_float(load_image(STYLE, max_side=STYLE_SIZE)),
                      torch.device("cpu"))


def _config(tmp_path: Path, **kw) -> OptimizeConfig:
    base = dict(content=CONTENT, style=STYLE, output=tmp_path / "out.png", iterations=3, size=SIZE,
                style_size=STYLE_SIZE, device="cpu", progress=False)
    base.update(kw)
    return OptimizeConfig(**base)


def test_adam_lowers_the_objective_monotonically_at_first(loss_fn, content):
    trace = optimize_pixels(loss_fn, content, 6, OptimizerSettings(optimizer="adam", init="content"))
    totals = trace.totals
    assert len(totals) == 7 and len(trace.seconds) == 7
    assert all(b < a for a, b in zip(totals, totals[1:])), totals
    assert trace.history[0]["content"] == pytest.approx(0.0, abs=1e-9)  # starts at the content image
    assert trace.seconds == sorted(trace.seconds)


def test_lbfgs_from_noise_reduces_the_objective_and_keeps_pixels_in_range(loss_fn, content):
    trace = optimize_pixels(loss_fn, content, 6, OptimizerSettings(optimizer="lbfgs", init="noise"))
    assert trace.totals[-1] < 0.5 * trace.totals[0]
    assert trace.final.min() >= 0.0 and trace.final.max() <= 1.0


def test_initial_images():
    c = torch.full((1, 3, 8, 8), 0.5)
    noise = initial_image(c, OptimizerSettings(init="noise", seed=4))
    assert torch.equal(noise, initial_image(c, OptimizerSettings(init="noise", seed=4)))  # seeded
    assert not torch.equal(noise, initial_image(c, OptimizerSettings(init="noise", seed=5)))
    assert 0.0 <= noise.min() and noise.max() <= 1.0 and noise.std() > 0.2
    mix = initial_image(c, OptimizerSettings(init="mix", noise_ratio=0.25, seed=4))
    assert torch.allclose(mix, 0.75 * c + 0.25 * noise)
    assert torch.equal(initial_image(c, OptimizerSettings(init="content")), c)


def test_reported_objective_is_the_training_loss_module(tmp_path):
    weights = (1.0, 2.0, 0.5, 0.0)
    config = _config(tmp_path, iterations=2, loss=LossConfig(style_layer_weights=weights, tv_weight=1e-3),
                     save_every=1)
    result = optimize_image(config)

    # An independent PerceptualLoss, as the trainers build it, on the same tensors.
    reference = PerceptualLoss(load_vgg16(), LossConfig(style_layer_weights=weights, tv_weight=1e-3))
    reference.set_style(numpy_to_float(load_image(STYLE, max_side=STYLE_SIZE)))
    content = numpy_to_float(load_image(CONTENT, max_side=SIZE))
    with torch.no_grad():
        final = reference(result.final, content).as_floats()
        start = reference(content, content).as_floats()
    for key in ("total", "content", "style", "tv"):
        assert result.history[-1][key] == pytest.approx(final[key], rel=1e-4)
        assert result.history[0][key] == pytest.approx(start[key], rel=1e-4, abs=1e-9)
    assert len(result.history) == 3 and result.history[-1]["total"] < result.history[0]["total"]

    saved = load_image(config.output)  # PNG is lossless: the file is the returned image
    assert saved.shape == result.image.shape == (content.shape[2], content.shape[3], 3)
    assert np.array_equal(saved, result.image)
    assert result.intermediates == [intermediate_path(config.output, 1)]  # the last one is the output
    assert all(p.is_file() for p in result.intermediates)
    assert not list(tmp_path.glob(".*partial*"))


def test_interrupt_writes_the_image_so_far(tmp_path, monkeypatch):
    calls = {"n": 0}
    forward = PerceptualLoss.forward

    def flaky(self, output, content):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return forward(self, output, content)

    monkeypatch.setattr(PerceptualLoss, "forward", flaky)
    config = _config(tmp_path, iterations=5, loss=LossConfig(**SHALLOW))
    with pytest.raises(Interrupted, match="image so far is in"):
        optimize_image(config)
    assert load_image(config.output).shape[:2] == (32, SIZE)  # chelsea is 300x451 -> 32x48


def test_cli_optimize(tmp_path, capsys):
    out = tmp_path / "cli.png"
    rc = main(["optimize", str(CONTENT), "--style", str(STYLE), "-o", str(out), "--iterations", "2",
               "--optimizer", "adam", "--init", "mix", "--content-layers", "relu2_2",
               "--style-layers", "relu1_2,relu2_2", "--style-layer-weights", "1,0.5", "--size", str(SIZE),
               "--style-size", str(STYLE_SIZE), "--device", "cpu", "--no-progress"])
    assert rc == 0 and out.is_file()
    assert "2 iterations" in capsys.readouterr().out


@pytest.mark.parametrize("change, error, words", [
    (dict(content="NOTES"), InputError, "not a readable image"),
    (dict(style="missing.jpg"), InputError, "image not found"),
    (dict(settings=OptimizerSettings(optimizer="sgd")), InputError, "--optimizer must be one of"),
    (dict(settings=OptimizerSettings(init="mix", noise_ratio=2.0)), InputError, "--noise-ratio"),
    (dict(iterations=0), InputError, "--iterations"),
    (dict(save_every=2, output=None), InputError, "--save-every needs an output"),
    (dict(output="out.gif"), OutputError, "must end in"),
])
def test_bad_inputs(tmp_path, change, error, words):
    if change.get("content") == "NOTES":
        bad = tmp_path / "notes.jpg"
        bad.write_text("not an image")
        change = dict(content=bad)
    if change.get("style") == "missing.jpg":
        change = dict(style=tmp_path / "missing.jpg")
    if change.get("output") == "out.gif":
        change = dict(output=tmp_path / "out.gif")
    with pytest.raises(error, match=words) as info:
        optimize_image(_config(tmp_path, **change))
    assert "\n" not in str(info.value)


def test_cli_errors_are_one_line(tmp_path, capsys):
    out = tmp_path / "exists.png"
    out.write_bytes(b"")
    rc = main(["optimize", str(CONTENT), "--style", str(STYLE), "-o", str(out), "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 2 and "exists; pass -y" in err and err.count("\n") == 1
    rc = main(["optimize", str(CONTENT), "--style", str(STYLE), "-o", str(tmp_path / "o.png"),
               "--style-layer-weights", "1,1"])
    err = capsys.readouterr().err
    assert rc == 2 and "style_layer_weights" in err and err.count("\n") == 1
