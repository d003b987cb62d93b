"""The pipeline's GPU wiring on the CPU: engine output through the OutputRing (order, values,
stop, errors, slot reuse) and frames that arrive as tensors (a device decoder's)."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from rtstyle.pipeline import PipelineConfig, run_pipeline
from tests.helpers_video import FailingEngine, IdentityEngine, frame_pattern


@dataclass
class Item:
    image: object  # numpy array, or a torch tensor as DeviceVideoReader hands out
    index: int


def items(n: int, size=(20, 16), tensors: bool = False):
    for i in range(n):
        image = frame_pattern(i, *size)
        yield Item(torch.from_numpy(image) if tensors else image, i)


def collect(n, engine, batch_size, tensors=False, **kw):
    out = []
    stats = run_pipeline(items(n, tensors=tensors), engine, lambda im, it: out.append((it.index, np.array(im))),
                         PipelineConfig(batch_size=batch_size, output_ring=True), **kw)
    return out, stats


@pytest.mark.parametrize("batch_size", [1, 3])
@pytest.mark.parametrize("tensors", [False, True], ids=["numpy-frames", "tensor-frames"])
def test_ring_keeps_order_values_and_partial_batch(batch_size, tensors):
    engine = IdentityEngine()
    out, stats = collect(20, engine, batch_size, tensors)
    assert [i for i, _ in out] == list(range(20))
    assert all(np.array_equal(im, frame_pattern(i, 20, 16)) for i, im in out)
    assert sum(engine.batches) == 20 and (stats.frames_in, stats.frames_out) == (20, 20)


def test_ring_output_equals_the_plain_path(tiny_style_ckpt):
    from rtstyle.engine import EngineOptions, open_engine

    engine = open_engine(tiny_style_ckpt, "torch", EngineOptions(device="cpu", precision="fp32"))
    ring, _ = collect(7, engine, 2)
    plain = []
    run_pipeline(items(7), engine, lambda im, it: plain.append(im.copy()), PipelineConfig(batch_size=2))
    assert all(np.array_equal(a, b) for (_, a), b in zip(ring, plain)) and len(ring) == 7


@pytest.mark.parametrize("ring", [False, True], ids=["plain", "ring"])
def test_output_converted_to_nv12_on_the_engines_device(ring):
    """``output_nv12``: the sink gets the engine's output as NV12 (converted where the engine
    runs, before the copy back), equal to converting the RGB output afterwards."""
    from rtstyle.gpu.colour import YuvSpec, rgb_to_nv12

    spec = YuvSpec("bt709")
    got = []
    run_pipeline(items(7), IdentityEngine(), lambda im, it: got.append((it.index, np.array(im))),
                 PipelineConfig(batch_size=3, output_ring=ring, output_nv12=spec))
    assert [i for i, _ in got] == list(range(7))
    for i, nv12 in got:
        assert nv12.shape == (24, 20)
        assert np.array_equal(nv12, rgb_to_nv12(torch.from_numpy(frame_pattern(i, 20, 16)), spec).numpy())


def test_sink_views_are_reused_so_the_contract_matters():
    """The sink's image is a view of a ring slot: a sink keeping it without a copy would see it
    overwritten. Documented; this pins that the ring really reuses its buffers."""
    kept = []
    run_pipeline(items(30), IdentityEngine(), lambda im, it: kept.append(im), PipelineConfig(batch_size=2, output_ring=True))
    assert len({k.__array_interface__["data"][0] for k in kept}) < 30


def test_ring_stop_and_errors():
    stop = threading.Event()

    def on_progress(stats):
        if stats.frames_out >= 6:
            stop.set()

    out, stats = collect(10_000, IdentityEngine(), 2, stop=stop, on_progress=on_progress)
    assert stats.interrupted and stats.frames_out == stats.frames_in and [i for i, _ in out] == list(range(len(out)))
    with pytest.raises(RuntimeError, match="engine failure"):
        collect(20, FailingEngine(fail_at=3), 2)


# ------------------------------------------------------------------ stylize with the device decoder

def test_stylize_with_the_device_decoder_on_cpu(tmp_path):
    """``decoder="pyav-cuda"`` end to end with the engine on the CPU: device_file_source (software
    half), tensors batched in the pipeline, frames resized on the device, timestamps kept. Output
    of an identity engine matches the input within codec error, like the CPU decoder's."""
    from rtstyle.stylize import StylizeConfig, stylize_files
    from tests.helpers_video import make_clip, read_frames

    src = make_clip(tmp_path / "in.mp4", frames=12, size=(64, 48), vfr=True, audio=False)
    out = tmp_path / "out.mp4"
    result = stylize_files(StylizeConfig(inputs=(src,), output=out, decoder="pyav-cuda", progress=False),
                           IdentityEngine())[0]
    assert result.frames_out == 12
    ours, times = read_frames(out)
    ref, ref_times = read_frames(src)
    assert times == ref_times
    assert max(np.abs(a.astype(int) - b.astype(int)).mean() for a, b in zip(ours, ref)) < 6
    small = tmp_path / "small.mp4"
    stylize_files(StylizeConfig(inputs=(src,), output=small, decoder="pyav-cuda", progress=False, resize=(32, 24)),
                  IdentityEngine())
    assert read_frames(small)[0][0].shape == (24, 32, 3)


def test_device_decoder_and_smoothing_do_not_mix(tmp_path):
    from rtstyle.errors import InputError
    from rtstyle.stylize import StylizeConfig

    with pytest.raises(InputError, match="pyav-cuda.*temporal-smoothing"):
        StylizeConfig(inputs=(tmp_path,), decoder="pyav-cuda", temporal_smoothing=0.5)


def test_cli_says_each_fallback_once(tmp_path, tiny_style_ckpt, capsys):
    from rtstyle.cli import main
    from tests.helpers_video import make_clip

    if torch.cuda.is_available():
        pytest.skip("checks the fallbacks of a machine without a GPU")
    src = make_clip(tmp_path / "in.mp4", frames=4, size=(32, 24), audio=False)
    code = main(["stylize", str(src), "-o", str(tmp_path / "out.mp4"), "--model", str(tiny_style_ckpt), "--no-progress",
                 "--decoder", "pyav-cuda", "--codec", "h264_nvenc", "--preset", "ultrafast"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert err.count("decoder: --decoder pyav-cuda unavailable (") == 1
    assert err.count("encoder: --codec h264_nvenc unavailable (") == 1 and "using libx264" in err
    code = main(["stylize", str(src), "-o", str(tmp_path / "auto.mp4"), "--model", str(tiny_style_ckpt), "--no-progress",
                 "--preset", "ultrafast"])
    err = capsys.readouterr().err
    assert code == 0 and "unavailable" not in err and "encoder:" not in err  # auto on a CPU machine: nothing fell back


# ------------------------------------------------------------------------------------ on a GPU

@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_ring_matches_the_synchronous_path(tiny_style_ckpt):
    """The asynchronous copies (copy stream, events, record_stream) give the frames .cpu() gives."""
    from rtstyle.engine import EngineOptions, open_engine

    engine = open_engine(tiny_style_ckpt, "torch", EngineOptions(device="cuda", precision="fp16", batch_size=4))
    outs: dict[bool, list] = {False: [], True: []}
    for ring in (False, True):
        run_pipeline(items(40, size=(96, 64)), engine, lambda im, it, ring=ring: outs[ring].append((it.index, np.array(im))),
                     PipelineConfig(batch_size=4, output_ring=ring))
    assert [i for i, _ in outs[True]] == list(range(40))
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(outs[True], outs[False]))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("nv12", [False, True], ids=["rgb", "nv12"])
def test_cuda_frames_reach_the_engine_by_event(tiny_style_ckpt, nv12):
    """Frames already on the GPU (a device decoder's), batched on the decode thread's stream and
    handed to the engine's stream with an event: the output equals the engine run batch by batch
    on one stream, in RGB or converted to NV12 on the GPU."""
    from rtstyle.engine import EngineOptions, open_engine
    from rtstyle.gpu.colour import YuvSpec, rgb_to_nv12

    engine = open_engine(tiny_style_ckpt, "torch", EngineOptions(device="cuda", precision="fp16", batch_size=4))
    frames = [torch.from_numpy(frame_pattern(i, 96, 64)).cuda() for i in range(24)]
    spec = YuvSpec("bt601") if nv12 else None
    expected = []
    for i in range(0, 24, 4):
        out = engine(torch.stack(frames[i:i + 4]))
        expected += list((rgb_to_nv12(out, spec) if nv12 else out).cpu().numpy())
    got = []
    run_pipeline((Item(f, i) for i, f in enumerate(frames)), engine, lambda im, it: got.append((it.index, np.array(im))),
                 PipelineConfig(batch_size=4, output_ring=True, output_nv12=spec))
    assert [i for i, _ in got] == list(range(24))
    assert all(np.array_equal(a, b) for (_, a), b in zip(got, expected))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_stylize_with_nvdec_matches_the_cpu_decoder(tmp_path, tiny_style_ckpt):
    """``--decoder pyav-cuda`` on a GPU engine: NVDEC frames into the engine, output through the
    ring; the video matches the CPU decoder's run (the CPU twin below says how closely)."""
    from rtstyle.gpu.capabilities import hw_decode_support

    if not hw_decode_support().usable:
        pytest.skip(hw_decode_support().reason)
    assert max(_decoders_differ(tmp_path, tiny_style_ckpt, "cuda")) < 4


def test_stylize_with_the_device_decoder_matches_the_cpu_decoder(tmp_path, tiny_style_ckpt):
    """The GPU test above on the CPU: the device decoder's software half, a style network, and the
    CPU decoder's run to compare with. Stylized (not identity) frames, since a style network
    amplifies input differences about 2.5 times: bilinear chroma on the device path against the
    CPU reader's repeated chroma was 10 levels here and on the H200, 2.1-2.6 with the same
    upsampling (fp32 and bf16)."""
    assert max(_decoders_differ(tmp_path, tiny_style_ckpt, "cpu")) < 4


def _decoders_differ(tmp_path, ckpt, device: str) -> list[float]:
    """Mean level difference per frame between ``stylize`` runs with ``--decoder pyav-cuda`` and
    the CPU decoder, engine on ``device``. Written losslessly (x264 crf 0, 4:4:4): a style
    network's output is texture that lossy 4:2:0 coding changes by 10 levels, differently in two
    encodes, which would hide what the decoders do."""
    from rtstyle.stylize import StylizeConfig, open_chain, stylize_files
    from rtstyle.video.writer import EncoderConfig
    from tests.helpers_video import make_clip, read_frames

    src = make_clip(tmp_path / "in.mp4", frames=16, size=(320, 180), audio=False)
    outs = {}
    for decoder in ("pyav-cuda", "auto"):
        cfg = StylizeConfig(inputs=(src,), model=str(ckpt), output=tmp_path / f"{decoder}.mp4", decoder=decoder,
                            device=device, progress=False, encoder=EncoderConfig(crf=0, pix_fmt="yuv444p"))
        result = stylize_files(cfg, open_chain(cfg))[0]
        assert result.frames_out == 16 and not result.warnings, result.warnings  # no fallback on the way
        outs[decoder] = read_frames(result.output)
    assert outs["pyav-cuda"][1] == outs["auto"][1]  # timestamps
    return [np.abs(a.astype(int) - b.astype(int)).mean() for a, b in zip(outs["pyav-cuda"][0], outs["auto"][0])]
