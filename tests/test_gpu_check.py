"""The GPU check's dry run on the CPU: the whole plan walked, the CPU-testable parts run, the
report written (the README's command), refusals and the budget."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from rtstyle.benchmarks import gpu_check
from rtstyle.models import bundled_models

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="the dry run is the CPU machine's check")


README = Path(__file__).resolve().parents[1] / "README.md"


def test_dry_run_walks_the_plan_and_writes_the_report(tmp_path, capsys):
    assert "python -m rtstyle.benchmarks.gpu_check --out /tmp/gpu-check --dry-run" in README.read_text()  # this command
    assert gpu_check.main(["--out", str(tmp_path), "--dry-run"]) == 0
    printed = capsys.readouterr().out
    for step in gpu_check.PLAN:
        assert f"[{step.name}] budget {step.budget_s:.0f} s" in printed
    stem = tmp_path / f"cpu-dry-run-{json.loads(next(tmp_path.glob('*.json')).read_text())['date'][:10]}"
    result = json.loads(stem.with_suffix(".json").read_text())
    status = {s["name"]: s["status"] for s in result["steps"]}
    assert [s.name for s in gpu_check.PLAN] == list(status)
    assert "failed" not in status.values(), result["steps"]
    # What a CPU can run ran; what needs CUDA said why not.
    assert {k for k, v in status.items() if v == "ok"} >= {"environment", "gpu-tests", "parity", "model-grid",
                                                          "pipeline", "video-path"}
    assert result["gpu-tests"]["collected"] >= 5  # the GPU run's tests, listed
    parity_models = {row["model"] for row in result["parity"]["models"] if "bf16_vs_fp32" in row}
    assert parity_models == set(bundled_models()) - {"starry_night_texture"}
    assert result["bench"]["model_only"] and result["bench"]["pipeline"]["efficiency"] > 0
    assert result["video-path"]["device_decode"]["frames"] == 8
    assert result["video-path"]["end_to_end"]["frames"] == 8 and result["video-path"]["end_to_end"]["efficiency_vs_engine_only"] > 0
    assert {p.name for p in tmp_path.iterdir()} == {f"{stem.name}{s}" for s in (".json", ".md", ".png", "-stages.png")}
    md = stem.with_suffix(".md").read_text()
    assert "dry run on a CPU" in md and "## Parity" in md and "| aoti | skipped |" in md
    # Today's files exist: refused without -y.
    assert gpu_check.main(["--out", str(tmp_path), "--dry-run", "--only", "environment"]) == 2


def test_without_pyav_the_model_parts_still_run(tmp_path, monkeypatch):
    real = gpu_check.importlib.util.find_spec
    monkeypatch.setattr(gpu_check.importlib.util, "find_spec", lambda name, *a: None if name == "av" else real(name, *a))
    result, _ = gpu_check.run_check(tmp_path, dry_run=True, only=("parity", "pipeline", "video-path"))
    status = {s["name"]: s for s in result["steps"]}
    assert status["parity"]["status"] == "ok"
    for name in ("pipeline", "video-path"):
        assert status[name]["status"] == "skipped" and "av wheel" in status[name]["reason"]


def test_plan_fits_eight_minutes_and_needs_a_gpu_without_dry_run(tmp_path):
    assert sum(s.budget_s for s in gpu_check.PLAN) <= 480
    assert gpu_check.main(["--out", str(tmp_path)]) == 2
