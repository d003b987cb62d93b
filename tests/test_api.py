"""The one-line Python API (rtstyle.Stylizer): every kind of image in, the same kind out, and the
same pixels as the engine it wraps."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import rtstyle
from rtstyle.errors import InputError
from rtstyle.video import probe

from .helpers_video import make_clip


@pytest.fixture
def stylizer(tiny_style_ckpt):
    return rtstyle.Stylizer(tiny_style_ckpt, device="cpu", precision="fp32", batch_size=2)


@pytest.fixture
def photo():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (40, 52, 3), dtype=np.uint8)


def test_import_rtstyle_is_light():
    # `import rtstyle` must not pull torch: the CLI's --help relies on it.
    code = "import sys, rtstyle; assert 'torch' not in sys.modules, 'torch imported'; rtstyle.Stylizer"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_numpy_in_numpy_out_matches_engine(stylizer, photo):
    out = stylizer.image(photo)
    assert isinstance(out, np.ndarray) and out.dtype == np.uint8 and out.shape == photo.shape
    direct = stylizer.engine(torch.from_numpy(photo)[None])[0].numpy()
    np.testing.assert_array_equal(out, direct)
    assert not np.array_equal(out, photo)


def test_pil_in_pil_out(stylizer, photo):
    out = stylizer.image(Image.fromarray(photo))
    assert isinstance(out, Image.Image) and out.size == (52, 40) and out.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(out), stylizer.image(photo))


def test_pil_rgba_and_greyscale_are_converted(stylizer, photo):
    assert stylizer.image(Image.fromarray(photo).convert("RGBA")).mode == "RGB"
    assert stylizer.image(Image.fromarray(photo[..., 0])).size == (52, 40)


def test_torch_float_chw_in_same_kind_out(stylizer, photo):
    x = torch.from_numpy(photo).permute(2, 0, 1).float() / 255
    out = stylizer.image(x)
    assert out.shape == x.shape and out.dtype == torch.float32
    assert 0.0 <= float(out.min()) and float(out.max()) <= 1.0
    np.testing.assert_allclose(out.permute(1, 2, 0).numpy() * 255, stylizer.image(photo), atol=1e-3)


def test_batches_keep_order_and_size(stylizer, photo):
    batch = np.stack([photo, photo[::-1].copy(), photo[:, ::-1].copy()])
    out = stylizer.image(batch)  # 3 frames with batch_size 2: two engine calls
    assert out.shape == batch.shape
    for i in range(3):
        np.testing.assert_array_equal(out[i], stylizer.image(batch[i]))


def test_frames_streams_and_handles_size_changes(stylizer, photo):
    frames = [photo, photo, photo, photo[:30]]
    outs = list(stylizer.frames(iter(frames)))
    assert [o.shape for o in outs] == [f.shape for f in frames]
    np.testing.assert_array_equal(outs[3], stylizer.image(photo[:30]))


def test_bad_input_is_one_line(stylizer):
    with pytest.raises(InputError, match="expected a PIL image"):
        stylizer.image("photo.jpg")
    with pytest.raises(InputError, match="shape"):
        stylizer.image(np.zeros((4, 5), np.uint8)[None, None])


def test_video_is_stylize(stylizer, tmp_path):
    src = make_clip(tmp_path / "in.mp4", frames=6, size=(48, 32))
    result = stylizer.video(src, tmp_path / "out.mp4")
    assert result.output == tmp_path / "out.mp4"
    assert probe(result.output).num_frames == 6 and result.frames_out == 6


def test_readme_python_example_runs(tmp_path, monkeypatch):
    """The README's Python block, run as written on a photo and a clip in the working folder."""
    import re

    from .conftest import REPO

    readme = (REPO / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    example = next(b for b in blocks if "Stylizer" in b)
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(tmp_path / "photo.jpg")
    make_clip(tmp_path / "clip.mp4", frames=4, size=(48, 32))
    monkeypatch.chdir(tmp_path)
    exec(compile(example, "README.md", "exec"), {})
    assert Image.open(tmp_path / "photo_starry.png").size == (64, 48)
    assert probe(tmp_path / "clip_starry.mp4").num_frames == 4
