"""The command line as a whole: every subcommand is listed, and building the parser (``--help``,
usage errors) imports no torch, so it answers at once."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from rtstyle import choices
from rtstyle.cli import COMMANDS, build_parser


def test_building_the_parser_imports_no_torch():
    code = "import sys, rtstyle.cli as c; c.build_parser(); print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'numpy', 'cv2', 'av')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out


def test_every_command_is_registered(capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    assert all(name in text for name in COMMANDS)


def test_parser_choices_match_the_modules_that_own_them():
    from rtstyle.benchmarks.bench import ARCHS
    from rtstyle.engine import BACKENDS

    assert choices.BACKEND_NAMES == tuple(BACKENDS)
    assert choices.BENCH_ARCHS == tuple(ARCHS)


def test_train_flag_defaults_match_the_trainer_configs():
    from rtstyle.trainers.stability import StabilityConfig

    args = build_parser().parse_args(["train", "style", "--style", "s.jpg", "--data", "d", "--out", "o.safetensors"])
    assert args.stability_weight == StabilityConfig.weight > 0
    texture = build_parser().parse_args(["train", "texture", "--style", "s.jpg", "--out", "o.safetensors"])
    assert "stability_weight" not in vars(texture)  # texture nets train without it (TextureTrainConfig: 0)


def test_closed_pipe_is_quiet():
    # `rtstyle models --json | head -1`: the reader is gone before the output is written; the
    # command must end quietly, not with "unexpected BrokenPipeError". Closing the read end first
    # makes every write fail, so the test does not depend on pipe buffer sizes.
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run([sys.executable, "-m", "rtstyle", "models", "--json"], stdout=write_end,
                              stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
