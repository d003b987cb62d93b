"""NV12/P010 -> RGB in torch against FFmpeg's own conversion (swscale through PyAV), on the CPU.

The planes reach torch through DLPack exactly as the hardware decoder's do (PyAV exports CPU
frames the same way as CUDA ones), so the strided-plane handling is exercised too."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch

from rtstyle.errors import InputError
from rtstyle.gpu.colour import YuvSpec, output_spec, rgb_to_nv12, spec_for, yuv_to_rgb

av = pytest.importorskip("av")
Interpolation = pytest.importorskip("av.video.reformatter").Interpolation

SWS_NAME = {"bt601": "itu601", "bt709": "itu709", "bt2020": "bt2020"}
# swscale with full-resolution chroma and accurate rounding: the reference arithmetic.
SWS_FLAGS = {
    "bilinear": Interpolation.BILINEAR | Interpolation.FULL_CHR_H_INT | Interpolation.ACCURATE_RND,
    "nearest": Interpolation.POINT | Interpolation.FULL_CHR_H_INT | Interpolation.ACCURATE_RND,
}
FORMATS = {"nv12": (8, 0), "p010le": (10, 6)}


def _frame(fmt: str, width: int, height: int, full: bool, seed: int):
    """A PyAV frame of random legal samples (limited range: 16-235 luma, 16-240 chroma, scaled
    to the bit depth), written through the planes' buffers (line sizes padded as FFmpeg does)."""
    bits, shift = FORMATS[fmt]
    rng = np.random.default_rng(seed)
    s = 1 << (bits - 8)
    dtype = np.uint16 if bits > 8 else np.uint8
    lo_y, hi_y, lo_c, hi_c = (0, 256 * s - 1, 0, 256 * s - 1) if full else (16 * s, 235 * s, 16 * s, 240 * s)
    y = rng.integers(lo_y, hi_y + 1, (height, width)).astype(dtype)
    uv = rng.integers(lo_c, hi_c + 1, (height // 2, width // 2, 2)).astype(dtype)
    frame = av.VideoFrame(width, height, fmt)
    for plane, data in zip(frame.planes, (y, uv.reshape(height // 2, width))):
        view = np.frombuffer(plane, dtype=dtype).reshape(-1, plane.line_size // np.dtype(dtype).itemsize)
        view[: data.shape[0], : data.shape[1]] = data << shift
    return frame


def _ffmpeg_rgb(frame, matrix: str, full: bool, chroma: str) -> np.ndarray:
    return frame.reformat(format="rgb24", src_colorspace=SWS_NAME[matrix], src_color_range="JPEG" if full else "MPEG",
                          dst_color_range="JPEG", interpolation=SWS_FLAGS[chroma]).to_ndarray()


def _planes(frame) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.from_dlpack(frame.planes[0]), torch.from_dlpack(frame.planes[1])


@pytest.mark.parametrize("fmt", sorted(FORMATS))
@pytest.mark.parametrize("matrix", ["bt601", "bt709", "bt2020"])
@pytest.mark.parametrize("full", [False, True], ids=["limited", "full"])
@pytest.mark.parametrize("chroma", ["bilinear", "nearest"])
def test_matches_ffmpeg_within_one_level(fmt, matrix, full, chroma):
    frame = _frame(fmt, 96, 64, full, seed=hash((fmt, matrix, full, chroma)) % 1000)
    y, uv = _planes(frame)
    assert y.shape == (64, 96) and uv.shape == (32, 48, 2)
    assert y.stride(0) * y.element_size() == frame.planes[0].line_size  # a strided view, read in place
    bits, shift = FORMATS[fmt]
    ours = yuv_to_rgb(y, uv, YuvSpec(matrix, full, bits, shift, chroma))
    assert ours.dtype == torch.uint8 and ours.shape == (64, 96, 3)
    diff = np.abs(ours.numpy().astype(int) - _ffmpeg_rgb(frame, matrix, full, chroma).astype(int))
    assert diff.max() <= 1, (fmt, matrix, full, chroma, diff.max())
    assert diff.mean() < 0.35  # off by one level only in rounding ties, not systematically


def test_wrong_matrix_or_range_is_caught():
    """The comparison can fail: the wrong matrix or range is far more than one level off."""
    frame = _frame("nv12", 96, 64, False, seed=1)
    y, uv = _planes(frame)
    reference = _ffmpeg_rgb(frame, "bt709", False, "bilinear").astype(int)
    for spec in (YuvSpec("bt601", False), YuvSpec("bt709", True), YuvSpec("bt709", False, chroma="nearest")):
        assert np.abs(yuv_to_rgb(y, uv, spec).numpy().astype(int) - reference).max() > 8, spec


def test_decoded_stream_uses_its_own_tags(tmp_path):
    """An encoded BT.709 limited-range H.264 clip: tags read by spec_for, planes from the decoder's
    frame repacked to NV12 (lossless) and compared with swscale on the decoded frame, which knows
    the frame's chroma siting ("left", H.264's default; centre siting is 6 levels off here)."""
    path = tmp_path / "tagged.mp4"
    rng = np.random.default_rng(3)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=Fraction(25), options={"crf": "12"})
        stream.width, stream.height, stream.pix_fmt = 128, 72, "yuv420p"
        stream.codec_context.colorspace, stream.codec_context.color_range = 1, 1  # BT.709, MPEG
        base = np.linspace(0, 255, 128 * 72 * 3).reshape(72, 128, 3).astype(np.uint8)
        for i in range(3):
            image = np.clip(base.astype(int) + rng.integers(-20, 20, base.shape), 0, 255).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p", dst_colorspace="itu709",
                                                                               dst_color_range="MPEG")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    with av.open(str(path)) as container:
        decoded = next(container.decode(video=0))
    spec, notes = spec_for(decoded.colorspace, decoded.color_range, "nv12", codec="h264", chroma="bilinear")
    assert spec == YuvSpec("bt709", False, 8, 0, "bilinear", "left") and notes == []
    nv12 = decoded.reformat(format="nv12")
    ours = yuv_to_rgb(*_planes(nv12), spec).numpy().astype(int)
    reference = decoded.reformat(format="rgb24", src_colorspace="itu709", src_color_range="MPEG", dst_color_range="JPEG",
                                 interpolation=SWS_FLAGS["bilinear"]).to_ndarray().astype(int)
    assert np.abs(ours - reference).max() <= 1
    centre = yuv_to_rgb(*_planes(nv12), YuvSpec("bt709", False)).numpy().astype(int)
    assert np.abs(centre - reference).max() > 1  # the siting matters, and is checked


def test_spec_for_tags():
    # chroma "auto" (the default): as FFmpeg's default conversion, chroma repeated for 8-bit
    # (swscale's unscaled path), interpolated for deeper formats; an explicit choice is kept.
    assert spec_for(1, 2, "nv12")[0] == YuvSpec("bt709", True, 8, 0, "nearest")
    assert spec_for(6, 1, "p010le")[0] == YuvSpec("bt601", False, 10, 6, "bilinear")
    assert spec_for(9, 0, "p016le")[0] == YuvSpec("bt2020", False, 16, 0, "bilinear")
    assert spec_for(1, 2, "nv12", chroma="bilinear")[0].chroma == "bilinear"
    assert spec_for(1, 2, "p010le", chroma="nearest")[0].chroma == "nearest"
    assert spec_for(1, 1, "nv12", codec="hevc")[0].siting == "left"
    assert spec_for(1, 1, "nv12", codec="vp9")[0].siting == "center"
    spec, notes = spec_for(2, 0, "nv12")  # untagged: FFmpeg's defaults, said so
    assert spec == YuvSpec("bt601", False, chroma="nearest") and "untagged" in notes[0]
    with pytest.raises(InputError, match="yuv444p.*supported"):
        spec_for(1, 1, "yuv444p")


def test_bad_planes_are_one_line_errors():
    y, uv = torch.zeros(64, 96, dtype=torch.uint8), torch.zeros(32, 48, 2, dtype=torch.uint8)
    with pytest.raises(InputError, match="even sides"):
        yuv_to_rgb(torch.zeros(63, 96, dtype=torch.uint8), uv, YuvSpec())
    with pytest.raises(InputError, match="does not fit"):
        yuv_to_rgb(y, uv[:16], YuvSpec())
    with pytest.raises(InputError, match="uint8 or uint16"):
        yuv_to_rgb(y.float(), uv, YuvSpec())
    with pytest.raises(InputError, match="unknown colour matrix"):
        YuvSpec("bt2100")


@pytest.mark.parametrize("tags", [(0, 0), (1, 1), (1, 2), (5, 1), (9, 1), (0, 2)],
                         ids=["untagged", "bt709", "bt709-full", "bt601", "bt2020", "untagged-full"])
@pytest.mark.parametrize("size", [(64, 36), (320, 180), (8, 8)])
def test_rgb_to_nv12_matches_the_writers_conversion(tags, size):
    """RGB -> NV12 on the device against what VideoWriter asks swscale for with the same colour
    tags, on noise (every pixel differs from its neighbours, so the chroma filter shows): one level."""
    w, h = size
    rgb = np.random.default_rng(sum(size) + tags[0]).integers(0, 256, (h, w, 3), dtype=np.uint8)
    cs, cr = tags
    ref = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
        format="nv12", dst_colorspace=cs or None, dst_color_range=cr or None).to_ndarray()
    got = rgb_to_nv12(torch.from_numpy(rgb), output_spec(cs, cr)).numpy()
    assert got.shape == (h * 3 // 2, w) and np.abs(got.astype(int) - ref.astype(int)).max() <= 1


def test_rgb_to_nv12_batches_and_refuses_what_it_cannot_write():
    frames = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (3, 36, 64, 3), dtype=np.uint8))
    batch = rgb_to_nv12(frames)
    assert batch.shape == (3, 54, 64) and all(torch.equal(batch[i], rgb_to_nv12(frames[i])) for i in range(3))
    with pytest.raises(InputError, match="even sides"):
        rgb_to_nv12(frames[:, :35])
    with pytest.raises(InputError, match="uint8 RGB"):
        rgb_to_nv12(frames.float())
    with pytest.raises(InputError, match="8-bit"):
        rgb_to_nv12(frames, YuvSpec("bt709", False, 10, 6))
    assert output_spec(0, 0) == YuvSpec("bt601", False) and output_spec(1, 2) == YuvSpec("bt709", True)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_rgb_to_nv12_matches_cpu():
    rgb = torch.from_numpy(np.random.default_rng(2).integers(0, 256, (2, 1080, 1920, 3), dtype=np.uint8))
    on_gpu = rgb_to_nv12(rgb.cuda(), output_spec(1, 1))
    assert on_gpu.is_cuda and (on_gpu.cpu().int() - rgb_to_nv12(rgb, output_spec(1, 1)).int()).abs().max() <= 1


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_cpu():
    frame = _frame("p010le", 1920, 1080, False, seed=5)
    y, uv = _planes(frame)
    spec = YuvSpec("bt709", False, 10, 6)
    on_gpu = yuv_to_rgb(y.cuda(), uv.cuda(), spec)
    assert on_gpu.device.type == "cuda"
    assert (on_gpu.cpu().int() - yuv_to_rgb(y, uv, spec).int()).abs().max() <= 1
