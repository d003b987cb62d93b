"""``rtstyle eval temporal``: the warping error (Lai et al., ECCV 2018) of a stylized video, with
the style and content loss on the same frames so steadiness is never bought by losing the style.

The video runs through the runtime's one frame path (``sources.FileSource`` -> pipeline ->
``sinks.build_sinks`` with the same smoothing sink as ``stylize``); the measurements are sinks
of their own. Flow is estimated on the *input* frames (``temporal.flow``), so the stylization is
held to the motion of the real scene. Both forms are reported: the squared one of Lai et al.
(``warping_error``) and the absolute one (``warping_error_abs``); pairs across a scene cut are
left out of every mean and counted (``skipped_pairs``, ``skipped_times``; the rule is in
``temporal.flow``'s docstring).

With ``encoded`` the stylized frames also go through the writer ``stylize`` uses (its default
encoder settings, resolved for this engine's device) into a private temporary folder, always
removed; the file is decoded again and measured the same way against the input frames (read
again, streamed), under ``report["encoded"]``: what a viewer of ``stylize``'s output sees,
compression included. Evaluation layer: it may load VGG; the runtime never does.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tempfile
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
from .sinks import CallbackSink, SmoothingSink, WriterSink, build_sinks
from .sources import FileSource, Resized
from .style_lookup import style_target
from .temporal import CUT_THRESHOLD, FLOW_METHODS, FlowEstimator, WarpingErrorMeter, check_smoothing
from .threads import plan_threads
from .vgg import LAYER_INDEX, load_vgg16
from .video import EncoderConfig, VideoReader, VideoWriter


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
    cut_threshold: float = CUT_THRESHOLD  # skip a pair whose input warping error (squared) exceeds this
    encoded: bool = False  # also measure the stylized frames encoded as stylize writes them
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
        if not self.cut_threshold > 0:  # NaN fails too
            raise InputError(f"--cut-threshold must be > 0 (default {CUT_THRESHOLD}), got {self.cut_threshold}")
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
    meter = WarpingErrorMeter(FlowEstimator(config.flow), config.cut_threshold)
    bar = _progress(config)

    def measure(image: np.ndarray, frame) -> None:
        meter.update(frame.image, image, frame.time)
        if losses is not None and frame.index % config.loss_every == 0:
            losses.update(frame.image, image)
        if bar is not None:
            bar.update(1)

    # The private folder of the encoded copy goes whatever happens (the writer's partial file too).
    with tempfile.TemporaryDirectory(prefix="rtstyle-eval-temporal-") as tmp:
        writer = _encoded_writer(Path(tmp), source, engine) if config.encoded else None
        chain = build_sinks(config.smoothing, measure=[CallbackSink(measure)], writer=writer)  # as stylize's chain
        smoother = next((s.smoother for s in chain.sinks if isinstance(s, SmoothingSink)), None)
        outcome = "failed"
        try:
            stats = run_pipeline(Resized(source, size), engine, chain, PipelineConfig(batch_size=config.batch_size))
            outcome = "done"
        finally:
            chain.close(outcome)
            if bar is not None:
                bar.close()
        if stats.frames_out < 2:
            raise InputError(f"{config.video}: {stats.frames_out} frame(s) decoded; the warping error needs at least 2 "
                             f"(check --start/--duration)")
        encoded = _measure_encoded(config, size, writer, stats.frames_out) if writer is not None else None
    engine_ms = 1000.0 * stats.busy_s["engine"] / stats.frames_out
    skipped = meter.skipped
    report = {
        "video": str(config.video),
        "model": str(config.model) if config.model is not None else engine.describe(),
        "engine": engine.describe(),
        "frames": stats.frames_out,
        "pairs": len(meter.errors),  # the pairs every mean is over (scene cuts left out)
        "size": [size[0] * engine.scale, size[1] * engine.scale],
        "start": config.start, "duration": config.duration,
        "flow": config.flow,
        "smoothing": config.smoothing,
        "warping_error": meter.mean(meter.errors),  # squared, as Lai et al.
        "warping_error_abs": meter.mean(meter.errors_abs),
        "input_warping_error": meter.mean(meter.input_errors),
        "input_warping_error_abs": meter.mean(meter.input_errors_abs),
        "valid_fraction": meter.mean(meter.valid_fractions),
        "cut_threshold": config.cut_threshold,
        "skipped_pairs": len(skipped),
        "skipped_times": [p.time for p in skipped],
        "encoded": encoded,
        "loss_frames": len(losses.style_losses) if losses else 0,
        "style_loss": float(np.mean(losses.style_losses)) if losses else None,
        "content_loss": float(np.mean(losses.content_losses)) if losses else None,
        "loss_config": losses.loss_config.to_dict() if losses else None,
        "style_image": str(losses.style_path) if losses else None,
        "engine_ms_per_frame": engine_ms,
        "smoothing_ms_per_frame": smoother.ms_per_frame if smoother else 0.0,
        "stability_training": meta.get("stability"),
        "per_pair": [{"time": p.time, "warping_error": p.squared, "warping_error_abs": p.absolute,
                      "input_warping_error": p.input_squared, "input_warping_error_abs": p.input_absolute,
                      "valid_fraction": p.valid_fraction, "skipped": p.skipped} for p in meter.pairs],
        "warnings": [*source.warnings, *([losses.warning] if losses and losses.warning else [])],
    }
    if config.json_path is not None:
        write_json(config.json_path, report, config.overwrite)
    if config.plot_path is not None:
        plot_errors(config.plot_path, [report], config.overwrite)
    return report


def stylize_encoder(device_type: str) -> EncoderConfig:
    """``stylize``'s default encoder settings (``StylizeConfig.encoder`` is ``EncoderConfig()``) as it
    resolves them beside an engine on ``device_type``, without audio: only the picture is measured."""
    return EncoderConfig(audio="none").beside_engine(device_type, plan_threads(engine_device=device_type).encode)


def _encoded_writer(folder: Path, source: FileSource, engine) -> WriterSink:
    """The writer sink of ``stylize``, opened on the first frame (the engine's output size) in ``folder``."""
    info = source.info
    encoder = stylize_encoder(engine.device.type)
    return WriterSink(open_writer=lambda w, h: VideoWriter(folder / "encoded.mp4", w, h, info.time_base, info.frame_rate,
                                                           encoder, rotation=info.rotation, color=info.color))


def _measure_encoded(config: TemporalEvalConfig, size: tuple[int, int], writer: WriterSink, frames: int) -> dict[str, Any]:
    """Decode the encoded copy and measure it against the input window read again (both streamed)."""
    meter = WarpingErrorMeter(FlowEstimator(config.flow), config.cut_threshold)
    inputs = iter(Resized(FileSource(config.video, config.start, config.duration), size))
    decoded = read_again = 0
    for frame in VideoReader(writer.output):
        decoded += 1
        source = next(inputs, None)
        if source is not None:
            read_again += 1
            meter.update(source.image, frame.image, source.time)
    read_again += sum(1 for _ in inputs)
    if not decoded == read_again == frames:
        raise InputError(f"{config.video}: the encoded copy decodes to {decoded} frame(s), {frames} were stylized and "
                         f"{read_again} read again; cannot pair them (try without --encoded)")
    enc = writer.writer.config
    return {"warping_error": meter.mean(meter.errors), "warping_error_abs": meter.mean(meter.errors_abs),
            "pairs": len(meter.errors), "skipped_pairs": len(meter.skipped), "codec": enc.codec, "preset": enc.preset,
            "crf": enc.crf, "pix_fmt": writer.writer.pix_fmt}


def _progress(config: TemporalEvalConfig):
    return progress_bar(None, f"eval temporal {Path(config.video).name}", "frame", mode=config.progress)


def write_json(path: Path, data: Any, overwrite: bool = True) -> Path:
    with atomic_path(path, overwrite) as tmp:
        tmp.write_text(json.dumps(data, indent=2, allow_nan=True) + "\n")
    return Path(path)


def plot_errors(path: Path, reports: list[dict[str, Any]], overwrite: bool = True) -> Path:
    """Per-pair warping error (squared) over time, one line per report (named by its "label" if it
    has one), with the input's own error dashed; scene cuts (skipped pairs) are gaps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def kept(pair: dict[str, Any], key: str) -> float:
        return math.nan if pair.get("skipped") else pair[key]  # reports older than scene-cut skipping have no flag

    fig, ax = plt.subplots(figsize=(8, 4), dpi=100)
    for r in reports:
        t = [p["time"] for p in r["per_pair"]]
        label = r.get("label") or Path(str(r["model"])).stem + (f" + smoothing {r['smoothing']:g}" if r["smoothing"] else "")
        ax.plot(t, [kept(p, "warping_error") for p in r["per_pair"]], linewidth=1.2, label=label)
    first = reports[0]
    ax.plot([p["time"] for p in first["per_pair"]], [kept(p, "input_warping_error") for p in first["per_pair"]],
            "k--", linewidth=0.8, label="input frames (floor)")
    for t in first.get("skipped_times", []):
        ax.axvline(t, color="0.6", linewidth=0.6, linestyle=":")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("warping error (squared RGB distance)")
    cuts = f", {len(first['skipped_times'])} scene cut(s) skipped (dotted)" if first.get("skipped_times") else ""
    ax.set_title(f"{Path(first['video']).name}: warping error per frame pair{cuts}")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_path(path, overwrite) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return Path(path)


def format_table(reports: list[dict[str, Any]]) -> str:
    """A short Markdown table of the headline numbers: the warping error squared (Lai et al.) and
    absolute, raw and (when measured) encoded, the input floor, the skipped scene-cut pairs."""
    def num(v: Any, fmt: str) -> str:
        return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)

    encoded = any(r.get("encoded") for r in reports)
    head = ["video", "model", "smoothing", "frames", "pairs skipped", "warping error", "abs", "input floor", "input abs"]
    head += ["encoded warping error", "encoded abs"] if encoded else []
    head += ["style loss", "content loss"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in reports:
        cells = [Path(r["video"]).name, Path(str(r["model"])).stem, f"{r['smoothing']:g}", str(r["frames"]),
                 str(r.get("skipped_pairs", 0)), num(r["warping_error"], ".5f"), num(r.get("warping_error_abs"), ".4f"),
                 num(r["input_warping_error"], ".5f"), num(r.get("input_warping_error_abs"), ".4f")]
        if encoded:
            e = r.get("encoded") or {}
            cells += [num(e.get("warping_error"), ".5f"), num(e.get("warping_error_abs"), ".4f")]
        cells += [num(r["style_loss"], ".4g"), num(r["content_loss"], ".4g")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
