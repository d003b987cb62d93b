"""Real multi-node Ray clusters for the tests, on loopback only, started with plain ``ray start``.

Every process of a scenario runs inside new network and PID namespaces (``unshare -n -p -f
--mount-proc``) whose only interface is ``lo``: no listener can reach another interface (Ray binds
some services to every interface, and inside there is only loopback), ports cannot collide with
other clusters on the machine, and when the namespace's first process ends the kernel ends every
process started in it. Homes (``~/.ray/auth_token``) and Ray's temporary folder (``RAY_TMPDIR``)
are the scenario's own. Nothing here patches Ray.

* pytest side: ``namespaces_unavailable()`` (a reason to skip, or None), ``run_scenario(name,
  workdir, timeout)`` -> the scenario's record, a dict read from ``workdir/record.json``.
* inside: ``python -m tests.netns_cluster NAME WORKDIR`` runs the scenario, records what happened
  (exit codes, output, files, times) and leaves the asserting to the test.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RAY = str(Path(sys.executable).with_name("ray"))
PORT = 6379  # the README's; the namespace has its own ports
TEST_RAY_CONFIG = {
    # Ray's node health checks, quickened so that a lost node is known in about 2 s, not 30
    "RAY_health_check_initial_delay_ms": "0", "RAY_health_check_period_ms": "500",
    "RAY_health_check_timeout_ms": "500", "RAY_health_check_failure_threshold": "4",
    # workers at the test's priority, not 15 nice levels below it: on a shared, busy machine they
    # would barely run
    "RAY_worker_niceness": "0",
}


# ------------------------------------------------------------------------------------- pytest side

def namespaces_unavailable() -> str | None:
    """Why the scenarios cannot run here (None: they can)."""
    if sys.platform != "linux" or shutil.which("unshare") is None or shutil.which("ip") is None:
        return "needs Linux with unshare and ip (util-linux, iproute2)"
    probe = subprocess.run(["unshare", "-n", "-p", "-f", "--mount-proc", "sh", "-c", "ip link set lo up"],
                           capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        return (f"cannot create network and PID namespaces here (unshare -n -p: {probe.stderr.strip()[:200]}); "
                f"they need root or user namespaces")
    return None


def run_scenario(name: str, workdir: Path, timeout: float) -> dict:
    """Run scenario ``name`` in fresh namespaces; its record. The whole namespace is killed on timeout."""
    inner = f"ip link set lo up && exec {shlex.quote(sys.executable)} -m tests.netns_cluster {name} {workdir}"
    log = workdir / "scenario.log"
    with log.open("w") as out:
        proc = subprocess.Popen(["unshare", "-n", "-p", "-f", "--mount-proc", "sh", "-c", inner], cwd=REPO,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**clean_env(), "PYTHONPATH": str(REPO)})
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the namespace's first process: the kernel ends the rest
            proc.wait()
            raise AssertionError(f"scenario {name} did not finish in {timeout:.0f} s:\n{log.read_text()[-4000:]}") from None
    record = workdir / "record.json"
    assert record.exists(), f"scenario {name} left no record (exit {proc.returncode}):\n{log.read_text()[-4000:]}"
    return json.loads(record.read_text())


def clean_env() -> dict:
    """This process's environment without Ray's or rtstyle's settings (a test may have set some)."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "RTSTYLE_"))}


# ------------------------------------------------------------------------------------- inside

class Scenario:
    """The nodes, the runs and the record of one scenario (inside the namespaces)."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.tmp = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))  # short: Ray's socket paths must fit 107 bytes
        self.record: dict = {"steps": {}}
        self.started = time.monotonic()
        self.nodes: list[subprocess.Popen] = []

    def env(self, home: str = "home", **extra: str) -> dict:
        home_dir = self.workdir / home
        home_dir.mkdir(exist_ok=True)
        return {**clean_env(), "HOME": str(home_dir), "RAY_TMPDIR": str(self.tmp), "RAY_USAGE_STATS_ENABLED": "0",
                "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", **TEST_RAY_CONFIG, **extra}

    def run(self, step: str, argv: list[str], env: dict, timeout: float = 300) -> dict:
        started = time.monotonic()
        try:
            done = subprocess.run(argv, env=env, cwd=self.workdir, capture_output=True, text=True, timeout=timeout,
                                  check=False)
            out = {"rc": done.returncode, "stdout": done.stdout, "stderr": done.stderr}
        except subprocess.TimeoutExpired as exc:
            out = {"rc": None, "stdout": str(exc.stdout), "stderr": f"timed out after {timeout} s"}
        out["seconds"] = round(time.monotonic() - started, 2)
        self.record["steps"][step] = out
        self.save()
        return out

    def head(self, env: dict, cpus: int, *extra: str) -> dict:
        """The README's head command, as written, plus this machine's settings."""
        return self.run("head", [RAY, "start", "--head", "--port", str(PORT), "--node-ip-address", "127.0.0.1",
                                 "--num-cpus", str(cpus), "--include-dashboard", "false", "--disable-usage-stats",
                                 *extra], env, timeout=120)

    def node(self, env: dict, cpus: int) -> subprocess.Popen:
        """The README's worker-node command: a second raylet joining the head (``--block``: this process
        is the node, its raylet a child)."""
        log = (self.workdir / f"node{len(self.nodes)}.log").open("w")
        proc = subprocess.Popen([RAY, "start", "--address", f"127.0.0.1:{PORT}", "--node-ip-address", "127.0.0.1",
                                 "--num-cpus", str(cpus), "--block", "--disable-usage-stats"],
                                env=env, cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT)
        self.nodes.append(proc)
        return proc

    def wait_nodes(self, count: int, env: dict, timeout: float = 120) -> None:
        code = (f"import ray, time, sys; ray.init(address='127.0.0.1:{PORT}', log_to_driver=False)\n"
                f"t = time.time()\nwhile sum(n['Alive'] for n in ray.nodes()) < {count} and time.time() - t < {timeout}:\n"
                f"    time.sleep(0.2)\nsys.exit(0 if sum(n['Alive'] for n in ray.nodes()) >= {count} else 1)")
        step = self.run(f"wait_{count}_nodes", [sys.executable, "-c", code], env, timeout=timeout + 60)
        if step["rc"] != 0:
            raise RuntimeError(f"the cluster did not reach {count} nodes: {step['stderr'][-1000:]}")

    def save(self) -> None:
        self.record["seconds"] = round(time.monotonic() - self.started, 2)
        tmp = self.workdir / "record.json.tmp"
        tmp.write_text(json.dumps(self.record, indent=1))
        os.replace(tmp, self.workdir / "record.json")


def raylet_of(node: subprocess.Popen) -> int:
    """The pid of the raylet a ``ray start --block`` process started."""
    for _ in range(200):
        for pid in _children(node.pid):
            if Path(f"/proc/{pid}/comm").read_text().strip() == "raylet":
                return pid
        time.sleep(0.1)
    raise RuntimeError("no raylet under the node process")


def descendants(pid: int) -> set[int]:
    found, todo = set(), [pid]
    while todo:
        for child in _children(todo.pop()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    return out


def kill_raylet_when_busy(node: subprocess.Popen, pids: Path, after: float, timeout: float = 180) -> dict:
    """SIGKILL ``node``'s raylet (by pid) once one of its workers is stylizing (the slow engine wrote its
    pid into ``pids``) and ``after`` seconds more have passed; what was killed, and when."""
    raylet = raylet_of(node)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        mine = descendants(raylet)
        busy = [int(p.stem) for p in pids.glob("*.pid") if int(p.stem) in mine]
        if busy:
            time.sleep(after)
            os.kill(raylet, signal.SIGKILL)
            return {"raylet": raylet, "worker": busy[0], "at": time.time()}
        time.sleep(0.05)
    raise RuntimeError("no worker of that node started an item")


def cluster_job(s: Scenario, name: str, inputs: Path, address: str, workers: int | None, delay: float,
                **cluster) -> subprocess.Popen:
    """A job through the library with a slow engine (so a node can be lost mid-file), in its own
    process: ``python -m tests.netns_cluster job WORKDIR NAME``; it writes ``NAME.result.json``."""
    spec = {"name": name, "inputs": str(inputs), "address": address, "workers": workers, "delay": delay,
            "cluster": cluster}
    (s.workdir / f"{name}.spec.json").write_text(json.dumps(spec))
    log = (s.workdir / f"{name}.log").open("w")
    return subprocess.Popen([sys.executable, "-m", "tests.netns_cluster", "job", str(s.workdir), name],
                            env=s.env(), cwd=REPO, stdout=log, stderr=subprocess.STDOUT)


def _job(workdir: Path, name: str) -> None:
    from rtstyle.cluster import ClusterConfig, run_cluster
    from rtstyle.stylize import StylizeConfig
    from rtstyle.video import EncoderConfig
    from tests.helpers_cluster import SlowEngineFactory

    spec = json.loads((workdir / f"{name}.spec.json").read_text())
    pids = workdir / f"{name}.pids"
    pids.mkdir()
    config = StylizeConfig(inputs=(Path(spec["inputs"]),), model=str(workdir / "tiny.safetensors"),
                           output=workdir / name, device="cpu", batch_size=2, progress=False,
                           encoder=EncoderConfig(preset="ultrafast"), stats_path=workdir / f"{name}.stats.json")
    started = time.time()
    notes: list[str] = []
    try:
        report = run_cluster(config, ClusterConfig(address=spec["address"], workers=spec["workers"], segment_seconds=0,
                                                   **spec["cluster"]),
                             engine_factory=SlowEngineFactory(spec["delay"], pids), on_note=notes.append)
        result = {"failed": [f.error for f in report.failed], "summary": report.summary_lines()}
    except Exception as exc:  # noqa: BLE001 - recorded for the test to judge
        result = {"error": f"{type(exc).__name__}: {exc}"}
    result.update(started=started, ended=time.time(), notes=notes)
    (workdir / f"{name}.result.json").write_text(json.dumps(result, indent=1))


def outputs(folder: Path) -> dict:
    """Every file in ``folder`` (hidden ones too): size, inode, mtime, and for videos the frames that
    decode and the run tag."""
    import av

    from rtstyle.video.tag import read_tag

    found = {}
    for path in sorted(folder.iterdir()) if folder.exists() else []:
        st = path.stat()
        entry = {"size": st.st_size, "ino": st.st_ino, "mtime_ns": st.st_mtime_ns}
        if not path.name.startswith("."):
            try:
                with av.open(str(path)) as c:
                    entry["frames"] = sum(1 for _ in c.decode(video=0))
            except av.FFmpegError as exc:
                entry["frames"] = f"undecodable: {exc}"
            tag = read_tag(path)
            entry["tag"] = None if tag is None else {"frames": tag.frames, "end": tag.end}
        found[path.name] = entry
    return found


def two_nodes(s: Scenario) -> None:
    """The README's real-cluster recipe on two 1-CPU nodes: a quiet job over every container with one
    worker, a rerun after one output is lost (a last single file), a finished job rerun (nothing
    rewritten), then the second node's raylet killed mid-job."""
    env = s.env()
    if s.head(env, 1)["rc"] != 0:
        return
    node = s.node(env, 1)
    s.wait_nodes(2, env)
    rtstyle = [sys.executable, "-m", "rtstyle", "stylize", "clips", "-o", "styled", "--model", "tiny.safetensors",
               "--device", "cpu", "--preset", "ultrafast", "--segment-seconds", "0"]
    s.run("quiet", [*rtstyle, "--ray", f"127.0.0.1:{PORT}", "--workers", "1", "-q"], env)
    s.record["after_quiet"] = outputs(s.workdir / "styled")
    lost = sorted(s.workdir.joinpath("styled").glob("*.mp4"))[0]
    lost.unlink()
    s.record["lost"] = lost.name
    readme = [sys.executable, "-m", "rtstyle", "stylize", "clips", "-o", "styled", "--model", "tiny.safetensors",
              "--ray", "auto", "--skip-existing", "--stats", "job.json", "--device", "cpu", "--preset", "ultrafast",
              "--segment-seconds", "0", "--progress", "plain"]
    s.run("last_file", readme, env)
    s.record["after_last_file"] = outputs(s.workdir / "styled")
    s.record["last_file_stats"] = json.loads((s.workdir / "job.json").read_text())
    s.run("finished", [*readme, "-y"], env)
    s.record["after_finished"] = outputs(s.workdir / "styled")
    job = cluster_job(s, "nodeloss", s.workdir / "four", f"127.0.0.1:{PORT}", 2, 0.4)
    s.record["killed"] = kill_raylet_when_busy(node, s.workdir / "nodeloss.pids", after=0.5)
    job.wait(600)
    s.record["nodeloss"] = json.loads((s.workdir / "nodeloss.result.json").read_text())
    s.record["nodeloss_stats"] = json.loads((s.workdir / "nodeloss.stats.json").read_text())
    s.record["after_nodeloss"] = outputs(s.workdir / "nodeloss")


def token_and_stall(s: Scenario) -> None:
    """A head with Ray's token authentication (a token file in its home) and no CPUs, one 1-CPU node:
    joins without a token, with a wrong one, with the user's token file (passed through); then the
    only node that can host a worker is lost mid-job."""
    env = s.env()
    s.run("token", [RAY, "get-auth-token", "--generate"], env)
    if s.head(env, 0)["rc"] != 0:  # Ray turns token authentication on: a token exists in its home
        return
    node = s.node({**env, "RAY_AUTH_MODE": "token"}, 1)  # a worker node joins with RAY_AUTH_MODE=token
    s.wait_nodes(2, {**env, "RAY_AUTH_MODE": "token"})
    job = [sys.executable, "-m", "rtstyle", "stylize", "clips/one.mp4", "-o", "styled", "--model", "tiny.safetensors",
           "--device", "cpu", "--preset", "ultrafast", "--ray", f"127.0.0.1:{PORT}", "-q"]
    quick = {"RAY_gcs_server_port_wait_time_s": "3"}  # Ray's connect window, shortened for the failing joins
    s.run("no_token", job, s.env("stranger", **quick))
    s.run("wrong_token", job, s.env("stranger", RAY_AUTH_TOKEN="0123456789abcdef" * 2, **quick))
    s.run("with_token", job, env)  # the user's ~/.ray/auth_token, RAY_AUTH_MODE unset
    s.record["after_with_token"] = outputs(s.workdir / "styled")
    job = cluster_job(s, "stall", s.workdir / "two", f"127.0.0.1:{PORT}", None, 0.4, stall_timeout=4)
    s.record["killed"] = kill_raylet_when_busy(node, s.workdir / "stall.pids", after=0.5)
    job.wait(600)
    s.record["stall"] = json.loads((s.workdir / "stall.result.json").read_text())
    s.record["stall_stats"] = json.loads((s.workdir / "stall.stats.json").read_text())
    s.record["after_stall"] = outputs(s.workdir / "stall")


SCENARIOS = {"two_nodes": two_nodes, "token_and_stall": token_and_stall}


def main(argv: list[str]) -> int:
    if argv[0] == "job":
        _job(Path(argv[1]), argv[2])
        return 0
    name, workdir = argv[0], Path(argv[1])
    s = Scenario(workdir)
    try:
        SCENARIOS[name](s)
    except Exception as exc:  # noqa: BLE001 - recorded for the test to report
        s.record["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        s.save()
    return 0  # leaving ends every process of the namespace


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
