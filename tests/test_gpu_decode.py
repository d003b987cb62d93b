"""DeviceVideoReader on the CPU: the software half of the GPU decode path (DLPack planes, the
device conversion, the base reader's time window and timestamps), against swscale and the CPU
reader. The NVDEC half runs in the gpu-marked test."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rtstyle.gpu.decode import DeviceVideoReader, resize_on_device
from rtstyle.video import VideoReader

av = pytest.importorskip("av")  # before the helpers, which need it (the GPU check may run without PyAV)
from .helpers_video import make_clip  # noqa: E402, I001
Interpolation = pytest.importorskip("av.video.reformatter").Interpolation
ACCURATE = Interpolation.BILINEAR | Interpolation.FULL_CHR_H_INT | Interpolation.ACCURATE_RND


def _swscale_frames(path, colorspace: str = "itu601") -> list[np.ndarray]:
    """Every frame converted by swscale with full-precision chroma (the reference arithmetic)."""
    with av.open(str(path)) as c:
        return [f.reformat(format="rgb24", src_colorspace=colorspace, src_color_range="MPEG", dst_color_range="JPEG",
                           interpolation=ACCURATE).to_ndarray() for f in c.decode(video=0)]


@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuv420p10le"])
def test_software_path_with_bilinear_chroma_matches_swscale(tmp_path, pix_fmt):
    clip = make_clip(tmp_path / f"{pix_fmt}.mp4", frames=6, size=(64, 48), audio=False, pix_fmt=pix_fmt)
    reader = DeviceVideoReader(clip, "cpu", chroma="bilinear")
    frames = list(reader)
    cpu = list(VideoReader(clip))
    assert [f.pts for f in frames] == [f.pts for f in cpu] and len(frames) == 6
    for got, ref in zip(frames, _swscale_frames(clip)):
        assert isinstance(got.image, torch.Tensor) and got.image.dtype == torch.uint8 and got.image.shape == (48, 64, 3)
        assert np.abs(got.image.numpy().astype(int) - ref.astype(int)).max() <= 1
    assert any("untagged" in n for n in reader.path_notes) and reader.frames_on_device == 0


@pytest.mark.parametrize("pix_fmt, mean, most", [("yuv420p", 1.5, 3), ("yuvj420p", 1.0, 3), ("yuv420p10le", 2.5, 9)])
def test_default_conversion_gives_the_cpu_readers_picture(tmp_path, pix_fmt, mean, most):
    """The device decoder and the CPU reader must agree, or a run's look depends on --decoder.
    The CPU reader's to_ndarray is swscale's default conversion: for 8-bit 4:2:0 its unscaled
    path repeats chroma (and rounds coarsely: up to 3 levels); bilinear chroma here was 4 levels
    off on average, 19 at colour edges, which a style network made 10 (the H200 run's failure)."""
    clip = make_clip(tmp_path / f"{pix_fmt}.mp4", frames=3, size=(320, 180), audio=False, pix_fmt=pix_fmt)
    got = [f.image.numpy().astype(int) for f in DeviceVideoReader(clip, "cpu")]
    ref = [f.image.astype(int) for f in VideoReader(clip)]
    assert len(got) == len(ref) == 3
    diff = [np.abs(a - b) for a, b in zip(got, ref)]
    assert max(d.mean() for d in diff) < mean and max(d.max() for d in diff) <= most, pix_fmt


def test_unknown_chroma_upsampling_is_one_line(tmp_path):
    from rtstyle.errors import InputError

    clip = make_clip(tmp_path / "clip.mp4", frames=1, audio=False)
    with pytest.raises(InputError, match="unknown chroma upsampling 'cubic'; choose from.*auto"):
        DeviceVideoReader(clip, "cpu", chroma="cubic")


def test_window_and_resize(tmp_path):
    clip = make_clip(tmp_path / "clip.mp4", frames=24, size=(64, 48), audio=False)
    window = list(DeviceVideoReader(clip, "cpu", start=0.25, duration=0.5, size=(32, 24)))
    expected = list(VideoReader(clip, start=0.25, duration=0.5))
    assert [f.pts for f in window] == [f.pts for f in expected] and len(window) == 12
    assert all(f.image.shape == (24, 32, 3) for f in window)


def test_odd_sizes_and_444_go_through_swscale_like_the_cpu_reader(tmp_path):
    clip = make_clip(tmp_path / "odd.mp4", frames=3, size=(33, 21), audio=False)  # yuv444p (odd sides)
    got = [f.image.numpy() for f in DeviceVideoReader(clip, "cpu")]
    ref = [f.image for f in VideoReader(clip)]
    assert all(np.array_equal(g, r) for g, r in zip(got, ref)) and len(got) == 3


def test_resize_on_device():
    image = torch.arange(48 * 64 * 3, dtype=torch.int64).remainder(256).to(torch.uint8).view(48, 64, 3)
    assert resize_on_device(image, (64, 48)) is image
    small = resize_on_device(torch.full((48, 64, 3), 77, dtype=torch.uint8), (16, 12))
    assert small.shape == (12, 16, 3) and (small == 77).all()
    assert resize_on_device(image, (128, 96)).shape == (96, 128, 3)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_nvdec_frames_stay_on_the_gpu_and_match_the_software_path(tmp_path):
    from rtstyle.gpu.capabilities import hw_decode_support

    support = hw_decode_support()
    if not support.usable:
        pytest.skip(support.reason)
    clip = make_clip(tmp_path / "hd.mp4", frames=8, size=(1280, 720), audio=False)
    hw = DeviceVideoReader(clip, "cuda")
    on_gpu = list(hw)
    assert hw.frames_on_device == 8, hw.path_notes
    soft = list(DeviceVideoReader(clip, "cuda", hardware=False))
    for a, b in zip(on_gpu, soft):
        assert a.image.is_cuda and a.pts == b.pts
        assert (a.image.int() - b.image.int()).abs().max().item() <= 1  # NVDEC decodes H.264 bit-exactly
