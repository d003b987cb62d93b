"""The architecture study of issue 31: quality against cost, one fixed CPU budget per network.

    # 1. train every network on the same style, photos, seed and recipe, to the same CPU budget
    #    (benchmarks/results/arch-study-*.md gives the exact command; 1 thread each, two side by side)
    rtstyle train style --arch ARCH --max-cpu-seconds 2400 ... --out RUNS/ARCH.safetensors
    # 2. measure them all and write the table and the Pareto plot
    python -m rtstyle.benchmarks.arch_study --runs RUNS --photos ../shared/data/photos --out benchmarks/results/arch-study-DATE
    python -m rtstyle.benchmarks.arch_study ... --speed-only   # re-measure fps alone (on a quiet machine)

Per network, on the held-out photos of the split (``photo_split.py``; none was trained on):

* the yardstick of Johnson et al. Fig. 5 (``rtstyle eval quality``): the L-BFGS iteration at which
  optimisation from noise matches the network's own objective at 256 px, on the split's 8
  yardstick photos (the mean curve); the optimisation is the same for every network of the study
  (same objective), so it runs once and is read from the cache after;
* the objective itself (content + style + TV, the network's training weights) at 256 px on all 32
  held-out photos: lower is better, and unlike the match iteration it needs no optimisation;
* FLOPs per output pixel (counted on the network at 640x360), parameters;
* model-only fps at 640x360 with OpenVINO bf16 at batch 1 and 4 on this CPU (``rtstyle bench``'s
  cells: uint8 frames in and out), with the machine's load measured just before;
* the border artefact on a flat input (``metrics.border_deviation``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rtstyle.checkpoint import read_metadata
from rtstyle.fsutil import atomic_path
from rtstyle.presets import style_arch_name

from . import environment, photo_split
from .style_models import MILESTONES, measure, speed

SCHEMA = "rtstyle-arch-study/1"


def pareto(rows: list[dict[str, Any]]) -> list[str]:
    """Networks no other beats on both fps (batch 1) and held-out objective (lower is better)."""
    def key(r):
        return r["fps"].get("b1", 0.0), -r["objective_held_out"]["total"]
    front = []
    for r in rows:
        fps, obj = key(r)
        if not any(key(o)[0] >= fps and key(o)[1] >= obj and key(o) != (fps, obj) for o in rows):
            front.append(r["arch"])
    return front


def plot(result: dict[str, Any], out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["networks"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), dpi=100)
    for ax, (label, value) in zip(axes, (
            ("held-out objective at 256 px (lower is better)", lambda r: r["objective_held_out"]["total"]),
            ("L-BFGS iterations to match (higher is better)", lambda r: r["yardstick"]["match_iteration"] or 0))):
        for r in rows:
            x, y = r["fps"].get("b1", 0.0), value(r)
            on_front = r["arch"] in result["pareto_front"]
            ax.scatter([x], [y], s=60 if on_front else 30, marker="o" if on_front else "x")
            ax.annotate(f"{r['arch']}\n{r['kflop_per_pixel']:.0f} kFLOP/px", (x, y), textcoords="offset points",
                        xytext=(6, 4), fontsize=8)
        ax.set_xlabel("fps at 640x360, OpenVINO bf16, batch 1 (this CPU)")
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
    axes[1].axhline(50, color="gray", linestyle="--", linewidth=0.8)
    fig.suptitle(f"Architecture study: {result['budget_cpu_s']:.0f} CPU-s each, {result['machine']['cpu']}", fontsize=10)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return out


def markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [f"# Architecture study (issue 31), {result['date']}", "",
             f"Machine: {m['cpu']} ({', '.join(m['cpu_flags'])}), {m['cores']} cores; training 1 thread per network, "
             f"CPU time counted by the trainer (other processes' load does not shrink a budget). fps measured with "
             f"{m['busy_cores_before']} cores kept busy by other processes just before (load {m['load_average_before']}).",
             "", f"Every network: `starry_night.jpg` at 256 px, the split's 154 training photos, seed 1, 256 px crops, "
             f"batch 4, Adam 1e-3, content 1 / style 2.5 / TV 1e-4, the default stabilisation, bf16 autocast, "
             f"torch.compile, {result['budget_cpu_s']:.0f} CPU-s. Held out: the split's 32 photos "
             f"([photo-split-2026-12-04.md](photo-split-2026-12-04.md)); yardstick photos: 8 of them.", "",
             "| arch | design | params | kFLOP/px | iterations in budget | held-out objective (content / style) | "
             "L-BFGS matches at | fps 640x360 b1 / b4 | border dev. (levels) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in result["networks"]:
        o, y = r["objective_held_out"], r["yardstick"]
        star = " **(front)**" if r["arch"] in result["pareto_front"] else ""
        match = y["match_iteration"] if y["match_iteration"] is not None else f"> {MILESTONES[-1]}"
        lines.append(f"| `{r['arch']}`{star} | {r['describe']} | {r['params'] / 1e6:.2f} M | {r['kflop_per_pixel']:.0f} | "
                     f"{r['iterations']} | {o['total']:.2f} ({o['content']:.2f} / {o['style']:.2f}) | {match} | "
                     f"{r['fps'].get('b1', '-')} / {r['fps'].get('b4', '-')} | {r['border']['max']} |")
    lines += ["", f"Pareto front (fps at batch 1 against held-out objective): {', '.join(result['pareto_front'])}.",
              "", "![quality against fps](" + Path(result["plot"]).name + ")", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m rtstyle.benchmarks.arch_study", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
    p.add_argument("--runs", type=Path, required=True, help="folder of the study's checkpoints (ARCH.safetensors)")
    p.add_argument("--photos", type=Path, required=True, help="../shared/data/photos")
    p.add_argument("--out", type=Path, required=True, help="write OUT.json, OUT.md and OUT.png")
    p.add_argument("--arch", action="append", help="only these networks (default: every checkpoint in --runs)")
    p.add_argument("--speed-only", action="store_true", help="re-measure fps into an existing OUT.json")
    args = p.parse_args(argv)
    json_path = args.out.with_suffix(".json")
    split = photo_split.split(args.photos)
    paths = sorted(args.runs.glob("*.safetensors"))
    if args.arch:
        paths = [q for q in paths if q.stem in args.arch]
    if args.speed_only:
        result = json.loads(json_path.read_text())
        result["machine"] = environment.machine_info()
        by_arch = {r["arch"]: r for r in result["networks"]}
        for path in paths:
            by_arch[style_arch_name(read_metadata(path)["model"])]["fps"] = speed(path)
    else:
        rows = [measure(path, split, args.photos, True) for path in paths]
        machine = environment.machine_info()  # just before the fps cells
        for path, row in zip(paths, rows):
            row["fps"] = speed(path)
        budgets = {r["train"]["max_cpu_seconds"] for r in rows}
        result = {"schema": SCHEMA, "date": __import__("datetime").date.today().isoformat(), "machine": machine,
                  "versions": environment.versions(), "budget_cpu_s": max(b or 0 for b in budgets),
                  "split": {k: len(v) for k, v in split.items()}, "milestones": list(MILESTONES), "networks": rows}
    result["pareto_front"] = pareto(result["networks"])
    result["plot"] = str(plot(result, args.out.with_suffix(".png")))
    with atomic_path(json_path) as tmp:
        tmp.write_text(json.dumps(result, indent=1) + "\n")
    with atomic_path(args.out.with_suffix(".md")) as tmp:
        tmp.write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
