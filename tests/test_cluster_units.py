"""Parts of ``--ray`` that need no cluster: how big and how many workers the nodes can host, that
every backend keeps to the CPUs a worker reserved, and the join's errors (each one line, quick)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap

import pytest

from rtstyle.cluster.resources import WorkerShape, plan_workers
from rtstyle.errors import ClusterError
from rtstyle.threads import plan_threads
from tests.conftest import REPO
from tests.helpers_video import make_clip
from tests.netns_cluster import clean_env


def cpus(*counts: int) -> list[dict]:
    return [{"CPU": float(c)} for c in counts]


def test_workers_fit_one_node_never_the_cluster_total():
    """Two 1-CPU nodes: one worker or one file left asks for 1 CPU, not 2 (the cluster's total)."""
    assert plan_workers(cpus(1, 1), False, 1) == WorkerShape(1, 1)
    assert plan_workers(cpus(1, 1), False, None) == WorkerShape(2, 1)  # default: one per node
    assert plan_workers(cpus(2), False, None) == WorkerShape(1, 2)  # --ray local on 2 cores: one, both CPUs
    assert plan_workers(cpus(2), False, 2) == WorkerShape(2, 1)
    assert plan_workers(cpus(8, 16), False, None) == WorkerShape(3, 8)  # nodes of the smallest node's size
    assert plan_workers(cpus(8, 16), False, 2) == WorkerShape(2, 8)
    assert plan_workers(cpus(8, 16), False, 4) == WorkerShape(4, 5)  # 1 + 3 workers of 5 CPUs fit
    assert plan_workers(cpus(0, 4), False, None) == WorkerShape(1, 4)  # a head without CPUs hosts none


def test_gpu_workers_take_one_gpu_and_the_cpus_beside_it():
    nodes = [{"CPU": 16.0, "GPU": 4.0}, {"CPU": 8.0, "GPU": 1.0}, {"CPU": 4.0}]
    assert plan_workers(nodes, True, None) == WorkerShape(5, 4, 1)
    shape = plan_workers(nodes, True, 2)
    assert shape.bundle == {"CPU": 4.0, "GPU": 1.0} and shape.fits({"CPU": 8, "GPU": 1}) and not shape.fits({"CPU": 4})


@pytest.mark.parametrize("nodes, use_gpu, workers, words", [
    (cpus(1, 1), False, 3, "--workers 3: the cluster has 2 CPUs on 2 nodes (1 CPU, 1 CPU)"),
    (cpus(0), False, None, "no node can host a worker (it needs 1 CPU): 1 node (0 CPU)"),
    ([{"CPU": 8.0, "GPU": 1.0}], True, 2, "--workers 2: the cluster can host 1 GPU workers"),
])
def test_workers_that_cannot_fit_are_refused_naming_the_nodes(nodes, use_gpu, workers, words):
    with pytest.raises(ClusterError, match=words.replace("(", r"\(").replace(")", r"\)")):
        plan_workers(nodes, use_gpu, workers)


def test_rtstyle_cores_caps_the_plan(monkeypatch):
    monkeypatch.setenv("RTSTYLE_CORES", "1")
    assert plan_threads().cores == 1 and plan_threads().engine == 1
    monkeypatch.setenv("RTSTYLE_CORES", "0")
    with pytest.raises(Exception, match="RTSTYLE_CORES"):
        plan_threads()


def test_every_backend_keeps_to_the_cores_a_worker_reserved(tmp_path, tiny_style_ckpt):
    """In a process told it has one core (what a Ray worker that reserved 1 CPU is told), torch,
    ONNX Runtime and OpenVINO each run one inference thread, whatever the machine has."""
    pytest.importorskip("openvino")
    pytest.importorskip("onnxruntime")
    code = textwrap.dedent(f"""
        import json, torch
        from rtstyle.engine import EngineOptions, open_engine
        from rtstyle.export.onnx_export import export_onnx
        options = EngineOptions(device="cpu", precision="fp32")
        frames = torch.randint(0, 255, (1, 24, 32, 3), dtype=torch.uint8)
        torch_engine = open_engine({str(tiny_style_ckpt)!r}, "torch", options)
        torch_engine(frames)
        ov = open_engine({str(tiny_style_ckpt)!r}, "openvino", options)
        ov(frames)
        onnx = export_onnx({str(tiny_style_ckpt)!r}, {str(tmp_path / "m.onnx")!r}).path
        ort = open_engine(onnx, "onnxruntime", options)
        ort(frames)
        compiled = [m.compiled for m in ov.shapes.values()]
        print(json.dumps({{"torch": torch.get_num_threads(), "ov": ov.threads,
                          "ov_compiled": [int(c.get_property("INFERENCE_NUM_THREADS")) for c in compiled],
                          "ort": ort.session.get_session_options().intra_op_num_threads}}))
    """)
    env = {**os.environ, "RTSTYLE_CORES": "1", "PYTHONPATH": str(REPO)}
    env.pop("RTSTYLE_ENGINE_THREADS", None)
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    import json

    threads = json.loads(done.stdout.strip().splitlines()[-1])
    assert threads["torch"] == threads["ov"] == threads["ort"] == 1, threads
    assert threads["ov_compiled"] and all(t == 1 for t in threads["ov_compiled"]), threads


def _run(argv: list[str], env: dict, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rtstyle", *argv], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


def _ray_env(tmp_path) -> dict:
    """No cluster to find: its own home and Ray folder, no RAY_ADDRESS (another on this machine stays unseen)."""
    (tmp_path / "home").mkdir(exist_ok=True)
    (tmp_path / "raytmp").mkdir(exist_ok=True)
    return {**clean_env(), "HOME": str(tmp_path / "home"), "RAY_TMPDIR": str(tmp_path / "raytmp"), "PYTHONPATH": str(REPO)}


def test_join_failures_are_one_line_and_quick(tmp_path):
    """Nothing listening at HOST:PORT (Ray itself retries that for minutes), and ``--ray auto`` with no
    cluster to find: one line each, naming the fix, found before Ray tries to join (the messages come
    from rtstyle's own checks; the bound is the subprocess timeout, not a timing)."""
    pytest.importorskip("ray")
    src = make_clip(tmp_path / "a.mp4", frames=2, audio=False)
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = ["stylize", str(src), "-o", str(tmp_path / "out"), "--model", "starry_night", "-q"]
    env = _ray_env(tmp_path)
    for address, words in ((f"127.0.0.1:{port}", "nothing answers there"), ("auto", "no running Ray cluster found")):
        done = _run([*base, "--ray", address], env, timeout=300)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1 and words in lines[0], done.stderr
        assert "ray start --head" in lines[0]
    assert not (tmp_path / "out").exists() and not (tmp_path / "home" / ".ray").exists()


def test_cluster_scaling_result_renders_and_its_summary_is_recomputed():
    """The committed cluster benchmark: its table is what benchmarks/cluster_scaling.py makes of its
    JSON, the medians and paired ratios recomputed from the runs, and it names the CPU."""
    import json

    from rtstyle.benchmarks.cluster_scaling import markdown, summarise

    results = sorted((REPO / "benchmarks" / "results").glob("cluster-scaling-*.json"))
    result = json.loads(results[-1].read_text())
    assert summarise(result) == result["summary"]
    text = markdown(result)
    assert text == results[-1].with_suffix(".md").read_text()
    assert result["machine"].split(",")[0] in text and "| --ray, 2 workers" in text and "paired" in text
