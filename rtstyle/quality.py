"""The quality yardstick of Johnson et al. (2016, Fig. 5): a feed-forward style network against
optimisation (Gatys et al.) of the very objective it was trained on.

For each image, both are scored with the network's own training loss (``meta["loss"]`` of its
checkpoint, the style image at its training size): the network's output once (timed after a
warm-up), and one optimisation run to the last milestone, recording the objective and the
elapsed time at every iteration. The report says at which iteration optimisation first
matches the network's objective and how much longer it took to get there.

The optimisation does not depend on the network, only on the objective (image, style image,
loss weights, optimiser settings, VGG weights), so its trace is kept in the user's cache
(``quality-traces/``) under a hash of all of them: scoring another network trained on the same
style and loss (an architecture study, the checkpoints of one training) costs one forward pass.
L-BFGS from a seeded start is deterministic, so a longer cached trace serves a shorter run.
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch

from .checkpoint import Checkpoint, load_checkpoint
from .engine import resolve_device
from .errors import CheckpointError, InputError
from .frames import load_image, numpy_to_float
from .fsutil import atomic_path, cache_dir
from .losses import LossConfig, PerceptualLoss
from .models import resolve_model
from .optimize import OptimizerSettings, build_loss, optimize_pixels
from .outputs import OutputPolicy
from .progress import progress as progress_bar
from .sources import list_images
from .style_lookup import default_style_dirs, style_target

DEFAULT_MILESTONES = (50, 100, 300, 500)
TERMS = ("total", "style", "content", "tv")
# CPU kernels here run ~100x slower for the first few calls (primitive creation, thread wake-up).
WARMUP_RUNS = 3


@dataclass
class QualityConfig:
    """Options of ``rtstyle eval quality``."""

    model: str | Path  # bundled name or checkpoint path
    images: Sequence[Path]  # image files and/or folders of images
    style: Path | None = None  # default: found by name + sha256 in style_dirs
    style_dirs: Sequence[Path] | None = None  # None: default_style_dirs()
    milestones: Sequence[int] = DEFAULT_MILESTONES
    size: int | None = 256  # longer side of each image (optimisation on CPU is slow)
    limit: int | None = None  # at most this many images
    settings: OptimizerSettings = field(default_factory=lambda: OptimizerSettings(init="noise"))
    device: str = "auto"
    vgg_weights: Path | None = None
    timing_runs: int = 5  # network timing: median of this many runs after WARMUP_RUNS
    # Stop each optimisation once it matches the network (at most the last milestone): what the match
    # iteration needs, at a fraction of the cost; milestones past the match are then not reported.
    stop_at_match: bool = False
    json_path: Path | None = None
    plot_path: Path | None = None  # default: json_path with .png
    progress: bool = True
    overwrite: bool = False  # replace an existing --json / --plot

    def validate(self) -> None:
        self.settings.validate()
        if not self.milestones or any(int(m) < 1 for m in self.milestones):
            raise InputError(f"--iterations needs positive milestones such as 50,100,300,500, got {list(self.milestones)}")
        self.milestones = tuple(sorted({int(m) for m in self.milestones}))
        if self.size is not None and self.size < 16:
            raise InputError(f"--size must be >= 16 px, got {self.size}")
        if self.limit is not None and self.limit < 1:
            raise InputError(f"--limit must be >= 1, got {self.limit}")
        if self.timing_runs < 1:
            raise InputError(f"--timing-runs must be >= 1, got {self.timing_runs}")
        for out in (self.json_path, self.resolved_plot_path):  # the one output rule (rtstyle.outputs)
            if out is not None:
                images = [self.images] if isinstance(self.images, (str, Path)) else list(self.images or ())
                OutputPolicy(overwrite=self.overwrite).check(out, images)

    @property
    def resolved_plot_path(self) -> Path | None:
        if self.plot_path is not None:
            return Path(self.plot_path)
        return Path(self.json_path).with_suffix(".png") if self.json_path is not None else None


def loss_config_of(ckpt: Checkpoint) -> LossConfig:
    raw = ckpt.meta.get("loss")
    if not isinstance(raw, dict):
        raise CheckpointError(f"{ckpt.path} records no training loss ('loss' metadata); it cannot be compared")
    try:
        return LossConfig.from_dict(raw)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{ckpt.path} has an invalid 'loss' metadata entry ({exc})") from None


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    # CPU timings on a shared machine mean little without the load they were taken under.
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"cpu ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads, load {load:.1f})"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.inference_mode()
def time_network(model: torch.nn.Module, content: torch.Tensor, runs: int) -> tuple[torch.Tensor, float]:
    """Output and median seconds of ``runs`` forward passes after ``WARMUP_RUNS`` untimed ones."""
    for _ in range(WARMUP_RUNS):
        output = model(content)
    times = []
    for _ in range(runs):
        _sync(content.device)
        start = time.perf_counter()
        output = model(content)
        _sync(content.device)
        times.append(time.perf_counter() - start)
    return output.clone(), statistics.median(times)


def match_point(totals: Sequence[float], seconds: Sequence[float], target: float) -> dict[str, Any]:
    """First iteration whose objective is <= ``target``, and the time it took (None: never)."""
    for k, value in enumerate(totals):
        if value <= target:
            return {"iteration": k, "seconds": seconds[k]}
    return {"iteration": None, "seconds": None}


def _terms(values: dict[str, float]) -> dict[str, float]:
    return {t: float(values.get(t, 0.0)) for t in TERMS}


def trace_key(content: torch.Tensor, loss_fn: PerceptualLoss, style: torch.Tensor, config: QualityConfig,
              device: torch.device) -> str:
    """What an optimisation trace depends on, hashed: the pixels of the image and of the style
    image, the loss, the optimiser settings, the VGG weights and where and with what it runs."""
    h = hashlib.sha256()
    for t in (content, style):
        h.update(t.detach().float().cpu().contiguous().numpy().tobytes())
    h.update(json.dumps({"loss": loss_fn.config.to_dict(), "settings": vars(config.settings), "vgg": loss_fn.vgg.source,
                         "torch": torch.__version__, "device": device.type}, sort_keys=True, default=str).encode())
    return h.hexdigest()[:32]


def optimization_trace(loss_fn: PerceptualLoss, content: torch.Tensor, style: torch.Tensor, config: QualityConfig,
                       device: torch.device, name: str, target: float, bar=None
                       ) -> tuple[list[dict[str, float]], list[float], bool]:
    """(objective terms per iteration, seconds per iteration, from the cache?) up to the last
    milestone, or with ``stop_at_match`` up to the first image at or below ``target``.
    ``bar``: the run's progress over every image's iterations (a cached trace advances it at once)."""
    last = config.milestones[-1]
    path = cache_dir() / "quality-traces" / f"{trace_key(content, loss_fn, style, config, device)}.json"
    cached: dict[str, Any] = {"history": []}
    try:
        cached = json.loads(path.read_text())
        history, seconds = cached["history"][:last + 1], cached["seconds"][:last + 1]
        if config.stop_at_match:
            match = match_point([h["total"] for h in history], seconds, target)["iteration"]
            if match is not None:
                if bar is not None:
                    bar.update(last)  # this image's share of the run is done
                return history[:match + 1], seconds[:match + 1], True
        if len(history) > last:
            if bar is not None:
                bar.update(last)
            return history, seconds, True
    except (OSError, ValueError, KeyError, TypeError):
        pass  # none yet, or unreadable: optimise
    done_before = bar.n if bar is not None else 0
    trace = optimize_pixels(loss_fn, content, last, config.settings, progress=config.progress, desc=f"optimize {name}",
                            stop_below=target if config.stop_at_match else None, bar=bar)
    if bar is not None:
        bar.update(done_before + last - bar.n)  # an early stop at the match: this image's share is done
    if len(trace.history) > len(cached.get("history", [])):  # keep the longest trace seen
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path, overwrite=True) as tmp:
            tmp.write_text(json.dumps({"history": trace.history, "seconds": trace.seconds}) + "\n")
    return trace.history, trace.seconds, False


def evaluate_image(loss_fn: PerceptualLoss, model: torch.nn.Module, path: Path, config: QualityConfig,
                   device: torch.device, style: torch.Tensor, bar=None) -> dict[str, Any]:
    """One image's row of the report; ``bar``: the run's progress over every image's iterations."""
    content = numpy_to_float(load_image(path, max_side=config.size)).to(device).contiguous()
    output, net_seconds = time_network(model, content, config.timing_runs)
    with torch.no_grad():
        network = _terms(loss_fn(output, content).as_floats())
    network["seconds"] = net_seconds
    history, seconds, cached = optimization_trace(loss_fn, content, style, config, device, path.name,
                                                  network["total"], bar)
    totals = [h["total"] for h in history]
    milestones = {str(k): {**_terms(history[k]), "seconds": seconds[k]} if k < len(history) else None
                  for k in config.milestones}
    match = match_point(totals, seconds, network["total"])
    match["speed_ratio"] = match["seconds"] / net_seconds if match["seconds"] is not None else None
    return {"image": path.name, "size": list(content.shape[-2:]), "network": network, "optimization": milestones,
            "match": match, "trace_cached": cached, "history": {"total": totals, "seconds": seconds}}


def _average(images: list[dict[str, Any]], milestones: Sequence[int]) -> dict[str, Any]:
    def mean(values):
        return float(statistics.fmean(values))

    network = {k: mean([r["network"][k] for r in images]) for k in (*TERMS, "seconds")}
    optimization = {str(m): {k: mean([r["optimization"][str(m)][k] for r in images]) for k in (*TERMS, "seconds")}
                    if all(r["optimization"][str(m)] for r in images) else None for m in milestones}
    # The averaged curves, so "matches at iteration k" is stated for the mean objective (over the
    # iterations every image reached: --stop-at-match ends each trace at its own match).
    totals = [mean(v) for v in zip(*(r["history"]["total"] for r in images))]
    seconds = [mean(v) for v in zip(*(r["history"]["seconds"] for r in images))]
    match = match_point(totals, seconds, network["total"])
    match["speed_ratio"] = match["seconds"] / network["seconds"] if match["seconds"] is not None else None
    # Per image, then the median: what --stop-at-match measures for every image.
    per_image = [r["match"]["iteration"] for r in images]
    match["median_per_image"] = _median_match(per_image, milestones[-1])
    return {"network": network, "optimization": optimization, "match": match}


def _median_match(iterations: list[int | None], last: int) -> float | None:
    """Median of per-image match iterations, an image that never matched counting as past ``last``;
    None when the median itself is past it."""
    ranked = sorted(i if i is not None else last + 1 for i in iterations)
    median = statistics.median(ranked)
    return median if median <= last else None


def evaluate_quality(config: QualityConfig) -> dict[str, Any]:
    """Score a style network against optimisation on the same images; write JSON/plot if asked."""

    config.validate()
    files = list_images(config.images, config.limit)
    ckpt = load_checkpoint(resolve_model(config.model), task="style")
    loss_config = loss_config_of(ckpt)
    dirs = default_style_dirs() if config.style_dirs is None else tuple(config.style_dirs)
    target = style_target(ckpt.meta, ckpt.path, config.style, dirs)
    device = resolve_device(config.device)
    model = ckpt.model.float().eval().to(device)
    style = numpy_to_float(target.image)
    loss_fn = build_loss(loss_config, style, device, config.vgg_weights)

    # One bar over every image's iterations: its ETA is the whole run's.
    bar = progress_bar(len(files) * config.milestones[-1], f"eval quality ({len(files)} images)", "it",
                       mode=config.progress, leave=True)
    try:
        images = [evaluate_image(loss_fn, model, path, config, device, style, bar) for path in files]
    finally:
        bar.close()
    report = {
        "model": ckpt.name,
        "checkpoint": str(ckpt.path),
        "style_image": target.source,
        "warnings": [target.warning] if target.warning else [],
        "loss": loss_config.to_dict(),
        "optimizer": {"name": config.settings.optimizer, "lr": config.settings.step_size,
                      "init": config.settings.init, "noise_ratio": config.settings.noise_ratio,
                      "seed": config.settings.seed, "pixels": "clamped to [0, 1] after every step",
                      "iteration": "one optimiser step = one loss and gradient evaluation"},
        "milestones": list(config.milestones),
        "size": config.size,
        "device": device_name(device),
        "torch": torch.__version__,
        "images": images,
        "average": _average(images, config.milestones),
    }
    if config.json_path is not None:
        with atomic_path(config.json_path, config.overwrite) as tmp:
            tmp.write_text(json.dumps(report, indent=2) + "\n")
        report["json"] = str(config.json_path)
    if (plot := config.resolved_plot_path) is not None:
        report["plot"] = str(plot_quality(report, plot, config.overwrite))
    return report


def plot_quality(report: dict[str, Any], out: Path, overwrite: bool = True) -> Path:
    """Objective vs optimisation iteration (log scale), the network's value as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=100)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, r in enumerate(report["images"]):
        color = colors[i % len(colors)]
        totals = r["history"]["total"]
        ax.plot(range(len(totals)), totals, color=color, linewidth=1.2, label=f"{r['image']} (optimisation)")
        ax.axhline(r["network"]["total"], color=color, linestyle="--", linewidth=1.0)
    ax.plot([], [], color="gray", linestyle="--", label="feed-forward network")
    for m in report["milestones"]:
        ax.axvline(m, color="gray", alpha=0.25, linewidth=0.8)
    ax.set_yscale("log")
    ax.set_xlabel(f"{report['optimizer']['name']} iteration ({report['optimizer']['init']} init)")
    ax.set_ylabel("objective (content + style + TV)")
    ax.set_title(f"{report['model']}: network vs optimisation, {report['size']} px")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(out, overwrite) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return Path(out)


def markdown_table(report: dict[str, Any]) -> str:
    """Per-image and average objective of the network and of optimisation at each milestone."""
    ms = report["milestones"]
    head = ["image", "network", *[f"opt@{m}" for m in ms], "matched at", "net ms", "opt s to match", "ratio"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    rows = [(r["image"], r) for r in report["images"]] + [("**average**", report["average"])]
    for name, r in rows:
        match = r["match"]
        if match["iteration"] is not None:
            matched = f"{match['iteration']}"
        elif match.get("median_per_image") is not None:  # --stop-at-match: traces end at each image's match
            matched = f"median {match['median_per_image']:g}"
        else:
            matched = f"> {ms[-1]}"
        opt = [f"{r['optimization'][str(m)]['total']:.4g}" if r["optimization"][str(m)] else "-" for m in ms]
        cells = [name, f"{r['network']['total']:.4g}", *opt, matched, f"{1000 * r['network']['seconds']:.1f}",
                 f"{match['seconds']:.1f}" if match["seconds"] is not None else "-",
                 f"{match['speed_ratio']:.0f}x" if match["speed_ratio"] is not None else "-"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
