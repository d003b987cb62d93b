"""``rtstyle stylize --ray``: a private Ray cluster on loopback with two CPU workers, shared by the
module (Ray starts slowly). Outputs are compared with a single-machine run frame for frame."""

from __future__ import annotations

import contextlib
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
from rtstyle.stylize import StylizeConfig, stylize_files
from rtstyle.video import EncoderConfig
from tests.conftest import TINY_STYLE, _save
from tests.helpers_cluster import (
    SlowEngineFactory,
    audio_packets,
    keyframe_times,
    make_keyframed_clip,
    same_video,
)
from tests.helpers_video import make_clip

ray = pytest.importorskip("ray")


def _descendants(root: int) -> set[int]:
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(entry))
    found, todo = set(), [root]
    while todo:
        for child in parents.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture(scope="module")
def cluster():
    from rtstyle.cluster import start_local

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # like the workers (Ray gives each one CPU here): same speed, no oversubscription
    before = _descendants(os.getpid())
    start_local(num_cpus=2)
    started = _descendants(os.getpid()) - before
    yield started
    ray.shutdown()
    torch.set_num_threads(threads)
    deadline = time.time() + 20
    while time.time() < deadline and any(_alive(p) for p in started):
        time.sleep(0.2)
    left = [p for p in started if _alive(p)]
    assert not left, f"Ray processes left running after shutdown: {left}"


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
    assert _loopback_only(_descendants(os.getpid()) | {os.getpid()})


def test_folder_on_two_workers_matches_single_machine(clips, reference, tmp_path, monkeypatch, capsys):
    """The README's ``--ray local`` command on a folder: the same files, frames, timestamps and audio as
    a single-machine run; the long clip goes as segments."""
    _, folder, model = clips
    (cmd,) = [c for c in _readme_commands() if "local" in c]
    monkeypatch.chdir(tmp_path)  # the README's relative paths: workers get them made absolute
    shutil.copytree(folder, tmp_path / "clips")
    out, stats = tmp_path / "styled", tmp_path / "job.json"
    args = [str(model) if a == "starry_night" else a for a in cmd[1:]]
    code = main([*args, "--device", "cpu", "--preset", "ultrafast", "--segment-seconds", "1", "--no-progress"])
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
    assert long["segments"] == 3 and long["frames"] == 72 and long["status"] == "done"
    assert keyframe_times(folder / "long.mp4")[:3] == [0.0, 0.5, 1.0]
    assert audio_packets(out / "long_tiny.mp4") == audio_packets(reference / "long_tiny.mp4")
    assert report["cluster"]["done"] == 3 and report["cluster"]["workers"] == 2
    assert report["cluster"]["frames"] == 10 + 14 + 72
    assert all(v["device"] and v["workers"] and v["fps"] > 0 and v["retries"] == 0 for v in report["videos"])
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "hidden partial or segment files left"


def test_worker_killed_mid_file_is_retried_elsewhere(clips, reference, tmp_path):
    _, folder, model = clips
    pids = tmp_path / "pids"
    pids.mkdir()
    killed: list[int] = []

    def kill_first_worker():
        deadline = time.time() + 90
        while time.time() < deadline and not killed:
            found = sorted(pids.glob("*.pid"))
            if found:
                killed.append(int(found[0].stem))
                time.sleep(0.3)  # mid-file: a few batches in
                os.kill(killed[0], signal.SIGKILL)
            time.sleep(0.05)

    killer = threading.Thread(target=kill_first_worker, daemon=True)
    killer.start()
    config = _config(folder, model, tmp_path / "out", batch_size=2)
    report = run_cluster(config, ClusterConfig(workers=2, segment_seconds=0, max_retries=2),
                         engine_factory=SlowEngineFactory(0.1, pids))
    killer.join()
    assert killed, "no worker started"
    assert not report.failed, report.summary_lines()
    assert sum(f.retries for f in report.files) == 1
    retried = next(f for f in report.files if f.retries)
    assert str(killed[0]) not in " ".join(retried.workers)  # finished by another worker
    for f in report.files:
        ok, why = same_video(reference / f.output.name, f.output)
        assert ok, f"{f.output.name}: {why}"
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]


def test_skip_existing_does_only_the_rest(clips, reference, tmp_path, capsys):
    _, folder, model = clips
    out = tmp_path / "out"
    shutil.copytree(reference, out)
    (out / "a_tiny.mp4").unlink()  # never written
    # an interrupted run's finalised partial file: playable but shorter than the input
    partial = _config(folder / "long.mp4", model, out / "long_tiny.mp4", duration=1.0, overwrite=True)
    stylize_files(dataclasses.replace(partial, inputs=(folder / "long.mp4",)))
    kept = (out / "b_tiny.mp4").stat()

    # Without -y the incomplete output is not replaced: the plan lists it as a failure.
    plan = plan_job(_config(folder, model, out), ClusterConfig(skip_existing=True))
    assert [p.name for _, p in plan.skipped] == ["b_tiny.mp4"] and [j.src.name for j in plan.files] == ["a.mp4"]
    assert len(plan.failed) == 1 and "long_tiny.mp4" in plan.failed[0][2] and "pass -y" in plan.failed[0][2]

    args = ["stylize", str(folder), "-o", str(out), "--model", str(model), "--device", "cpu", "--preset", "ultrafast",
            "--ray", "local", "--skip-existing", "--no-progress", "--segment-seconds", "0"]
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


def _stop_group(proc: subprocess.Popen, processes: set[int]) -> None:
    """Stop the process group we started (``ray start --block`` and the raylet and workers it runs):
    SIGTERM, then SIGKILL; ``processes`` (recorded before) are then checked by pid."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    for pid in processes:
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_readme_cluster_commands_second_node_and_ray_auto(clips, reference, cluster, tmp_path):
    """The README's "Many machines" commands: a second node joins with ``ray start --address`` (its own
    raylet, on 127.0.0.1 only) and ``rtstyle stylize --ray auto`` from another process spreads the job
    over both nodes; a broken input is listed as failed while the rest is done. Last in this module:
    the module's cluster loses that node at the end."""
    _, folder, model = clips
    inputs = tmp_path / "clips"
    shutil.copytree(folder, inputs)
    (inputs / "broken.mp4").write_bytes(b"not a video at all")
    gcs = ray.get_runtime_context().gcs_address
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "OMP_NUM_THREADS": "1"}
    commands = _readme_commands()
    node_cmd = next(c for c in commands if c[:3] == ["ray", "start", "--address"])
    job_cmd = next(c for c in commands if c[:2] == ["rtstyle", "stylize"] and "auto" in c)
    log = tmp_path / "ray-start.log"
    args = [a.replace("HEAD_IP:6379", gcs) for a in node_cmd[1:]]
    node = subprocess.Popen([sys.executable, str(Path(__file__).with_name("ray_node_loopback.py")), *args,
                             "--num-cpus=1", "--block", "--disable-usage-stats"],
                            env=env, start_new_session=True, stdout=log.open("w"), stderr=subprocess.STDOUT)
    processes: set[int] = set()
    try:
        deadline = time.time() + 90
        while time.time() < deadline and node.poll() is None and sum(n["Alive"] for n in ray.nodes()) < 2:
            time.sleep(0.3)
        if sum(n["Alive"] for n in ray.nodes()) < 2:
            pytest.skip(f"a second Ray node cannot start here: {log.read_text()[-500:]}")
        job = [a.replace("/mnt/shared/clips", str(inputs)).replace("/mnt/shared/styled", str(tmp_path / "out"))
               .replace("job.json", str(tmp_path / "job.json")) for a in job_cmd[2:]]
        job = [str(model) if a == "starry_night" else a for a in job]
        run = subprocess.run([sys.executable, "-m", "rtstyle", "stylize", *job, "--device", "cpu", "--preset",
                              "ultrafast", "--workers", "3", "--segment-seconds", "1", "--no-progress"],
                             env={**env, "RAY_ADDRESS": gcs}, capture_output=True, text=True, timeout=240,
                             check=False)
        processes = _descendants(node.pid) | {node.pid}
        assert run.returncode == 1, run.stderr  # the broken input failed, the rest is done
        assert "3 done, 0 skipped, 1 failed" in run.stdout and "2 nodes" in run.stdout, run.stdout + run.stderr
        assert "broken.mp4" in run.stderr and "not a readable video" in run.stderr
        for name in ("a_tiny.mp4", "b_tiny.mp4", "long_tiny.mp4"):
            ok, why = same_video(reference / name, tmp_path / "out" / name)
            assert ok, f"{name}: {why}"
        report = json.loads((tmp_path / "job.json").read_text())
        assert report["cluster"]["nodes"] == 2 and report["cluster"]["failed"] == 1
        assert _loopback_only(processes)
    finally:
        _stop_group(node, processes)
    assert not [p for p in processes if _alive(p)]
    assert ray.is_initialized()  # --ray auto from another process left the cluster it joined running


def _readme_commands() -> list[list[str]]:
    """Commands in the code blocks of the README's "Many machines" section."""
    import shlex

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = text.split("## Many machines", 1)[1].split("\n## ", 1)[0]
    commands = []
    for block in section.split("```")[1::2]:
        for line in block.splitlines()[1:]:
            line = line.split("#", 1)[0].strip()
            if line and not line.startswith("pip "):
                commands.append(shlex.split(line))
    return commands


