"""``rtstyle eval temporal``: the warping error (Lai et al., ECCV 2018) of a stylized video, with
the style and content loss on the same frames so steadiness is never bought by losing the style.

The video runs through the runtime's one frame path (``sources.FileSource`` -> pipeline ->
``sinks.build_sinks`` with the same smoothing sink as ``stylize``); the measurements are sinks
of their own. Flow is estimated on the *input* frames (``temporal.flow``), so the stylization is
held to the motion of the real scene. Evaluation layer: it may load VGG; the runtime never does.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .checkpoint import read_metadata
from .engine import EngineOptions, open_engine, resolve_device
from .errors import InputError
from .frames import fit_size, numpy_to_float
from .fsutil import atomic_path
from .losses import LossConfig, PerceptualLoss
from .models import resolve_model
from .outputs import OutputPolicy
from .pipeline import PipelineConfig, run_pipeline
from .progress import progress as progress_bar
from .sinks import CallbackSink, SmoothingSink, build_sinks
from .sources import FileSource, Resized
from .style_lookup import style_target
from .temporal import FLOW_METHODS, FlowEstimator, WarpingErrorMeter, check_smoothing
from .vgg import LAYER_INDEX, load_vgg16


@dataclass(frozen=True)
class TemporalEvalConfig:
    video: Path
    model: str | Path | None = None  # bundled name or checkpoint / .onnx / engine path
    style: Path | None = None  # the model's style image (default: found by name in style_dir)
    style_dir: Path | None = None  # default: ../shared/data/styles beside the repo, else the samples
    start: float | None = None  # seconds
    duration: float | None = None  # seconds
    max_side: int | None = None  # shrink frames so the longer side is at most this
    backend: str = "auto"
    device: str = "auto"
    precision: str = "auto"
    batch_size: int = 4
    smoothing: float = 0.0  # runtime smoothing alpha (0 = off)
    flow: str = "dis"
    losses: bool = True  # style and content loss on the same frames
    loss_every: int = 1  # the losses on every n-th frame only (the VGG pass dominates on CPUs)
    json_path: Path | None = None
    plot_path: Path | None = None
    progress: bool | str = True  # or a mode of rtstyle.progress: auto, bar, plain, json, none
    overwrite: bool = False  # replace an existing --json / --plot
    trust_model: bool = False  # load a .pt2 / TensorRT engine rtstyle did not produce (rtstyle.trust)

    def __post_init__(self) -> None:
        if self.flow not in FLOW_METHODS:
            raise InputError(f"--flow must be one of {FLOW_METHODS}, got {self.flow!r}")
        if self.max_side is not None and self.max_side < 16:
            raise InputError(f"--max-side must be >= 16, got {self.max_side}")
        if self.batch_size < 1:
            raise InputError(f"--batch-size must be >= 1, got {self.batch_size}")
        if self.loss_every < 1:
            raise InputError(f"--loss-every must be >= 1, got {self.loss_every}")
        check_smoothing(self.smoothing)
        for name in ("json_path", "plot_path"):
            path = getattr(self, name)
            if path is not None and Path(path).is_dir():
                raise InputError(f"--{name.removesuffix('_path')} {path} is a folder; give a file name")
            if path is not None:  # the one output rule (rtstyle.outputs): never the video, never replaced silently
                OutputPolicy(overwrite=self.overwrite).check(path, [self.video])
        if self.plot_path is not None and Path(self.plot_path).suffix.lower() != ".png":
            raise InputError(f"--plot must end in .png, got {self.plot_path}")


def model_metadata(model: str | Path) -> dict[str, Any]:
    """The checkpoint metadata of ``model``; {} for formats without it (.onnx, engines)."""
    path = resolve_model(model)
    return read_metadata(path) if path.suffix == ".safetensors" else {}


class _LossMeter:
    """Unweighted style (Gram) and content (feature) distances of each stylized frame, with the
    model's own loss layers, against its style image and the input frame."""

    def __init__(self, config: TemporalEvalConfig, meta: dict[str, Any]):
        dirs = [Path(config.style_dir)] if config.style_dir is not None else None
        target = style_target(meta, resolve_model(config.model), config.style, dirs)
        self.style_path, self.warning = target.source, target.warning
        style = numpy_to_float(target.image)
        base = LossConfig.from_dict(meta["loss"]) if "loss" in meta else LossConfig()
        self.loss_config = dataclasses.replace(base, content_weight=1.0, style_weight=1.0, tv_weight=0.0,
                                               pixel_weight=0.0)
        self.device = resolve_device(config.device)
        deepest = max((*self.loss_config.content_layers, *self.loss_config.style_layers), key=LAYER_INDEX.__getitem__)
        self.loss = PerceptualLoss(load_vgg16(last_layer=deepest, device=self.device), self.loss_config)
        self.loss.set_style(style.to(self.device))
        self.style_losses: list[float] = []
        self.content_losses: list[float] = []

    def update(self, source: np.ndarray, stylized: np.ndarray) -> None:
        out = numpy_to_float(stylized).to(self.device)
        content = numpy_to_float(source).to(self.device)
        if out.shape[-2:] != content.shape[-2:]:  # an upscaling model: compare at the output size
            content = F.interpolate(content, size=out.shape[-2:], mode="bicubic", align_corners=False).clamp(0, 1)
        with torch.no_grad():
            terms = self.loss(out, content).as_floats()
        self.style_losses.append(terms["style"])
        self.content_losses.append(terms["content"])


def evaluate_temporal(config: TemporalEvalConfig, engine=None) -> dict[str, Any]:
    """Stylize ``config.video`` (optionally smoothed) and measure its warping error, style loss and
    content loss; writes the JSON and the per-pair plot when asked. ``engine`` overrides
    ``config.model`` (tests). Frames are streamed: only the previous one is kept."""
    if engine is None and config.model is None:
        raise InputError("no model given; pass --model NAME_OR_PATH")
    source = FileSource(config.video, config.start, config.duration)
    meta = model_metadata(config.model) if config.model is not None else {}
    losses = _LossMeter(config, meta) if config.losses else None
    if engine is None:
        engine = open_engine(config.model, config.backend, EngineOptions(config.device, config.precision,
                                                                           config.batch_size,
                                                                           trust_model=config.trust_model))
    size = fit_size(source.info.width, source.info.height, None, config.max_side)
    meter = WarpingErrorMeter(FlowEstimator(config.flow))
    times: list[float] = []
    bar = _progress(config)

    def measure(image: np.ndarray, frame) -> None:
        if meter.update(frame.image, image) is not None:
            times.append(frame.time)
        if losses is not None and frame.index % config.loss_every == 0:
            losses.update(frame.image, image)
        if bar is not None:
            bar.update(1)

    chain = build_sinks(config.smoothing, measure=[CallbackSink(measure)])  # the same smoothing as stylize
    smoother = next((s.smoother for s in chain.sinks if isinstance(s, SmoothingSink)), None)
    try:
        stats = run_pipeline(Resized(source, size), engine, chain, PipelineConfig(batch_size=config.batch_size))
    finally:
        chain.close()
        if bar is not None:
            bar.close()
    if stats.frames_out < 2:
        raise InputError(f"{config.video}: {stats.frames_out} frame(s) decoded; the warping error needs at least 2 "
                         f"(check --start/--duration)")
    engine_ms = 1000.0 * stats.busy_s["engine"] / stats.frames_out
    report = {
        "video": str(config.video),
        "model": str(config.model) if config.model is not None else engine.describe(),
        "engine": engine.describe(),
        "frames": stats.frames_out,
        "pairs": len(meter.errors),
        "size": [size[0] * engine.scale, size[1] * engine.scale],
        "start": config.start, "duration": config.duration,
        "flow": config.flow,
        "smoothing": config.smoothing,
        "warping_error": meter.mean(meter.errors),
        "input_warping_error": meter.mean(meter.input_errors),
        "valid_fraction": meter.mean(meter.valid_fractions),
        "loss_frames": len(losses.style_losses) if losses else 0,
        "style_loss": float(np.mean(losses.style_losses)) if losses else None,
        "content_loss": float(np.mean(losses.content_losses)) if losses else None,
        "loss_config": losses.loss_config.to_dict() if losses else None,
        "style_image": str(losses.style_path) if losses else None,
        "engine_ms_per_frame": engine_ms,
        "smoothing_ms_per_frame": smoother.ms_per_frame if smoother else 0.0,
        "stability_training": meta.get("stability"),
        "per_pair": [{"time": t, "warping_error": e, "input_warping_error": i, "valid_fraction": v}
                     for t, e, i, v in zip(times, meter.errors, meter.input_errors, meter.valid_fractions)],
        "warnings": [*source.warnings, *([losses.warning] if losses and losses.warning else [])],
    }
    if config.json_path is not None:
        write_json(config.json_path, report, config.overwrite)
    if config.plot_path is not None:
        plot_errors(config.plot_path, [report], config.overwrite)
    return report


def _progress(config: TemporalEvalConfig):
    return progress_bar(None, f"eval temporal {Path(config.video).name}", "frame", mode=config.progress)


def write_json(path: Path, data: Any, overwrite: bool = True) -> Path:
    with atomic_path(path, overwrite) as tmp:
        tmp.write_text(json.dumps(data, indent=2, allow_nan=True) + "\n")
    return Path(path)


def plot_errors(path: Path, reports: list[dict[str, Any]], overwrite: bool = True) -> Path:
    """Per-pair warping error over time, one line per report (named by its "label" if it has one),
    with the input's own error dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4), dpi=100)
    for r in reports:
        t = [p["time"] for p in r["per_pair"]]
        label = r.get("label") or Path(str(r["model"])).stem + (f" + smoothing {r['smoothing']:g}" if r["smoothing"] else "")
        ax.plot(t, [p["warping_error"] for p in r["per_pair"]], linewidth=1.2, label=label)
    first = reports[0]
    ax.plot([p["time"] for p in first["per_pair"]], [p["input_warping_error"] for p in first["per_pair"]],
            "k--", linewidth=0.8, label="input frames (floor)")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("warping error (squared RGB distance)")
    ax.set_title(f"{Path(first['video']).name}: warping error per frame pair")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_path(path, overwrite) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return Path(path)


def format_table(reports: list[dict[str, Any]]) -> str:
    """A short Markdown table of the headline numbers."""
    def num(v: Any, fmt: str) -> str:
        return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)

    lines = ["| video | model | smoothing | frames | warping error | input floor | style loss | content loss |",
             "|---|---|---|---|---|---|---|---|"]
    for r in reports:
        lines.append(f"| {Path(r['video']).name} | {Path(str(r['model'])).stem} | {r['smoothing']:g} | {r['frames']} | "
                     f"{num(r['warping_error'], '.5f')} | {num(r['input_warping_error'], '.5f')} | "
                     f"{num(r['style_loss'], '.4g')} | {num(r['content_loss'], '.4g')} |")
    return "\n".join(lines)
