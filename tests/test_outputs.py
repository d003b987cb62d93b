"""Issue 15: the one output rule (rtstyle.outputs) at the library level; the commands that use it
are covered in test_output_commands.py."""

from __future__ import annotations

import multiprocessing
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from rtstyle.errors import OutputError
from rtstyle.outputs import OutputPolicy, clean_stale_partials, partial_path, rename_noreplace


def write(policy: OutputPolicy, path: Path, text: str, inputs=()) -> None:
    with policy.writing(path, inputs) as tmp:
        tmp.write_text(text)


def test_existing_output_refused_unless_y(tmp_path):
    out = tmp_path / "out.json"
    out.write_text("old")
    with pytest.raises(OutputError, match=r"out.json exists; pass -y"):
        write(OutputPolicy(), out, "new")
    with pytest.raises(OutputError, match=r"-n never overwrites"):
        write(OutputPolicy(never=True), out, "new")
    assert out.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]
    write(OutputPolicy(overwrite=True), out, "new")
    assert out.read_text() == "new"
    with pytest.raises(OutputError, match="contradict"):
        OutputPolicy(overwrite=True, never=True)


def test_output_may_not_be_an_input_even_through_links(tmp_path):
    src = tmp_path / "in.mp4"
    src.write_text("video")
    (tmp_path / "link.mp4").symlink_to(src)
    os.link(src, tmp_path / "hard.mp4")
    for out in (src, tmp_path / "link.mp4", tmp_path / "hard.mp4", tmp_path / "sub" / ".." / "in.mp4"):
        with pytest.raises(OutputError, match="is the input"):
            write(OutputPolicy(overwrite=True), out, "x", inputs=[src])
    assert src.read_text() == "video"


def test_file_appearing_during_the_run_is_not_replaced(tmp_path):
    out = tmp_path / "out.png"
    with pytest.raises(OutputError, match="appeared while this run was writing it"):
        with OutputPolicy().writing(out) as tmp:
            tmp.write_text("mine")
            out.write_text("theirs")  # another run finished first
    assert out.read_text() == "theirs" and not partial_path(out).exists()


def _racer(path: str, barrier, results) -> None:
    try:
        with OutputPolicy().writing(Path(path)) as tmp:
            tmp.write_text(str(os.getpid()))
            barrier.wait(10)  # both runs have checked and written before either renames
        results.put("ok")
    except OutputError as exc:
        results.put(f"refused: {exc}")


def test_two_runs_writing_one_path_cannot_both_succeed(tmp_path):
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_racer, args=(str(tmp_path / "same.json"), barrier, results)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    outcomes = sorted(results.get(timeout=5) for _ in procs)
    assert outcomes[0] == "ok" and outcomes[1].startswith("refused"), outcomes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["same.json"]


def test_every_output_gets_0666_less_the_umask(tmp_path):
    import torch
    from safetensors.torch import save_file

    out = tmp_path / "model.safetensors"
    with OutputPolicy().writing(out) as tmp:
        save_file({"x": torch.zeros(1)}, str(tmp))  # safetensors creates 0600
    old = os.umask(0o022)
    os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~old


def test_stale_partials_of_dead_processes_are_removed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    out = tmp_path / "clip.mp4"
    stale, live = partial_path(out, dead_pid), partial_path(out, os.getppid())
    stale.write_text("killed run"), live.write_text("running run")
    other = partial_path(tmp_path / "other.mp4", dead_pid)
    other.write_text("another output's")
    assert clean_stale_partials(out) == [stale]
    assert not stale.exists() and live.exists() and other.exists()


def test_bad_names_are_one_line_errors(tmp_path):
    with pytest.raises(OutputError, match="standard output"):
        OutputPolicy().check("-")
    with pytest.raises(OutputError, match="is a folder"):
        OutputPolicy(overwrite=True).check(tmp_path)
    long_name = "x" * 250 + ".mp4"  # fits NAME_MAX (255), its temporary name does not
    with pytest.raises(OutputError, match=r"name 'x+\.mp4' is too long \(254 bytes; this folder allows 2[0-9]{2}"):
        OutputPolicy().check(tmp_path / long_name)


def test_rename_noreplace_fallback_without_renameat2(tmp_path, monkeypatch):
    import rtstyle.outputs as outputs

    monkeypatch.setattr(outputs, "_renameat2", lambda src, dst: False)
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_text("a")
    b.write_text("b")
    with pytest.raises(FileExistsError):
        rename_noreplace(a, b)
    assert b.read_text() == "b" and a.exists()
    rename_noreplace(a, tmp_path / "c")
    assert (tmp_path / "c").read_text() == "a" and not a.exists()

