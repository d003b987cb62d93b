"""Issue 15: --stats and eval temporal --json follow the one output rule (never an input, never
replaced without -y)."""

from __future__ import annotations

import json

import pytest

from rtstyle.cli import main
from tests.helpers_video import make_clip


def run(capsys, *argv) -> tuple[int, str, list[str]]:
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, [line for line in captured.err.strip().splitlines() if not line.startswith("engine: ")]


@pytest.fixture
def folder(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for name in ("a", "c"):
        make_clip(src / f"{name}.mp4", frames=4, size=(32, 32))
    (src / "b.mp4").write_text("not a video")
    (src / "d.mp4").write_bytes(b"")
    return src


def stylize(folder, out, *extra):
    return ["stylize", folder, "-o", out, "--model", "starry_night", "--no-progress", "--preset", "ultrafast",
            "--device", "cpu", *extra]










def test_stats_may_not_replace_an_input_or_an_existing_file(tmp_path, capsys):
    src = make_clip(tmp_path / "in.mp4", frames=3, size=(32, 32))
    code, _, err = run(capsys, *stylize(src, tmp_path / "o.mp4", "--stats", src))
    assert code == 2 and "is the input" in err[0] and src.stat().st_size > 1000
    stats = tmp_path / "stats.json"
    stats.write_text("keep")
    code, _, err = run(capsys, *stylize(src, tmp_path / "o.mp4", "--stats", stats))
    assert code == 2 and "stats.json exists; pass -y" in err[0] and stats.read_text() == "keep"
    assert not (tmp_path / "o.mp4").exists()
    assert run(capsys, *stylize(src, tmp_path / "o.mp4", "--stats", stats, "-y"))[0] == 0
    assert json.loads(stats.read_text())["videos"][0]["frames_out"] == 3


def test_eval_temporal_json_follows_the_rule(tmp_path, capsys):
    src = make_clip(tmp_path / "in.mp4", frames=3, size=(32, 32))
    code, _, err = run(capsys, "eval", "temporal", src, "--model", "starry_night", "--json", src, "--no-losses")
    assert code == 2 and "is the input" in err[0]
    report = tmp_path / "r.json"
    report.write_text("keep")
    code, _, err = run(capsys, "eval", "temporal", src, "--model", "starry_night", "--json", report, "--no-losses")
    assert code == 2 and "exists; pass -y" in err[0] and report.read_text() == "keep"

