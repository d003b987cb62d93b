"""AdaIN (Huang & Belongie 2017): the AdaIN layer's statistics, alpha, shapes, the decoder-only
checkpoint, the engine with a style image (and live switching), ONNX parity with the style as
graph inputs, the loss, training, and the CLI's one-line errors."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from rtstyle.checkpoint import load_checkpoint, save_checkpoint
from rtstyle.cli import main
from rtstyle.conditioning import AdaINStyled, StyleChoice
from rtstyle.engine import EngineOptions, StyleSwitchable, open_engine, style_switcher
from rtstyle.errors import InputError, WeightsNotFoundError
from rtstyle.frames import load_image, numpy_to_float
from rtstyle.losses import mean_std_loss
from rtstyle.nets import AdaINConfig, AdaINNet, adain, build_model, channel_mean_std
from rtstyle.vgg import VGG16, load_vgg16
from tests.helpers_export import frames
from tests.helpers_video import make_clip, read_frames

from .conftest import SAMPLES

PHOTOS = SAMPLES / "samples" / "photos"
STYLES = SAMPLES / "samples" / "styles"
STYLE = STYLES / "starry_night.jpg"
TINY = AdaINConfig(width=4)


@pytest.fixture(scope="module")
def random_net() -> AdaINNet:
    """A tiny random decoder on the real encoder (random VGG weights shrink relu4_1 to ~eps)."""
    torch.manual_seed(0)
    return AdaINNet(TINY, encoder=load_vgg16(last_layer="relu4_1")).eval()


@pytest.fixture
def adain_ckpt(tmp_path) -> Path:
    torch.manual_seed(0)
    return save_checkpoint(tmp_path / "adain.safetensors", build_model(TINY).eval(), {"task": "style", "name": "adain"})


def _decoder_input(net: AdaINNet, content, mean, std, alpha) -> torch.Tensor:
    seen = []
    handle = net.decoder.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    try:
        with torch.no_grad():
            net(content, mean, std, alpha)
    finally:
        handle.remove()
    return seen[0]


def test_adain_layer_gives_the_style_statistics():
    torch.manual_seed(1)
    content = 3 * torch.rand(2, 16, 9, 7) + torch.rand(1, 16, 1, 1)
    mean, std = 2 * torch.rand(2, 16), 0.2 + torch.rand(2, 16)
    got_mean, got_std = channel_mean_std(adain(content, mean, std), eps=0.0)
    assert torch.allclose(got_mean, mean, atol=1e-5)
    # exact up to eps: normalising divides by sqrt(var + eps), not sqrt(var)
    var = content.flatten(2).var(dim=2, unbiased=False)
    assert torch.allclose(got_std, std * (var / (var + 1e-5)).sqrt(), rtol=1e-4)
    assert torch.allclose(got_std, std, rtol=1e-3)


def test_net_feature_statistics_at_alpha_one_and_content_at_alpha_zero(random_net):
    torch.manual_seed(2)
    content, style = torch.rand(2, 3, 48, 40), torch.rand(1, 3, 56, 64)
    mean, std = random_net.style_stats(style)
    target = _decoder_input(random_net, content, mean, std, 1.0)
    got_mean, got_std = channel_mean_std(target, eps=0.0)
    var = channel_mean_std(random_net.encode(content), eps=0.0)[1] ** 2
    assert (var > 1e-3).float().mean() > 0.5  # most channels carry content statistics to replace
    assert torch.allclose(got_mean, mean.expand_as(got_mean), atol=1e-4)
    # exact up to AdaIN's eps (normalising divides by sqrt(var + eps)); a dead channel stays flat
    expected_std = std * (var / (var + 1e-5)).sqrt()
    assert torch.allclose(got_std, expected_std, rtol=1e-3, atol=1e-5)
    features = _decoder_input(random_net, content, mean, std, 0.0)
    assert torch.allclose(features, random_net.encode(content), atol=1e-6)


@pytest.mark.parametrize("shape", [(2, 3, 17, 45), (1, 3, 33, 16), (1, 3, 64, 64)], ids=str)
def test_odd_sizes_keep_their_shape(random_net, shape):
    mean, std = random_net.style_stats(torch.rand(1, 3, 32, 32))
    with torch.no_grad():
        out = random_net(torch.rand(shape), mean, std, 0.7)
    assert out.shape == shape and 0 <= out.min() and out.max() <= 1


def test_checkpoint_holds_the_decoder_only_and_reloads_strictly(adain_ckpt):
    from safetensors import safe_open

    with safe_open(str(adain_ckpt), framework="pt") as f:
        keys = list(f.keys())
    assert keys and all(k.startswith("decoder.") for k in keys)
    a, b = load_checkpoint(adain_ckpt).model, load_checkpoint(adain_ckpt).model
    assert isinstance(a, AdaINNet) and "encoder.features.0.weight" not in a.state_dict()
    x, s = torch.rand(1, 3, 24, 40), torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(a(x, *a.style_stats(s)), b(x, *b.style_stats(s)))
    # strict: a decoder key missing is still an error
    with pytest.raises(RuntimeError, match="Missing key"):
        a.load_state_dict({k: v for k, v in a.state_dict().items() if k != "decoder.0.1.bias"})


def test_loading_warns_nothing_and_builds_no_random_encoder(adain_ckpt):
    # The shape check builds the net on the meta device: the VGG encoder used to load its weights
    # there too, 16 torch warnings "copying ... to a meta parameter ... is a no-op" per run (issue 29).
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = load_checkpoint(adain_ckpt).model
    assert not any(p.is_meta for p in model.parameters()) and model.encoder.source == load_vgg16().source
    with pytest.raises(WeightsNotFoundError):
        VGG16(None, "relu4_1")  # without weights only on the meta device: never random features


def test_engine_applies_a_style_image_and_switches_live(adain_ckpt):
    opts = EngineOptions(device="cpu", style=StyleChoice(style_image=STYLE, alpha=1.0, style_size=64))
    engine = open_engine(adain_ckpt, "torch", opts)
    assert isinstance(engine, StyleSwitchable) and style_switcher(engine) is engine
    batch = frames(2, 21, 35, seed=3)
    first = engine(batch)
    assert first.shape == batch.shape and first.dtype == torch.uint8
    engine.set_style(load_image(PHOTOS / "opencv_fruits.jpg", max_side=64))
    assert not torch.equal(engine(batch), first)
    engine.set_style(load_image(STYLE, max_side=64), alpha=1.0)
    assert torch.equal(engine(batch), first)


@pytest.mark.parametrize("case", ["missing_image", "not_image", "no_style_image", "alpha", "not_adain"])
def test_engine_style_choice_errors_are_one_line(adain_ckpt, tiny_style_ckpt, tmp_path, case):
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    choice, model, message = {
        "missing_image": (StyleChoice(style_image=tmp_path / "nope.jpg"), adain_ckpt, "image not found"),
        "not_image": (StyleChoice(style_image=text), adain_ckpt, "not a readable image"),
        "no_style_image": (StyleChoice(), adain_ckpt, "pass --style-image"),
        "alpha": (None, adain_ckpt, r"--alpha must be in \[0, 1\]"),
        "not_adain": (StyleChoice(style_image=STYLE), tiny_style_ckpt, "work only with AdaIN models"),
    }[case]
    with pytest.raises(InputError, match=message) as info:
        choice = choice if choice is not None else StyleChoice(style_image=STYLE, alpha=1.5)
        open_engine(model, "torch", EngineOptions(device="cpu", style=choice))
    assert "\n" not in str(info.value)


def test_onnx_export_with_style_inputs_matches_torch(adain_ckpt, tmp_path):
    import onnxruntime as ort

    from rtstyle.export.onnx_export import OnnxExportConfig, export_onnx, read_metadata

    out = tmp_path / "adain.onnx"
    result = export_onnx(adain_ckpt, out, OnnxExportConfig(check_count=2))
    assert result.parity and all(p.max_abs_error <= result.tolerance for p in result.parity)
    assert read_metadata(out)["rtstyle.style_inputs"] == "style_mean,style_std,alpha"
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["images", "style_mean", "style_std", "alpha"]
    net = load_checkpoint(adain_ckpt).model
    style = numpy_to_float(load_image(STYLE, max_side=64))
    mean, std = net.style_stats(style)
    x = torch.rand(3, 3, 19, 53)
    for alpha in (1.0, 0.3):
        with torch.no_grad():
            expected = net(x, mean, std, alpha)
        got = session.run(None, {"images": x.numpy(), "style_mean": mean.numpy(), "style_std": std.numpy(),
                                 "alpha": np.array([alpha], np.float32)})[0]
        assert np.abs(got - expected.numpy()).max() <= 1e-3


def test_onnx_export_with_a_baked_style_runs_on_onnxruntime(adain_ckpt, tmp_path):
    from rtstyle.export.onnx_export import OnnxExportConfig, export_onnx

    out = tmp_path / "starry.onnx"
    choice = StyleChoice(style_image=STYLE, alpha=0.5, style_size=64)
    export_onnx(adain_ckpt, out, OnnxExportConfig(io="uint8", check_count=1, style=choice))
    batch = frames(1, 24, 40, seed=5)
    torch_engine = open_engine(adain_ckpt, "torch", EngineOptions(device="cpu", precision="fp32", style=choice))
    ort_engine = open_engine(out, "onnxruntime", EngineOptions(device="cpu"))
    diff = (torch_engine(batch).int() - ort_engine(batch).int()).abs().max().item()
    assert diff <= 1


def test_mean_std_loss_is_zero_for_matching_statistics_and_positive_otherwise():
    torch.manual_seed(4)
    a = torch.rand(2, 8, 6, 6)
    assert mean_std_loss(a, a).item() < 1e-10
    shifted = a[:, :, torch.randperm(6)] * 1.0  # same statistics, other layout
    assert mean_std_loss(shifted, a).item() < 1e-10
    assert mean_std_loss(2 * a + 1, a).item() > 0.1


def test_training_steps_reduce_the_loss_on_a_fixed_batch():
    from rtstyle.losses import PerceptualLoss
    from rtstyle.trainers.adain import AdaINTrainConfig, StyleCrops, adain_objective

    torch.manual_seed(0)
    vgg = load_vgg16(last_layer="relu4_1")
    net = AdaINNet(AdaINConfig(width=8), encoder=vgg)
    loss = PerceptualLoss(vgg, AdaINTrainConfig(data=PHOTOS, out=Path("x.safetensors"), styles=STYLES).loss_config())
    content = StyleCrops(sorted(PHOTOS.iterdir())[:1], 64, 32, seed=1).sample(1, torch.device("cpu"))
    style = StyleCrops([STYLE], 64, 32, seed=0).sample(1, torch.device("cpu"))
    optimizer = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=1e-3)
    totals = []
    for _ in range(6):
        terms = adain_objective(net, content, style, loss)
        optimizer.zero_grad()
        terms.total.backward()
        optimizer.step()
        totals.append(terms.total.item())
    assert set(terms.terms) == {"content", "style"}
    assert all(not p.requires_grad for p in net.encoder.parameters())
    assert totals[-1] < 0.9 * totals[0], totals


def test_cli_trains_then_stylizes_a_clip_with_a_style_image(tmp_path, capsys):
    styles = tmp_path / "styles"
    styles.mkdir()
    for name in ("starry_night.jpg", "held.jpg"):
        (styles / name).write_bytes(STYLE.read_bytes())
    out = tmp_path / "adain.safetensors"
    code = main(["train", "adain", "--styles", str(styles), "--hold-out", "held.jpg", "--data", str(PHOTOS),
                 "--out", str(out), "--iterations", "2", "--batch-size", "1", "--image-size", "32",
                 "--style-size", "64", "--width", "4", "--device", "cpu", "--no-progress"])
    assert code == 0, capsys.readouterr().err
    meta = load_checkpoint(out).meta
    assert meta["model"] == {"arch": "adain", "width": 4} and meta["held_out_styles"] == ["held.jpg"]
    assert [s["name"] for s in meta["styles"]] == ["starry_night.jpg"]
    src, dst = make_clip(tmp_path / "in.mp4", frames=3, size=(40, 24), audio=False), tmp_path / "out.mp4"
    code = main(["stylize", str(src), "-o", str(dst), "--model", str(out), "--style-image", str(STYLE),
                 "--alpha", "0.8", "--style-size", "64", "--no-progress"])
    assert code == 0, capsys.readouterr().err
    images, _ = read_frames(dst)
    assert len(images) == 3 and images[0].shape == (24, 40, 3)


@pytest.mark.parametrize("argv,message", [
    (["--hold-out", "nope.jpg"], "not a style image"),
    (["--vgg-weights", "x.pth"], "RTSTYLE_VGG_WEIGHTS"),
], ids=["hold_out", "vgg_weights"])
def test_cli_train_adain_bad_values_are_one_line_errors(tmp_path, capsys, argv, message):
    code = main(["train", "adain", "--styles", str(STYLES), "--data", str(PHOTOS), "--out",
                 str(tmp_path / "a.safetensors"), "--device", "cpu", *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0], err


def test_cli_stylize_adain_without_style_image_is_a_one_line_error(adain_ckpt, tmp_path, capsys):
    src = make_clip(tmp_path / "in.mp4", frames=2, size=(32, 32), audio=False)
    code = main(["stylize", str(src), "-o", str(tmp_path / "o.mp4"), "--model", str(adain_ckpt), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--style-image" in err[0], err


def test_styled_module_buffers_follow_set_stats(random_net):
    styled = AdaINStyled(random_net, alpha=0.25)
    mean, std = torch.rand(1, 512), torch.rand(1, 512) + 0.5
    styled.set_stats(mean, std)
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(styled(x), random_net(x, mean, std, 0.25))


def test_grid_gives_an_adain_model_one_column_per_style_image(adain_ckpt, tiny_style_ckpt, tmp_path, capsys):
    from PIL import Image

    style = STYLES / "starry_night.jpg"
    out = tmp_path / "grid.png"
    assert main(["eval", "grid", "--model", str(adain_ckpt), "--model", str(tiny_style_ckpt), "--style-image", str(style),
                 "--style-image", str(style), "--images", str(PHOTOS), "-o", str(out), "--size", "32", "--limit", "2"]) == 0
    # Columns: input, adain x 2 styles, the one-style model; rows: the style row, then 2 photos.
    assert Image.open(out).size == (4 * 32, 3 * 32)
    assert main(["eval", "grid", "--model", str(adain_ckpt), "--images", str(PHOTOS), "-o", str(tmp_path / "x.png")]) == 2
    assert "--style-image" in capsys.readouterr().err


def test_generalisation_report_marks_trained_and_held_out_styles(tmp_path):
    from rtstyle.benchmarks.adain_eval import evaluate, markdown

    torch.manual_seed(0)
    meta = {"task": "style", "name": "adain", "styles": [{"name": "starry_night.jpg", "sha256": "0"}]}
    ckpt = save_checkpoint(tmp_path / "adain.safetensors", build_model(TINY).eval(), meta)
    styles = tmp_path / "styles"
    styles.mkdir()
    (styles / "starry_night.jpg").write_bytes((STYLES / "starry_night.jpg").read_bytes())
    (styles / "unseen.jpg").write_bytes((PHOTOS / sorted(p.name for p in PHOTOS.iterdir())[0]).read_bytes())
    result = evaluate(ckpt, styles, PHOTOS, size=48, style_size=64)
    rows = {r["style"]: r for r in result["styles"]}
    assert rows["starry_night.jpg"]["seen"] == "trained" and rows["unseen.jpg"]["seen"] == "held out"
    assert all(r["photo_style_loss"] > 0 and r["content_loss"] >= 0 for r in rows.values())
    assert "| starry_night.jpg | trained |" in markdown(result)
