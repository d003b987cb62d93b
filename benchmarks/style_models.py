"""Style models measured on the held-out photos of issue 31's split: the numbers behind the
architecture study (``arch_study.py``) and the bundled models' table (``rtstyle models``, README).

    python -m rtstyle.benchmarks.style_models --photos ../shared/data/photos --out benchmarks/results/bundled-models-DATE
    python -m rtstyle.benchmarks.style_models ... --write-metadata   # store each model's figures in its file

Per model, on the split's held-out photos (``photo_split.py``; none was trained on):

* the yardstick of Johnson et al. Fig. 5 (``rtstyle eval quality --stop-at-match``): the L-BFGS
  iteration at which optimisation from noise matches the network's own objective at 256 px, the
  median over the split's 8 yardstick photos (the optimisation depends only on the objective, so
  networks trained on the same style and loss share its traces through the cache);
* the objective itself (content + style + TV, the network's training weights) at 256 px on all 32
  held-out photos;
* FLOPs per output pixel (counted at 640x360), parameters;
* model-only fps at 640x360 with OpenVINO bf16 at batch 1 and 4 on this CPU (``rtstyle bench``'s
  cells: uint8 frames in and out), with the machine's load measured just before;
* the border artefact on a flat input (``metrics.border_deviation``).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import statistics
from pathlib import Path
from typing import Any

import torch

from rtstyle.checkpoint import load_checkpoint, read_metadata
from rtstyle.metrics import border_deviation
from rtstyle.netconfig import describe_style_arch
from rtstyle.optimize import OptimizerSettings, build_loss
from rtstyle.presets import style_arch_name
from rtstyle.quality import QualityConfig, evaluate_quality, loss_config_of
from rtstyle.style_lookup import style_target

from . import environment, photo_split
from .bench import run_bench
from .config import BenchConfig
from .flops import count_engine_work
from .report import write_result

SCHEMA = "rtstyle-style-models/1"
MILESTONES = (25, 50, 100, 200, 300)
SIZE = 256


def objective(ckpt_path: Path, photos: list[Path]) -> dict[str, float]:
    """Mean of the network's own training objective over ``photos`` at SIZE px (network only)."""
    from rtstyle.frames import load_image, numpy_to_float

    ckpt = load_checkpoint(ckpt_path, task="style")
    loss_fn = build_loss(loss_config_of(ckpt), numpy_to_float(style_target(ckpt.meta, ckpt.path, None, ()).image),
                         torch.device("cpu"))
    model = ckpt.model.float().eval()
    rows = []
    with torch.no_grad():
        for path in photos:
            content = numpy_to_float(load_image(path, max_side=SIZE))
            rows.append(loss_fn(model(content), content).as_floats())
    return {k: statistics.fmean(r.get(k, 0.0) for r in rows) for k in ("total", "content", "style", "tv")}


def yardstick(ckpt_path: Path, photos: list[Path]) -> dict[str, Any]:
    # Each image's optimisation stops at its match (--stop-at-match): the match is what is measured,
    # and the full 300-iteration traces cost 8 x 300 L-BFGS steps per style on a 2-core CPU.
    report = evaluate_quality(QualityConfig(model=ckpt_path, images=photos, style_dirs=(), milestones=MILESTONES,
                                            size=SIZE, settings=OptimizerSettings(init="noise"), device="cpu",
                                            progress="plain", stop_at_match=True))
    avg = report["average"]
    return {"match_iteration": avg["match"]["median_per_image"], "network_total": avg["network"]["total"],
            "per_image_match": {r["image"]: r["match"]["iteration"] for r in report["images"]},
            "network_ms_256": 1000 * avg["network"]["seconds"], "traces_cached": all(r["trace_cached"] for r in report["images"])}


def speed(ckpt_path: Path) -> dict[str, Any]:
    """OpenVINO bf16 model-only fps at 640x360, batch 1 and 4 (median of 10 timed calls)."""
    result = run_bench(BenchConfig(model=str(ckpt_path), device="cpu", backends=("openvino",), precisions=("bf16",),
                                   batch_sizes=(1, 4), resolutions=((640, 360),), repeats=10, reference=False,
                                   pipeline=False, progress="none"))
    return {f"b{c['batch']}": round(c["fps"]["median"], 1) for c in result["model_only"] if "fps" in c}


def measure(ckpt_path: Path, split: dict[str, list[str]], photos_dir: Path, with_quality: bool) -> dict[str, Any]:
    meta = read_metadata(ckpt_path)
    ckpt = load_checkpoint(ckpt_path, task="style")
    net = ckpt.model.float().eval()
    train = meta.get("train", {})
    row: dict[str, Any] = {
        "arch": style_arch_name(meta["model"]), "config": meta["model"], "describe": describe_style_arch(ckpt.config),
        "params": sum(p.numel() for p in net.parameters()),
        "kflop_per_pixel": round(count_engine_work(net, 1, 360, 640, torch.float32).flops / (640 * 360) / 1e3, 1),
        "iterations": train.get("iterations"), "cpu_seconds": train.get("cpu_seconds"),
        "train": {k: train.get(k) for k in ("batch_size", "image_size", "lr", "seed", "amp", "compiled", "threads",
                                             "max_cpu_seconds", "device", "data")},
        "border": {k: round(v, 1) for k, v in border_deviation(net).items()},
    }
    if with_quality:
        row["objective_held_out"] = objective(ckpt_path, [photos_dir / n for n in split["held_out"]])
        row["yardstick"] = yardstick(ckpt_path, [photos_dir / n for n in split["yardstick"]])
    return row


def summary(row: dict[str, Any], machine: dict[str, Any]) -> dict[str, Any]:
    """What a model's metadata keeps of its row (``rtstyle models`` prints it)."""
    y = row["yardstick"]
    return {"yardstick": {"lbfgs_matches_at": y["match_iteration"], "photos": len(y["per_image_match"]),
                          "size": SIZE, "held_out_objective": round(row["objective_held_out"]["total"], 3)},
            "cpu_fps_640x360": {**row["fps"], "backend": "openvino bf16", "cpu": machine["cpu"],
                                "busy_cores_before": machine["busy_cores_before"]},
            "kflop_per_pixel": row["kflop_per_pixel"], "border_deviation": row["border"]["max"],
            "date": _dt.date.today().isoformat()}


def markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [f"# Bundled style models on held-out photos (issue 31), {result['date']}", "",
             f"Machine: {m['cpu']} ({', '.join(m['cpu_flags'])}), {m['cores']} cores; fps measured with "
             f"{m['busy_cores_before']} cores kept busy by other processes just before (load {m['load_average_before']}).",
             f"Held out: the split's {result['split']['held_out']} photos "
             "([photo-split-2026-12-04.md](photo-split-2026-12-04.md)); the yardstick (Johnson et al. Fig. 5: L-BFGS "
             f"from noise on the network's own objective, {SIZE} px) on {result['split']['yardstick']} of them; "
             "Johnson et al. report 50 to 100 iterations for their networks.", "",
             "| model | arch | kFLOP/px | held-out objective (content / style) | L-BFGS matches at (median) | "
             "fps 640x360 b1 / b4 (OpenVINO bf16) | border dev. (levels) |", "|---|---|---|---|---|---|---|"]
    for r in result["models"]:
        o, y = r["objective_held_out"], r["yardstick"]
        match = y["match_iteration"] if y["match_iteration"] is not None else f"> {MILESTONES[-1]}"
        lines.append(f"| `{r['name']}` | {r['arch']} | {r['kflop_per_pixel']:.0f} | {o['total']:.2f} "
                     f"({o['content']:.2f} / {o['style']:.2f}) | {match} | {r['fps'].get('b1', '-')} / "
                     f"{r['fps'].get('b4', '-')} | {r['border']['max']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    from rtstyle.models import bundled_models, write_measurements

    p = argparse.ArgumentParser(prog="python -m rtstyle.benchmarks.style_models", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
    p.add_argument("--photos", type=Path, required=True, help="../shared/data/photos")
    p.add_argument("--out", type=Path, required=True, help="write OUT.json and OUT.md")
    p.add_argument("--model", action="append", help="bundled names or files (default: every bundled style model)")
    p.add_argument("--write-metadata", action="store_true", help="store each model's figures in its checkpoint")
    args = p.parse_args(argv)
    split = photo_split.split(args.photos)
    bundled = bundled_models()
    names = args.model or [n for n, path in bundled.items() if read_metadata(path).get("task") == "style"]
    paths = [bundled.get(n) or Path(n) for n in names]
    rows = []
    for name, path in zip(names, paths):
        row = measure(path, split, args.photos, True)
        rows.append({"name": Path(name).stem, **row})
    machine = environment.machine_info()  # just before the fps cells
    for path, row in zip(paths, rows):
        row["fps"] = speed(path)
    result = {"schema": SCHEMA, "date": _dt.date.today().isoformat(), "machine": machine,
              "versions": environment.versions(), "split": {k: len(v) for k, v in split.items()},
              "milestones": list(MILESTONES), "models": rows}
    write_result(args.out, result, markdown(result))
    if args.write_metadata:
        for path, row in zip(paths, rows):
            write_measurements(path, summary(row, machine))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
