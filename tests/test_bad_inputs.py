"""Issue 15: bad input that ended in "unexpected X" or did the wrong thing: one line, exit 2."""

from __future__ import annotations

import os
import re
import struct
import subprocess
import sys
import zlib
from fractions import Fraction

import numpy as np
import pytest

from rtstyle.cli import main
from rtstyle.errors import InputError
from rtstyle.frames import load_image
from rtstyle.limits import MAX_DECODE_PIXELS, check_media_pixels
from tests.conftest import REPO
from tests.helpers_video import make_clip


def run(capsys, *argv) -> tuple[int, list[str]]:
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err.strip().splitlines()
    return code, [line for line in err if not line.startswith(("engine: ", "warning: "))]


def png_header(path, width: int, height: int):
    """A PNG that declares ``width`` x ``height`` and holds one tiny compressed row of zeros:
    tiny on disk, huge once decoded."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
                     + chunk(b"IEND", b""))
    return path


@pytest.mark.parametrize("flag, value", [("--start", "nan"), ("--start", "inf"), ("--duration", "1e999"),
                                         ("--duration", "-1")])
def test_non_finite_times_are_usage_errors(tmp_path, capsys, flag, value):
    src = make_clip(tmp_path / "in.mp4", frames=3, size=(32, 32))
    code, err = run(capsys, "stylize", src, "-o", tmp_path / "o.mp4", "--model", "starry_night", flag, value)
    assert code == 2 and len(err) == 1 and flag in err[0] and repr(value) in err[0]


def test_dash_output_is_refused_not_a_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    src = make_clip(tmp_path / "in.mp4", frames=3, size=(32, 32))
    code, err = run(capsys, "stylize", src, "-o", "-", "--model", "starry_night", "--no-progress")
    assert code == 2 and len(err) == 1 and "standard output" in err[0]
    assert not (tmp_path / "-").exists()


def test_fifo_input_is_named_as_a_pipe(tmp_path, capsys):
    fifo = tmp_path / "stream.mp4"
    os.mkfifo(fifo)
    code, err = run(capsys, "stylize", fifo, "-o", tmp_path / "o.mp4", "--model", "starry_night", "--no-progress")
    assert code == 2 and len(err) == 1 and "is a pipe (FIFO), not a file" in err[0] and "empty" not in err[0]


def test_stdin_fed_by_a_pipe_is_named_as_a_pipe(tmp_path):
    src = make_clip(tmp_path / "in.mp4", frames=3, size=(32, 32))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    with open(src, "rb") as f:
        cat = subprocess.Popen(["cat"], stdin=f, stdout=subprocess.PIPE)
        proc = subprocess.run([sys.executable, "-m", "rtstyle", "stylize", "/dev/stdin", "-o", str(tmp_path / "o.mp4"),
                               "--model", "starry_night", "--no-progress"], stdin=cat.stdout, capture_output=True,
                              text=True, env=env, cwd=REPO, timeout=120)
        cat.stdout.close()
        cat.wait()
    err = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and "is a pipe (FIFO), not a file" in err[-1], proc.stderr


def test_huge_declared_png_is_refused_from_its_header(tmp_path, capsys):
    png = png_header(tmp_path / "huge.png", 8000, 8000)
    assert png.stat().st_size < 1000
    code, err = run(capsys, "stylize", png, "-o", tmp_path / "o.png", "--model", "starry_night", "--no-progress")
    assert code == 2 and len(err) == 1 and "8000x8000" in err[0] and "16,777,216" in err[0] and "--max-pixels" in err[0]
    assert not (tmp_path / "o.png").exists()


def test_max_pixels_raises_the_limit(tmp_path):
    from PIL import Image

    Image.fromarray(np.zeros((40, 50, 3), np.uint8)).save(tmp_path / "small.png")
    with pytest.raises(InputError, match="50x40 = 2,000 pixels, above the limit of 1,000"):
        check_media_pixels(tmp_path / "small.png", 1000)
    check_media_pixels(tmp_path / "small.png", 2000)
    clip = make_clip(tmp_path / "in.mp4", frames=2, size=(32, 32))
    with pytest.raises(InputError, match="32x32"):
        check_media_pixels(clip, 1000)  # videos: from the container header


def test_image_decode_is_bounded_whatever_the_header_says(tmp_path):
    png = png_header(tmp_path / "bomb.png", 11000, 11000)  # 121 MP: 363 MB of RGB once decoded
    with pytest.raises(InputError, match=f"above the limit of {MAX_DECODE_PIXELS:,}"):
        load_image(png, max_side=512)
    png = png_header(tmp_path / "bigger.png", 20000, 20000)  # past PIL's own guard too
    with pytest.raises(InputError, match=f"more than {MAX_DECODE_PIXELS:,} pixels"):
        load_image(png, max_side=512)


def _conv_onnx(path, out_ch=3, meta=None, fixed_out_batch=False, upsample=1):
    """A tiny float-io ONNX graph (1x1 conv, optional x2 resize, optional batch slice)."""
    import onnx
    import onnx.helper as oh
    from onnx import TensorProto

    inits = [oh.make_tensor("W", TensorProto.FLOAT, [out_ch, 3, 1, 1], [1.0 / 3] * (out_ch * 3))]
    nodes, last = [oh.make_node("Conv", ["x", "W"], ["y0"])], "y0"
    if upsample > 1:
        inits.append(oh.make_tensor("s", TensorProto.FLOAT, [4], [1, 1, upsample, upsample]))
        nodes.append(oh.make_node("Resize", [last, "", "s"], ["y1"], mode="nearest"))
        last = "y1"
    if fixed_out_batch:
        for name, value in (("st", 0), ("en", 1), ("ax", 0)):
            inits.append(oh.make_tensor(name, TensorProto.INT64, [1], [value]))
        nodes.append(oh.make_node("Slice", [last, "st", "en", "ax"], ["y2"]))
        last = "y2"
    nodes.append(oh.make_node("Identity", [last], ["y"]))
    graph = oh.make_graph(nodes, "g", [oh.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, "h", "w"])],
                          [oh.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)])
    model.ir_version = 8
    for key, value in (meta or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("kw, match", [
    ({"out_ch": 4}, r"returns \(2, 4, 16, 20\).*3 channels"),
    ({"fixed_out_batch": True}, r"returns \(1, 3, 16, 20\).*batch of 2"),
    ({"meta": {"rtstyle.scale": "abc"}}, "rtstyle.scale='abc' but it scales by 1"),
    ({"meta": {"rtstyle.scale": "2"}}, "rtstyle.scale='2' but it scales by 1"),
], ids=["channels", "batch", "scale-text", "scale-lie"])
def test_onnx_models_with_wrong_outputs_are_refused_in_one_line(tmp_path, capsys, kw, match):
    from rtstyle.engine import EngineOptions, open_engine
    from rtstyle.errors import CheckpointError

    model = _conv_onnx(tmp_path / "m.onnx", **kw)
    with pytest.raises(CheckpointError, match=match):
        open_engine(model, "onnxruntime", EngineOptions(device="cpu"))
    src = make_clip(tmp_path / "in.mp4", frames=2, size=(32, 32))
    code, err = run(capsys, "stylize", src, "-o", tmp_path / "o.mp4", "--model", model, "--no-progress")
    assert code == 2 and len(err) == 1 and not (tmp_path / "o.mp4").exists()


def test_onnx_x2_with_matching_metadata_opens(tmp_path):
    from rtstyle.engine import EngineOptions, open_engine

    engine = open_engine(_conv_onnx(tmp_path / "x2.onnx", upsample=2, meta={"rtstyle.scale": "2"}), "onnxruntime",
                         EngineOptions(device="cpu"))
    assert engine.scale == 2


def test_nan_in_the_engine_output_stops_the_run(tmp_path, capsys):
    import torch

    from rtstyle.checkpoint import save_checkpoint
    from rtstyle.nets import build_model
    from tests.conftest import TINY_STYLE

    model = build_model(TINY_STYLE)
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))
    ckpt = save_checkpoint(tmp_path / "nan.safetensors", model, {"task": "style", "name": "nan"})
    src = make_clip(tmp_path / "in.mp4", frames=3, size=(32, 32))
    code, err = run(capsys, "stylize", src, "-o", tmp_path / "o.mp4", "--model", ckpt, "--no-progress",
                    "--device", "cpu", "--precision", "fp32")
    assert code == 2 and len(err) == 1 and "NaN/Inf" in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4", "nan.safetensors"]  # nothing written


@pytest.mark.parametrize("size", [(8, 8), (11, 5), (1, 1)])
def test_temporal_smoothing_on_frames_under_12_px(tmp_path, capsys, size):
    src = make_clip(tmp_path / "in.mp4", frames=4, size=size)
    code, err = run(capsys, "stylize", src, "-o", tmp_path / "o.mp4", "--model", "starry_night", "--no-progress",
                    "--temporal-smoothing", "0.5")
    assert code == 0, err


# ---- issue 27: messages --------------------------------------------------------------------------


def _raw_h264(path, frames: int = 5, size: tuple[int, int] = (32, 32)):
    """An H.264 elementary stream: no container, so no frame count or duration anywhere in it."""
    import av

    with av.open(str(path), "w", format="h264") as out:
        stream = out.add_stream("libx264", rate=10, options={"preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = *size, "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.full((size[1], size[0], 3), 40 * i % 256, np.uint8), format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def test_start_past_the_end_names_the_real_length(tmp_path, capsys):
    src = make_clip(tmp_path / "in.mp4", frames=30, size=(32, 32), fps=10)
    code, err = run(capsys, "stylize", src, "-o", tmp_path / "o.mp4", "--model", "starry_night", "--no-progress",
                    "-ss", "10")
    assert code == 2 and len(err) == 1, err
    assert "10 s is at or past the end of in.mp4, which is 3.00 s long" in err[0] and "None" not in err[0]
    assert not (tmp_path / "o.mp4").exists()


def test_start_past_the_end_of_a_file_of_unknown_length_says_so(tmp_path, capsys):
    src = _raw_h264(tmp_path / "in.h264")
    code, err = run(capsys, "stylize", src, "-o", tmp_path / "o.mp4", "--model", "starry_night", "--no-progress",
                    "--backend", "torch", "-ss", "100")
    assert code == 2 and len(err) == 1, err
    assert "no frames decoded from" in err[0] and "from 100 s on (its duration is unknown)" in err[0]
    assert "None" not in err[0] and not (tmp_path / "o.mp4").exists()


def test_openvino_load_errors_carry_openvinos_own_line(tmp_path, capsys):
    pytest.importorskip("openvino")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"garbage, not a graph")
    src = make_clip(tmp_path / "in.mp4", frames=2, size=(32, 32))
    code, err = run(capsys, "stylize", src, "-o", tmp_path / "o.mp4", "--model", bad, "--backend", "openvino",
                    "--no-progress")
    err = [line for line in err if line.startswith("rtstyle")]  # OpenVINO's frontends print to stderr too
    assert code == 2 and len(err) == 1, err
    assert "Unable to read the model" in err[0] and "core.cpp" not in err[0]


@pytest.mark.parametrize("backend, model, match", [
    ("torch", "m.onnx", "m.onnx is an ONNX model: --backend torch opens rtstyle checkpoints; use --backend "
                        "onnxruntime or tensorrt or openvino"),
    ("onnxruntime", "m.safetensors", "m.safetensors is an rtstyle checkpoint: --backend onnxruntime opens ONNX "
                                     "models; use --backend torch or tensorrt or openvino"),
    ("aoti", "m.onnx", "--backend aoti opens AOTInductor packages"),
])
def test_a_backend_given_a_file_it_does_not_open_names_the_ones_that_do(tmp_path, capsys, backend, model, match):
    from tests.conftest import TINY_STYLE, _save

    path = _conv_onnx(tmp_path / model) if model.endswith(".onnx") else _save(tmp_path / model, TINY_STYLE, "style")
    src = make_clip(tmp_path / "in.mp4", frames=2, size=(32, 32))
    code, err = run(capsys, "stylize", src, "-o", tmp_path / "o.mp4", "--model", path, "--backend", backend,
                    "--no-progress")
    assert code == 2 and len(err) == 1 and match in err[0], err


def test_input_and_output_names_may_start_with_a_dash(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_clip(tmp_path / "-clip.mp4", frames=2, size=(32, 32))
    code, err = run(capsys, "stylize", "-i", "-clip.mp4", "-o", "-out.mp4", "--model", "starry_night",
                    "--no-progress", "--backend", "torch")
    assert code == 0, err
    assert (tmp_path / "-out.mp4").is_file()
    code, err = run(capsys, "stylize", "-i", "-missing.mp4", "--model", "starry_night")
    assert code == 2 and "input not found: -missing.mp4" in err[0]


# ---- issue 27: the limits hold from the header and while decoding --------------------------------


def size_switching_mkv(path, small=(32, 32), big=(640, 480), small_frames: int = 20):
    """An MKV whose header says ``small`` and whose stream switches to ``big`` (2 frames) after
    ``small_frames`` (two H.264 streams back to back: the decoder follows the new sequence header)."""
    import av

    raw = b"".join(_raw_h264(path.with_name(f"part{i}.h264"), frames=n, size=size).read_bytes()
                   for i, (size, n) in enumerate(((small, small_frames), (big, 2))))
    joined = path.with_name("joined.h264")
    joined.write_bytes(raw)
    with av.open(str(joined)) as src, av.open(str(path), "w") as out:
        stream = out.add_stream_from_template(src.streams.video[0])
        for i, packet in enumerate(p for p in src.demux(video=0) if p.size):
            packet.pts = packet.dts = i
            packet.duration, packet.time_base = 1, Fraction(1, 10)
            packet.stream = stream
            out.mux(packet)
    return path


def test_a_frame_over_the_limit_midway_is_refused_not_decoded(tmp_path, capsys):
    src = size_switching_mkv(tmp_path / "switch.mkv")
    assert check_media_pixels(src, 32 * 32) is None  # the header says 32x32
    code, err = run(capsys, "stylize", src, "-o", tmp_path / "o.mp4", "--model", "starry_night", "--no-progress",
                    "--backend", "torch", "--max-pixels", str(64 * 64))
    assert code == 2 and len(err) == 1, err
    assert "640x480 = 307,200 pixels, above the limit of 4,096" in err[0]
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".mp4") == []  # no output, no partial


@pytest.mark.parametrize("flag, value, match", [
    ("--max-input-frames", "10", "in.mp4 holds 30 frames, above the limit of 10 per input"),
    ("--max-input-seconds", "1.5", r"in.mp4 lasts 3.0 s, above the limit of 1.5 s per input"),
])
def test_frame_and_length_limits_refuse_from_the_header(tmp_path, capsys, flag, value, match):
    src = make_clip(tmp_path / "in.mp4", frames=30, size=(32, 32), fps=10)
    code, err = run(capsys, "stylize", src, "-o", tmp_path / "o.mp4", "--model", "starry_night", "--no-progress",
                    flag, value)
    assert code == 2 and len(err) == 1 and re.search(match, err[0]), err
    assert not (tmp_path / "o.mp4").exists()
    # a window within the limit is fine: only what is read counts
    code, err = run(capsys, "stylize", src, "-o", tmp_path / "o.mp4", "--model", "starry_night", "--no-progress",
                    "--backend", "torch", flag, value, "-t", "0.5")
    assert code == 0, err


def test_frame_limit_holds_while_decoding_when_the_header_has_no_count(tmp_path):
    from rtstyle.limits import Limits
    from rtstyle.video import VideoReader

    src = _raw_h264(tmp_path / "in.h264", frames=12)  # no count, no duration: nothing to refuse up front
    with pytest.raises(InputError, match="holds more than 5 frames, above the limit of 5 per input"):
        list(VideoReader(src, limits=Limits(max_frames=5)))
    assert len(list(VideoReader(src, limits=Limits(max_frames=12)))) == 12


def test_clients_can_only_tighten_limits():
    from rtstyle.errors import ConfigError
    from rtstyle.limits import Limits

    server = Limits(max_pixels=1000, max_frames=50, max_seconds=None)
    assert server.tightened(max_pixels=10**9, max_frames=10, max_seconds=5) == Limits(1000, 10, 5)
    assert server.tightened(max_pixels=None) == server
    for bad in ({"max_pixels": 0}, {"max_frames": -3}, {"max_seconds": float("nan")}, {"max_frames": 2.5},
                {"max_pixels": True}, {"max_side": 5}):
        with pytest.raises(ConfigError):
            server.tightened(**bad)
