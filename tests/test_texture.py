"""Texture networks (Ulyanov et al. 2016), content-conditioned: shapes, circular padding,
training-only noise, ONNX parity and a short training run through the CLI."""

from __future__ import annotations

import pytest
import torch

from rtstyle.checkpoint import load_checkpoint, save_checkpoint
from rtstyle.cli import main
from rtstyle.nets import TextureNet, TextureNetConfig, build_model

from .conftest import SAMPLES

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
    from export.onnx_export import OnnxExportConfig, export_onnx

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
