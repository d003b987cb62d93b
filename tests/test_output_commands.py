"""Issue 15: every command that writes files follows the one output rule (rtstyle.outputs):
an existing file is refused without -y (one line, exit 2, the file untouched), -y and -n are an
exclusive pair, an output is never an input, outputs are 0666 less the umask."""

from __future__ import annotations

import os
import stat

import pytest

from rtstyle.cli import main
from tests.conftest import SAMPLES, TINY_STYLE, _save

PHOTOS = SAMPLES / "samples" / "photos"
PRECIOUS = "precious: must survive"


def run(capsys, *argv) -> tuple[int, list[str]]:
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse usage errors
        code = exc.code
    return code, capsys.readouterr().err.strip().splitlines()


def precious(path):
    path.write_text(PRECIOUS)
    return path


def refused(code, err, path) -> bool:
    return code == 2 and len(err) == 1 and "exists; pass -y" in err[0] and path.read_text() == PRECIOUS


@pytest.fixture
def tiny(tmp_path):
    return _save(tmp_path / "tiny.safetensors", TINY_STYLE, "style")


def test_models_pack_refuses_then_replaces_with_y_and_0644(tmp_path, capsys, tiny):
    out = precious(tmp_path / "release.safetensors")
    assert refused(*run(capsys, "models", "pack", tiny, "-o", out), out)
    assert run(capsys, "models", "pack", tiny, "-o", out, "-y")[0] == 0
    old = os.umask(0o022)
    os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~old  # safetensors alone writes 0600
    code, err = run(capsys, "models", "pack", tiny, "-o", tiny, "-y")
    assert code == 2 and "is the input" in err[0]


def test_y_and_n_are_exclusive(tmp_path, capsys, tiny):
    code, err = run(capsys, "models", "pack", tiny, "-o", tmp_path / "x.safetensors", "-y", "-n")
    assert code == 2 and "not allowed with" in err[0]


def test_train_out_needs_y(tmp_path, capsys):
    out = precious(tmp_path / "model.safetensors")
    code, err = run(capsys, "train", "style", "--data", PHOTOS, "--style", SAMPLES / "samples/styles/starry_night.jpg",
                    "--out", out, "--iterations", "1", "--no-progress")
    assert refused(code, err, out)
    log = precious(tmp_path / "other.losses.csv")  # the sidecars are outputs too
    code, err = run(capsys, "train", "style", "--data", PHOTOS, "--style", SAMPLES / "samples/styles/starry_night.jpg",
                    "--out", tmp_path / "other.safetensors", "--iterations", "1", "--no-progress")
    assert refused(code, err, log)


def test_eval_grid_and_sr_refuse_existing(tmp_path, capsys, tiny, tiny_sr_ckpt):
    grid = precious(tmp_path / "grid.png")
    assert refused(*run(capsys, "eval", "grid", "--model", tiny, "--images", PHOTOS, "-o", grid, "--size", "32",
                        "--limit", "1"), grid)
    figure, report = tmp_path / "sr.png", precious(tmp_path / "sr.json")
    assert refused(*run(capsys, "eval", "sr", "--model", tiny_sr_ckpt, "--images", PHOTOS, "-o", figure,
                        "--json", report, "--crop", "32", "--limit", "1"), report)
    assert not figure.exists()  # refused before any work


def test_bench_json_refused_before_the_run(tmp_path, capsys, tiny):
    md = precious(tmp_path / "bench.md")  # a file the --json run would write beside it
    code, err = run(capsys, "bench", "--model", tiny, "--quick", "--json", tmp_path / "bench.json")
    assert refused(code, err, md) and not (tmp_path / "bench.json").exists()


def test_export_and_synth_refuse_existing(tmp_path, capsys, tiny):
    onnx = precious(tmp_path / "m.onnx")
    assert refused(*run(capsys, "export", "onnx", tiny, "-o", onnx), onnx)
    from rtstyle.nets import TextureSynthConfig

    synth = _save(tmp_path / "synth.safetensors", TextureSynthConfig(scales=3, width=4, noise_channels=4), "texture")
    png = precious(tmp_path / "t.png")
    assert refused(*run(capsys, "synth", synth, "-o", png, "--size", "32x32", "--device", "cpu"), png)


def test_optimize_refuses_existing_and_its_intermediates(tmp_path, capsys):
    photo = PHOTOS / "skimage_coffee.jpg"
    style = SAMPLES / "samples/styles/starry_night.jpg"
    out = precious(tmp_path / "o.png")
    assert refused(*run(capsys, "optimize", photo, "--style", style, "-o", out, "--iterations", "1"), out)
    step = precious(tmp_path / "p_00002.png")
    assert refused(*run(capsys, "optimize", photo, "--style", style, "-o", tmp_path / "p.png", "--iterations", "4",
                        "--save-every", "2"), step)
