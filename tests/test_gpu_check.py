"""The GPU check on the CPU: the one-command script's dry run (the same script the GPU machine runs,
its GPU parts faked), the wheel plan, the time limits, the parity verdict, and the reasons given for
what cannot run (onnxruntime-gpu, TensorRT)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
import torch

from rtstyle.benchmarks import gpu_check, gpu_wheels
from rtstyle.benchmarks import gpu_check_steps as steps
from rtstyle.models import bundled_models

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="the dry run is the CPU machine's check")

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_check.sh"


def test_the_script_dry_run_walks_the_plan_and_writes_the_report(tmp_path):
    """``benchmarks/gpu_check.sh /tmp/gpu-check --dry-run`` (README): its own path map of the
    checkout, the check, the log, the summary last."""
    out = tmp_path / "gpu-check"
    env = {**os.environ, "PYTHON": sys.executable}
    proc = subprocess.run(["bash", str(SCRIPT), str(out), "--dry-run"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    printed = proc.stdout
    for step in gpu_check.PLAN:
        assert f"[{step.name}] budget {step.budget_s:.0f} s" in printed
    assert printed.index("== summary ==") > printed.index("[tensorrt]")  # the summary comes last
    stem = next(out.glob("*.json")).stem
    assert stem.startswith("cpu-dry-run-")
    result = json.loads((out / f"{stem}.json").read_text())
    status = {s["name"]: s for s in result["steps"]}
    assert [s.name for s in gpu_check.PLAN] == list(status)
    assert all(s["status"] != "failed" for s in status.values()), result["steps"]
    assert {k for k, v in status.items() if v["status"] == "ok"} >= {
        "environment", "aoti-compile", "gpu-tests", "parity", "grid-johnson", "grid-bundled", "grid-archs", "pipeline", "video-path"}
    # What needs a GPU or a package the machine cannot have says so.
    assert status["tensorrt"]["reason"].startswith("TensorRT not installable here")
    assert "onnxruntime-gpu" in status["onnxruntime-cuda"]["reason"]
    assert "rtstyle export aoti --help` (exit 0)" in status["aoti"]["reason"]  # the background job ran
    assert result["gpu-tests"]["collected"] >= 5 and result["gpu-tests"]["marker"] == "gpu and not compiles"
    parity_models = {row["model"] for row in result["parity"]["models"] if "bf16_vs_fp32" in row}
    assert parity_models == set(bundled_models()) - {"starry_night_texture"}
    row = next(r for r in result["parity"]["models"] if "bf16_vs_fp32" in r)["bf16_vs_fp32"]
    assert {"p99.9", "mean", "max", "ok"} <= set(row)
    # The grid: the Johnson-size net (the targets' net) and the bundled one, told apart by their work.
    assert result["grid-johnson"]["kflop_per_pixel"] > 300 > result["grid-bundled"]["kflop_per_pixel"]
    assert set(result["grid-archs"]) >= {"style", "style-fast", "style-lowres"}
    assert result["grid-archs"]["style"]["kflop_per_pixel"] > 300 and all(r["fps"] for r in result["grid-archs"].values())
    assert set(result["bench"]) == {"johnson", "bundled"} and result["bench"]["johnson"]["pipeline"]["efficiency"] > 0
    assert result["video-path"]["device_decode"]["frames"] == 8
    assert "not testable here" in result["video-path"]["zero_host_copies"]
    assert result["video-path"]["end_to_end"]["frames"] == 8
    names = {p.name for p in out.iterdir()}
    assert names == {f"{stem}{s}" for s in (".json", ".md", "-johnson.png", "-bundled.png", "-stages.png")} | {"gpu-check.log"}
    assert len(names) <= 8  # what a device call brings back
    assert "== summary ==" in (out / "gpu-check.log").read_text()
    md = (out / f"{stem}.md").read_text()
    assert "dry run on a CPU" in md and "## Parity" in md and "| aoti | skipped |" in md and "# Grid: bundled" in md
    # Today's files exist: refused without -y.
    assert gpu_check.main(["--out", str(out), "--dry-run", "--only", "environment"]) == 2


def test_plan_prints_the_wheels_to_download_for_a_python_and_platform(capsys):
    assert gpu_wheels.main(["--python-version", "3.13", "--platform", "manylinux_2_34_x86_64"]) == 0
    lines = capsys.readouterr().out.splitlines()
    downloads = [ln for ln in lines if not ln.startswith("#")]
    assert downloads == [f"python3 -m pip download --no-deps --only-binary=:all: --python-version 3.13 --implementation cp "
                         f"--platform manylinux_2_34_x86_64 -d .whl av=={gpu_wheels.WHEELS['av']}"]
    assert any("not carried: onnxruntime-gpu" in ln for ln in lines) and any("not carried: tensorrt" in ln for ln in lines)
    # The script's --plan runs without torch: only the standard library is imported.
    proc = subprocess.run(["bash", str(SCRIPT), "--plan"], capture_output=True, text=True,
                          env={**os.environ, "PYTHON": sys.executable})
    assert proc.returncode == 0 and "--python-version 3.12" in proc.stdout and "manylinux_2_28_x86_64" in proc.stdout
    probe = subprocess.run([sys.executable, "-c", "import sys, rtstyle.benchmarks.gpu_wheels; print('torch' in sys.modules)"],
                           capture_output=True, text=True, check=True)
    assert probe.stdout.strip() == "False"


def test_without_pyav_the_model_parts_still_run(tmp_path, monkeypatch):
    real = gpu_check.importlib.util.find_spec
    monkeypatch.setattr(gpu_check.importlib.util, "find_spec", lambda name, *a: None if name == "av" else real(name, *a))
    result, _ = gpu_check.run_check(tmp_path, dry_run=True, only=("parity", "pipeline", "video-path"))
    status = {s["name"]: s for s in result["steps"]}
    assert status["parity"]["status"] == "ok"
    for name in ("pipeline", "video-path"):
        assert status[name]["status"] == "skipped" and "av wheel" in status[name]["reason"]


def _slow(ctx):
    time.sleep(30)
    return {}


def test_a_step_cannot_take_the_time_of_the_steps_after_it(tmp_path, monkeypatch, capsys):
    """A step may use what earlier steps left, never what later ones reserved: past that it is
    stopped and reported, and the rest go on; a step that cannot run reserves nothing."""
    plan = (gpu_check.Step("slow", 1.0, _slow, "sleeps"),
            gpu_check.Step("next", 1.0, lambda ctx: {"ran": True}, "runs"),
            gpu_check.Step("absent", 5.0, lambda ctx: {}, "needs what is missing", lambda: "not here: no such thing"))
    monkeypatch.setattr(gpu_check, "PLAN", plan)
    monkeypatch.setattr(gpu_check, "TOTAL_BUDGET_S", 2.5)
    t0 = time.perf_counter()
    result, _ = gpu_check.run_check(tmp_path, dry_run=True, enforce_limits=True)
    assert time.perf_counter() - t0 < 10
    status = {s["name"]: s for s in result["steps"]}
    assert status["slow"]["status"] == "failed" and "ran into the time of the steps after it" in status["slow"]["reason"]
    assert 1.0 <= status["slow"]["seconds"] < 2.5 and status["slow"]["over_budget"]  # 1.5 s: its own and the absent step's
    assert status["next"]["status"] == "ok" and result["next"] == {"ran": True}
    assert status["absent"] == {"name": "absent", "budget_s": 5.0, "status": "skipped", "reason": "not here: no such thing"}


def test_plan_fits_eight_minutes_and_needs_a_gpu_without_dry_run(tmp_path):
    assert sum(s.budget_s for s in gpu_check.PLAN) <= gpu_check.TOTAL_BUDGET_S <= 480 - 15  # the wheel install on top
    assert gpu_check.main(["--out", str(tmp_path)]) == 2


def test_parity_is_judged_on_a_percentile_and_the_mean_with_the_max_reported():
    ref = torch.full((2, 720, 1280, 3), 100, dtype=torch.uint8)
    few_outliers = ref.clone()
    few_outliers.view(-1)[:500] = 160  # 0.01% of the values 60 levels off (saturated pixels)
    d = steps.diff_stats(few_outliers, ref, tolerance=3, mean_tolerance=1.5)
    assert d["ok"] and d["max"] == 60 and d["p99.9"] == 0
    shifted = ref + 2  # every value 2 levels off: the percentile and the mean see it
    d = steps.diff_stats(shifted, ref, tolerance=1, mean_tolerance=0.5)
    assert not d["ok"] and d["p99.9"] == 2 and d["mean"] == 2.0
    spread = ref.clone()
    spread.view(-1)[: ref.numel() // 100] = 110  # 1% off by 10: past p99.9
    assert not steps.diff_stats(spread, ref, tolerance=3, mean_tolerance=1.5)["ok"]
    assert steps.precision_stats(ref, ref, "fp16")["tolerance"] == pytest.approx(3.05, abs=0.01)


def test_fp32_references_run_without_tf32_and_restore_it():
    before = torch.backends.cudnn.allow_tf32
    with steps.fp32_reference():
        assert torch.backends.cudnn.allow_tf32 is False
        state = steps.tf32_state()
        assert state["cudnn_allow_tf32"] is False and state["float32_matmul_precision"] == "highest"
    assert torch.backends.cudnn.allow_tf32 == before


def test_onnxruntime_gpu_of_another_cuda_major_is_skipped_with_the_reason(monkeypatch):
    import onnxruntime

    assert "onnxruntime-gpu is not installed" in steps.onnxruntime_missing()  # the CPU build here
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(onnxruntime, "cuda_version", "12.8", raising=False)
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    reason = steps.onnxruntime_missing()
    assert "CUDA 12.8" in reason and "CUDA 13.0" in reason and "for CUDA 13" in reason
    monkeypatch.setattr(onnxruntime, "cuda_version", "13.0", raising=False)
    assert steps.onnxruntime_missing() is None


def test_tensorrt_that_does_not_import_is_not_installable_here(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import raises ImportError
    reason = steps.tensorrt_missing()
    assert reason.startswith("TensorRT not installable here") and "placeholder" in reason
    monkeypatch.setitem(sys.modules, "tensorrt", types.ModuleType("tensorrt"))
    assert steps.tensorrt_missing() is None
