"""One command that turns the first minutes of a lent GPU into a full verification of the GPU path.

    python -m rtstyle.benchmarks.gpu_check --out DIR            # on a CUDA machine, about 8 minutes
    python -m rtstyle.benchmarks.gpu_check --out DIR --dry-run  # on a CPU: the same plan, small, < 1 minute

Steps, each with a time budget (a step starts only if its budget still fits in the total): the
environment (versions, what the video path can use); the gpu-marked tests; CUDA-graph vs eager
and fp16/bf16 vs fp32 parity of every bundled model; AOTInductor on CUDA; onnxruntime's CUDA
provider where installed; ``rtstyle bench``'s model-only grid with CUDA-event timing; its
end-to-end pipeline on a generated 1080p clip; the zero-copy video pieces (NVDEC into torch, the
pinned output ring, NVENC). Writes ``DIR/<device>-<date>.json``, ``.md`` and ``.png`` (plus
``-stages.png``), ready for ``benchmarks/results/``. A step that cannot run says why and the
rest go on: without PyAV (the lent machine has no network: carry the av wheel, see README) the
model-only parts still run. Exit status 1 when a step failed.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib.util
import re
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from rtstyle.errors import OutputError
from rtstyle.textutil import first_line

from . import bench, environment, report
from . import gpu_check_steps as steps

SCHEMA = "rtstyle-gpu-check/1"
TOTAL_BUDGET_S = 480.0


@dataclass(frozen=True)
class Step:
    name: str
    budget_s: float  # on the GPU; a dry run walks the same steps, small
    run: Callable[[steps.CheckContext], dict]
    what: str


PLAN = (
    Step("environment", 10, steps.environment, "versions, GPUs, decoders and encoders usable here"),
    Step("gpu-tests", 120, steps.gpu_tests, "pytest -m gpu on the test files that have GPU tests"),
    Step("parity", 45, steps.parity, "every bundled model: CUDA graph vs eager, fp16/bf16 vs fp32"),
    Step("aoti", 75, steps.aoti, "AOTInductor package compiled for CUDA: parity and 1080p fps"),
    Step("onnxruntime-cuda", 30, steps.onnxruntime_cuda, "onnxruntime's CUDA provider: parity and fps"),
    Step("model-grid", 100, steps.model_grid, "640x360..1920x1080 x batch 1/4/8 x fp16/bf16, CUDA events"),
    Step("pipeline", 55, steps.pipeline, "decode/engine/encode/end-to-end on a generated 1080p clip"),
    Step("video-path", 35, steps.video_path, "NVDEC into torch, pinned output ring, NVENC, the GPU path end to end"),
)
assert sum(s.budget_s for s in PLAN) <= TOTAL_BUDGET_S  # the plan fits the 8 minutes


def device_slug(device: torch.device, dry: bool) -> str:
    name = "cpu-dry-run" if dry else environment.device_info(device)["name"]
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "device"


def run_check(out_dir: Path, dry_run: bool = False, overwrite: bool = False,
              only: tuple[str, ...] | None = None) -> tuple[dict, dict[str, Path]]:
    """Run the plan (or the steps named in ``only``); returns the result and the files written."""
    if not dry_run and not torch.cuda.is_available():
        raise OutputError("no CUDA GPU here: run with --dry-run on a CPU machine")
    device = torch.device("cpu" if dry_run else "cuda")
    date = _dt.datetime.now(_dt.timezone.utc)
    prefix = Path(out_dir) / f"{device_slug(device, dry_run)}-{date:%Y-%m-%d}"
    targets = [Path(f"{prefix}{s}") for s in (".json", ".md", ".png", "-stages.png")]
    if not overwrite and any(p.exists() for p in targets):
        raise OutputError(f"{prefix}.json (or its .md/.png) exists; pass -y to replace it")
    result: dict[str, Any] = {"schema": SCHEMA, "date": date.isoformat(timespec="seconds"), "dry_run": dry_run,
                              "total_budget_s": TOTAL_BUDGET_S, "steps": []}
    has_av = importlib.util.find_spec("av") is not None
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="rtstyle-gpu-check-") as tmp:
        for step in PLAN:
            if only and step.name not in only:
                continue
            result["steps"].append(_run_step(step, result, device, dry_run, Path(tmp), has_av, started))
        shared = result.pop("_shared", {})
    bench_result = shared.get("bench")
    if bench_result is not None:
        bench_result["targets"] = bench._targets(bench_result)  # the pipeline joined after run_bench
        result["bench"] = bench_result
    result["total_s"] = round(time.perf_counter() - started, 1)
    return result, _write(prefix, result, bench_result)


def _run_step(step: Step, result: dict, device: torch.device, dry: bool, workdir: Path, has_av: bool,
              started: float) -> dict:
    left = TOTAL_BUDGET_S - (time.perf_counter() - started)
    print(f"[{step.name}] budget {step.budget_s:.0f} s ({step.what})", flush=True)
    entry: dict[str, Any] = {"name": step.name, "budget_s": step.budget_s}
    if not dry and step.budget_s > left:
        entry.update(status="skipped", reason=f"only {left:.0f} s of the {TOTAL_BUDGET_S:.0f} s budget left")
    else:
        shared = result.setdefault("_shared", {})
        ctx = steps.CheckContext(device, dry, workdir, has_av, time.perf_counter() + step.budget_s, shared)
        t0 = time.perf_counter()
        try:
            data = step.run(ctx)
            entry["status"] = data.pop("status", "ok")
            if "reason" in data:
                entry["reason"] = data.pop("reason")
            result[step.name] = data
        except steps.Skip as exc:
            entry.update(status="skipped", reason=str(exc))
        except Exception as exc:  # noqa: BLE001 - one broken step must not hide what the others find
            entry.update(status="failed", reason=f"{exc.__class__.__name__}: {first_line(exc)}")
        entry["seconds"] = round(time.perf_counter() - t0, 1)
        if not dry and entry["seconds"] > step.budget_s:
            entry["over_budget"] = True
    print(f"[{step.name}] {entry['status']} in {entry.get('seconds', 0):.1f} s"
          + (f": {entry['reason']}" if entry.get("reason") else ""), flush=True)
    return entry


def _write(prefix: Path, result: dict, bench_result: dict | None) -> dict[str, Path]:
    prefix.parent.mkdir(parents=True, exist_ok=True)
    plots: list[Path] = []
    if bench_result is not None:
        plots.append(report.plot_fps(bench_result, Path(f"{prefix}.png")))
        if bench_result.get("pipeline"):
            plots.append(report.plot_stages(bench_result, Path(f"{prefix}-stages.png")))
    json_path, md_path = report.write_result(prefix, result, markdown(result, plots))
    return {"json": json_path, "markdown": md_path, **{p.name: p for p in plots}}


def markdown(result: dict, plots: list[Path]) -> str:
    env = result.get("environment", {})
    device = env.get("device", {}).get("name", "?")
    kind = "dry run on a CPU (no GPU step measured anything)" if result["dry_run"] else "CUDA"
    lines = [f"# rtstyle GPU check: {device}, {result['date']} ({kind})", "",
             f"Total {result['total_s']} s of a {result['total_budget_s']:.0f} s budget.", "",
             "| step | status | seconds | budget | note |", "|---|---|---|---|---|"]
    for s in result["steps"]:
        lines.append(f"| {s['name']} | {s['status']}{' (over budget)' if s.get('over_budget') else ''} | "
                     f"{s.get('seconds', '')} | {s['budget_s']:.0f} | {s.get('reason', '')} |")
    caps = env.get("capabilities", {})
    if caps:
        lines += ["", "## Video path capabilities", ""]
        lines += [f"- {c['name']}: {'yes' if c['usable'] else 'no'} ({c['reason']})" for c in caps.values()]
    if "parity" in result:
        lines += ["", "## Parity (max / mean abs difference in levels of 255)", "",
                  "| model | comparison | max | mean | tolerance | ok |", "|---|---|---|---|---|---|"]
        for row in result["parity"]["models"]:
            if "skipped" in row:
                lines.append(f"| {row['model']} | skipped: {row['skipped']} | | | | |")
            for key, d in row.items():
                if isinstance(d, dict):
                    lines.append(f"| {row['model']} | {key} | {d['max']:g} | {d['mean']:g} | "
                                 f"{d.get('tolerance', 1)} | {'yes' if d['ok'] else 'NO'} |")
    for name in ("gpu-tests", "aoti", "onnxruntime-cuda", "video-path"):
        if name in result:
            lines += ["", f"## {name}", "", "```", _short(result[name]), "```"]
    if "bench" in result:
        lines += ["", report.markdown_report(result["bench"], plots)]
    return "\n".join(lines) + "\n"


def _short(data: Any) -> str:
    import json

    return json.dumps(data, indent=1, default=str)[:4000]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m rtstyle.benchmarks.gpu_check", description=__doc__, allow_abbrev=False,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="folder for <device>-<date>.json/.md/.png")
    p.add_argument("--dry-run", action="store_true", help="on a CPU: walk the plan, run the CPU-testable parts, small")
    p.add_argument("--only", nargs="+", choices=[s.name for s in PLAN], help="run only these steps")
    p.add_argument("-y", "--overwrite", action="store_true", help="replace today's files for this device")
    args = p.parse_args(argv)
    try:
        result, written = run_check(args.out, args.dry_run, args.overwrite, tuple(args.only or ()))
    except OutputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for path in written.values():
        print(f"wrote {path}")
    failed = [s["name"] for s in result["steps"] if s["status"] == "failed"]
    if failed:
        print(f"failed steps: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
