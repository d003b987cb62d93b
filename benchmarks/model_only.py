"""Model-only throughput: the network (or an exported/built file of it) on every backend x precision
x batch x resolution, uint8 frames already on the device, plus the per-frame reference loop on the
same frames. Timing rules live in ``timing.py``; the roofline floor in ``roofline.py``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from rtstyle.checkpoint import load_checkpoint, save_checkpoint
from rtstyle.dtypes import TORCH_DTYPES
from rtstyle.engine import BACKENDS, EngineOptions, check_backend, open_engine
from rtstyle.errors import BackendUnavailableError, InputError, RtstyleError
from rtstyle.models import resolve_model
from rtstyle.nets import SRNetConfig, build_model, output_scale
from rtstyle.progress import progress as progress_bar
from rtstyle.textutil import first_line

from .config import ARCHS, BenchConfig
from .environment import default_precisions
from .flops import WorkCount, count_engine_work
from .reference import ReferenceStylizer
from .roofline import roofline_floor
from .timing import rate, summarize, time_calls

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


def input_size(resolution: tuple[int, int], scale: int) -> tuple[int, int]:
    """Frame size fed to the network: SR resolutions name the output size."""
    w, h = resolution
    return max(16, w // scale), max(16, h // scale)


def res_name(resolution: tuple[int, int]) -> str:
    return f"{resolution[0]}x{resolution[1]}"


# ----------------------------------------------------------------------------------- model

@dataclass
class BenchModel:
    net: torch.nn.Module
    config: Any
    path: Path  # checkpoint the engines open
    source: str
    task: str

    @property
    def scale(self) -> int:
        return output_scale(self.config)


def prepare_model(cfg: BenchConfig, workdir: Path) -> BenchModel:
    if cfg.model is not None:
        path = resolve_model(cfg.model)
        if path.suffix.lower() != ".safetensors":
            raise InputError(
                f"--model {cfg.model}: bench needs an rtstyle checkpoint (.safetensors) to count FLOPs and "
                "export every backend itself; give the checkpoint the file was exported from"
            )
        ckpt = load_checkpoint(path)
        return BenchModel(ckpt.model, ckpt.config, path, f"checkpoint {path.name}", ckpt.task)
    config = ARCHS[cfg.arch]
    torch.manual_seed(cfg.seed)
    net = build_model(config).eval()
    task = "sr" if isinstance(config, SRNetConfig) else "style"
    path = save_checkpoint(workdir / f"bench-{cfg.arch}.safetensors", net, {"task": task, "name": f"bench-{cfg.arch}"})
    return BenchModel(net, config, path, f"freshly initialised {cfg.arch} net", task)


def _export_onnx(model: BenchModel, precision: str, workdir: Path) -> Path:
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


def _export_aoti(model: BenchModel, precision: str, device: torch.device, workdir: Path) -> Path:
    """An AOTInductor package for ``device`` (uint8 frame I/O, like the other engines)."""
    from rtstyle.export.aoti_export import AotiExportConfig, export_aoti

    out = workdir / f"bench-{device.type}-{precision}.pt2"
    if not out.exists():
        export_aoti(model.path, out, AotiExportConfig(device=str(device), precision=precision, io="uint8", check=False))
    return out


def tensorrt_profile(model_scale: int, cfg: BenchConfig) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """(min, opt, max) NHWC input shapes of one TensorRT profile that covers the whole grid,
    tuned (opt) for its largest batch at its largest resolution."""
    sizes = [input_size(r, model_scale) for r in cfg.resolutions]
    widths, heights = [w for w, _ in sizes], [h for _, h in sizes]
    biggest = max(sizes, key=lambda s: s[0] * s[1])
    batch = max(cfg.batch_sizes)
    return ((min(cfg.batch_sizes), min(heights), min(widths), 3), (batch, biggest[1], biggest[0], 3),
            (batch, max(heights), max(widths), 3))


def _build_tensorrt(model: BenchModel, precision: str, cfg: BenchConfig, workdir: Path, device: torch.device) -> Path:
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


def _model_file(backend: str, model: BenchModel, precision: str, device: torch.device, cfg: BenchConfig,
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

class BenchProgress:
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


def work_section(model: BenchModel, cfg: BenchConfig, precisions: list[str]) -> dict[str, dict[str, Any]]:
    """Per resolution and precision: the counted work of one frame."""
    out: dict[str, dict[str, Any]] = {}
    for res in cfg.resolutions:
        w, h = input_size(res, model.scale)
        out[res_name(res)] = {p: count_engine_work(model.net, 1, h, w, TORCH_DTYPES[p]).to_dict() for p in precisions}
    return out


def floor_for(work: dict[str, Any], ceilings: dict[str, Any], precision: str) -> dict[str, Any]:
    wc = WorkCount(work["flops"], work["other_flops"], work["bytes_read"], work["bytes_written"], work["matmul_bytes"])
    return roofline_floor(wc, ceilings["matmul_flops_per_s"][precision], ceilings["copy_bytes_per_s"]).to_dict()


def measure_model_only(model: BenchModel, cfg: BenchConfig, device: torch.device, frames: dict[str, list[np.ndarray]],
                workdir: Path, progress: BenchProgress) -> tuple[list[dict], list[dict]]:
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
                    cell = {"backend": backend, "precision": precision, "batch": batch, "resolution": res_name(res)}
                    inputs = _device_batches(frames[res_name(res)], batch, cfg.rotate, device)
                    try:
                        cell.update(_measure(engine, inputs, batch, device, cfg, events=cfg.cuda_events))
                        cell["timer"] = "cuda events" if cfg.cuda_events and device.type == "cuda" else "host clock"
                    except (RuntimeError, RtstyleError) as exc:  # e.g. out of memory: report, go on
                        cell["error"] = f"{exc.__class__.__name__}: {first_line(exc)}"
                    cells.append(cell)
                    progress.step(f"{backend} {precision} b{batch} {res_name(res)}")
            del engine
    return cells, skipped


def _best_cell(cells: list[dict], resolution: str) -> dict | None:
    ok = [c for c in cells if c["resolution"] == resolution and "fps" in c]
    return max(ok, key=lambda c: c["fps"]["median"], default=None)


def measure_reference(model: BenchModel, cfg: BenchConfig, device: torch.device, frames: dict[str, list[np.ndarray]],
               cells: list[dict], workdir: Path, progress: BenchProgress) -> list[dict]:
    """Reference fps per resolution, and the speed-up of the best engine configuration, both
    timed host frames in -> host frames out (the engine through ``pipeline.run_engine``)."""
    from rtstyle.pipeline import run_engine

    ref = ReferenceStylizer(model.net, device)
    out = []
    for res in cfg.resolutions:
        name = res_name(res)
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


