"""Encoder/decoder capability probes and the --codec/--decoder resolution, on this (GPU-less) machine."""

from __future__ import annotations

import pytest
import torch

from rtstyle.errors import InputError
from rtstyle.gpu import capabilities as caps

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the answers of a machine without a GPU")


def test_software_encoder_opens_and_nvenc_says_why_not():
    assert caps.encoder_support("libx264").usable
    nvenc = caps.encoder_support("h264_nvenc")
    assert not nvenc.usable
    # Either this FFmpeg lacks it, or it is there and FFmpeg's own reason (no driver) is given.
    assert "not in this FFmpeg" in nvenc.reason or ("does not open here" in nvenc.reason and "no CUDA GPU" in nvenc.reason)
    assert caps.encoder_support("no_such_encoder").reason.startswith("not in this FFmpeg")
    assert "h264_nvenc: no (" in nvenc.line()


def test_codec_resolution():
    assert caps.resolve_codec("auto") == ("libx264", None)  # no GPU: nothing to fall back from
    codec, line = caps.resolve_codec("h264_nvenc")
    assert codec == "libx264" and line.startswith("encoder: --codec h264_nvenc unavailable (")
    assert caps.resolve_codec("libx265") == ("libx265", None)  # others are the writer's to check


def test_decoder_resolution():
    assert caps.resolve_decoder("auto", engine_on_cuda=False) == ("auto", None)
    assert caps.resolve_decoder("auto", engine_on_cuda=True) == ("auto", None)  # opt-in until verified on hardware
    assert caps.resolve_decoder("opencv", engine_on_cuda=False) == ("opencv", None)
    decoder, line = caps.resolve_decoder("pyav-cuda", engine_on_cuda=False)
    assert decoder == "auto" and "engine runs on the CPU" in line
    decoder, line = caps.resolve_decoder("pyav-cuda", engine_on_cuda=True)
    assert decoder == "auto" and "no CUDA GPU" in line and line.startswith("decoder: --decoder pyav-cuda unavailable")
    assert "temporal-smoothing" in caps.resolve_decoder("pyav-cuda", engine_on_cuda=True, smoothing=True)[1]
    with pytest.raises(InputError, match="pyav-cuda"):
        caps.resolve_decoder("nvdec", engine_on_cuda=False)
    support = caps.decoder_support()
    assert support["pyav"].usable and not support["pyav-cuda"].usable


def test_capabilities_command_lists_everything(capsys):
    assert caps.main() == 0
    out = capsys.readouterr().out
    for name in ("pyav:", "pyav-cuda: no (", "opencv:", "libx264: yes", "h264_nvenc: no (", "hevc_nvenc:"):
        assert name in out


def test_nvdec_probe_clip_holds_the_grey_levels_it_checks():
    """The probe's clip decodes (here in software) to the luma the NVDEC probe expects of it: the
    check cannot fail for a wrong expectation on the GPU."""
    import io

    av = pytest.importorskip("av")
    with av.open(io.BytesIO(caps.h264_probe_clip()), "r", format="h264") as container:
        frames = list(container.decode(video=0))
    assert [(f.width, f.height) for f in frames] == [caps.PROBE_SIZE] * len(caps.PROBE_LEVELS)
    lumas = [round(float(torch.from_dlpack(f.planes[0].__dlpack__()).float().mean())) for f in frames]
    assert lumas == [round(16 + 219 * g / 255) for g in caps.PROBE_LEVELS]


def test_without_a_gpu_hardware_decoding_says_why():
    if torch.cuda.is_available():
        pytest.skip("the GPU run probes the real decoder")
    assert "no CUDA GPU" in caps.hw_decode_support().reason
