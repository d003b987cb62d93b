"""Issue 15, many files: every input is checked up front and every bad one named; --keep-going
processes the rest (past bad inputs and a failure mid-batch), lists each finished file as it
completes, prints a summary and exits 1 if any failed; --stats lists the failed ones with the
reason. Also: --stats and eval temporal --json follow the one output rule."""

from __future__ import annotations

import json

import pytest

import rtstyle.stylize as stylize_module
from rtstyle.cli import main
from rtstyle.errors import InputError, OutputError
from rtstyle.stylize import StylizeConfig, plan_outputs, stylize_batch
from tests.helpers_video import IdentityEngine, make_clip


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


def tiny(folder, out, ckpt, *extra):
    return ["stylize", folder, "-o", out, "--model", ckpt, "--no-progress", "--preset", "ultrafast", "--device", "cpu",
            *extra]


def test_every_bad_input_is_named_before_any_work(tmp_path, capsys, folder, tiny_style_ckpt):
    code, out, err = run(capsys, *tiny(folder, tmp_path / "out", tiny_style_ckpt))
    assert code == 2 and len(err) == 1, err
    assert "2 of 4 inputs cannot be processed" in err[0] and "b.mp4" in err[0] and "d.mp4" in err[0]
    assert "--keep-going" in err[0] and out == "" and not (tmp_path / "out").exists()


def test_missing_inputs_are_all_named(tmp_path, capsys, tiny_style_ckpt):
    good = make_clip(tmp_path / "good.mp4", frames=2, size=(32, 32))
    code, _, err = run(capsys, *tiny(good, tmp_path / "out", tiny_style_ckpt, "-i", tmp_path / "x.mp4", "-i",
                                     tmp_path / "y.mp4"))
    assert code == 2 and len(err) == 1, err
    assert "2 of 3 inputs cannot be processed" in err[0] and "x.mp4" in err[0] and "y.mp4" in err[0]


def test_keep_going_processes_the_rest_lists_each_and_summarises(tmp_path, capsys, folder, tiny_style_ckpt):
    stats = tmp_path / "stats.json"
    code, out, err = run(capsys, *tiny(folder, tmp_path / "out", tiny_style_ckpt, "--keep-going", "--stats", stats))
    assert code == 1, err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a_tiny_style.mp4", "c_tiny_style.mp4"]
    finished = [line for line in out.splitlines() if " -> " in line]
    assert [line.split(" -> ")[0].rsplit("/", 1)[-1] for line in finished] == ["a.mp4", "c.mp4"]
    failed = [line for line in err if line.startswith("failed: ")]
    assert len(failed) == 2 and "b.mp4" in failed[0] and "d.mp4" in failed[1]
    assert "summary: 2 done, 2 failed, 0 skipped" in err
    assert "2 of 4 inputs failed" in err[-1] and "b.mp4" in err[-1] and "d.mp4" in err[-1]
    doc = json.loads(stats.read_text())
    assert [v["input"].rsplit("/", 1)[-1] for v in doc["videos"]] == ["a.mp4", "c.mp4"]
    assert [(f["input"].rsplit("/", 1)[-1], bool(f["reason"])) for f in doc["failed"]] == [("b.mp4", True),
                                                                                          ("d.mp4", True)]


def test_keep_going_every_input_bad_exits_1_without_building_an_engine(tmp_path, capsys, folder, tiny_style_ckpt):
    for name in ("a.mp4", "c.mp4"):
        (folder / name).unlink()
    code, out, err = run(capsys, *tiny(folder, tmp_path / "out", tiny_style_ckpt, "--keep-going"))
    assert code == 1 and out == ""
    assert "summary: 0 done, 2 failed, 0 skipped" in err and "2 of 2 inputs failed" in err[-1]


def test_keep_going_past_a_failure_mid_batch(tmp_path, capsys, folder, tiny_style_ckpt, monkeypatch):
    """c.mp4 passes the up-front check and then fails while running: a and e are still written,
    each listed as it finishes, before the failure of the next one is known."""
    (folder / "b.mp4").unlink()
    (folder / "d.mp4").unlink()
    make_clip(folder / "e.mp4", frames=4, size=(32, 32))
    original = stylize_module._stylize_one
    lines_before: dict[str, str] = {}
    seen_err: list[str] = []

    def fail_on_c(config, engine, src, dst, stop, display):
        so_far = capsys.readouterr()
        lines_before[src.name] = so_far.out  # what was listed before this file started
        seen_err.extend(so_far.err.splitlines())
        if src.name == "c.mp4":
            raise RuntimeError("encoder died")
        return original(config, engine, src, dst, stop, display)

    monkeypatch.setattr(stylize_module, "_stylize_one", fail_on_c)
    code, out, err = run(capsys, *tiny(folder, tmp_path / "out", tiny_style_ckpt, "--keep-going"))
    err = seen_err + err
    assert code == 1, err
    assert "a.mp4 -> " in lines_before["c.mp4"]  # a was listed as it completed, not at the end
    assert "e.mp4 -> " in out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a_tiny_style.mp4", "e_tiny_style.mp4"]
    assert any(line.startswith("failed: ") and "c.mp4" in line and "RuntimeError: encoder died" in line for line in err)
    assert "summary: 2 done, 1 failed, 0 skipped" in err


def test_without_keep_going_a_failure_mid_batch_stops_but_finished_files_are_listed(tmp_path, capsys, folder,
                                                                                     tiny_style_ckpt, monkeypatch):
    (folder / "b.mp4").unlink()
    (folder / "d.mp4").unlink()
    original = stylize_module._stylize_one

    def fail_on_c(config, engine, src, dst, stop, display):
        if src.name == "c.mp4":
            raise InputError(f"not a readable video: {src}")
        return original(config, engine, src, dst, stop, display)

    monkeypatch.setattr(stylize_module, "_stylize_one", fail_on_c)
    code, out, err = run(capsys, *tiny(folder, tmp_path / "out", tiny_style_ckpt))
    assert code == 2 and "a.mp4 -> " in out and "c.mp4" in err[-1]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a_tiny_style.mp4"]


class FailOnWide(IdentityEngine):
    """Fails on frames wider than 40 px: a real failure inside the pipeline of one file."""

    def _run(self, frames):
        if frames.shape[2] > 40:  # NHWC
            raise RuntimeError("engine failure on a wide frame")
        return super()._run(frames)


def test_library_keep_going_reports_and_calls_back(tmp_path, folder):
    (folder / "b.mp4").unlink()
    (folder / "d.mp4").unlink()
    (folder / "c.mp4").unlink()
    make_clip(folder / "c.mp4", frames=4, size=(48, 32))
    make_clip(folder / "e.mp4", frames=4, size=(32, 32))
    heard, failed = [], []
    config = StylizeConfig(inputs=(folder,), output=tmp_path / "out", keep_going=True, progress=False)
    report = stylize_batch(config, FailOnWide(), on_done=lambda r: heard.append(r.input.name),
                           on_failed=lambda src, reason: failed.append((src.name, reason)))
    assert heard == [r.input.name for r in report.done] == ["a.mp4", "e.mp4"]
    assert [(s.name, "RuntimeError" in r) for s, r in report.failed] == [("c.mp4", True)]
    assert [name for name, _ in failed] == ["c.mp4"]
    assert report.summary() == "2 done, 1 failed, 0 skipped"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a_starry_night.mp4", "e_starry_night.mp4"]
    with pytest.raises(RuntimeError, match="wide frame"):  # without keep_going the failure propagates
        stylize_batch(StylizeConfig(inputs=(folder,), output=tmp_path / "out2", progress=False), FailOnWide())


def test_n_skips_are_counted_in_the_summary(tmp_path, capsys, folder, tiny_style_ckpt):
    (folder / "b.mp4").unlink()
    (folder / "d.mp4").unlink()
    out = tmp_path / "out"
    out.mkdir()
    (out / "a_tiny_style.mp4").write_text("earlier result")
    code, stdout, err = run(capsys, *tiny(folder, out, tiny_style_ckpt, "-n"))
    assert code == 0, err
    assert (out / "a_tiny_style.mp4").read_text() == "earlier result" and (out / "c_tiny_style.mp4").is_file()
    assert any(line.startswith("skipped: ") and "a.mp4" in line for line in err)
    assert "summary: 1 done, 0 failed, 1 skipped" in err


def test_library_plan_names_every_bad_output(tmp_path):
    a = make_clip(tmp_path / "a.mp4", frames=2, size=(32, 32))
    b = make_clip(tmp_path / "b.mp4", frames=2, size=(32, 32))
    out = tmp_path / "out"
    out.mkdir()
    (out / "a_stylized.mp4").write_text("x")
    (out / "b_stylized.mp4").write_text("x")
    with pytest.raises(OutputError, match="2 of 2 inputs cannot be processed.*a_stylized.*b_stylized"):
        plan_outputs(StylizeConfig(inputs=(a, b), output=out, model=None))
    assert plan_outputs(StylizeConfig(inputs=(a, b), output=out, model=None, keep_going=True)) == []
    with pytest.raises(OutputError, match="a_stylized.mp4 exists; pass -y"):
        plan_outputs(StylizeConfig(inputs=(a,), output=out / "a_stylized.mp4", model=None))


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

