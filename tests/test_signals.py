"""Issue 15: SIGHUP (terminal closed) stops a run like SIGTERM, with a playable partial output;
a SIGINT ignored when rtstyle started stays ignored; SIGKILL leaves a partial that the next run
writing that path removes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from rtstyle.video import probe
from tests.conftest import REPO
from tests.helpers_video import make_clip, read_frames
from tests.test_reliability import _wait_for_encoded_frames, leftovers, stylize_argv


def _start(argv, ignore_sigint: bool = False) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    # SIGINT ignored from the start, as a shell does for `cmd &` in a script. Set in the child's own
    # Python before rtstyle starts (a preexec_fn would run Python between fork and exec in this
    # many-threaded test process, which is not safe).
    prelude = "import signal; signal.signal(signal.SIGINT, signal.SIG_IGN); " if ignore_sigint else ""
    code = prelude + "import runpy, sys; sys.argv[0] = 'rtstyle'; runpy.run_module('rtstyle', run_name='__main__')"
    return subprocess.Popen([sys.executable, "-c", code, *map(str, argv)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _signal_once_encoding(proc: subprocess.Popen, folder, signum: int, timeout: float = 60) -> str:
    """Send ``signum`` once the child has encoded some frames into its partial output; its stderr."""
    try:
        _wait_for_encoded_frames(folder / f".o.partial-{proc.pid}.mp4", proc)
        proc.send_signal(signum)
        return proc.communicate(timeout=timeout)[1]
    finally:
        proc.kill()


def test_sighup_finalises_a_playable_partial_output(tmp_path, tiny_style_ckpt):
    src = make_clip(tmp_path / "in.mp4", frames=400, size=(64, 48))
    out = tmp_path / "o.mp4"
    proc = _start(stylize_argv(src, out, tiny_style_ckpt, "--batch-size", "1"))
    err = _signal_once_encoding(proc, tmp_path, signal.SIGHUP)
    assert proc.returncode == 130, err
    images, _ = read_frames(out)
    assert 0 < len(images) < 400 and probe(out).audio_codecs == ("aac",) and not leftovers(tmp_path)


def test_sigkill_partial_is_removed_by_the_next_run(tmp_path, tiny_style_ckpt):
    src = make_clip(tmp_path / "in.mp4", frames=400, size=(64, 48))
    out = tmp_path / "o.mp4"
    proc = _start(stylize_argv(src, out, tiny_style_ckpt, "--batch-size", "1"))
    partial = tmp_path / f".o.partial-{proc.pid}.mp4"
    try:
        _wait_for_encoded_frames(partial, proc)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert partial.exists() and not out.exists()
    from rtstyle.outputs import OutputPolicy

    OutputPolicy().check(out, [src])  # what every writer runs first
    assert not partial.exists()


def test_ignored_signals_stay_ignored_and_handlers_are_restored():
    # Real signals, so in a fresh interpreter: raised inside this test process they would also reach
    # whatever native handlers earlier tests' libraries left installed.
    code = """
import signal, threading
from rtstyle.signals import hangup_as_terminate, interrupt_on_signals
before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
signal.signal(signal.SIGINT, signal.SIG_IGN)
with hangup_as_terminate(), interrupt_on_signals(threading.Event()) as stop:
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    signal.raise_signal(signal.SIGINT)
    assert not stop.is_set()
    signal.raise_signal(signal.SIGHUP)  # -> SIGTERM -> the run's stop
    assert stop.is_set()
assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
signal.signal(signal.SIGINT, before[signal.SIGINT])
assert {s: signal.getsignal(s) for s in before} == before
print("ok")
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]




def test_sigint_ignored_at_start_does_not_stop_the_cli(tmp_path, tiny_style_ckpt):
    src = make_clip(tmp_path / "in.mp4", frames=200, size=(64, 48))
    out = tmp_path / "o.mp4"
    proc = _start(stylize_argv(src, out, tiny_style_ckpt, "--batch-size", "1"), ignore_sigint=True)
    err = _signal_once_encoding(proc, tmp_path, signal.SIGINT, timeout=120)
    assert proc.returncode == 0, err
    assert len(read_frames(out)[0]) == 200
