"""Texture networks (Ulyanov et al. 2016). Content-conditioned: shapes, circular padding,
training-only noise, ONNX parity and a short training run through the CLI. Synthesis (noise in):
shapes, seeds, seamless wrap-around, ONNX parity, training without photos, ``rtstyle synth`` and
the runtime refusing a generator."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rtstyle.checkpoint import load_checkpoint, save_checkpoint
from rtstyle.cli import main
from rtstyle.errors import InputError, OutputError
from rtstyle.nets import TextureNet, TextureNetConfig, TextureSynthConfig, TextureSynthNet, build_model

from .conftest import SAMPLES, _save

PHOTOS = SAMPLES / "samples" / "photos"
STYLE = SAMPLES / "samples" / "styles" / "starry_night.jpg"
TINY = TextureNetConfig(scales=3, width=4)


@pytest.mark.parametrize("shape", [(2, 3, 17, 45), (1, 3, 16, 16), (1, 3, 40, 33)], ids=str)
def test_shapes(shape):
    net = TextureNet(TINY).eval()
    with torch.no_grad():
        out = net(torch.rand(shape))
    assert out.shape == shape and 0 <= out.min() and out.max() <= 1


def test_convs_pad_circularly_and_noise_is_training_only():
    net = TextureNet(TINY)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]
    assert convs and all(c.padding_mode == "circular" for c in convs)
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        net.eval()
        assert torch.equal(net(x), net(x))  # deterministic at inference: no flicker on video
        net.train()
        assert not torch.equal(net(x), net(x))


def test_onnx_export_matches_torch(tmp_path):
    from rtstyle.export.onnx_export import OnnxExportConfig, export_onnx

    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "tex.safetensors", build_model(TINY).eval(), {"task": "style"})
    result = export_onnx(ckpt, tmp_path / "tex.onnx", OnnxExportConfig(check_count=1))
    assert result.parity and all(p.max_abs_error <= result.tolerance for p in result.parity)


def test_cli_training_reduces_the_loss(tmp_path, capsys):
    out = tmp_path / "tex.safetensors"
    code = main(["train", "texture", "--style", str(STYLE), "--data", str(PHOTOS), "--out", str(out),
                 "--iterations", "12", "--batch-size", "1", "--image-size", "32", "--style-size", "64",
                 "--scales", "3", "--width", "4", "--lr", "0.02", "--log-every", "1", "--device", "cpu",
                 "--no-progress"])
    assert code == 0, capsys.readouterr().err
    ckpt = load_checkpoint(out)
    assert ckpt.config == TextureNetConfig(scales=3, width=4)
    totals = [float(r.split(",")[1]) for r in (tmp_path / "tex.losses.csv").read_text().splitlines()[1:]]
    assert len(totals) == 12 and min(totals[-3:]) < totals[0], totals


# ---------------------------------------------------------------- synthesis: noise -> texture

TINY_SYNTH = TextureSynthConfig(scales=3, width=4, noise_channels=4)


@pytest.fixture
def synth_ckpt(tmp_path):
    return _save(tmp_path / "synth.safetensors", TINY_SYNTH, "texture")


@pytest.mark.parametrize("hw", [(32, 48), (17, 45), (16, 16)], ids=str)
def test_synth_shapes_any_size(hw):
    net = TextureSynthNet(TINY_SYNTH).eval()
    with torch.no_grad():
        out = net(net.noise(2, *hw, seed=0))
    assert out.shape == (2, 3, *hw) and 0 <= out.min() and out.max() <= 1


def test_synth_seed_reproduces_a_sample_and_seeds_differ():
    net = TextureSynthNet(TINY_SYNTH).eval()
    with torch.no_grad():
        a, b, c = (net(net.noise(1, 32, 32, seed=s)) for s in (3, 3, 4))
    assert torch.equal(a, b)
    assert (a - c).abs().mean() > 1e-3


def test_synth_commutes_with_circular_shifts_so_textures_tile():
    """Shifting the noise around the torus by a multiple of 2^scales shifts the texture the same:
    the generator has no preferred origin, so the texture's right edge continues into its left."""
    torch.manual_seed(0)
    net = TextureSynthNet(TINY_SYNTH).eval()
    step = TINY_SYNTH.tile_multiple
    z = net.noise(1, 4 * step, 6 * step, seed=1)
    with torch.no_grad():
        y = net(z)
        shifted = net(torch.roll(z, (step, 3 * step), (2, 3)))
    torch.testing.assert_close(shifted, torch.roll(y, (step, 3 * step), (2, 3)), atol=1e-5, rtol=0)
    # Reflect padding breaks the wrap-around: the same check fails.
    reflect = TextureSynthNet(TextureSynthConfig(scales=3, width=4, noise_channels=4, padding="reflect")).eval()
    with torch.no_grad():
        diff = reflect(torch.roll(z, (step, 3 * step), (2, 3))) - torch.roll(reflect(z), (step, 3 * step), (2, 3))
    assert diff.abs().max() > 1e-3


@pytest.mark.parametrize("bad", [dict(noise_channels=0), dict(scales=7), dict(padding="zeros")], ids=str)
def test_synth_config_rejects_bad_values(bad):
    with pytest.raises(ValueError, match="TextureSynthConfig"):
        TextureSynthConfig(**bad)


@pytest.mark.parametrize("io, fp16", [("float", False), ("uint8", True)])
def test_synth_onnx_export_takes_noise_and_matches_torch(synth_ckpt, tmp_path, io, fp16):
    import onnxruntime as ort

    from rtstyle.export.onnx_export import NOISE_INPUT, OnnxExportConfig, export_onnx

    out = tmp_path / "synth.onnx"
    result = export_onnx(synth_ckpt, out, OnnxExportConfig(io=io, fp16=fp16, check_count=2))
    assert result.parity and all(p.max_abs_error <= result.tolerance for p in result.parity)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (graph_input,) = session.get_inputs()
    assert graph_input.name == NOISE_INPUT and graph_input.shape[1] == TINY_SYNTH.noise_channels
    z = torch.randn(1, 4, 40, 24)
    (got,) = session.run(None, {NOISE_INPUT: z.numpy()})  # fp32 noise: the float graph is fp32, uint8 io takes fp32
    assert got.shape == ((1, 40, 24, 3) if io == "uint8" else (1, 3, 40, 24))


def test_runtime_refuses_a_texture_generator(synth_ckpt, tmp_path):
    from rtstyle.engine import EngineOptions, open_engine
    from rtstyle.export.onnx_export import OnnxExportConfig, export_onnx

    with pytest.raises(InputError, match="texture generator.*rtstyle synth"):
        open_engine(synth_ckpt, "torch", EngineOptions(device="cpu"))
    onnx_path = export_onnx(synth_ckpt, tmp_path / "synth.onnx", OnnxExportConfig(check=False)).path
    with pytest.raises(InputError, match="texture generator"):
        open_engine(onnx_path, "onnxruntime", EngineOptions(device="cpu"))


def test_cli_synthesis_training_needs_no_photos_and_reduces_the_loss(tmp_path, capsys):
    out = tmp_path / "synth.safetensors"
    code = main(["train", "texture", "--synthesis", "--style", str(STYLE), "--out", str(out),
                 "--iterations", "12", "--batch-size", "1", "--image-size", "32", "--style-size", "64",
                 "--scales", "3", "--width", "4", "--lr", "0.02", "--log-every", "1", "--device", "cpu",
                 "--no-progress"])
    assert code == 0, capsys.readouterr().err
    ckpt = load_checkpoint(out, task="texture")
    assert ckpt.config == TextureSynthConfig(scales=3, width=4)
    assert ckpt.meta["loss"]["content_weight"] == 0 and ckpt.meta["train"]["data"] is None
    rows = (tmp_path / "synth.losses.csv").read_text().splitlines()[1:]
    totals = [float(r.split(",")[1]) for r in rows]
    assert len(totals) == 12 and min(totals[-3:]) < totals[0], totals


@pytest.mark.parametrize("argv, message", [
    ([], "needs --data"),
    (["--synthesis", "--image-size", "36"], "multiple of 2\\^scales = 8"),
], ids=["no-data", "size"])
def test_cli_texture_training_errors_are_one_line(tmp_path, capsys, argv, message):
    code = main(["train", "texture", "--style", str(STYLE), "--out", str(tmp_path / "t.safetensors"),
                 "--scales", "3", "--device", "cpu", "--no-progress", *argv])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert __import__("re").search(message, err), err


def test_cli_synth_writes_seeded_tiled_textures(synth_ckpt, tmp_path, capsys):
    from PIL import Image

    out = tmp_path / "tex.png"
    assert main(["synth", str(synth_ckpt), "-o", str(out), "--size", "48x32", "--count", "2", "--seed", "5",
                 "--tile", "2", "--device", "cpu"]) == 0
    paths = [tmp_path / "tex-000.png", tmp_path / "tex-001.png"]
    images = [np.asarray(Image.open(p)) for p in paths]
    assert all(im.shape == (64, 96, 3) for im in images)
    assert np.array_equal(images[0][:32, :48], images[0][32:, 48:])  # a 2x2 mosaic of one texture
    assert not np.array_equal(images[0], images[1])
    # Texture 1 is seed 6: regenerating it alone gives the same image.
    again = tmp_path / "again.png"
    assert main(["synth", str(synth_ckpt), "-o", str(again), "--size", "48x32", "--seed", "6", "--tile", "2",
                 "--device", "cpu"]) == 0
    assert np.array_equal(np.asarray(Image.open(again)), images[1])
    # Existing outputs are never replaced without -y, and nothing is half-written.
    assert main(["synth", str(synth_ckpt), "-o", str(out), "--count", "2", "--device", "cpu"]) == 2
    assert "exists" in capsys.readouterr().err


def test_synth_errors(synth_ckpt, tiny_style_ckpt, tmp_path):
    from rtstyle.checkpoint import CheckpointError
    from rtstyle.synth import SynthConfig, synthesize

    with pytest.raises(InputError, match="multiple of 8"):
        synthesize(SynthConfig(model=synth_ckpt, out=tmp_path / "a.png", width=36, height=32, tile=2, device="cpu"))
    with pytest.raises(CheckpointError, match="'style' checkpoint, but this command needs a 'texture'"):
        synthesize(SynthConfig(model=tiny_style_ckpt, out=tmp_path / "b.png", device="cpu"))
    with pytest.raises(OutputError, match="should end in"):
        SynthConfig(model=synth_ckpt, out=tmp_path / "c.mp4")
    with pytest.raises(InputError, match="width must be 16..8192"):
        SynthConfig(model=synth_ckpt, out=tmp_path / "d.png", width=8)
    assert not list(tmp_path.glob("*.png"))


def test_synthesis_training_refuses_the_video_stabilisation_term(tmp_path):
    from rtstyle.trainers import TextureTrainConfig, train_texture

    with pytest.raises(InputError, match="--stability-weight"):
        train_texture(TextureTrainConfig(style=STYLE, out=tmp_path / "t.safetensors", synthesis=True, stability_weight=10))
