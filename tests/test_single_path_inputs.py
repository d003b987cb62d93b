"""Python conveniences (issue 16): one path where a list is taken, numpy arrays into engines."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rtstyle.engine import EngineOptions, open_engine
from rtstyle.errors import InputError
from rtstyle.live import LiveConfig
from rtstyle.sources import ImageSource, list_images
from rtstyle.stylize import StylizeConfig, expand_inputs
from tests.helpers_video import make_clip


def test_stylize_config_takes_one_path(tmp_path):
    clip = make_clip(tmp_path / "clip.mp4", frames=2, audio=False)
    for given in (str(clip), clip):
        config = StylizeConfig(inputs=given)
        assert config.inputs == (clip,)
        assert expand_inputs(config.inputs) == [clip]
    assert expand_inputs(str(clip)) == [clip]
    assert StylizeConfig(inputs=[str(clip)]).inputs == (clip,)


def test_image_lists_take_one_path(tmp_path):
    from PIL import Image

    photo = tmp_path / "photo.png"
    Image.new("RGB", (8, 6)).save(photo)
    assert list_images(photo) == list_images(str(photo)) == [photo]
    assert list_images(tmp_path) == [photo]
    assert ImageSource(str(photo)).paths == [photo]


def test_live_config_takes_one_model():
    assert LiveConfig(models="starry_night").models == ("starry_night",)
    assert LiveConfig(models=Path("m.safetensors")).models == (Path("m.safetensors"),)


@pytest.fixture(scope="module")
def engine():
    return open_engine("starry_night", "torch", EngineOptions(device="cpu"))


def test_engine_takes_a_numpy_image_or_batch(engine):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
    out = engine(image)
    assert isinstance(out, np.ndarray) and out.shape == (40, 48, 3) and out.dtype == np.uint8
    batch = engine(np.stack([image, image]))
    assert batch.shape == (2, 40, 48, 3)
    assert np.abs(batch[0].astype(int) - out.astype(int)).max() <= 1  # the same picture either way


@pytest.mark.parametrize("bad", [np.zeros((40, 48, 3), np.float32), np.zeros((3, 40, 48), np.uint8),
                                 [[0, 0, 0]]], ids=["float", "channels-first", "list"])
def test_engine_says_what_to_pass(engine, bad):
    with pytest.raises(InputError) as exc:
        engine(bad)
    text = str(exc.value)
    assert "\n" not in text and "numpy uint8 RGB image (H, W, 3)" in text and "Stylizer" in text
