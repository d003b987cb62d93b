"""Progress that suits where it goes, on every long-running command (issue 16): ``--progress``,
``-q``; and JSON files the project writes end with a newline."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from rtstyle.cli import build_parser, main
from rtstyle.progress import LineProgress, NoProgress
from tests.test_optimize import CONTENT, SIZE, STYLE, STYLE_SIZE
from tests.test_temporal import panning, write_clip

COMMANDS = {
    "eval temporal": ["eval", "temporal", "clip.mp4", "--model", "m"],
    "eval quality": ["eval", "quality", "--model", "m", "--images", "photos/"],
    "optimize": ["optimize", "c.jpg", "--style", "s.jpg", "-o", "o.png"],
    "bench": ["bench"],
    "train style": ["train", "style", "--style", "s.jpg", "--data", "d", "--out", "o.safetensors"],
}


@pytest.mark.parametrize("name", COMMANDS)
def test_progress_flags(name):
    parse = build_parser().parse_args
    argv = COMMANDS[name]
    assert parse(argv).progress == "auto"
    assert parse([*argv, "-q"]).progress == "none"
    assert parse([*argv, "--quiet"]).progress == "none"
    assert parse([*argv, "--no-progress"]).progress in ("none", False)  # train: its config field, False
    assert parse([*argv, "--progress", "json"]).progress == "json"


def test_optimize_prints_json_lines_when_asked(tmp_path, capsys):
    rc = main(["optimize", str(CONTENT), "--style", str(STYLE), "-o", str(tmp_path / "o.png"), "--iterations", "2",
               "--optimizer", "adam", "--size", str(SIZE), "--style-size", str(STYLE_SIZE), "--device", "cpu",
               "--progress", "json"])
    assert rc == 0
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    assert lines and lines[-1]["final"] is True and lines[-1]["done"] == 2 and lines[-1]["unit"] == "it"


def test_eval_temporal_prints_plain_lines_in_a_log(tmp_path, tiny_style_ckpt, capsys):
    clip = write_clip(tmp_path / "pan.mkv", panning(4, 32, 32))
    rc = main(["eval", "temporal", str(clip), "--model", str(tiny_style_ckpt), "--no-losses", "--progress", "plain",
               "--json", str(tmp_path / "t.json")])
    assert rc == 0
    err = capsys.readouterr().err
    assert re.search(r"eval temporal pan\.mkv: 4 frames, .* done in", err), err
    assert "\r" not in err
    assert (tmp_path / "t.json").read_text().endswith("}\n")


def test_the_trainer_bar_follows_the_mode():
    from rtstyle.trainers.loop import _progress

    cfg = SimpleNamespace(iterations=10, out="m.safetensors", progress="plain", max_cpu_seconds=None)
    assert isinstance(_progress(cfg, 3, 0.0, True), LineProgress)
    assert _progress(cfg, 3, 0.0, True).n == 3
    assert isinstance(_progress(cfg, 0, 0.0, False), NoProgress)  # not the main process
    assert isinstance(_progress(SimpleNamespace(**{**vars(cfg), "progress": False}), 0, 0.0, True), NoProgress)
    # A CPU budget: the bar counts CPU seconds, a resume starting from those already spent.
    budget = _progress(SimpleNamespace(**{**vars(cfg), "max_cpu_seconds": 60.0}), 3, 12.5, True)
    assert (budget.total, budget.n, budget.unit) == (60.0, 12.5, "CPU second")


def test_json_files_end_with_a_newline():
    """Every place that writes a JSON document to a file adds the final newline."""
    root = Path(__file__).resolve().parents[1]
    offenders = []
    for folder in ("rtstyle", "benchmarks", "trainers", "export"):
        for path in (root / folder).rglob("*.py"):
            for n, line in enumerate(path.read_text().splitlines(), 1):
                if "write_text(json.dumps(" in line and not line.rstrip().endswith('+ "\\n")'):
                    offenders.append(f"{path.relative_to(root)}:{n}")
    assert not offenders, offenders
