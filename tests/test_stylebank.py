"""StyleBank (Chen et al. 2017): shapes, the identity bank reproducing the auto-encoder, style
selection in the engine and ONNX export, the T+1 training and adding a style to a trained bank."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from rtstyle.checkpoint import load_checkpoint, save_checkpoint
from rtstyle.cli import main
from rtstyle.conditioning import StyleChoice
from rtstyle.engine import EngineOptions, open_engine
from rtstyle.errors import InputError
from rtstyle.nets import StyleBankConfig, StyleBankNet, build_model
from tests.helpers_export import frames

from .conftest import SAMPLES

PHOTOS = SAMPLES / "samples" / "photos"
STYLE = SAMPLES / "samples" / "styles" / "starry_night.jpg"
TINY = StyleBankConfig(num_styles=2, width=4, bank_layers=2)


@pytest.fixture
def bank_ckpt(tmp_path):
    torch.manual_seed(0)
    meta = {"task": "style", "styles": [{"name": "a.jpg"}, {"name": "b.jpg"}]}
    return save_checkpoint(tmp_path / "bank.safetensors", build_model(TINY).eval(), meta)


@pytest.mark.parametrize("shape", [(2, 3, 17, 45), (1, 3, 16, 33)], ids=str)
def test_shapes_for_every_branch(shape):
    net = StyleBankNet(TINY).eval()
    x = torch.rand(shape)
    with torch.no_grad():
        for index in (None, 0, 1):
            out = net(x, index)
            assert out.shape == shape and 0 <= out.min() and out.max() <= 1
    with pytest.raises(ValueError, match="out of range"):
        net(x, 2)


def test_identity_bank_reproduces_the_autoencoder_reconstruction():
    torch.manual_seed(1)
    net = StyleBankNet(StyleBankConfig(num_styles=1, width=4)).eval()
    x = torch.rand(2, 3, 24, 36)
    with torch.no_grad():
        for module in net.banks[0].modules():
            if isinstance(module, nn.Conv2d):
                nn.init.dirac_(module.weight)
                nn.init.zeros_(module.bias)
        assert torch.allclose(net(x, 0), net(x, None), atol=1e-6)
        nn.init.normal_(net.banks[0][0][1].weight)  # any other bank changes the output
        assert not torch.allclose(net(x, 0), net(x, None), atol=1e-3)


def test_engine_selects_a_style_and_explains_a_missing_index(bank_ckpt):
    batch = frames(1, 20, 28, seed=2)
    out = [open_engine(bank_ckpt, "torch", EngineOptions(device="cpu", style=StyleChoice(style_index=i)))(batch) for i in (0, 1)]
    assert out[0].shape == batch.shape and not torch.equal(out[0], out[1])
    with pytest.raises(InputError, match=r"2 styles; no --style-index given, choose 0..1 \(0: a.jpg, 1: b.jpg\)"):
        open_engine(bank_ckpt, "torch", EngineOptions(device="cpu"))
    with pytest.raises(InputError, match="--style-index 5 given"):
        open_engine(bank_ckpt, "torch", EngineOptions(device="cpu", style=StyleChoice(style_index=5)))


def test_style_index_on_a_single_style_model_is_an_error(tiny_style_ckpt):
    with pytest.raises(InputError, match="only with StyleBank models"):
        open_engine(tiny_style_ckpt, "torch", EngineOptions(device="cpu", style=StyleChoice(style_index=0)))


def test_onnx_export_of_one_bank_matches_torch(bank_ckpt, tmp_path):
    from rtstyle.export.onnx_export import OnnxExportConfig, export_onnx

    out = tmp_path / "bank1.onnx"
    result = export_onnx(bank_ckpt, out, OnnxExportConfig(check_count=2, style=StyleChoice(style_index=1)))
    assert all(p.max_abs_error <= result.tolerance for p in result.parity)
    batch = frames(2, 21, 35, seed=3)
    expected = open_engine(bank_ckpt, "torch", EngineOptions(device="cpu", precision="fp32", style=StyleChoice(style_index=1)))(batch)
    got = open_engine(out, "onnxruntime", EngineOptions(device="cpu"))(batch)
    assert (expected.int() - got.int()).abs().max().item() <= 1


def test_t_plus_1_training_then_a_new_style_trains_only_its_bank(tmp_path):
    from rtstyle.trainers import StyleBankTrainConfig, train_stylebank

    common = dict(data=PHOTOS, batch_size=1, image_size=32, style_size=64, width=4, device="cpu",
                  progress=False, log_every=1, checkpoint_every=1000, lr=1e-2)
    first = train_stylebank(StyleBankTrainConfig(styles=(STYLE,), out=tmp_path / "one.safetensors", iterations=6,
                                                 autoencoder_every=2, **common))
    rows = first.csv.read_text().splitlines()[1:]
    pixel_steps = [int(r.split(",")[0]) for r in rows if r.split(",")[5]]
    assert pixel_steps == [3, 6]  # the T+1 alternation with T=2

    base = load_checkpoint(first.checkpoint).model
    grown = train_stylebank(StyleBankTrainConfig(styles=(PHOTOS / "opencv_fruits.jpg",), base=first.checkpoint,
                                                 out=tmp_path / "two.safetensors", iterations=1, **common))
    ckpt = load_checkpoint(grown.checkpoint)
    assert ckpt.config.num_styles == 2 and [s["name"] for s in ckpt.meta["styles"]] == ["starry_night.jpg", "opencv_fruits.jpg"]
    new = ckpt.model.state_dict()
    for key, value in base.state_dict().items():  # encoder, decoder and bank 0 untouched
        assert torch.equal(new[key], value), key


def test_training_steps_reduce_the_loss_on_a_fixed_batch():
    from rtstyle.frames import load_image, numpy_to_float
    from rtstyle.losses import LossConfig, PerceptualLoss
    from rtstyle.trainers.stylebank import StyleBankObjective
    from rtstyle.vgg import load_vgg16

    torch.manual_seed(0)
    net = StyleBankNet(StyleBankConfig(num_styles=1, width=4))
    objective = StyleBankObjective([numpy_to_float(load_image(STYLE, max_side=64))], [0], autoencoder_every=2)
    objective.setup(PerceptualLoss(load_vgg16(), LossConfig()), torch.device("cpu"))
    batch = numpy_to_float(load_image(PHOTOS / "caer_puppy.jpg", max_side=40))
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    style_totals, pixel_totals = [], []
    for _ in range(9):
        terms = objective(net, batch, batch, None)
        (pixel_totals if "pixel" in terms.terms else style_totals).append(terms.total.item())
        optimizer.zero_grad()
        terms.total.backward()
        optimizer.step()
    assert len(pixel_totals) == 3 and style_totals[-1] < 0.8 * style_totals[0], style_totals


def test_cli_stylebank_needs_a_matching_base(tmp_path, tiny_style_ckpt, capsys):
    code = main(["train", "stylebank", "--style", str(STYLE), "--base", str(tiny_style_ckpt), "--data", str(PHOTOS),
                 "--out", str(tmp_path / "b.safetensors"), "--device", "cpu"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "not a StyleBank" in err[0], err
