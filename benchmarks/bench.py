"""``rtstyle bench``: how fast the networks, the engines and the whole pipeline run here.

One run measures, on one machine and the same frames:

* **model-only** throughput of every available backend x precision x batch x resolution
  (uint8 frames already on the engine's device, warm-up discarded, device synchronised,
  rotating among distinct input batches, median and p10/p90);
* the **roofline floor** of each resolution and precision: FLOPs and bytes counted from the
  model (``flops.py``), ceilings measured on the device in this run (``roofline.py``);
* the **reference** per-frame loop of the classic examples (``reference.py``) and the
  speed-up of the best configuration over it, both host frames in, host frames out;
* the **pipeline**: decode only, engine only, encode only and the whole threaded pipeline
  on a real or generated clip, and pipeline efficiency = end-to-end fps / slowest stage fps.

``run_bench(BenchConfig(...))`` returns every figure as a JSON-ready dict; ``report.py`` turns
it into Markdown and plots.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import tempfile
from pathlib import Path
from typing import Any

from rtstyle.engine import BACKENDS, resolve_device
from rtstyle.nets import config_to_dict

from .config import CPU_BATCHES, CPU_RESOLUTIONS, SCHEMA, TARGETS, BenchConfig
from .end_to_end import measure_pipeline
from .environment import default_precisions, device_info, load_average, machine_info, versions
from .model_only import (
    BenchModel,
    BenchProgress,
    floor_for,
    input_size,
    measure_model_only,
    measure_reference,
    prepare_model,
    res_name,
    synthetic_frames,
    work_section,
)
from .roofline import achieved_fraction, measure_ceilings
from .timing import NOISY_BUSY_CORES, assess_noise, relative_spread

# -------------------------------------------------------------------------------- summary

def _noise(result: dict) -> dict[str, Any]:
    cells = [c for c in result["model_only"] if "fps" in c]
    spreads = [relative_spread(c["seconds_per_call"]) for c in cells if "seconds_per_call" in c]
    shares = [c["roofline"]["achieved_fraction"] for c in cells if "achieved_fraction" in c.get("roofline", {})]
    machine = result["machine"]
    return assess_noise(spreads, machine["load_average_before"], machine["cores"], shares,
                        machine.get("busy_cores_before"))


def _targets(result: dict) -> dict[str, Any]:
    """Each target with its measurement; no verdict ("met": None) from figures of a noisy run."""
    out = _raw_targets(result)
    noise = result.get("noise") or {"reliable": True}
    if not noise["reliable"]:
        for t in out.values():
            if t["met"] is not None:
                t["met"] = None
                t["unreliable"] = "; ".join(noise["reasons"])
    return out


def _raw_targets(result: dict) -> dict[str, Any]:
    device_kind = result["device"]["type"]
    out: dict[str, Any] = {}
    gpu_cells = [c for c in result["model_only"] if c["resolution"] == "1920x1080" and c["precision"] == "fp16" and "fps" in c]
    best = max((c["fps"]["median"] for c in gpu_cells), default=None)
    out["gpu_1080p_fp16_fps"] = {
        "target": TARGETS["gpu_1080p_fp16_fps"],
        "measured": best if device_kind == "cuda" else None,
        "met": (best >= TARGETS["gpu_1080p_fp16_fps"]) if device_kind == "cuda" and best is not None else None,
    }
    eff = result.get("pipeline", {}).get("efficiency")
    out["pipeline_efficiency"] = {
        "target": TARGETS["pipeline_efficiency"], "measured": eff,
        "met": None if eff is None else eff >= TARGETS["pipeline_efficiency"],
    }
    key = "speedup_vs_reference_gpu" if device_kind == "cuda" else "speedup_vs_reference_cpu"
    speedups = [r["speedup"] for r in result.get("reference", []) if "speedup" in r]
    worst = min(speedups, default=None)
    out[key] = {"target": TARGETS[key], "measured_min_over_resolutions": worst,
                "met": None if worst is None else worst >= TARGETS[key]}
    return out


def _attach_roofline(cells: list[dict], work: dict, ceilings: dict) -> None:
    for cell in cells:
        floor = floor_for(work[cell["resolution"]][cell["precision"]], ceilings, cell["precision"])
        cell["roofline"] = {"floor_fps": floor["fps"], "bound": floor["bound"]}
        if "fps" in cell:
            measured_s = 1.0 / cell["fps"]["median"]
            cell["roofline"]["achieved_fraction"] = achieved_fraction(floor["floor_s"], measured_s)


def _notes(result: dict, cfg: BenchConfig, model: BenchModel) -> list[str]:
    notes = []
    if cfg.model is None:
        notes.append(f"model: a {model.source}; speed does not depend on trained weights, only on the architecture")
    if model.scale > 1:
        notes.append(f"SR x{model.scale}: resolutions name the output size; the network input is 1/{model.scale} of it")
    if result["device"]["type"] == "cpu" and not cfg.quick and cfg.resolutions == CPU_RESOLUTIONS:
        notes.append(f"CPU: reduced grid {[res_name(r) for r in CPU_RESOLUTIONS]} x batch {list(CPU_BATCHES)} "
                     "(the GPU grid at 1080p would take hours); pass --resolutions/--batch-sizes to change it")
    load, busy = result["machine"]["load_average_before"], result["machine"].get("busy_cores_before")
    cores = result["machine"]["cores"] or 1
    if busy is not None and busy > NOISY_BUSY_CORES:
        notes.append(f"measured while other jobs were running ({busy} of {cores} cores busy before the run)")
    elif busy is None and load is not None and load[0] >= 0.5:
        notes.append(f"measured while other jobs were running (load average {load[0]} on {cores} cores before the run)")
    for s in result["skipped"]:
        notes.append(f"skipped {s['backend']} {s['precision']}: {s['reason']}")
    for c in result["model_only"]:
        if "error" in c:
            notes.append(f"failed {c['backend']} {c['precision']} b{c['batch']} {c['resolution']}: {c['error']}")
    notes.append("roofline floor = max(conv FLOPs / measured matmul rate, conv bytes / measured copy rate); "
                 "unfused bytes (every op's reads and writes) are in 'work' for context")
    return notes


def run_bench(config: BenchConfig) -> dict[str, Any]:
    """Measure everything ``config`` asks for; returns the JSON-ready result dict."""
    device = resolve_device(config.device)
    cfg = config.resolved(device)
    result: dict[str, Any] = {
        "schema": SCHEMA,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "device": device_info(device),
        "versions": versions(),
        "config": dataclasses.asdict(cfg),
    }
    progress = BenchProgress(cfg.progress)
    with tempfile.TemporaryDirectory(prefix="rtstyle-bench-") as tmp:
        workdir = Path(tmp)
        model = prepare_model(cfg, workdir)
        result["model"] = {
            "source": model.source, "task": model.task, "config": config_to_dict(model.config),
            "parameters": sum(p.numel() for p in model.net.parameters()), "scale": model.scale,
        }
        frames = {
            res_name(r): synthetic_frames(cfg.rotate * max(cfg.batch_sizes), *input_size(r, model.scale), cfg.seed)
            for r in cfg.resolutions
        }
        precisions = sorted({p for b in (cfg.backends or BACKENDS) for p in (cfg.precisions or default_precisions(b, device))})
        result["work"] = work_section(model, cfg, precisions)
        ceilings = measure_ceilings(device, precisions, quick=cfg.quick).to_dict()
        result["ceilings"] = ceilings
        progress.step("ceilings")
        cells, skipped = measure_model_only(model, cfg, device, frames, workdir, progress)
        _attach_roofline(cells, result["work"], ceilings)
        result["model_only"], result["skipped"] = cells, skipped
        result["reference"] = measure_reference(model, cfg, device, frames, cells, workdir, progress) if cfg.reference else []
        result["pipeline"] = measure_pipeline(model, cfg, device, workdir, progress) if cfg.pipeline else {}
    progress.close()
    result["machine"]["load_average_after"] = load_average()
    result["noise"] = _noise(result)
    result["targets"] = _targets(result)
    result["notes"] = _notes(result, cfg, model)
    return result
