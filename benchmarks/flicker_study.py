"""Issue 18: which stabilisation generalises, measured under a protocol that cannot fool itself.

* Styles and clips are split once, before any result is seen. Weights and methods are chosen on
  the **tuning** styles and clips only; the **report** styles and clips play no part in any choice
  and are used once, for the numbers in the README.
* Every model is trained with the bundled models' recipe (``--preset fast``: fast net, 128 px,
  batch 2, style weight 2.5), ``ITERATIONS`` steps, style image at 256 px, on the shared photos
  without the sample photos; only the stabilisation settings differ.
* A unit is one (style, seed). Every change is against the baseline (weight 0) of its own unit,
  and a configuration meets the target only if it does so in **every** unit: warping error at
  least 30% lower, style loss at most 10% higher.

Phases (each trains what is missing in ``--work``, evaluates, writes ``<out>.json/.md``):

    python -m rtstyle.benchmarks.flicker_study tune --data PHOTOS --styles ../shared/data/styles \\
        --videos ../shared/data/videos --work /tmp/flicker --out benchmarks/results/flicker-tune-2026-11-29
    python -m rtstyle.benchmarks.flicker_study report --config motion150 ... (same folders) \\
        --out benchmarks/results/flicker-report-2026-11-29
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import time
from pathlib import Path
from typing import Any

from rtstyle.argparsing import ArgumentParser
from rtstyle.presets import apply_preset
from rtstyle.trainconfig import StyleTrainConfig

from . import temporal
from .environment import machine_line
from .report import write_result

TUNING_STYLES = ("great_wave", "composition_viii")
TUNING_CLIPS = ("box.mp4", "vtest.avi")
REPORT_STYLES = ("moulin_de_la_galette", "summertime")  # never used to choose anything
REPORT_CLIPS = ("cup.mp4", "carphone_pristine.mp4")  # never used to choose anything
ITERATIONS = 450
STYLE_SIZE = 256

# Candidate stabilisation settings (trainers/stability.py); "base" is the recipe without the term.
# Every setting is spelled out, so a changed default never changes what a name means.
_SHIFT = {"stability_shift": 2.0, "stability_noise": 0.02, "stability_brightness": 0.05,
          "stability_rotate": 0.0, "stability_zoom": 0.0, "stability_flow": 0.0, "stability_occlusion": 0.0}
_MOTION = {**_SHIFT, "stability_rotate": 2.0, "stability_zoom": 0.03, "stability_flow": 1.5, "stability_occlusion": 0.5}
CONFIGS: dict[str, dict[str, float]] = {
    "base": {"stability_weight": 0.0},
    "shift150": {"stability_weight": 150.0, **_SHIFT},  # the term of issue 7 at its old default weight
    "shift400": {"stability_weight": 400.0, **_SHIFT},
    "motion150": {"stability_weight": 150.0, **_MOTION},  # synthetic motion, ReCoNet-style
    "motion400": {"stability_weight": 400.0, **_MOTION},
}
TUNE_CONFIGS = ("base", "shift150", "motion150", "shift400", "motion400")
TUNE_SEEDS = (1,)
REPORT_SEEDS = (1, 2)
SMOOTHING = (0.2, 0.3)  # runtime smoothing of the baseline, for the trade-off on the report clips


def train_one(config: str, style: Path, seed: int, data: Path, work: Path) -> tuple[Path, float | None]:
    """The checkpoint of ``config`` for ``style`` and ``seed`` (trained unless already in ``work``),
    and the seconds its training took (None when it was there)."""
    out = work / f"{config}@{style.stem}-{seed}.safetensors"
    if out.exists():
        return out, None
    defaults = {f.name: f.default for f in dataclasses.fields(StyleTrainConfig) if f.default is not dataclasses.MISSING}
    values = apply_preset("fast", defaults, defaults)
    values.update(iterations=ITERATIONS, style_size=STYLE_SIZE, seed=seed, progress="none", **CONFIGS[config])
    start = time.perf_counter()
    from rtstyle.trainers import train_style

    train_style(StyleTrainConfig(style=style, data=data, out=out, **values))
    return out, time.perf_counter() - start


def run_phase(phase: str, configs: list[str], seeds: tuple[int, ...], args) -> dict[str, Any]:
    styles, clips = (TUNING_STYLES, TUNING_CLIPS) if phase == "tune" else (REPORT_STYLES, REPORT_CLIPS)
    models: dict[str, Path] = {}
    train_seconds: dict[str, float] = {}
    for style in styles:
        for seed in seeds:
            for config in configs:  # the baseline first: every change is against it
                path, seconds = train_one(config, args.styles / f"{style}.jpg", seed, args.data, args.work)
                models[f"{config}@{style}-{seed}"] = path
                if seconds is not None:
                    train_seconds[path.stem] = seconds
    videos = [args.videos / name for name in clips]
    eval_args = argparse.Namespace(start=None, duration=args.duration, max_side=args.max_side, loss_every=args.loss_every,
                                   smooth=[n for n in models if n.startswith("base@")] if phase == "report" else [],
                                   encoded=phase == "report",  # the encoded forms are for the report only
                                   out=args.out)
    runs = temporal.evaluate_all(models, videos, list(SMOOTHING) if phase == "report" else [], eval_args)
    summary = temporal.summarise(runs)
    result = {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_line(),
        "phase": phase,
        "protocol": {"tuning_styles": TUNING_STYLES, "tuning_clips": TUNING_CLIPS, "report_styles": REPORT_STYLES,
                     "report_clips": REPORT_CLIPS, "seeds": seeds, "iterations": ITERATIONS, "style_size": STYLE_SIZE,
                     "recipe": "--preset fast", "configs": {c: CONFIGS[c] for c in configs}},
        "settings": {"videos": [str(v) for v in videos], "models": {k: str(v) for k, v in models.items()},
                     "max_side": args.max_side, "start": None, "duration": args.duration,
                     "smoothing": list(SMOOTHING) if phase == "report" else [], "loss_every": args.loss_every},
        "train_seconds": train_seconds,
        "summary": summary, "across_seeds": temporal.across_seeds(summary), "runs": runs, "fps": None,
    }
    if phase == "report" and args.fps:
        base = next(p for n, p in models.items() if n.startswith("base@"))
        result["fps"] = temporal.smoothing_fps(base, videos[0], max(SMOOTHING), eval_args)
    return result


def preamble(result: dict[str, Any]) -> str:
    p = result["protocol"]
    which = "tuning" if result["phase"] == "tune" else "report (held out: never used to choose anything)"
    lines = [f"# Flicker study, {which} phase (issue 18)", "",
             f"- styles: {', '.join(p['tuning_styles'] if result['phase'] == 'tune' else p['report_styles'])}; "
             f"clips: {', '.join(p['tuning_clips'] if result['phase'] == 'tune' else p['report_clips'])}; "
             f"seeds: {', '.join(map(str, p['seeds']))}",
             f"- held out for the report: styles {', '.join(p['report_styles'])}, clips {', '.join(p['report_clips'])}",
             f"- recipe: {p['recipe']}, {p['iterations']} iterations, style image {p['style_size']} px; configurations:"]
    lines += [f"  - `{name}`: " + (", ".join(f"{k.removeprefix('stability_')} {v:g}" for k, v in cfg.items() if v)
                                   if cfg.get("stability_weight") else "weight 0 (no stabilisation term)")
              for name, cfg in p["configs"].items()]
    if result["train_seconds"]:
        secs = sorted(result["train_seconds"].items())
        lines.append("- training time (CPU, this machine): " + ", ".join(f"{k} {v / 60:.1f} min" for k, v in secs))
    lines.append("- each `config@style-seed` is compared with `base@style-seed`; the 'across seeds' table is "
                 "over style x seed units")
    return "\n".join(lines) + "\n\n"


def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("phase", choices=("tune", "report"))
    p.add_argument("--config", action="append", help="configurations to compare with the baseline (default: "
                   "every candidate for tune; required for report)")
    p.add_argument("--data", type=Path, required=True, help="training photos (without the held-out sample photos)")
    p.add_argument("--styles", type=Path, required=True, help="folder with the style images")
    p.add_argument("--videos", type=Path, required=True, help="folder with the clips")
    p.add_argument("--work", type=Path, required=True, help="checkpoints are kept here (reused when present)")
    p.add_argument("--out", type=Path, required=True, help="output prefix (no extension)")
    p.add_argument("--max-side", type=int, default=320)
    p.add_argument("--duration", type=float, default=4.0)
    p.add_argument("--loss-every", type=int, default=4)
    p.add_argument("--fps", action="store_true", help="report: also time runtime smoothing end to end")
    args = p.parse_args(argv)
    unknown = [c for c in args.config or [] if c not in CONFIGS]
    if unknown:
        p.error(f"unknown --config {', '.join(unknown)}; choose from {', '.join(CONFIGS)}")
    if args.phase == "report" and not args.config:
        p.error("report needs --config: the configurations the tuning phase chose")
    configs = ["base", *[c for c in (args.config or TUNE_CONFIGS) if c != "base"]]
    args.work.mkdir(parents=True, exist_ok=True)
    result = run_phase(args.phase, configs, TUNE_SEEDS if args.phase == "tune" else REPORT_SEEDS, args)
    # The study's own title comes first; the tables' title becomes a section.
    text = preamble(result) + temporal.markdown(result).replace("# Temporal stability (issue 7), ", "## Measured ", 1)
    write_result(args.out, result, text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
