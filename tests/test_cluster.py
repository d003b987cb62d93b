"""``rtstyle stylize --ray local``: a private Ray cluster on loopback with two 1-CPU workers, shared
by the module (Ray starts slowly). Outputs are compared with a single-machine run frame for frame;
a worker killed mid-file is retried by Ray; a stop (Ctrl-C, SIGTERM) finalises partial outputs as
a single-machine run does. Real multi-node clusters (a node lost, token authentication, no node
left) are in test_cluster_nodes.py."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from rtstyle.cli import main
from rtstyle.cluster import ClusterConfig, plan_job, run_cluster
from rtstyle.errors import Interrupted
from rtstyle.stylize import StylizeConfig, stylize_files
from rtstyle.video import EncoderConfig
from rtstyle.video.tag import read_tag
from tests.conftest import REPO, TINY_STYLE, _save
from tests.helpers_cluster import (
    DyingEngineFactory,
    SlowEngineFactory,
    audio_packets,
    keyframe_times,
    make_keyframed_clip,
    same_video,
)
from tests.helpers_video import make_clip, read_frames
from tests.netns_cluster import clean_env, descendants
from tests.test_reliability import leftovers

ray = pytest.importorskip("ray")


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def isolated_ray_env(home: Path) -> dict:
    """Environment for a child that starts Ray: its own home (Ray 2.60 reads and writes
    ~/.ray/auth_token), no address or authentication settings inherited from this process."""
    home.mkdir(parents=True, exist_ok=True)
    return {**clean_env(), "HOME": str(home), "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1",
            "RAY_USAGE_STATS_ENABLED": "0"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    from rtstyle.cluster import start_local

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # like the workers (Ray gives each one CPU here): same speed, no oversubscription
    home = tmp_path_factory.mktemp("home")
    saved = {k: os.environ.get(k) for k in ("HOME", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")}
    os.environ["HOME"] = str(home)  # Ray 2.60 would read (and write) ~/.ray/auth_token there
    before = descendants(os.getpid())
    start_local(num_cpus=2)
    started = descendants(os.getpid()) - before
    yield started
    ray.shutdown()
    for k, v in saved.items():
        os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    torch.set_num_threads(threads)
    deadline = time.time() + 20
    while time.time() < deadline and any(_alive(p) for p in started):
        time.sleep(0.2)
    left = [p for p in started if _alive(p)]
    assert not left, f"Ray processes left running after shutdown: {left}"
    assert not (home / ".ray").exists(), "Ray wrote a token into the home folder"


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Two short clips and one 3-second clip with keyframes every 0.5 s, and a tiny model."""
    root = tmp_path_factory.mktemp("cluster")
    folder = root / "clips"
    folder.mkdir()
    make_clip(folder / "a.mp4", frames=10, size=(40, 32))
    make_clip(folder / "b.mkv", frames=14, size=(40, 32), vfr=True)
    make_keyframed_clip(folder / "long.mp4", frames=72, fps=24, gop=12)
    model = _save(root / "tiny.safetensors", TINY_STYLE, "style")
    return root, folder, model


def _config(folder: Path, model: Path, output: Path, **kw) -> StylizeConfig:
    kw.setdefault("progress", False)
    return StylizeConfig(inputs=(folder,), model=str(model), output=output, device="cpu",
                         encoder=EncoderConfig(preset="ultrafast"), **kw)


@pytest.fixture(scope="module")
def reference(clips, cluster):
    root, folder, model = clips
    stylize_files(_config(folder, model, root / "single"))
    return root / "single"


def _loopback_only(pids: set[int]) -> bool:
    """Every TCP socket the processes ``pids`` listen on is on the loopback interface (and there is one)."""
    ss = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=False)
    if ss.returncode != 0:
        pytest.skip("ss is not available")
    mine = [line for line in ss.stdout.splitlines() if any(f"pid={p}," in line for p in pids)]
    assert mine, "no listening socket found for the Ray processes"
    loopback = ("127.0.0.1:", "[::ffff:127.0.0.1]:", "[::1]:")
    assert all(line.split()[3].startswith(loopback) for line in mine), "\n".join(mine)
    return True


def test_local_cluster_listens_on_loopback_only(cluster):
    assert _loopback_only(descendants(os.getpid()) | {os.getpid()})


def test_folder_on_two_workers_matches_single_machine(clips, reference, tmp_path, monkeypatch, capsys):
    """The README's ``--ray local`` command on a folder: the same files, frames, timestamps and audio as
    a single-machine run; the long clip goes as segments; each worker reserves one CPU and every
    backend in it keeps to one thread."""
    _, folder, model = clips
    (cmd,) = [c for c in _readme_commands() if "local" in c]
    monkeypatch.chdir(tmp_path)  # the README's relative paths: workers get them made absolute
    shutil.copytree(folder, tmp_path / "clips")
    out, stats = tmp_path / "styled", tmp_path / "job.json"
    args = [str(model) if a == "starry_night" else a for a in cmd[1:]]
    code = main([*args, "--device", "cpu", "--preset", "ultrafast", "--segment-seconds", "1", "--progress", "plain"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "3 done, 0 skipped, 0 failed" in captured.out
    names = sorted(p.name for p in reference.iterdir())
    assert names == sorted(p.name for p in out.iterdir()) == ["a_tiny.mp4", "b_tiny.mp4", "long_tiny.mp4"]
    for name in names:
        ok, why = same_video(reference / name, out / name)
        assert ok, f"{name}: {why}"
    report = json.loads(stats.read_text())
    long = next(v for v in report["videos"] if v["input"].endswith("long.mp4"))
    # 3 s cut about every second at keyframes: three segments joined back with the same audio packets
    assert long["segments"] == 3 and long["frames"] == 72 and long["status"] == "done" and long["join_s"] > 0
    assert keyframe_times(folder / "long.mp4")[:3] == [0.0, 0.5, 1.0]
    assert audio_packets(out / "long_tiny.mp4") == audio_packets(reference / "long_tiny.mp4")
    totals = report["cluster"]
    assert totals["done"] == 3 and totals["frames"] == 10 + 14 + 72 and totals["first_start_s"] is not None
    assert totals["resources"]["workers"] == 2 and totals["resources"]["per_worker"] == {"CPU": 1.0}
    assert report["workers"] and all(w["threads"] == 1 for w in report["workers"]), report["workers"]
    assert all(v["device"] and v["workers"] and v["fps"] > 0 and v["retries"] == 0 for v in report["videos"])
    for name in names:  # every output says which run finished it, for --skip-existing
        tag = read_tag(out / name)
        assert tag is not None and tag.end == "done" and tag.frames == len(read_frames(out / name)[0])
    assert not leftovers(out), "hidden partial or segment files left"


def _kill_first(pids: Path, killed: list[int], after: float = 0.3) -> threading.Thread:
    def kill():
        deadline = time.time() + 90
        while time.time() < deadline and not killed:
            found = sorted(pids.glob("*.pid"))
            if found:
                killed.append(int(found[0].stem))
                time.sleep(after)  # mid-file: a few batches in
                os.kill(killed[0], signal.SIGKILL)
            time.sleep(0.05)

    thread = threading.Thread(target=kill, daemon=True)
    thread.start()
    return thread


def test_worker_killed_mid_file_is_retried_by_ray(clips, reference, tmp_path):
    _, folder, model = clips
    pids = tmp_path / "pids"
    pids.mkdir()
    killed: list[int] = []
    killer = _kill_first(pids, killed)
    config = _config(folder, model, tmp_path / "out", batch_size=2)
    report = run_cluster(config, ClusterConfig(workers=2, segment_seconds=0, max_retries=2),
                         engine_factory=SlowEngineFactory(0.1, pids))
    killer.join()
    assert killed, "no worker started"
    assert not report.failed, report.summary_lines()
    assert sum(f.retries for f in report.files) == 1
    retried = next(f for f in report.files if f.retries)
    assert str(killed[0]) not in " ".join(retried.workers)  # finished by another worker process
    for f in report.files:
        ok, why = same_video(reference / f.output.name, f.output)
        assert ok, f"{f.output.name}: {why}"
    assert not leftovers(tmp_path / "out")


def test_a_file_whose_worker_dies_on_every_attempt_is_reported_failed(clips, tmp_path):
    """Ray's retries run out (the worker is killed at every attempt): the file is reported failed with
    why and how often, the job ends (exit 1 from the CLI), and no partial file is left."""
    _, folder, model = clips
    pids = tmp_path / "pids"
    pids.mkdir()
    config = _config(folder / "a.mp4", model, tmp_path / "out" / "a.mp4")
    report = run_cluster(config, ClusterConfig(workers=1, max_retries=1), engine_factory=DyingEngineFactory(0, pids))
    (failed,) = report.failed
    assert "its worker was lost on every attempt (2;" in failed.error and failed.retries == 1, failed
    assert len(list(pids.glob("*.pid"))) == 2  # two worker processes, each killed
    assert not (tmp_path / "out").exists() or not leftovers(tmp_path / "out")


def test_later_jobs_of_a_driver_reuse_its_journal_actor(clips, cluster, tmp_path):
    """The journal (which attempt of an item ran where) is an actor, a process of its own: started by
    a driver's first job and kept for the next, as Ray keeps the driver's worker processes, so a
    later job's first item does not wait seconds for it to start."""
    from rtstyle.cluster import run as cluster_run

    _, folder, model = clips
    actors = []
    for name in ("one", "two"):
        report = run_cluster(_config(folder / "a.mp4", model, tmp_path / f"{name}.mp4"), ClusterConfig(workers=1))
        assert not report.failed, report.summary_lines()
        (handle,) = cluster_run._JOURNALS.values()
        actors.append(handle._actor_id.hex())
    assert actors[0] == actors[1]


def test_skip_existing_does_only_the_rest(clips, reference, tmp_path, capsys):
    _, folder, model = clips
    out = tmp_path / "out"
    shutil.copytree(reference, out)
    (out / "a_tiny.mp4").unlink()  # never written
    # a finished output of another window (-t 1): playable, tagged done, but not this job's
    other = _config(folder / "long.mp4", model, out / "long_tiny.mp4", duration=1.0, overwrite=True)
    stylize_files(dataclasses.replace(other, inputs=(folder / "long.mp4",)))
    kept = (out / "b_tiny.mp4").stat()

    # Without -y the incomplete output is not replaced: the plan lists it as a failure, with why.
    plan = plan_job(_config(folder, model, out), ClusterConfig(skip_existing=True))
    assert [p.name for _, p in plan.skipped] == ["b_tiny.mp4"] and [j.src.name for j in plan.files] == ["a.mp4"]
    assert len(plan.failed) == 1 and "long_tiny.mp4" in plan.failed[0][2] and "pass -y" in plan.failed[0][2]
    assert "another window" in plan.failed[0][2]

    args = ["stylize", str(folder), "-o", str(out), "--model", str(model), "--device", "cpu", "--preset", "ultrafast",
            "--ray", "local", "--skip-existing", "--progress", "plain", "--segment-seconds", "0"]
    assert main([*args, "-y"]) == 0
    assert "2 done, 1 skipped, 0 failed" in capsys.readouterr().out
    assert (out / "b_tiny.mp4").stat().st_mtime_ns == kept.st_mtime_ns
    for name in ("a_tiny.mp4", "b_tiny.mp4", "long_tiny.mp4"):
        ok, why = same_video(reference / name, out / name)
        assert ok, f"{name}: {why}"
    before = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.iterdir()}
    assert main([*args, "-y"]) == 0  # a finished job: nothing to do, nothing rewritten
    assert "0 done, 3 skipped, 0 failed" in capsys.readouterr().out
    assert before == {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.iterdir()}


def test_stop_finalises_running_outputs_and_writes_stats(clips, tmp_path):
    """A stop (what Ctrl-C and SIGTERM set) mid-job: Ray cancels the tasks; the running ones finalise a
    playable partial output, tagged as such; the queued ones write nothing; the stats list both."""
    _, folder, model = clips
    pids = tmp_path / "pids"
    pids.mkdir()
    stop = threading.Event()

    def stop_when_running():
        deadline = time.time() + 90
        while time.time() < deadline and not list(pids.glob("*.pid")):
            time.sleep(0.05)
        time.sleep(0.5)  # a few batches in
        stop.set()

    threading.Thread(target=stop_when_running, daemon=True).start()
    stats = tmp_path / "job.json"
    config = _config(folder, model, tmp_path / "out", batch_size=1, stats_path=stats)
    with pytest.raises(Interrupted, match="interrupted: .* partial outputs finalised"):
        run_cluster(config, ClusterConfig(workers=1, segment_seconds=0), engine_factory=SlowEngineFactory(0.2, pids),
                    stop=stop)
    report = json.loads(stats.read_text())
    status = {Path(v["input"]).name: v for v in report["videos"]}
    partial = [v for v in status.values() if v["status"] == "interrupted"]
    assert len(partial) == 1 and report["cluster"]["stopped"], report
    out = Path(partial[0]["output"])
    tag = read_tag(out)
    assert tag.end == "stop" and 0 < tag.frames == partial[0]["frames"] == len(read_frames(out)[0])
    assert all(v["status"] in ("interrupted", "not started", "done") for v in status.values())
    assert not leftovers(tmp_path / "out")


@pytest.mark.parametrize("signum, group", [(signal.SIGTERM, False), (signal.SIGINT, True)], ids=["sigterm", "ctrl-c"])
def test_a_signal_stops_the_cli_like_a_single_machine_run(tmp_path, signum, group):
    """A real process and a real signal: SIGTERM to the driver, or SIGINT to its whole process group
    (what Ctrl-C in a terminal sends, Ray's processes included): exit 130, no native stack dump from
    Ray, --stats written, the running file's partial output finalised, playable and tagged as such."""
    frames = 720  # far more than are done before the signal, even on a quiet machine
    src = make_clip(tmp_path / "in.mp4", frames=frames, size=(320, 240), audio=False)
    model = _save(tmp_path / "tiny.safetensors", TINY_STYLE, "style")
    out, stats = tmp_path / "out", tmp_path / "job.json"
    argv = [sys.executable, "-m", "rtstyle", "stylize", str(src), "-o", str(out), "--model", str(model),
            "--device", "cpu", "--backend", "torch", "--preset", "ultrafast", "--batch-size", "1", "--ray", "local",
            "--stats", str(stats), "-q"]
    proc = subprocess.Popen(argv, cwd=REPO, env=isolated_ray_env(tmp_path / "home"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            partials = list(out.glob(".in_tiny.partial-*")) if out.exists() else []
            if partials and partials[0].stat().st_size > 4000:
                break
            time.sleep(0.05)
        assert proc.poll() is None, f"the job ended before the signal: {proc.communicate()}"
        if group:
            os.killpg(proc.pid, signum)
        else:
            proc.send_signal(signum)
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, stderr
    assert stdout == "", stdout  # -q
    assert "SIGTERM received" not in stderr and "PC: @" not in stderr and "Traceback" not in stderr, stderr
    assert "interrupted: 0 of 1 files done, 1 partial outputs finalised" in stderr, stderr
    report = json.loads(stats.read_text())
    (video,) = report["videos"]
    assert video["status"] == "interrupted" and 0 < video["frames"] < frames
    assert len(read_frames(out / "in_tiny.mp4")[0]) == video["frames"] == read_tag(out / "in_tiny.mp4").frames
    assert read_tag(out / "in_tiny.mp4").end == "stop"
    assert not leftovers(out) and not (tmp_path / "home" / ".ray").exists()


def test_progress_none_prints_nothing_and_a_failed_file_exits_1(clips, cluster, tmp_path, capsys):
    """``--progress none`` (what ``-q`` sets) with --ray: not a line on success. A file that fails in
    its worker (an unreadable picture: the item raises, which Ray does not retry) is still named, with
    why, and the exit code is 1."""
    _, folder, model = clips
    base = ["--model", str(model), "--device", "cpu", "--preset", "ultrafast", "--ray", "local", "--progress", "none"]
    assert main(["stylize", str(folder / "a.mp4"), "-o", str(tmp_path / "a.mp4"), *base]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == "", captured
    assert read_tag(tmp_path / "a.mp4").end == "done"
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not a picture" * 64)
    assert main(["stylize", str(broken), "-o", str(tmp_path / "broken_out.jpg"), *base]) == 1
    captured = capsys.readouterr()
    assert captured.out.startswith("0 done, 0 skipped, 1 failed"), captured
    assert "broken.jpg" in captured.err and "failed" in captured.err, captured.err
    assert not (tmp_path / "broken_out.jpg").exists() and not leftovers(tmp_path)


def _readme_commands() -> list[list[str]]:
    """Commands in the code blocks of the README's "Many machines" section."""
    import shlex

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = text.split("## Many machines", 1)[1].split("\n## ", 1)[0]
    commands = []
    for block in section.split("```")[1::2]:
        for line in block.splitlines()[1:]:
            line = line.split("#", 1)[0].strip()
            if line and not line.startswith(("pip ", "export ", "scp ")):
                commands.append(shlex.split(line))
    return commands
