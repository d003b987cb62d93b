"""Turn a ``run_bench`` result into what people read: a Markdown report and two PNG plots
(fps vs resolution per backend; the pipeline's stage breakdown), and write them with the JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rtstyle.fsutil import atomic_path
from rtstyle.outputs import OutputPolicy


def write_result(prefix: Path, result: dict, text: str) -> tuple[Path, Path]:
    """``<prefix>.json`` (every figure) and ``<prefix>.md`` (``text``, what people read), each
    written atomically; for the benchmark scripts beside ``bench.py``."""
    json_path, md_path = Path(f"{prefix}.json"), Path(f"{prefix}.md")
    with atomic_path(json_path) as tmp:
        tmp.write_text(json.dumps(result, indent=2, allow_nan=True) + "\n")
    with atomic_path(md_path) as tmp:
        tmp.write_text(text)
    return json_path, md_path


def _fps(fps: dict[str, float]) -> str:
    return f"{fps['median']:.2f} ({fps['p10']:.2f}-{fps['p90']:.2f})"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _pixels(resolution: str) -> int:
    w, h = resolution.split("x")
    return int(w) * int(h)


def _header(result: dict) -> list[str]:
    m, d, v = result["machine"], result["device"], result["versions"]
    mem = f"{m['memory_bytes'] / 2**30:.0f} GiB" if m.get("memory_bytes") else "?"
    load = m.get("load_average_before")
    return [
        f"# rtstyle bench: {d['name']} ({d['type']}), {result['date']}",
        "",
        f"- machine: {m['cpu']}, {m['cores']} cores ({m['torch_threads']} torch threads), {mem}, load average "
        f"before/after {load} / {m.get('load_average_after')}"
        + (f"; cores busy with other processes just before: {m['busy_cores_before']}"
           if m.get("busy_cores_before") is not None else ""),
        f"- versions: rtstyle {v['rtstyle']}, torch {v['torch']}, onnxruntime {v['onnxruntime']}, av {v['av']}, "
        f"CUDA {v['cuda']}, TensorRT {v['tensorrt']}",
        f"- model: {result['model']['source']} ({result['model']['parameters']:,} parameters)",
        "- ceilings measured in this run: matmul "
        + ", ".join(f"{k} {t:.3g} TFLOP/s" for k, t in result["ceilings"]["matmul_tflops"].items())
        + f"; copy {result['ceilings']['copy_gbps']:.3g} GB/s",
        "",
    ]


def _model_only_section(result: dict) -> list[str]:
    rows = []
    for c in result["model_only"]:
        floor = c["roofline"]
        if "fps" in c:
            measured = [_fps(c["fps"]), f"{1000 / c['fps']['median']:.1f}",
                        f"{100 * floor['achieved_fraction']:.1f}%"]
        else:
            measured = [f"failed: {c['error']}", "", ""]
        rows.append([c["backend"], c["precision"], str(c["batch"]), c["resolution"], measured[0], measured[1],
                     f"{floor['floor_fps']:.1f} ({floor['bound']})", measured[2]])
    header = ["backend", "precision", "batch", "resolution", "fps median (p10-p90)", "ms/frame", "roofline floor fps",
              "of floor"]
    return ["## Model only (uint8 frames on the device in and out)", "", *_table(header, rows), ""]


def _work_section(result: dict) -> list[str]:
    rows = []
    for res, by_precision in result["work"].items():
        for precision, w in by_precision.items():
            rows.append([res, precision, f"{w['flops'] / 1e9:.2f}", f"{w['other_flops'] / 1e9:.3f}",
                         f"{w['matmul_bytes'] / 1e6:.1f}", f"{w['bytes'] / 1e6:.1f}"])
    header = ["resolution", "precision", "conv GFLOP/frame", "other GFLOP/frame", "conv MB/frame", "unfused MB/frame"]
    return ["## Work per frame (counted from the model)", "", *_table(header, rows), ""]


def _reference_section(result: dict) -> list[str]:
    if not result.get("reference"):
        return []
    rows = []
    for r in result["reference"]:
        best = r.get("best")
        rows.append([
            r["resolution"], _fps(r["reference"]["fps"]),
            f"{best['backend']} {best['precision']} b{best['batch']}: {_fps(best['fps'])}" if best else "n/a",
            f"{r['speedup']:.2f}x" if "speedup" in r else "n/a",
        ])
    header = ["resolution", "reference fps (fp32 eager, per frame, host pre/post)", "best engine fps (host in/out)",
              "speed-up"]
    return ["## Against the reference implementation (same machine, same frames)", "", *_table(header, rows), ""]


def _pipeline_section(result: dict) -> list[str]:
    p = result.get("pipeline")
    if not p:
        return []
    clip = p["clip"]
    rows = [[name, f"{s['fps']:.2f}"] for name, s in p["stages"].items()]
    rows.append(["whole pipeline", f"{p['end_to_end']['fps']:.2f}"])
    return [
        f"## Pipeline ({clip['path']} clip {clip['width']}x{clip['height']}, {p['end_to_end']['frames']} frames, "
        f"{p['engine']['description']}, batch {p['batch']}, {p['encoder']['codec']} {p['encoder']['preset']}"
        + (f", {p['threads']['encode']} encoder threads" if p.get("threads") else "")
        + (f"; {p['colour_conversion']}" if p.get("colour_conversion") else "") + ")",
        "",
        *_table(["stage", "fps"], rows),
        "",
        f"Pipeline efficiency = end-to-end fps / slowest stage ({p['slowest_stage']}) fps = **{p['efficiency']:.2f}**",
        "",
    ]


def _targets_section(result: dict) -> list[str]:
    if not result.get("targets"):
        return []  # e.g. a second net of the GPU check: the targets are about the first
    rows = []
    for name, t in result["targets"].items():
        measured = t.get("measured", t.get("measured_min_over_resolutions"))
        verdict = {True: "met", False: "not met", None: "n/a on this device"}[t["met"]]
        if t.get("unreliable"):
            verdict = "no verdict: noisy machine"
        rows.append([name, f"{t['target']}", "n/a" if measured is None else f"{measured:.2f}", verdict])
    lines = ["## Targets", "", *_table(["target", "goal", "measured", "verdict"], rows), ""]
    noise = result.get("noise") or {"reliable": True}
    if not noise["reliable"]:
        lines += ["**Unreliable figures, no verdicts:** " + "; ".join(noise["reasons"])
                  + ". Rerun on a quiet machine (nothing else running) for verdicts.", ""]
    return lines


def markdown_report(result: dict, plots: list[Path] = ()) -> str:
    lines = _header(result)
    for section in (_model_only_section, _work_section, _reference_section, _pipeline_section, _targets_section):
        lines += section(result)
    lines += [f"![{p.stem}]({p.name})" for p in plots]
    lines += ["", "## Notes", "", *[f"- {n}" for n in result["notes"]], ""]
    return "\n".join(lines)


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_fps(result: dict, path: Path, overwrite: bool = True) -> Path:
    """fps vs resolution: one line per backend and precision at its best batch, plus the reference."""
    plt = _figure()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    series: dict[str, dict[str, float]] = {}
    for c in result["model_only"]:
        if "fps" in c:
            line = series.setdefault(f"{c['backend']} {c['precision']}", {})
            line[c["resolution"]] = max(line.get(c["resolution"], 0.0), c["fps"]["median"])
    ref = {r["resolution"]: r["reference"]["fps"]["median"] for r in result.get("reference", [])}
    for label, points in sorted(series.items()):
        xs = sorted(points, key=_pixels)
        ax.plot([_pixels(x) / 1e6 for x in xs], [points[x] for x in xs], marker="o", label=f"{label} (best batch)")
    if ref:
        xs = sorted(ref, key=_pixels)
        ax.plot([_pixels(x) / 1e6 for x in xs], [ref[x] for x in xs], "k--", marker="x", label="reference")
    ax.set_xlabel("megapixels per frame")
    ax.set_ylabel("frames per second")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"{result['model']['source']} on {result['device']['name']}", fontsize=9)
    return _save(fig, path, overwrite)


def plot_stages(result: dict, path: Path, overwrite: bool = True) -> Path:
    """Bars: decode, engine, encode and whole-pipeline fps."""
    plt = _figure()
    p = result["pipeline"]
    names = [*p["stages"], "whole pipeline"]
    values = [s["fps"] for s in p["stages"].values()] + [p["end_to_end"]["fps"]]
    fig, ax = plt.subplots(figsize=(6, 4))
    bars = ax.bar(names, values, color=["#4c72b0", "#dd8452", "#55a868", "#c44e52"])
    ax.bar_label(bars, fmt="%.1f")
    ax.set_yscale("log")
    ax.set_ylabel("frames per second")
    ax.set_title(f"pipeline stages, {p['clip']['width']}x{p['clip']['height']}, efficiency {p['efficiency']:.2f}",
                 fontsize=9)
    return _save(fig, path, overwrite)


def _save(fig, path: Path, overwrite: bool = True) -> Path:
    import matplotlib.pyplot as plt

    with atomic_path(path, overwrite) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def output_paths(json_path: str | Path, pipeline: bool = True) -> list[Path]:
    """Every file ``write_outputs`` writes for ``json_path``: check them before a long run."""
    json_path = Path(json_path)
    stems = ["fps", "stages"] if pipeline else ["fps"]
    return [json_path, json_path.with_suffix(".md"), *(json_path.with_name(f"{json_path.stem}-{s}.png") for s in stems)]


def write_outputs(result: dict[str, Any], json_path: str | Path, overwrite: bool = True) -> dict[str, Path]:
    """Write ``json_path``, a Markdown report beside it (.md) and the plots (-fps.png,
    -stages.png); returns what was written. Without ``overwrite`` no existing file is replaced
    (the one output rule, rtstyle.outputs)."""
    json_path = Path(json_path)
    for path in output_paths(json_path, bool(result.get("pipeline"))):
        OutputPolicy(overwrite=overwrite).check(path)
    written: dict[str, Path] = {}
    plots = [plot_fps(result, json_path.with_name(f"{json_path.stem}-fps.png"), overwrite)]
    if result.get("pipeline"):
        plots.append(plot_stages(result, json_path.with_name(f"{json_path.stem}-stages.png"), overwrite))
    for p in plots:
        written[p.stem.rsplit("-", 1)[-1]] = p
    md = json_path.with_suffix(".md")
    with atomic_path(md, overwrite) as tmp:
        tmp.write_text(markdown_report(result, plots))
    written["markdown"] = md
    with atomic_path(json_path, overwrite) as tmp:
        tmp.write_text(json.dumps(result, indent=1, default=str) + "\n")
    written["json"] = json_path
    return written
