"""One command that turns the first minutes of a lent GPU into a full verification of the GPU path.

    benchmarks/gpu_check.sh OUT_DIR               # on the lent machine: wheels, path, check, log (make gpu-check)
    python -m rtstyle.benchmarks.gpu_check --out DIR            # on a CUDA machine with rtstyle installed
    python -m rtstyle.benchmarks.gpu_check --out DIR --dry-run  # on a CPU: the same plan, small, GPU parts faked
    benchmarks/gpu_check.sh --plan [--python-version 3.12]     # the wheels to carry (gpu_wheels.py)

Steps, each with a time budget: the environment (versions, the GPU, an NVDEC probe that decodes a
generated H.264 clip into GPU memory); the AOTInductor compile of the Johnson-size net, started in
the background; the gpu-marked tests (compile-heavy ones left to the aoti step); fp16/bf16 and
CUDA-graph parity of every bundled model against fp32 with TF32 off; onnxruntime's CUDA provider;
the AOTInductor package; ``rtstyle bench``'s model-only grid of the Johnson-size net and of the
bundled net (CUDA graphs, CUDA events); the end-to-end pipeline on a generated 1080p clip; the
zero-copy video pieces; a TensorRT 1080p engine. A step starts only while its budget fits, and
may use what earlier steps left unused but never the time reserved for later ones: past that it
is stopped and reported, and the rest go on. A step that cannot run says why ("skipped: ...").

Writes ``DIR/<device>-<date>.json`` (after every step, so a cut-short run still leaves it),
``.md`` and ``-johnson.png``, ``-bundled.png``, ``-stages.png``, ready for ``benchmarks/results/``,
and prints a compact summary last. Exit status 1 when a step failed.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import importlib.util
import json
import re
import signal
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from rtstyle.errors import OutputError
from rtstyle.fsutil import atomic_path
from rtstyle.textutil import first_line

from . import bench, environment, report
from . import gpu_check_steps as steps

SCHEMA = "rtstyle-gpu-check/2"
# The Python part; gpu_check.sh's wheel install and start-up (~15 s) come on top: 8 minutes in all.
TOTAL_BUDGET_S = 450.0


@dataclass(frozen=True)
class Step:
    name: str
    budget_s: float  # on the GPU; a dry run walks the same steps, small
    run: Callable[[steps.CheckContext], dict]
    what: str
    missing: Callable[[], str | None] | None = None  # asked before the run: a reason to skip, reserving nothing


PLAN = (
    Step("environment", 20, steps.environment, "versions, GPU, NVDEC probe (a generated H.264 clip into GPU memory), encoders"),
    Step("aoti-compile", 5, steps.aoti_start, "starts `rtstyle export aoti` of the Johnson-size net for CUDA, in the background"),
    Step("gpu-tests", 65, steps.gpu_tests, f"pytest -m '{steps.GPU_TESTS_MARKER}' on the test files that have GPU tests"),
    Step("parity", 35, steps.parity, "bundled models: fp16/bf16 vs fp32 (TF32 off), CUDA graph vs eager; p99.9 and mean"),
    Step("onnxruntime-cuda", 10, steps.onnxruntime_cuda, "onnxruntime's CUDA provider: parity and fps",
         steps.onnxruntime_missing),
    Step("aoti", 60, steps.aoti, "waits for the compile; the AOTInductor package's parity and 1080p fps"),
    Step("grid-johnson", 60, steps.grid_johnson, "Johnson-size net: 640x360..1920x1080 x batch 1/4/8 x fp16/bf16, CUDA events"),
    Step("grid-bundled", 40, steps.grid_bundled, "the bundled net, the same grid"),
    Step("grid-archs", 25, steps.grid_archs, "every style architecture preset: 1080p fp16, batch 1 and 8"),
    Step("pipeline", 40, steps.pipeline, "decode/engine/encode/end to end, 1080p clip, encoder on the cores, NV12 on the GPU"),
    Step("video-path", 40, steps.video_path, "NVDEC into torch, output ring, NVENC, the GPU path end to end"),
    Step("tensorrt", 50, steps.tensorrt, "TensorRT 1080p engine: build time, parity, fps", steps.tensorrt_missing),
)
assert sum(s.budget_s for s in PLAN) <= TOTAL_BUDGET_S  # the plan fits the 8 minutes

class StepTimeout(Exception):
    """A step ran into the time reserved for the steps after it."""


def device_slug(device: torch.device, dry: bool) -> str:
    name = "cpu-dry-run" if dry else environment.device_info(device)["name"]
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "device"


def output_names(prefix: Path) -> list[Path]:
    return [Path(f"{prefix}{s}") for s in (".json", ".md", "-johnson.png", "-bundled.png", "-stages.png")]


def run_check(out_dir: Path, dry_run: bool = False, overwrite: bool = False,
              only: tuple[str, ...] | None = None, enforce_limits: bool | None = None) -> tuple[dict, dict[str, Path]]:
    """Run the plan (or the steps named in ``only``); returns the result and the files written.
    ``enforce_limits`` (default: on a GPU) stops a step that runs into the later steps' time."""
    if not dry_run and not torch.cuda.is_available():
        raise OutputError("no CUDA GPU here: run with --dry-run on a CPU machine")
    device = torch.device("cpu" if dry_run else "cuda")
    enforce = (not dry_run) if enforce_limits is None else enforce_limits
    date = _dt.datetime.now(_dt.timezone.utc)
    prefix = Path(out_dir) / f"{device_slug(device, dry_run)}-{date:%Y-%m-%d}"
    if not overwrite and any(p.exists() for p in output_names(prefix)):
        raise OutputError(f"{prefix}.json (or its .md/.png) exists; pass -y to replace it")
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"schema": SCHEMA, "date": date.isoformat(timespec="seconds"), "dry_run": dry_run,
                              "total_budget_s": TOTAL_BUDGET_S, "steps": []}
    has_av = importlib.util.find_spec("av") is not None
    plan = [s for s in PLAN if not only or s.name in only]
    skips = {s.name: s.missing() for s in plan if s.missing is not None}
    started = time.perf_counter()
    shared: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="rtstyle-gpu-check-") as tmp:
        try:
            for i, step in enumerate(plan):
                later = sum(s.budget_s for s in plan[i + 1:] if not skips.get(s.name))
                entry = _run_step(step, skips.get(step.name), result, shared, device, dry_run, Path(tmp), has_av,
                                  started + TOTAL_BUDGET_S - later, enforce)
                result["steps"].append(entry)
                _write_json(prefix, result)  # a run cut short still leaves what it measured
        finally:
            steps.stop_background(shared)  # before its folder goes
    bench_results = shared.get("bench", {})
    for net, res in bench_results.items():
        if net == "johnson":
            res["targets"] = bench._targets(res)  # the pipeline joined after run_bench
    if bench_results:
        result["bench"] = bench_results
    result["total_s"] = round(time.perf_counter() - started, 1)
    return result, _write(prefix, result)


def _run_step(step: Step, missing: str | None, result: dict, shared: dict, device: torch.device, dry: bool,
              workdir: Path, has_av: bool, deadline: float, enforce: bool) -> dict:
    left = deadline - time.perf_counter()
    print(f"[{step.name}] budget {step.budget_s:.0f} s, up to {max(0.0, left):.0f} s ({step.what})", flush=True)
    entry: dict[str, Any] = {"name": step.name, "budget_s": step.budget_s}
    if missing:
        entry.update(status="skipped", reason=missing)
    elif not dry and left < min(step.budget_s, 5.0):
        entry.update(status="skipped", reason=f"only {left:.0f} s left of the {TOTAL_BUDGET_S:.0f} s the check may take")
    else:
        ctx = steps.CheckContext(device, dry, workdir, has_av, deadline, shared)
        t0 = time.perf_counter()
        try:
            with _time_limit(left if enforce else None, step.name):
                data = step.run(ctx)
            entry["status"] = data.pop("status", "ok")
            if "reason" in data:
                entry["reason"] = data.pop("reason")
            result[step.name] = data
        except steps.Skip as exc:
            entry.update(status="skipped", reason=str(exc))
        except StepTimeout as exc:
            entry.update(status="failed", reason=str(exc))
        except Exception as exc:  # noqa: BLE001 - one broken step must not hide what the others find
            entry.update(status="failed", reason=f"{exc.__class__.__name__}: {first_line(exc)}",
                         traceback=traceback.format_exc()[-2500:])  # a GPU run is rare: keep where it broke
        entry["seconds"] = round(time.perf_counter() - t0, 1)
        if entry["seconds"] > step.budget_s:
            entry["over_budget"] = True  # it used time earlier steps left unused
        if device.type == "cuda":
            with contextlib.suppress(Exception):
                torch.cuda.synchronize()
                torch.cuda.empty_cache()  # between steps only: the next one starts from a clean pool
    print(f"[{step.name}] {entry['status']} in {entry.get('seconds', 0):.1f} s"
          + (f": {entry['reason']}" if entry.get("reason") else ""), flush=True)
    return entry


@contextlib.contextmanager
def _time_limit(seconds: float | None, name: str):
    """Raise ``StepTimeout`` in the step after ``seconds`` (SIGALRM: the main thread only; a step
    blocked in native code stops when it returns to Python, a subprocess wait at once)."""
    if seconds is None or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum, frame):
        raise StepTimeout(f"stopped after {seconds:.0f} s: it ran into the time of the steps after it")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, max(0.01, seconds))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _write_json(prefix: Path, result: dict) -> Path:
    path = Path(f"{prefix}.json")
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(result, indent=1, default=str, allow_nan=True) + "\n")
    return path


def _write(prefix: Path, result: dict) -> dict[str, Path]:
    plots: list[Path] = []
    for net, res in result.get("bench", {}).items():
        with contextlib.suppress(Exception):  # a plot that cannot be drawn must not lose the figures
            plots.append(report.plot_fps(res, Path(f"{prefix}-{net}.png")))
    pipeline = result.get("bench", {}).get("johnson", {}).get("pipeline")
    if pipeline:
        with contextlib.suppress(Exception):
            plots.append(report.plot_stages({"pipeline": pipeline}, Path(f"{prefix}-stages.png")))
    json_path, md_path = report.write_result(prefix, result, markdown(result, plots))
    return {"json": json_path, "markdown": md_path, **{p.name: p for p in plots}}


def _step(result: dict, name: str) -> dict:
    return next((s for s in result["steps"] if s["name"] == name), {})


def markdown(result: dict, plots: list[Path]) -> str:
    env = result.get("environment", {})
    device = env.get("device", {}).get("name", "?")
    kind = "dry run on a CPU (no GPU step measured anything)" if result["dry_run"] else "CUDA"
    lines = [f"# rtstyle GPU check: {device}, {result['date']} ({kind})", "",
             f"Total {result['total_s']} s of a {result['total_budget_s']:.0f} s budget "
             "(plus the wheel install of benchmarks/gpu_check.sh).", "",
             "| step | status | seconds | budget | note |", "|---|---|---|---|---|"]
    for s in result["steps"]:
        note = str(s.get("reason", "")).replace("|", "/")
        lines.append(f"| {s['name']} | {s['status']}{' (used slack)' if s.get('over_budget') else ''} | "
                     f"{s.get('seconds', '')} | {s['budget_s']:.0f} | {note} |")
    lines += ["", "## Summary", "", "```", *summary_lines(result), "```"]
    caps = env.get("capabilities", {})
    if caps:
        lines += ["", "## Video path capabilities", ""]
        lines += [f"- {c['name']}: {'yes' if c['usable'] else 'no'} ({c['reason']})" for c in caps.values()]
    if "parity" in result:
        pct = f"p{steps.PARITY_PERCENTILE:g}"
        lines += ["", f"## Parity (levels of 255; verdict: {result['parity']['verdict']})", "",
                  f"| model | comparison | {pct} | mean | max (reported) | tolerance | mean tolerance | ok |",
                  "|---|---|---|---|---|---|---|---|"]
        for row in result["parity"]["models"]:
            if "skipped" in row:
                lines.append(f"| {row['model']} | skipped: {row['skipped']} | | | | | | |")
            for key, d in row.items():
                if isinstance(d, dict):
                    lines.append(f"| {row['model']} | {key} | {d[pct]} | {d['mean']:g} | {d['max']} | {d['tolerance']} | "
                                 f"{d['mean_tolerance']} | {'yes' if d['ok'] else 'NO'} |")
    if "grid-archs" in result:
        lines += ["", "## Style architectures (1080p fp16)", "", "| arch | kFLOP/px | fps |", "|---|---|---|"]
        lines += [f"| {name} | {row['kflop_per_pixel']} | {', '.join(f'{k}: {v}' for k, v in row['fps'].items())} |"
                  for name, row in result["grid-archs"].items()]
    for name in ("gpu-tests", "aoti", "onnxruntime-cuda", "tensorrt", "pipeline", "video-path"):
        if name in result:
            lines += ["", f"## {name}", "", "```", json.dumps(result[name], indent=1, default=str)[:4000], "```"]
    for net, res in result.get("bench", {}).items():
        lines += ["", f"# Grid: {net} ({res['model']['source']})", "",
                  report.markdown_report(res, [p for p in plots if p.stem.endswith(f"-{net}")])]
    return "\n".join(lines) + "\n"


def summary_lines(result: dict) -> list[str]:
    """The compact summary printed last (a device call returns only the end of the output)."""
    out = [f"{s['name']:<17} {s['status']:<8} {s.get('seconds', 0):>6.1f} s"
           + (f"  {str(s['reason'])[:150]}" if s.get("reason") else "") for s in result["steps"]]
    for net in ("johnson", "bundled"):
        grid = result.get(f"grid-{net}")
        if grid:
            by_res = grid["best_fps_by_resolution"]
            largest = max(by_res, key=steps._pixels, default="none")
            best = by_res.get(largest, {})
            out.append(f"grid {net} ({grid['kflop_per_pixel']} kFLOP/px) {largest} best fps: "
                       + ", ".join(f"{p} {v}" for p, v in best.items())
                       + (" (target 250 fp16)" if net == "johnson" else ""))
    for name, row in result.get("grid-archs", {}).items():
        out.append(f"arch {name} ({row['kflop_per_pixel']} kFLOP/px): "
                   + ", ".join(f"{k} {v}" for k, v in row["fps"].items()))
    if "aoti" in result and "fps_1080p_b8" in result["aoti"]:
        a = result["aoti"]
        out.append(f"aoti 1080p b8 fps {a['fps_1080p_b8']['median']}, compile {a['compile_s']} s, "
                   f"{steps.PARITY_PERCENTILE:g}th pct diff {a['vs_torch_fp32_720p'][f'p{steps.PARITY_PERCENTILE:g}']}")
    p = result.get("pipeline")
    if p:
        out.append(f"pipeline ({p['clip']}): end to end {p['end_to_end_fps']} fps, stages {p['stage_fps']}, "
                   f"efficiency {p['efficiency']} (slowest {p['slowest_stage']}; target 0.8); {p['encoder']}")
    v = result.get("video-path")
    if v:
        e2e = v.get("end_to_end", {})
        out.append(f"video path: NVDEC {'yes' if v['nvdec']['usable'] else 'no'}; {v.get('zero_host_copies', '')}; "
                   f"GPU path {e2e.get('fps')} fps ({e2e.get('decoder')}, {e2e.get('encoder')}); encoders {v.get('encoders')}")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m rtstyle.benchmarks.gpu_check", description=__doc__, allow_abbrev=False,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, help="folder for <device>-<date>.json/.md/.png (required)")
    p.add_argument("--dry-run", action="store_true", help="on a CPU: walk the plan, run the CPU-testable parts, small")
    p.add_argument("--only", nargs="+", choices=[s.name for s in PLAN], help="run only these steps")
    p.add_argument("-y", "--overwrite", action="store_true", help="replace today's files for this device")
    args = p.parse_args(argv)
    if args.out is None:
        p.error("--out is required")
    try:
        result, written = run_check(args.out, args.dry_run, args.overwrite, tuple(args.only or ()))
    except OutputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for path in written.values():
        print(f"wrote {path}")
    print("== summary ==")
    print("\n".join(summary_lines(result)), flush=True)
    failed = [s["name"] for s in result["steps"] if s["status"] == "failed"]
    if failed:
        print(f"failed steps: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
