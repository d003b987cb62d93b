"""The frame convention: conversions, image loading (EXIF, shrinking, bad files), atomic saving."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from rtstyle.errors import InputError
from rtstyle.frames import float_to_numpy, load_image, numpy_to_float, save_image, to_float, to_uint8


def all_values_frame() -> torch.Tensor:
    """(2, 16, 8, 3) uint8 holding every value 0..255 in every channel."""
    values = torch.arange(256, dtype=torch.uint8)
    return torch.stack([values, values.flip(0), values.roll(7)], dim=-1).reshape(2, 16, 8, 3)


# ---- conversions ------------------------------------------------------------------------


def test_uint8_float_round_trip_is_exact():
    frames = all_values_frame()
    images = to_float(frames)
    assert images.shape == (2, 3, 16, 8) and images.dtype == torch.float32
    assert images.min() == 0.0 and images.max() == 1.0
    assert torch.equal(to_uint8(images), frames)
    assert torch.equal(to_uint8(to_float(frames, dtype=torch.float16)), frames)


def test_to_float_layout_and_no_mutation():
    frame = torch.zeros(4, 5, 3, dtype=torch.uint8)
    frame[1, 2] = torch.tensor([255, 51, 0], dtype=torch.uint8)
    before = frame.clone()
    image = to_float(frame)  # a single HWC frame becomes a batch of one
    assert image.shape == (1, 3, 4, 5)
    assert image[0, :, 1, 2].tolist() == pytest.approx([1.0, 0.2, 0.0])
    assert torch.equal(frame, before)


def test_to_uint8_rounds_and_clamps():
    images = torch.tensor([-0.5, 0.0, 0.4 / 255, 0.6 / 255, 1.0, 2.0]).view(1, 1, 1, 6).expand(1, 3, 1, 6)
    assert to_uint8(images)[0, 0, :, 0].tolist() == [0, 0, 0, 1, 255, 255]


def test_to_uint8_accepts_tensors_that_need_grad():
    images = torch.rand(1, 3, 2, 2, requires_grad=True)
    assert to_uint8(images).dtype == torch.uint8


def test_numpy_helpers_round_trip():
    frames = all_values_frame().numpy()
    out = float_to_numpy(numpy_to_float(frames))
    assert isinstance(out, np.ndarray) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, frames)
    # Non-contiguous input (a crop) works too.
    np.testing.assert_array_equal(float_to_numpy(numpy_to_float(frames[:, 1:5, 2:7])), frames[:, 1:5, 2:7])


@pytest.mark.parametrize(
    "bad, error",
    [
        (torch.zeros(1, 4, 4, 3), TypeError),  # float, not uint8
        (torch.zeros(1, 4, 4, 3, dtype=torch.int32), TypeError),
        (torch.zeros(1, 4, 4, 4, dtype=torch.uint8), ValueError),  # RGBA
        (torch.zeros(1, 3, 4, 4, dtype=torch.uint8), ValueError),  # NCHW by mistake
        (torch.zeros(4, 3, dtype=torch.uint8), ValueError),
    ],
)
def test_to_float_rejects_wrong_dtype_or_shape(bad, error):
    with pytest.raises(error, match="to_float"):
        to_float(bad)


@pytest.mark.parametrize("shape", [(3, 4, 4), (1, 4, 4, 3), (1, 1, 4, 4)])
def test_to_uint8_rejects_wrong_shape(shape):
    with pytest.raises(ValueError, match="to_uint8"):
        to_uint8(torch.zeros(shape))


# ---- load_image -------------------------------------------------------------------------


def test_load_image_missing_file(tmp_path):
    with pytest.raises(InputError, match="image not found.*missing.png"):
        load_image(tmp_path / "missing.png")


def test_load_image_text_file_named_jpg(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("not a picture")
    with pytest.raises(InputError, match="not a readable image.*notes.jpg"):
        load_image(path)


def test_load_image_directory_is_not_an_image(tmp_path):
    with pytest.raises(InputError):
        load_image(tmp_path)


@pytest.mark.parametrize("mode", ["L", "RGBA", "P"])
def test_load_image_converts_to_rgb(tmp_path, mode):
    path = tmp_path / f"{mode}.png"
    Image.new(mode, (6, 4), 128 if mode != "RGBA" else (10, 20, 30, 40)).save(path)
    image = load_image(path)
    assert image.shape == (4, 6, 3) and image.dtype == np.uint8


# ---- high bit depth (issue 27): PIL's convert("RGB") clips these, a 16-bit grey PNG came out white

RAMP16 = np.linspace(0, 65535, 48 * 64).reshape(48, 64).round().astype(np.uint16)  # black to white
RAMP8 = np.rint(RAMP16 / 257.0).astype(np.uint8)


def _png(path, array: np.ndarray, color_type: int) -> None:
    """A 16-bit PNG written byte by byte (PIL writes none with alpha or colour): ``array`` is
    uint16 (H, W, channels); colour type 0 grey, 2 RGB, 4 grey + alpha, 6 RGBA."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    h, w = array.shape[:2]
    rows = b"".join(b"\x00" + array[y].astype(">u2").tobytes() for y in range(h))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def _grey(tmp_path, mode: str):
    """(file, the mode PIL opens it in) holding RAMP16 as ``mode`` describes."""
    path = tmp_path / f"{mode.replace(';', '_')}"
    if mode == "I;16":
        Image.fromarray(RAMP16).save(path := path.with_suffix(".png"))
    elif mode == "I;16B":
        Image.frombytes("I;16B", (64, 48), RAMP16.astype(">u2").tobytes()).save(path := path.with_suffix(".tif"))
    elif mode == "I":
        Image.fromarray(RAMP16.astype(np.int32)).save(path := path.with_suffix(".tif"))
    elif mode == "F":
        Image.fromarray((RAMP16 / 65535.0).astype(np.float32)).save(path := path.with_suffix(".tif"))
    elif mode == "F 0..255":
        Image.fromarray((RAMP16 / 257.0).astype(np.float32)).save(path := path.with_suffix(".tif"))
    elif mode == "LA 16-bit":
        _png(path := path.with_suffix(".png"), np.dstack([RAMP16, np.full_like(RAMP16, 65535)]), 4)
    elif mode == "RGB 16-bit":
        _png(path := path.with_suffix(".png"), np.dstack([RAMP16] * 3), 2)
    elif mode == "RGBA 16-bit":
        _png(path := path.with_suffix(".png"), np.dstack([RAMP16] * 3 + [np.full_like(RAMP16, 65535)]), 6)
    return path


@pytest.mark.parametrize("mode", ["I;16", "I;16B", "I", "F", "F 0..255", "LA 16-bit", "RGB 16-bit", "RGBA 16-bit"])
def test_high_bit_depth_images_are_scaled_not_clipped(tmp_path, mode):
    from rtstyle.frames import image_to_rgb  # also how the Python API (rtstyle.api) reads PIL images

    path = _grey(tmp_path, mode)
    image = load_image(path)
    assert image.shape == (48, 64, 3) and image.dtype == np.uint8
    assert np.abs(image.astype(int) - RAMP8[..., None]).max() <= 1, (mode, Image.open(path).mode)
    with Image.open(path) as im:
        assert np.array_equal(image_to_rgb(im), image)


def test_load_image_honours_exif_orientation(tmp_path):
    # Stored 32 wide x 16 high with a red top-left block; orientation 6 = "rotate 90 CW to view".
    stored = np.zeros((16, 32, 3), np.uint8)
    stored[...] = (0, 0, 255)
    stored[:8, :8] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "rotated.jpg"
    Image.fromarray(stored).save(path, quality=95, exif=exif)

    image = load_image(path)
    assert image.shape == (32, 16, 3)  # portrait once rotated
    top_right = image[:8, 8:].reshape(-1, 3).mean(axis=0)
    top_left = image[:8, :8].reshape(-1, 3).mean(axis=0)
    assert top_right[0] > 200 and top_right[2] < 60  # the red block moved to the top right
    assert top_left[2] > 200 and top_left[0] < 60


def test_load_image_max_side_shrinks_keeping_aspect(tmp_path):
    path = tmp_path / "wide.png"
    Image.new("RGB", (40, 20), (1, 2, 3)).save(path)
    assert load_image(path, max_side=10).shape == (5, 10, 3)
    assert load_image(path, max_side=100).shape == (20, 40, 3)  # never enlarged
    assert load_image(path, max_side=40).shape == (20, 40, 3)


# ---- save_image -------------------------------------------------------------------------


def test_save_image_round_trips_arrays_and_tensors(tmp_path):
    frame = all_values_frame()[0].numpy()
    assert np.array_equal(load_image(save_image(tmp_path / "a.png", frame)), frame)
    tensor = to_float(torch.from_numpy(frame))
    assert np.array_equal(load_image(save_image(tmp_path / "b.png", tensor)), frame)
    assert np.array_equal(load_image(save_image(tmp_path / "c.png", tensor[0])), frame)
    assert load_image(save_image(tmp_path / "d.jpg", frame)).shape == frame.shape


def test_save_image_rejects_unknown_extension(tmp_path):
    with pytest.raises(InputError, match=r"'\.xyz'.*\.png"):
        save_image(tmp_path / "out.xyz", np.zeros((4, 4, 3), np.uint8))
    assert not list(tmp_path.iterdir())


def test_save_image_is_atomic(tmp_path, monkeypatch):
    path = save_image(tmp_path / "out.png", np.zeros((4, 4, 3), np.uint8))
    before = path.read_bytes()

    def half_written(self, fp, format=None, **params):
        with open(fp, "wb") as f:
            f.write(b"\x89PNG partial")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", half_written)
    with pytest.raises(OSError, match="disk full"):
        save_image(path, np.full((4, 4, 3), 255, np.uint8))
    with pytest.raises(OSError, match="disk full"):
        save_image(tmp_path / "new.png", np.full((4, 4, 3), 255, np.uint8))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]
    assert path.read_bytes() == before
