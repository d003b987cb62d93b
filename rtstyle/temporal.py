"""Temporal stability: optical flow, warping, occlusion masks, the warping error of Lai et al.
(ECCV 2018), flow-guided runtime smoothing, and ``evaluate_temporal`` behind
``rtstyle eval temporal``.

Conventions (OpenCV's)
----------------------
* A flow is an (H, W, 2) float32 array of (dx, dy) pixel displacements. ``flow(a, b)`` tells,
  for each pixel p of frame a, where it went in frame b: ``a(p) ~ b(p + flow(p))``.
* ``warp(image, flow)`` is *backward* warping: ``out(p) = image(p + flow(p))`` (bilinear,
  ``cv2.remap``). Hence ``warp(b, flow(a, b)) ~ a``: to bring frame t into frame t+1's pixel grid,
  warp frame t with the flow from t+1 to t (the backward flow).
* ``valid_mask(bw, fw)`` lives on frame t+1's grid (bw = flow(t+1, t), fw = flow(t, t+1)). A pixel
  is invalid when it is occluded (forward-backward check and motion boundary of Sundaram et al.
  2010, the thresholds of Lai et al.'s evaluation code) or its match ``p + bw(p)`` is outside
  frame t.

The warping error of a stylized clip S is the mean over consecutive pairs of
``mean over valid p of ||S_{t+1}(p) - warp(S_t, bw)(p)||^2``, RGB in [0, 1], the squared
distance summed over the three channels (as Lai et al. do). Flow is estimated on the *input*
frames, so the stylization is held to the motion of the real scene. The same number for the
input frames themselves (``input_warping_error``) is the floor set by flow and occlusion errors.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError

FLOW_METHODS = ("dis", "farneback")
# Lai et al.'s detect_occlusion: |F_w + B|^2 > 0.01 (|F_w|^2 + |B|^2) + 0.5, and motion boundaries
# |grad B|^2 > 0.01 |B|^2 + 0.002.
_FB_RELATIVE, _FB_ABSOLUTE = 0.01, 0.5
_BOUNDARY_RELATIVE, _BOUNDARY_ABSOLUTE = 0.01, 0.002
REPO_DIR = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------ flow

def to_gray(rgb: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


class FlowEstimator:
    """Dense optical flow between uint8 grayscale frames: ``estimator(a, b) -> flow(a, b)``.

    ``dis``: OpenCV's DIS (Kroeger et al. 2016) with a preset (ultrafast/fast/medium);
    ``farneback``: Farneback 2003 (slower, smoother). One instance per thread.
    """

    def __init__(self, method: str = "dis", preset: str = "medium"):
        import cv2

        if method not in FLOW_METHODS:
            raise InputError(f"unknown flow method {method!r}; choose from {FLOW_METHODS}")
        presets = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
                   "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}
        if preset not in presets:
            raise InputError(f"unknown DIS preset {preset!r}; choose from {list(presets)}")
        self.method = method
        self._dis = cv2.DISOpticalFlow_create(presets[preset]) if method == "dis" else None

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        import cv2

        if self._dis is not None:
            return self._dis.calc(a, b, None)
        return cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 3, 15, 3, 5, 1.2, 0)


def _pixel_grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return xs, ys


def warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Backward warp: ``out(p) = image(p + flow(p))``, bilinear; outside samples replicate the
    border (mask them with ``inside_mask``). Keeps the image's dtype."""
    import cv2

    h, w = flow.shape[:2]
    xs, ys = _pixel_grid(h, w)
    return cv2.remap(image, xs + flow[..., 0], ys + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def inside_mask(flow: np.ndarray) -> np.ndarray:
    """True where ``p + flow(p)`` falls inside the frame (no extrapolated sample)."""
    h, w = flow.shape[:2]
    xs, ys = _pixel_grid(h, w)
    x, y = xs + flow[..., 0], ys + flow[..., 1]
    return (x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)


def valid_mask(bw: np.ndarray, fw: np.ndarray) -> np.ndarray:
    """Pixels of frame t+1 whose match in frame t is trustworthy: not occluded, not at a motion
    boundary, inside frame t. ``bw = flow(t+1, t)``, ``fw = flow(t, t+1)``."""
    fw_w = warp(fw, bw)  # the forward flow of each pixel's match, on frame t+1's grid
    occluded = _sq(fw_w + bw) > _FB_RELATIVE * (_sq(fw_w) + _sq(bw)) + _FB_ABSOLUTE
    (du_y, du_x), (dv_y, dv_x) = np.gradient(bw[..., 0]), np.gradient(bw[..., 1])
    boundary = du_x ** 2 + du_y ** 2 + dv_x ** 2 + dv_y ** 2 > _BOUNDARY_RELATIVE * _sq(bw) + _BOUNDARY_ABSOLUTE
    return ~occluded & ~boundary & inside_mask(bw)


def _sq(v: np.ndarray) -> np.ndarray:
    """Squared length of each flow vector."""
    return (v ** 2).sum(-1)


def resize_flow(flow: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A flow field at another resolution (``size`` = (width, height)); vectors scale too."""
    import cv2

    h, w = flow.shape[:2]
    if (w, h) == tuple(size):
        return flow
    out = cv2.resize(flow, size, interpolation=cv2.INTER_LINEAR)
    out[..., 0] *= size[0] / w
    out[..., 1] *= size[1] / h
    return out


def warping_error(prev: np.ndarray, current: np.ndarray, bw: np.ndarray, valid: np.ndarray) -> float:
    """Mean over valid pixels of the squared RGB distance (channels summed, [0, 1] scale) between
    ``current`` and ``prev`` warped onto it; NaN when no pixel is valid. Frames are uint8 HWC
    (or float in [0, 1]); ``bw`` and ``valid`` are at the frames' resolution."""
    def unit(x: np.ndarray) -> np.ndarray:
        return x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)

    if not valid.any():
        return math.nan
    diff = unit(current) - warp(unit(prev), bw)
    return float((diff ** 2).sum(-1)[valid].mean())


# ------------------------------------------------------------------------------ measuring

class WarpingErrorMeter:
    """Feed (input frame, stylized frame) pairs in order; records each consecutive pair's warping
    error, the input's own warping error and the valid fraction. Holds one previous frame only."""

    def __init__(self, flow: FlowEstimator | None = None):
        self.flow = flow or FlowEstimator()
        self.errors: list[float] = []
        self.input_errors: list[float] = []
        self.valid_fractions: list[float] = []
        self._prev: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # (gray, input, stylized)

    def update(self, source: np.ndarray, stylized: np.ndarray) -> float | None:
        """Add the next frame; returns the error of the pair it closes (None for the first)."""
        gray = to_gray(source)
        prev, self._prev = self._prev, (gray, source, stylized)
        if prev is None or prev[0].shape != gray.shape or prev[2].shape != stylized.shape:
            return None  # first frame, or a size change: no pair
        bw, fw = self.flow(gray, prev[0]), self.flow(prev[0], gray)
        valid = valid_mask(bw, fw)
        self.input_errors.append(warping_error(prev[1], source, bw, valid))
        self.valid_fractions.append(float(valid.mean()))
        out_size = (stylized.shape[1], stylized.shape[0])
        if out_size != (source.shape[1], source.shape[0]):  # an upscaling model: carry the flow over
            import cv2

            bw = resize_flow(bw, out_size)
            valid = cv2.resize(valid.astype(np.uint8), out_size, interpolation=cv2.INTER_NEAREST).astype(bool)
        self.errors.append(warping_error(prev[2], stylized, bw, valid))
        return self.errors[-1]

    @staticmethod
    def mean(values: list[float]) -> float:
        finite = [v for v in values if math.isfinite(v)]
        return float(np.mean(finite)) if finite else math.nan


class TemporalSmoother:
    """Runtime flow-guided smoothing: ``out_t = alpha * warp(out_{t-1}) + (1 - alpha) * S_t`` on
    pixels whose motion is trustworthy (``valid_mask``), ``S_t`` elsewhere (occlusions, new
    content, cuts). Flow comes from the *input* frames, downscaled so the longer side is at most
    ``flow_side`` (DIS ultrafast), then scaled to the output. Stateful: feed frames in order,
    one at a time, so the result does not depend on the engine's batch size.
    """

    def __init__(self, alpha: float, flow_side: int = 160, flow: FlowEstimator | None = None):
        check_smoothing(alpha)
        self.alpha = alpha
        self.flow_side = flow_side
        self.flow = flow or FlowEstimator("dis", "ultrafast")
        self.seconds = 0.0
        self.frames = 0
        self._prev: tuple[np.ndarray, np.ndarray] | None = None  # (small gray input, float output)

    @property
    def ms_per_frame(self) -> float:
        return 1000.0 * self.seconds / max(1, self.frames)

    def reset(self) -> None:
        self._prev = None

    def __call__(self, stylized: np.ndarray, source_gray: np.ndarray) -> np.ndarray:
        """The smoothed frame (uint8 HWC) for ``stylized``; ``source_gray`` is the input frame in
        grayscale, any resolution."""
        t0 = time.perf_counter()
        try:
            return self._smooth(stylized, source_gray)
        finally:
            self.seconds += time.perf_counter() - t0
            self.frames += 1

    def _smooth(self, stylized: np.ndarray, source_gray: np.ndarray) -> np.ndarray:
        import cv2

        small = self._shrink(source_gray)
        out = stylized.astype(np.float32)
        prev, self._prev = self._prev, None
        if self.alpha > 0 and prev is not None and prev[0].shape == small.shape and prev[1].shape == out.shape:
            bw, fw = self.flow(small, prev[0]), self.flow(prev[0], small)
            size = (out.shape[1], out.shape[0])
            valid = cv2.resize(valid_mask(bw, fw).astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)
            warped = warp(prev[1], resize_flow(bw, size))
            blend = self.alpha * warped + (1.0 - self.alpha) * out
            out = np.where(valid[..., None].astype(bool), blend, out)
        # Keep the float result: re-quantising the running blend every frame would drift.
        self._prev = (small, out)
        return np.clip(out + 0.5, 0, 255).astype(np.uint8)

    def _shrink(self, gray: np.ndarray) -> np.ndarray:
        import cv2

        h, w = gray.shape[:2]
        if max(h, w) <= self.flow_side:
            return gray
        s = self.flow_side / max(h, w)
        return cv2.resize(gray, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)


def check_smoothing(alpha: float) -> None:
    if not (0.0 <= alpha < 1.0):
        raise InputError(f"--temporal-smoothing must be in [0, 1) (0 = off, e.g. 0.5), got {alpha}")


# ------------------------------------------------------------------------------ evaluation

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
    progress: bool = True

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
        if self.plot_path is not None and Path(self.plot_path).suffix.lower() != ".png":
            raise InputError(f"--plot must end in .png, got {self.plot_path}")


def default_style_dirs() -> list[Path]:
    return [REPO_DIR.parent / "shared" / "data" / "styles", REPO_DIR / "rtstyle" / "assets" / "samples" / "styles"]


def model_metadata(model: str | Path) -> dict[str, Any]:
    """The checkpoint metadata of ``model``; {} for formats without it (.onnx, engines)."""
    from .checkpoint import read_metadata
    from .models import resolve_model

    path = resolve_model(model)
    return read_metadata(path) if path.suffix == ".safetensors" else {}


def find_style_image(meta: dict[str, Any], style: Path | None, style_dir: Path | None) -> Path:
    """``style`` if given, else the checkpoint's style image by name in ``style_dir`` (or the
    default folders), its SHA-256 checked against the checkpoint's."""
    from .fsutil import sha256_file

    if style is not None:
        if not Path(style).is_file():
            raise InputError(f"--style image not found: {style}")
        return Path(style)
    info = meta.get("style_image") or {}
    if not info.get("name"):
        raise InputError("the model records no style image; pass --style IMAGE (or --no-losses)")
    dirs = [Path(style_dir)] if style_dir is not None else default_style_dirs()
    for folder in dirs:
        candidate = folder / info["name"]
        if candidate.is_file():
            if info.get("sha256") and sha256_file(candidate) != info["sha256"]:
                raise InputError(f"{candidate} differs from the model's style image (sha256 mismatch); "
                                 f"pass the right one with --style IMAGE")
            return candidate
    raise InputError(f"style image {info['name']!r} not found in {', '.join(map(str, dirs))}; "
                     f"pass --style IMAGE or --style-dir DIR")


class _LossMeter:
    """Unweighted style (Gram) and content (feature) distances of each stylized frame, with the
    model's own loss layers, against its style image and the input frame."""

    def __init__(self, config: TemporalEvalConfig, meta: dict[str, Any]):
        import torch

        from .engine import resolve_device
        from .frames import load_image, numpy_to_float
        from .losses import LossConfig, PerceptualLoss
        from .vgg import LAYER_INDEX, load_vgg16

        self.style_path = find_style_image(meta, config.style, config.style_dir)
        size = (meta.get("style_image") or {}).get("size")
        style = numpy_to_float(load_image(self.style_path, max_side=max(size) if size else 512))
        base = LossConfig.from_dict(meta["loss"]) if "loss" in meta else LossConfig()
        self.loss_config = dataclasses.replace(base, content_weight=1.0, style_weight=1.0, tv_weight=0.0,
                                               pixel_weight=0.0)
        self.device = resolve_device(config.device)
        deepest = max((*self.loss_config.content_layers, *self.loss_config.style_layers), key=LAYER_INDEX.__getitem__)
        self.loss = PerceptualLoss(load_vgg16(last_layer=deepest, device=self.device), self.loss_config)
        self.loss.set_style(style.to(self.device))
        self.style_losses: list[float] = []
        self.content_losses: list[float] = []
        self._torch = torch

    def update(self, source: np.ndarray, stylized: np.ndarray) -> None:
        import torch.nn.functional as F

        from .frames import numpy_to_float

        out = numpy_to_float(stylized).to(self.device)
        content = numpy_to_float(source).to(self.device)
        if out.shape[-2:] != content.shape[-2:]:  # an upscaling model: compare at the output size
            content = F.interpolate(content, size=out.shape[-2:], mode="bicubic", align_corners=False).clamp(0, 1)
        with self._torch.no_grad():
            terms = self.loss(out, content).as_floats()
        self.style_losses.append(terms["style"])
        self.content_losses.append(terms["content"])


def evaluate_temporal(config: TemporalEvalConfig, engine=None) -> dict[str, Any]:
    """Stylize ``config.video`` (optionally smoothed) and measure its warping error, style loss and
    content loss; writes the JSON and the per-pair plot when asked. ``engine`` overrides
    ``config.model`` (tests). Frames are streamed: only the previous one is kept."""
    from .engine import EngineOptions, open_engine
    from .pipeline import PipelineConfig, run_pipeline
    from .stylize import model_input_size, resized_frames
    from .video import VideoReader

    if engine is None and config.model is None:
        raise InputError("no model given; pass --model NAME_OR_PATH")
    reader = VideoReader(config.video, config.start, config.duration)
    meta = model_metadata(config.model) if config.model is not None else {}
    losses = _LossMeter(config, meta) if config.losses else None
    if engine is None:
        engine = open_engine(config.model, config.backend, EngineOptions(config.device, config.precision,
                                                                           config.batch_size))
    size = model_input_size(reader.info.width, reader.info.height, None, config.max_side)
    meter = WarpingErrorMeter(FlowEstimator(config.flow))
    smoother = TemporalSmoother(config.smoothing) if config.smoothing > 0 else None
    times: list[float] = []
    bar = _progress(config)

    def sink(image: np.ndarray, frame) -> None:
        if smoother is not None:
            image = smoother(image, to_gray(frame.image))
        if meter.update(frame.image, image) is not None:
            times.append(frame.time)
        if losses is not None and frame.index % config.loss_every == 0:
            losses.update(frame.image, image)
        if bar is not None:
            bar.update(1)

    try:
        stats = run_pipeline(resized_frames(iter(reader), size), engine, sink, PipelineConfig(batch_size=config.batch_size))
    finally:
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
        "warnings": reader.warnings,
    }
    if config.json_path is not None:
        write_json(config.json_path, report)
    if config.plot_path is not None:
        plot_errors(config.plot_path, [report])
    return report


def _progress(config: TemporalEvalConfig):
    if not config.progress:
        return None
    from tqdm import tqdm

    return tqdm(desc=f"eval temporal {Path(config.video).name}", unit="frame", leave=False, dynamic_ncols=True)


def write_json(path: Path, data: Any) -> Path:
    from .fsutil import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, allow_nan=True))
    return Path(path)


def plot_errors(path: Path, reports: list[dict[str, Any]]) -> Path:
    """Per-pair warping error over time, one line per report (named by its "label" if it has one),
    with the input's own error dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .fsutil import atomic_path

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
    with atomic_path(path) as tmp:
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
