"""Style-training throughput on this machine, before and after issue 31's changes, per architecture.

    python -m rtstyle.benchmarks.train_speed --photos ../shared/data/photos --style STYLE --out benchmarks/results/train-speed-DATE
    python -m rtstyle.benchmarks.train_speed ... --curves   # also: the same 400 steps before and after

Each configuration runs the real trainer (``rtstyle.trainers.train_style``: data loading, the
stabilisation term, the optimiser, logging) at 256 px, batch 4, on the training photos of the
issue's split (``photo_split.py``), for a few steps after a warm-up (torch.compile compiles in
the first steps), and reads each step's wall and CPU time from the loss log. The configurations
add one change at a time: ``before`` is the trainer as it was (fp32, NCHW, eager); then bf16
autocast (what ``--amp auto`` now picks on CPUs with AMX or AVX512-BF16), channels_last, and
torch.compile of the network and the loss (``--compile auto`` on runs of 500+ steps).
``--curves`` trains the fast network from the same seed for 400 steps before and after and
compares the loss curves and the held-out objective of the two results: the speed-up must not
change what is learnt.
"""

from __future__ import annotations

import argparse
import csv
import datetime as _dt
import statistics
import tempfile
from pathlib import Path
from typing import Any

from rtstyle.fsutil import atomic_path
from rtstyle.trainconfig import StyleTrainConfig
from rtstyle.trainers import train_style

from . import environment, photo_split
from .report import write_result

CONFIGS = {  # name -> (amp, channels_last, compile)
    "before (fp32, NCHW, eager)": ("off", False, "off"),
    "+ bf16 autocast": ("bf16", False, "off"),
    "+ channels_last": ("bf16", True, "off"),
    "+ torch.compile (after)": ("bf16", True, "on"),
}
BEFORE, AFTER = "before (fp32, NCHW, eager)", "+ torch.compile (after)"
ARCHS = ("johnson", "fast", "lowres")
BATCH = 4
IMAGE_SIZE = 256  # the paper's crops (tests make it small)


def _config(arch: str, config: str, data: Path, style: Path, out: Path, iterations: int, log_every: int):
    amp, channels_last, compile_mode = CONFIGS[config]
    return StyleTrainConfig(style=style, data=data, out=out, arch=arch, iterations=iterations, batch_size=BATCH,
                            image_size=IMAGE_SIZE, style_size=256, style_weight=2.5, seed=1, amp=amp,
                            channels_last=channels_last, compile=compile_mode, log_every=log_every,
                            checkpoint_every=10**6, progress="none")


def _rows(checkpoint: Path) -> list[dict[str, str]]:
    with open(checkpoint.with_name(checkpoint.stem + ".losses.csv"), newline="") as f:
        return list(csv.DictReader(f))


def measure(arch: str, config: str, data: Path, style: Path, workdir: Path, steps: int, warmup: int) -> dict[str, Any]:
    out = workdir / f"{arch}-{list(CONFIGS).index(config)}.safetensors"
    train_style(_config(arch, config, data, style, out, warmup + steps, 1))
    rows = _rows(out)[warmup - 1:]
    wall = [float(b["elapsed_s"]) - float(a["elapsed_s"]) for a, b in zip(rows, rows[1:])]
    cpu = [float(b["cpu_s"]) - float(a["cpu_s"]) for a, b in zip(rows, rows[1:])]
    step_s = statistics.median(wall)
    amp, channels_last, compile_mode = CONFIGS[config]
    return {"arch": arch, "config": config, "amp": amp, "channels_last": channels_last, "compile": compile_mode,
            "steps_timed": len(wall), "seconds_per_step": round(step_s, 3),
            "cpu_seconds_per_step": round(statistics.median(cpu), 3),
            "iterations_per_s": round(1 / step_s, 3), "images_per_s": round(BATCH / step_s, 2)}


def curves(data: Path, style: Path, held_out: list[Path], workdir: Path, steps: int) -> dict[str, Any]:
    """The fast network from the same seed, before and after: loss every 10 steps and the result's
    objective on the held-out photos."""
    from .arch_study import objective

    out: dict[str, Any] = {"arch": "fast", "steps": steps, "runs": {}}
    for config in (BEFORE, AFTER):
        path = workdir / f"curve-{list(CONFIGS).index(config)}.safetensors"
        train_style(_config("fast", config, data, style, path, steps, 10))
        rows = _rows(path)
        out["runs"][config] = {"step": [int(r["step"]) for r in rows], "total": [float(r["total"]) for r in rows],
                               "cpu_s": float(rows[-1]["cpu_s"]), "held_out_objective": objective(path, held_out)}
    return out


def plot_curves(result: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    for config, run in result["curves"]["runs"].items():
        obj = run["held_out_objective"]["total"]
        ax.plot(run["step"], run["total"], linewidth=1.2,
                label=f"{config}: {run['cpu_s'] / 60:.0f} CPU-min, held-out objective {obj:.2f}")
    ax.set_yscale("log")
    ax.set_xlabel("step (batch 4, 256 px; the same seed, photos and crops)")
    ax.set_ylabel("training loss (incl. stabilisation)")
    ax.set_title(f"fast net, before and after: {result['machine']['cpu']}", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


def markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [f"# Style-training throughput (issue 31), {result['date']}", "",
             f"Machine: {m['cpu']} ({', '.join(m['cpu_flags'])}), {m['cores']} cores, {m['torch_threads']} torch "
             f"threads; {m['busy_cores_before']} cores kept busy by other processes just before the run "
             f"(load {m['load_average_before']}). The real trainer, 256 px crops, batch {BATCH}, the default "
             f"stabilisation (each step runs the network on 8 images and VGG16 on 8: 4 outputs with gradients, "
             f"4 content targets); median of {result['steps']} steps after {result['warmup']} warm-up steps.", "",
             "| arch | configuration | s/step (wall) | CPU s/step | it/s | images/s | x before |",
             "|---|---|---|---|---|---|---|"]
    for arch in result["archs"]:
        cells = [c for c in result["cells"] if c["arch"] == arch]
        base = next(c for c in cells if c["config"] == BEFORE)["seconds_per_step"]
        for c in cells:
            lines.append(f"| `{arch}` | {c['config']} | {c['seconds_per_step']:.2f} | {c['cpu_seconds_per_step']:.2f} | "
                         f"{c['iterations_per_s']:.3f} | {c['images_per_s']:.2f} | {base / c['seconds_per_step']:.2f}x |")
    if "curves" in result:
        runs = result["curves"]["runs"]
        lines += ["", f"## Same result? The fast net, {result['curves']['steps']} steps from the same seed", "",
                  "| configuration | CPU minutes | held-out objective (content / style) |", "|---|---|---|"]
        for config, run in runs.items():
            o = run["held_out_objective"]
            lines.append(f"| {config} | {run['cpu_s'] / 60:.1f} | {o['total']:.3f} ({o['content']:.3f} / {o['style']:.3f}) |")
        lines += ["", f"![loss curves]({Path(result['curves_plot']).name})"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m rtstyle.benchmarks.train_speed", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
    p.add_argument("--photos", type=Path, required=True, help="../shared/data/photos (the split's training photos are used)")
    p.add_argument("--style", type=Path, required=True, help="style image")
    p.add_argument("--out", type=Path, required=True, help="write OUT.json, OUT.md (and OUT-curves.png)")
    p.add_argument("--arch", action="append", choices=ARCHS, help=f"default: {', '.join(ARCHS)}")
    p.add_argument("--steps", type=int, default=6, help="timed steps per configuration")
    p.add_argument("--warmup", type=int, default=3, help="untimed first steps (torch.compile compiles in them)")
    p.add_argument("--curves", action="store_true", help="also train the fast net 400 steps before and after")
    args = p.parse_args(argv)
    split = photo_split.split(args.photos)
    result: dict[str, Any] = {"date": _dt.date.today().isoformat(), "machine": environment.machine_info(),
                              "versions": environment.versions(), "steps": args.steps, "warmup": args.warmup,
                              "archs": args.arch or list(ARCHS), "cells": []}
    with tempfile.TemporaryDirectory(prefix="rtstyle-train-speed-") as tmp:
        work = Path(tmp)
        data = photo_split.link_train(args.photos, work / "train-photos")
        for arch in result["archs"]:
            for config in CONFIGS:
                cell = measure(arch, config, data, args.style, work, args.steps, args.warmup)
                print(cell, flush=True)
                result["cells"].append(cell)
        if args.curves:
            result["curves"] = curves(data, args.style, [args.photos / n for n in split["held_out"]], work, 400)
            result["curves_plot"] = str(plot_curves(result, Path(f"{args.out}-curves.png")))
    write_result(args.out, result, markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
