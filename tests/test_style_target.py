"""Bundled and newly trained style models carry their style image, so `eval quality` and
`eval temporal` work anywhere; a --style override that is not the training image is a warning with
numbers, not a dead end."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rtstyle.checkpoint import read_metadata, read_style_target, save_checkpoint
from rtstyle.errors import InputError
from rtstyle.frames import load_image, save_image
from rtstyle.models import bundled_models, pack_model
from rtstyle.nets import build_model
from rtstyle.style_lookup import style_target

from .conftest import SHARED_DATA, TINY_STYLE

STYLE_MODELS = ("starry_night", "great_wave", "composition_viii", "auvers_village_street")


@pytest.mark.parametrize("name", STYLE_MODELS)
def test_bundled_style_models_carry_their_training_image(name):
    path = bundled_models()[name]
    meta = read_metadata(path)
    target = read_style_target(path)
    assert target is not None and target.dtype == np.uint8
    assert list(target.shape[:2]) == meta["style_image"]["size"]
    original = SHARED_DATA / "styles" / meta["style_image"]["name"]
    if original.is_file():  # the development data: the embedded image is exactly what training used
        np.testing.assert_array_equal(target, load_image(original, max_side=max(meta["style_image"]["size"])))


def test_lookup_needs_no_style_folder(tmp_path):
    path = bundled_models()["starry_night"]
    found = style_target(read_metadata(path), path, None, dirs=[tmp_path])  # empty folder: no copy anywhere
    assert found.warning is None and "embedded" in found.source
    assert found.image.shape == (204, 256, 3)


def test_override_that_differs_is_a_warning_with_numbers(tmp_path):
    path = bundled_models()["starry_night"]
    other = tmp_path / "other.png"
    save_image(other, np.full((204, 256, 3), 90, np.uint8))
    found = style_target(read_metadata(path), path, other)
    assert found.source == str(other)
    assert "not the image this model was trained on" in found.warning and "mean difference" in found.warning
    with pytest.raises(InputError, match="not found"):
        style_target(read_metadata(path), path, tmp_path / "missing.jpg")


def test_old_checkpoints_without_the_image_fall_back_to_the_folders(tmp_path):
    style = tmp_path / "painting.png"
    save_image(style, np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8))
    from rtstyle.fsutil import sha256_file

    meta = {"task": "style", "style_image": {"name": "painting.png", "sha256": sha256_file(style), "size": [40, 60]}}
    ckpt = save_checkpoint(tmp_path / "old.safetensors", build_model(TINY_STYLE), meta)
    assert read_style_target(ckpt) is None
    found = style_target(read_metadata(ckpt), ckpt, None, dirs=[tmp_path])
    assert found.source == str(style)
    with pytest.raises(InputError, match="not found"):
        style_target(read_metadata(ckpt), ckpt, None, dirs=[tmp_path / "elsewhere"])


def test_pack_embeds_only_the_training_image(tmp_path):
    style = tmp_path / "painting.png"
    save_image(style, np.random.default_rng(1).integers(0, 256, (40, 60, 3), dtype=np.uint8))
    from rtstyle.fsutil import sha256_file

    meta = {"task": "style", "style_image": {"name": "painting.png", "sha256": sha256_file(style), "size": [40, 60]}}
    ckpt = save_checkpoint(tmp_path / "train.safetensors", build_model(TINY_STYLE), meta)
    packed = pack_model(ckpt, tmp_path / "release.safetensors", style_image=style)
    np.testing.assert_array_equal(read_style_target(packed), load_image(style, max_side=60))
    # Packing a packed model keeps the image without being told again.
    again = pack_model(packed, tmp_path / "again.safetensors")
    np.testing.assert_array_equal(read_style_target(again), read_style_target(packed))
    wrong = tmp_path / "wrong.png"
    save_image(wrong, np.zeros((40, 60, 3), np.uint8))
    with pytest.raises(InputError, match="is not the image"):
        pack_model(ckpt, tmp_path / "bad.safetensors", style_image=wrong)


def test_style_target_is_not_a_weight(tmp_path):
    from rtstyle.checkpoint import load_checkpoint

    net = build_model(TINY_STYLE)
    ckpt = save_checkpoint(tmp_path / "m.safetensors", net, {"task": "style"},
                           style_target=np.zeros((8, 8, 3), np.uint8))
    loaded = load_checkpoint(ckpt)  # strict loading: the extra tensor is not taken for a weight
    x = torch.rand(1, 3, 16, 16)
    assert torch.equal(loaded.model(x), net.eval()(x))
    with pytest.raises(ValueError, match="uint8"):
        save_checkpoint(tmp_path / "bad.safetensors", net, {"task": "style"}, style_target=np.zeros((8, 8), np.uint8))
