"""Issue 15: bad input that ended in "unexpected X" or did the wrong thing: one line, exit 2."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import zlib

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
