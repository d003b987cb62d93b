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

import contextlib
import dataclasses
import datetime as _dt
import importlib
import os
import platform
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch

from rtstyle import __version__
from rtstyle.checkpoint import load_checkpoint, save_checkpoint
from rtstyle.dtypes import TORCH_DTYPES
from rtstyle.engine import BACKENDS, EngineOptions, check_backend, open_engine, resolve_device
from rtstyle.errors import BackendUnavailableError, InputError, RtstyleError
from rtstyle.models import resolve_model
from rtstyle.nets import SRNetConfig, StyleNetConfig, build_model, config_to_dict, output_scale
from rtstyle.progress import progress as progress_bar
from rtstyle.sysinfo import cpu_has_native_bf16, cpu_model
from rtstyle.textutil import first_line
from rtstyle.threads import plan_threads

from .flops import WorkCount, count_engine_work
from .reference import ReferenceStylizer
from .roofline import achieved_fraction, measure_ceilings, roofline_floor
from .timing import assess_noise, rate, relative_spread, summarize, synchronize, time_calls

SCHEMA = "rtstyle-bench/1"
ARCHS = {
    "style": StyleNetConfig(),
    "style-fast": StyleNetConfig.preset("fast"),
    "sr4": SRNetConfig(scale=4),
    "sr8": SRNetConfig(scale=8),
}

# The grid, used on GPUs. A CPU would need hours for it at 1080p, so CPUs get a reduced
# grid by default (the run says so in its notes).
GPU_RESOLUTIONS = ((640, 360), (1280, 720), (1920, 1080))
GPU_BATCHES = (1, 4, 8)
CPU_RESOLUTIONS = ((320, 180), (640, 360))
CPU_BATCHES = (1, 4)
QUICK_RESOLUTIONS = ((320, 180), (640, 360))
QUICK_BATCHES = (1, 4)

TARGETS = {
    "gpu_1080p_fp16_fps": 250.0,
    "pipeline_efficiency": 0.8,
    "speedup_vs_reference_cpu": 1.5,
    "speedup_vs_reference_gpu": 5.0,
}


@dataclass(frozen=True)
class Timing:
    """Warm-up calls, timed calls, and a per-configuration time cap (after at least 3 calls)."""

    warmup: int
    repeats: int
    max_seconds: float


_TIMING = {"gpu": Timing(10, 50, 10.0), "cpu": Timing(2, 10, 15.0), "quick": Timing(1, 3, 3.0)}
# Pipeline clip: (width, height, frames) by device kind.
_CLIP = {"gpu": (1920, 1080, 300), "cpu": (320, 180, 48), "quick": (320, 180, 16)}


@dataclass(frozen=True)
class BenchConfig:
    """What to measure. ``None`` fields take per-device defaults (see ``resolved``)."""

    model: str | None = None  # bundled name or checkpoint; None: a fresh net of ``arch``
    arch: str | None = None  # style | style-fast | sr4 | sr8 (default: style, quick: style-fast)
    device: str = "auto"
    backends: tuple[str, ...] | None = None  # None: every available backend
    precisions: tuple[str, ...] | None = None  # None: per backend and device
    batch_sizes: tuple[int, ...] | None = None
    resolutions: tuple[tuple[int, int], ...] | None = None  # (width, height); SR: output size
    warmup: int | None = None
    repeats: int | None = None
    max_seconds: float | None = None  # cap per configuration (after at least 3 timed calls)
    rotate: int = 4  # distinct input batches cycled through
    reference: bool = True
    pipeline: bool = True
    clip: str | None = None  # None: generate a clip
    clip_size: tuple[int, int] | None = None  # generated clip (width, height)
    clip_frames: int | None = None
    pipeline_batch: int | None = None  # None: the engine default (EngineOptions.batch_size)
    quick: bool = False
    seed: int = 0
    progress: bool | str = True  # or a mode of rtstyle.progress: auto, bar, plain, json, none
    cuda_events: bool = False  # time model-only cells with CUDA events (device time) instead of host clocks

    def __post_init__(self) -> None:
        if self.arch is not None and self.arch not in ARCHS:
            raise InputError(f"unknown --arch {self.arch!r}; choose from {sorted(ARCHS)}")
        if self.model is not None and self.arch is not None:
            raise InputError("give --model or --arch, not both (a checkpoint carries its own architecture)")
        for name in self.backends or ():
            if name not in BACKENDS:
                raise InputError(f"unknown backend {name!r}; choose from {sorted(BACKENDS)}")
        for p in self.precisions or ():
            if p not in TORCH_DTYPES:
                raise InputError(f"unknown precision {p!r}; choose from {sorted(TORCH_DTYPES)}")
        if any(b < 1 for b in self.batch_sizes or ()):
            raise InputError(f"batch sizes must be >= 1, got {self.batch_sizes}")
        if any(w < 16 or h < 16 for w, h in self.resolutions or ()):
            raise InputError(f"resolutions must be at least 16x16, got {self.resolutions}")
        if self.repeats is not None and self.repeats < 1:
            raise InputError(f"--repeats must be >= 1, got {self.repeats}")
        if self.warmup is not None and self.warmup < 0:
            raise InputError(f"--warmup must be >= 0, got {self.warmup}")
        if self.rotate < 1:
            raise InputError(f"rotate must be >= 1, got {self.rotate}")
        if self.clip is not None and not Path(self.clip).is_file():
            raise InputError(f"--clip {self.clip}: file not found")

    def resolved(self, device: torch.device) -> "BenchConfig":
        """This config with every ``None`` default filled in for ``device``."""
        kind = "quick" if self.quick else ("gpu" if device.type == "cuda" else "cpu")
        timing = _TIMING[kind]
        grid_res, grid_batch = {
            "quick": (QUICK_RESOLUTIONS, QUICK_BATCHES),
            "gpu": (GPU_RESOLUTIONS, GPU_BATCHES),
            "cpu": (CPU_RESOLUTIONS, CPU_BATCHES),
        }[kind]
        cw, ch, cn = _CLIP[kind]
        return dataclasses.replace(
            self,
            arch=self.arch if self.model is not None or self.arch else ("style-fast" if self.quick else "style"),
            resolutions=self.resolutions or grid_res,
            batch_sizes=self.batch_sizes or grid_batch,
            warmup=self.warmup if self.warmup is not None else timing.warmup,
            repeats=self.repeats or timing.repeats,
            max_seconds=self.max_seconds or timing.max_seconds,
            clip_size=self.clip_size or (cw, ch),
            clip_frames=self.clip_frames or cn,
            pipeline_batch=self.pipeline_batch or EngineOptions().batch_size,
        )


# ------------------------------------------------------------------------------ environment

def _memory_bytes() -> int | None:
    with contextlib.suppress(ValueError, OSError, AttributeError):
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return None


def _load_average() -> list[float] | None:
    with contextlib.suppress(OSError, AttributeError):
        return [round(x, 2) for x in os.getloadavg()]
    return None


def machine_line() -> str:
    """CPU model, core count and load average in one line, for the smaller benchmark scripts."""
    return f"{cpu_model()}, {os.cpu_count()} cores, load {_load_average()}"


def machine_info() -> dict[str, Any]:
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "memory_bytes": _memory_bytes(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "load_average_before": _load_average(),
    }


def device_info(device: torch.device) -> dict[str, Any]:
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return {
            "type": "cuda", "name": props.name, "memory_bytes": props.total_memory,
            "capability": f"{props.major}.{props.minor}", "multiprocessors": props.multi_processor_count,
        }
    return {"type": "cpu", "name": cpu_model()}


def _version(module: str) -> str | None:
    try:
        return importlib.import_module(module).__version__
    except ImportError:
        return None


def versions() -> dict[str, Any]:
    out: dict[str, Any] = {
        "rtstyle": __version__, "torch": torch.__version__, "numpy": np.__version__,
        "onnxruntime": _version("onnxruntime"), "av": _version("av"), "tensorrt": _version("tensorrt"),
        "openvino": _version("openvino"),
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
    }
    with contextlib.suppress(ImportError, AttributeError, KeyError):
        import av

        out["ffmpeg_libavcodec"] = ".".join(map(str, av.library_versions["libavcodec"]))
    return out


def default_precisions(backend: str, device: torch.device) -> list[str]:
    """What each backend is measured in: fp16/bf16 on CUDA; fp32 on CPU, plus bf16 for torch and
    OpenVINO when the CPU has native bf16 instructions (without them bf16 is emulated and only slower)."""
    if device.type == "cuda":
        if backend == "openvino":
            return []  # OpenVINO drives Intel GPUs (--device GPU), not CUDA ones
        return ["fp16", "bf16"] if backend in ("torch", "aoti") else ["fp16"]
    native_bf16 = cpu_has_native_bf16()
    return ["fp32", "bf16"] if backend in ("torch", "openvino") and native_bf16 else ["fp32"]


# ---------------------------------------------------------------------------------- frames

def synthetic_frames(count: int, width: int, height: int, seed: int = 0) -> list[np.ndarray]:
    """Distinct, picture-like uint8 RGB frames: moving colour gradients, a bright disc, noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    frames = []
    for i in range(count):
        phase = i * 0.15
        r = 0.5 + 0.5 * np.sin(xx / max(width, 1) * 6.0 + phase)
        g = 0.5 + 0.5 * np.sin(yy / max(height, 1) * 5.0 - phase)
        b = 0.5 + 0.5 * np.cos((xx + yy) / max(width + height, 1) * 8.0 + 2 * phase)
        image = np.stack([r, g, b], axis=-1)
        cx, cy = width * (0.3 + 0.4 * (i % 7) / 6), height * 0.5
        disc = ((xx - cx) ** 2 + (yy - cy) ** 2) < (min(width, height) * 0.2) ** 2
        image[disc] = 0.5 * image[disc] + 0.5
        image += rng.normal(0.0, 0.03, image.shape).astype(np.float32)
        frames.append((image.clip(0.0, 1.0) * 255.0 + 0.5).astype(np.uint8))
    return frames


def _input_size(resolution: tuple[int, int], scale: int) -> tuple[int, int]:
    """Frame size fed to the network: SR resolutions name the output size."""
    w, h = resolution
    return max(16, w // scale), max(16, h // scale)


def _res_name(resolution: tuple[int, int]) -> str:
    return f"{resolution[0]}x{resolution[1]}"


# ----------------------------------------------------------------------------------- model

@dataclass
class _Model:
    net: torch.nn.Module
    config: Any
    path: Path  # checkpoint the engines open
    source: str
    task: str

    @property
    def scale(self) -> int:
        return output_scale(self.config)


def _prepare_model(cfg: BenchConfig, workdir: Path) -> _Model:
    if cfg.model is not None:
        path = resolve_model(cfg.model)
        if path.suffix.lower() != ".safetensors":
            raise InputError(
                f"--model {cfg.model}: bench needs an rtstyle checkpoint (.safetensors) to count FLOPs and "
                "export every backend itself; give the checkpoint the file was exported from"
            )
        ckpt = load_checkpoint(path)
        return _Model(ckpt.model, ckpt.config, path, f"checkpoint {path.name}", ckpt.task)
    config = ARCHS[cfg.arch]
    torch.manual_seed(cfg.seed)
    net = build_model(config).eval()
    task = "sr" if isinstance(config, SRNetConfig) else "style"
    path = save_checkpoint(workdir / f"bench-{cfg.arch}.safetensors", net, {"task": task, "name": f"bench-{cfg.arch}"})
    return _Model(net, config, path, f"freshly initialised {cfg.arch} net", task)


def _export_onnx(model: _Model, precision: str, workdir: Path) -> Path:
    """An .onnx file of the model via ``export.onnx_export``, with uint8 frame I/O so the frame
    conversion runs inside the graph like every engine's (raises BackendUnavailableError)."""
    try:
        from rtstyle.export.onnx_export import OnnxExportConfig, export_onnx
    except ImportError as exc:
        raise BackendUnavailableError(f"export.onnx_export is not available ({exc}); cannot make an .onnx file") from None
    if precision not in ("fp32", "fp16"):
        raise BackendUnavailableError(f"ONNX export writes fp32 or fp16 graphs, not {precision}")
    out = workdir / f"bench-{precision}.onnx"
    if not out.exists():
        # Parity is the exporter's own test; the benchmark only times the graph.
        export_onnx(model.path, out, OnnxExportConfig(fp16=precision == "fp16", io="uint8", check=False))
    return out


def _export_aoti(model: _Model, precision: str, device: torch.device, workdir: Path) -> Path:
    """An AOTInductor package for ``device`` (uint8 frame I/O, like the other engines)."""
    from rtstyle.export.aoti_export import AotiExportConfig, export_aoti

    out = workdir / f"bench-{device.type}-{precision}.pt2"
    if not out.exists():
        export_aoti(model.path, out, AotiExportConfig(device=str(device), precision=precision, io="uint8", check=False))
    return out


def tensorrt_profile(model_scale: int, cfg: BenchConfig) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """(min, opt, max) NHWC input shapes of one TensorRT profile that covers the whole grid,
    tuned (opt) for its largest batch at its largest resolution."""
    sizes = [_input_size(r, model_scale) for r in cfg.resolutions]
    widths, heights = [w for w, _ in sizes], [h for _, h in sizes]
    biggest = max(sizes, key=lambda s: s[0] * s[1])
    batch = max(cfg.batch_sizes)
    return ((min(cfg.batch_sizes), min(heights), min(widths), 3), (batch, biggest[1], biggest[0], 3),
            (batch, max(heights), max(widths), 3))


def _build_tensorrt(model: _Model, precision: str, cfg: BenchConfig, workdir: Path, device: torch.device) -> Path:
    """A TensorRT engine (uint8 frame I/O) whose one profile covers the benchmark grid, built on ``device``
    (engines run only on the GPU model they were built on)."""
    from rtstyle.export.tensorrt_build import TensorRTBuildConfig, build_tensorrt_engine

    if precision not in ("fp32", "fp16"):
        raise BackendUnavailableError(f"TensorRT engines are built in fp32 or fp16, not {precision}")
    low, opt, high = tensorrt_profile(model.scale, cfg)
    out = workdir / f"bench-{precision}.engine"
    if not out.exists():
        build_tensorrt_engine(model.path, out, TensorRTBuildConfig(min_shape=low, opt_shape=opt, max_shape=high,
                                                                   max_batch=high[0], precision=precision, io="uint8"),
                              device=device.index)
    return out


def _model_file(backend: str, model: _Model, precision: str, device: torch.device, cfg: BenchConfig,
                workdir: Path) -> Path:
    """The file each backend opens: the checkpoint for torch, an export for the others."""
    if backend in ("torch", "openvino"):
        return model.path  # OpenVINO converts the checkpoint itself (and caches the compiled model)
    if backend == "onnxruntime":
        return _export_onnx(model, precision, workdir)
    if backend == "aoti":
        return _export_aoti(model, precision, device, workdir)
    if backend == "tensorrt":
        return _build_tensorrt(model, precision, cfg, workdir, device)
    raise BackendUnavailableError(f"bench cannot export a model file for the {backend!r} backend")


# ------------------------------------------------------------------------------ measuring

class _Progress:
    def __init__(self, enabled: bool | str):
        self.bar = progress_bar(None, "rtstyle bench", "step", mode=enabled)

    def step(self, label: str) -> None:
        self.bar.set_postfix_str(label, refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def _device_batches(frames: list[np.ndarray], batch: int, count: int, device: torch.device) -> list[torch.Tensor]:
    """``count`` distinct (batch, H, W, 3) uint8 tensors on ``device`` cut from ``frames``."""
    out = []
    for i in range(count):
        picks = [frames[(i * batch + j) % len(frames)] for j in range(batch)]
        out.append(torch.from_numpy(np.stack(picks)).to(device))
    return out


def _measure(fn: Callable[[Any], Any], inputs: list, items_per_call: int, device: torch.device,
             cfg: BenchConfig, events: bool = False) -> dict[str, Any]:
    seconds = summarize(time_calls(fn, inputs, device, cfg.warmup, cfg.repeats, cfg.max_seconds, events=events))
    return {"fps": rate(items_per_call, seconds), "seconds_per_call": seconds}


def _work_section(model: _Model, cfg: BenchConfig, precisions: list[str]) -> dict[str, dict[str, Any]]:
    """Per resolution and precision: the counted work of one frame."""
    out: dict[str, dict[str, Any]] = {}
    for res in cfg.resolutions:
        w, h = _input_size(res, model.scale)
        out[_res_name(res)] = {p: count_engine_work(model.net, 1, h, w, TORCH_DTYPES[p]).to_dict() for p in precisions}
    return out


def _floor_for(work: dict[str, Any], ceilings: dict[str, Any], precision: str) -> dict[str, Any]:
    wc = WorkCount(work["flops"], work["other_flops"], work["bytes_read"], work["bytes_written"], work["matmul_bytes"])
    return roofline_floor(wc, ceilings["matmul_flops_per_s"][precision], ceilings["copy_bytes_per_s"]).to_dict()


def _model_only(model: _Model, cfg: BenchConfig, device: torch.device, frames: dict[str, list[np.ndarray]],
                workdir: Path, progress: _Progress) -> tuple[list[dict], list[dict]]:
    cells: list[dict] = []
    skipped: list[dict] = []
    for backend in cfg.backends or list(BACKENDS):
        for precision in (cfg.precisions or default_precisions(backend, device)):
            opts = EngineOptions(device=str(device), precision=precision, batch_size=max(cfg.batch_sizes))
            try:
                check_backend(backend, opts)
                engine = open_engine(_model_file(backend, model, precision, device, cfg, workdir), backend, opts)
            except (RtstyleError, ImportError) as exc:
                skipped.append({"backend": backend, "precision": precision, "reason": str(exc)})
                continue
            for res in cfg.resolutions:
                for batch in cfg.batch_sizes:
                    cell = {"backend": backend, "precision": precision, "batch": batch, "resolution": _res_name(res)}
                    inputs = _device_batches(frames[_res_name(res)], batch, cfg.rotate, device)
                    try:
                        cell.update(_measure(engine, inputs, batch, device, cfg, events=cfg.cuda_events))
                        cell["timer"] = "cuda events" if cfg.cuda_events and device.type == "cuda" else "host clock"
                    except (RuntimeError, RtstyleError) as exc:  # e.g. out of memory: report, go on
                        cell["error"] = f"{exc.__class__.__name__}: {first_line(exc)}"
                    cells.append(cell)
                    progress.step(f"{backend} {precision} b{batch} {_res_name(res)}")
            del engine
    return cells, skipped


def _best_cell(cells: list[dict], resolution: str) -> dict | None:
    ok = [c for c in cells if c["resolution"] == resolution and "fps" in c]
    return max(ok, key=lambda c: c["fps"]["median"], default=None)


def _reference(model: _Model, cfg: BenchConfig, device: torch.device, frames: dict[str, list[np.ndarray]],
               cells: list[dict], workdir: Path, progress: _Progress) -> list[dict]:
    """Reference fps per resolution, and the speed-up of the best engine configuration, both
    timed host frames in -> host frames out (the engine through ``pipeline.run_engine``)."""
    from rtstyle.pipeline import run_engine

    ref = ReferenceStylizer(model.net, device)
    out = []
    for res in cfg.resolutions:
        name = _res_name(res)
        pool = frames[name]
        entry: dict[str, Any] = {"resolution": name, "reference": _measure(ref, pool, 1, torch.device("cpu"), cfg)}
        best = _best_cell(cells, name)
        if best is not None:
            opts = EngineOptions(device=str(device), precision=best["precision"], batch_size=best["batch"])
            path = _model_file(best["backend"], model, best["precision"], device, cfg, workdir)
            engine = open_engine(path, best["backend"], opts)
            host = [b.cpu() for b in _device_batches(pool, best["batch"], cfg.rotate, torch.device("cpu"))]
            measured = _measure(lambda b, engine=engine: run_engine(engine, b), host, best["batch"], device, cfg)
            entry["best"] = {k: best[k] for k in ("backend", "precision", "batch")} | measured
            entry["speedup"] = measured["fps"]["median"] / entry["reference"]["fps"]["median"]
        out.append(entry)
        progress.step(f"reference {name}")
    return out


# -------------------------------------------------------------------------------- pipeline

def _make_clip(path: Path, width: int, height: int, frames: int, seed: int) -> Path:
    from fractions import Fraction

    from rtstyle.video import EncoderConfig, VideoWriter

    time_base = Fraction(1, 30)
    writer = VideoWriter(path, width, height, time_base, Fraction(30), EncoderConfig(crf=20, preset="veryfast"))
    with writer:
        for i, image in enumerate(_cycle(synthetic_frames(min(frames, 30), width, height, seed), frames)):
            writer.write(image, pts=i)
    return path


def _cycle(pool: list, n: int) -> Iterator:
    for i in range(n):
        yield pool[i % len(pool)]


def pipeline_efficiency(end_to_end_fps: float, stage_fps: dict[str, float]) -> dict[str, Any]:
    """Efficiency = end-to-end fps / fps of the slowest stage (1.0: the pipeline hides every
    other stage behind the slowest one)."""
    if not stage_fps or end_to_end_fps < 0 or any(v <= 0 for v in stage_fps.values()):
        raise ValueError(f"pipeline_efficiency: need positive stage fps, got {stage_fps}")
    slowest = min(stage_fps, key=stage_fps.get)
    return {"slowest_stage": slowest, "slowest_fps": stage_fps[slowest], "efficiency": end_to_end_fps / stage_fps[slowest]}


def _timed(fn: Callable[[], int], device: torch.device, repeats: int) -> dict[str, Any]:
    """Run ``fn`` (returns frames processed) ``repeats`` times; the median run's fps, and all."""
    runs = []
    for _ in range(repeats):
        synchronize(device)
        t0 = time.perf_counter()
        frames = fn()
        synchronize(device)
        runs.append((frames, time.perf_counter() - t0))
    fps = [f / sec for f, sec in runs]
    return {"frames": runs[0][0], "seconds": [sec for _, sec in runs], "fps": statistics.median(fps), "fps_runs": fps}


def _pipeline(model: _Model, cfg: BenchConfig, device: torch.device, workdir: Path, progress: _Progress) -> dict:
    from rtstyle.pipeline import HostBatcher, PipelineConfig, run_engine, run_pipeline
    from rtstyle.stylize import encoder_with_threads
    from rtstyle.video import VideoReader, VideoWriter, probe

    threads = plan_threads()  # the same split of the cores as rtstyle stylize

    if cfg.clip is not None:
        clip = Path(cfg.clip)
    else:
        clip = _make_clip(workdir / "clip.mp4", *cfg.clip_size, cfg.clip_frames, cfg.seed)
    info = probe(clip)
    opts = EngineOptions(device=str(device), batch_size=cfg.pipeline_batch)
    engine = open_engine(model.path, "auto", opts)
    out_w, out_h = info.width * engine.scale, info.height * engine.scale
    result: dict[str, Any] = {
        "clip": {"path": str(clip) if cfg.clip else "generated", "width": info.width, "height": info.height,
                 "codec": info.codec, "frames": info.num_frames},
        "engine": {"backend": engine.backend, "description": engine.describe(), "reason": engine.reason},
        "batch": cfg.pipeline_batch,
        "encoder": dataclasses.asdict(_encoder_config()),
        "threads": dataclasses.asdict(threads),
    }

    def decode_only() -> int:
        return sum(1 for _ in VideoReader(clip, threads=threads.decode))

    repeats = 1 if cfg.quick else 3
    stages = {"decode": _timed(decode_only, device, repeats)}
    progress.step("decode")
    n = stages["decode"]["frames"]
    # Engine and encoder get the clip's own frames; a few batches, cycled, keep memory flat.
    pool = [f.image for _, f in zip(range(cfg.rotate * cfg.pipeline_batch), VideoReader(clip, threads=threads.decode))]
    # A ring as large as the pool: every batch keeps its own (on CUDA pinned) buffer.
    batcher = HostBatcher(cfg.pipeline_batch, engine.device, ring=cfg.rotate + 1)
    batches = [batcher.add(im) for im in pool]
    batches = [b.frames for b in batches + [batcher.flush()] if b is not None]

    def engine_only() -> int:
        done = 0
        for b in _cycle(batches, -(-n // cfg.pipeline_batch)):
            done += len(run_engine(engine, b))
        return done

    # Also the engine's warm-up, so no stage pays for first-call set-up.
    out_frames = [im for b in batches for im in run_engine(engine, b)]
    stages["engine"] = _timed(engine_only, device, repeats)
    progress.step("engine")

    def writer(name: str) -> VideoWriter:
        return VideoWriter(workdir / name, out_w, out_h, info.time_base, info.frame_rate,
                           encoder_with_threads(_encoder_config(), threads.encode), overwrite=True)

    def encode_only() -> int:
        with writer("encode.mp4") as out:
            for i, image in enumerate(_cycle(out_frames, n)):
                out.write(image, pts=i)
        return n

    stages["encode"] = _timed(encode_only, device, repeats)
    progress.step("encode")

    def whole() -> int:
        with writer("pipeline.mp4") as out:
            stats = run_pipeline(VideoReader(clip, threads=threads.decode), engine, lambda image, item: out.write(image, item.pts),
                                 PipelineConfig(batch_size=cfg.pipeline_batch))
        result["pipeline_stats"] = stats.to_dict()
        return stats.frames_out

    end_to_end = _timed(whole, device, repeats)
    progress.step("pipeline")
    result["stages"] = stages
    result["end_to_end"] = end_to_end
    result.update(pipeline_efficiency(end_to_end["fps"], {k: v["fps"] for k, v in stages.items()}))
    return result


def _encoder_config():
    from rtstyle.video import EncoderConfig

    return EncoderConfig()  # the encoder stylize uses by default


# -------------------------------------------------------------------------------- summary

def _noise(result: dict) -> dict[str, Any]:
    cells = [c for c in result["model_only"] if "fps" in c]
    spreads = [relative_spread(c["seconds_per_call"]) for c in cells if "seconds_per_call" in c]
    shares = [c["roofline"]["achieved_fraction"] for c in cells if "achieved_fraction" in c.get("roofline", {})]
    return assess_noise(spreads, result["machine"]["load_average_before"], result["machine"]["cores"], shares)


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
        floor = _floor_for(work[cell["resolution"]][cell["precision"]], ceilings, cell["precision"])
        cell["roofline"] = {"floor_fps": floor["fps"], "bound": floor["bound"]}
        if "fps" in cell:
            measured_s = 1.0 / cell["fps"]["median"]
            cell["roofline"]["achieved_fraction"] = achieved_fraction(floor["floor_s"], measured_s)


def _notes(result: dict, cfg: BenchConfig, model: _Model) -> list[str]:
    notes = []
    if cfg.model is None:
        notes.append(f"model: a {model.source}; speed does not depend on trained weights, only on the architecture")
    if model.scale > 1:
        notes.append(f"SR x{model.scale}: resolutions name the output size; the network input is 1/{model.scale} of it")
    if result["device"]["type"] == "cpu" and not cfg.quick and cfg.resolutions == CPU_RESOLUTIONS:
        notes.append(f"CPU: reduced grid {[_res_name(r) for r in CPU_RESOLUTIONS]} x batch {list(CPU_BATCHES)} "
                     "(the GPU grid at 1080p would take hours); pass --resolutions/--batch-sizes to change it")
    load = result["machine"]["load_average_before"]
    cores = result["machine"]["cores"] or 1
    if load is not None and load[0] >= 0.5:
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
    progress = _Progress(cfg.progress)
    with tempfile.TemporaryDirectory(prefix="rtstyle-bench-") as tmp:
        workdir = Path(tmp)
        model = _prepare_model(cfg, workdir)
        result["model"] = {
            "source": model.source, "task": model.task, "config": config_to_dict(model.config),
            "parameters": sum(p.numel() for p in model.net.parameters()), "scale": model.scale,
        }
        frames = {
            _res_name(r): synthetic_frames(cfg.rotate * max(cfg.batch_sizes), *_input_size(r, model.scale), cfg.seed)
            for r in cfg.resolutions
        }
        precisions = sorted({p for b in (cfg.backends or BACKENDS) for p in (cfg.precisions or default_precisions(b, device))})
        result["work"] = _work_section(model, cfg, precisions)
        ceilings = measure_ceilings(device, precisions, quick=cfg.quick).to_dict()
        result["ceilings"] = ceilings
        progress.step("ceilings")
        cells, skipped = _model_only(model, cfg, device, frames, workdir, progress)
        _attach_roofline(cells, result["work"], ceilings)
        result["model_only"], result["skipped"] = cells, skipped
        result["reference"] = _reference(model, cfg, device, frames, cells, workdir, progress) if cfg.reference else []
        result["pipeline"] = _pipeline(model, cfg, device, workdir, progress) if cfg.pipeline else {}
    progress.close()
    result["machine"]["load_average_after"] = _load_average()
    result["noise"] = _noise(result)
    result["targets"] = _targets(result)
    result["notes"] = _notes(result, cfg, model)
    return result
