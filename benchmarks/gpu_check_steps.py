"""The steps of ``gpu_check`` (see there). Each takes the shared ``CheckContext`` and returns a
JSON-ready dict; ``ctx.dry`` (a CPU machine) runs the CPU-testable part of the same code, small."""

from __future__ import annotations

import dataclasses
import importlib.util
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

import rtstyle
from rtstyle.engine import EngineOptions, TorchOptions, open_engine
from rtstyle.errors import RtstyleError
from rtstyle.export.deploy import parity_tolerance
from rtstyle.gpu.capabilities import codec_support, decoder_support, encoder_support, hw_decode_support, resolve_codec
from rtstyle.gpu.decode import DeviceVideoReader, device_file_source
from rtstyle.gpu.ring import OutputRing
from rtstyle.models import bundled_models, resolve_model
from rtstyle.pipeline import PipelineConfig, run_pipeline
from rtstyle.textutil import first_line
from rtstyle.video import EncoderConfig, VideoWriter

from . import bench, config, end_to_end, model_only, timing
from . import environment as env
from .timing import rate, summarize, time_calls

PHOTOS = Path(rtstyle.__file__).resolve().parent / "assets" / "samples" / "photos"


def _tests_dir() -> Path | None:
    """The source checkout's tests/: beside an editable install, or in the working directory when
    the package was installed from a wheel (the lent GPU machine: see README, GPU section)."""
    for root in (Path(__file__).resolve().parents[1], Path.cwd()):
        if (root / "tests" / "conftest.py").is_file():
            return root / "tests"
    return None


@dataclass
class CheckContext:
    device: torch.device
    dry: bool
    workdir: Path
    has_av: bool
    deadline: float  # time.perf_counter() by which a step must end (its budget)
    shared: dict[str, Any] = field(default_factory=dict)  # what one step leaves for another (the clip, the grid)

    def left(self) -> float:
        return self.deadline - time.perf_counter()


class Skip(Exception):
    """A step that cannot run here; its message says why."""


# ------------------------------------------------------------------------------- environment

def environment(ctx: CheckContext) -> dict:
    out = {"machine": env.machine_info(), "device": env.device_info(ctx.device), "versions": env.versions(),
           "capabilities": {k: dataclasses.asdict(v) for k, v in {**decoder_support(), **codec_support()}.items()}}
    if torch.cuda.is_available():
        out["cuda_devices"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    ort = importlib.util.find_spec("onnxruntime")
    if ort is not None:
        import onnxruntime

        out["onnxruntime_providers"] = onnxruntime.get_available_providers()
    for line in (*(f"{k}: {v}" for k, v in out["versions"].items()),
                 *(f"{c['name']}: {'yes' if c['usable'] else 'no'} ({c['reason']})" for c in out["capabilities"].values())):
        print(f"    {line}")
    return out


# ------------------------------------------------------------------------------------ tests

def gpu_tests(ctx: CheckContext) -> dict:
    tests = _tests_dir()
    if tests is None:
        raise Skip("no tests/ beside the package or in the working directory: run the check from a source checkout")
    files = sorted(p for p in tests.glob("test_*.py") if "mark.gpu" in p.read_text())
    junit = ctx.workdir / "gpu-tests.xml"
    # Without PyAV some test files cannot even be imported: run what can be, count the rest as errors.
    # -P and --import-mode=append: the installed rtstyle (a wheel on the lent machine) wins over the
    # checkout's bare rtstyle/ folder, which lacks rtstyle.benchmarks, .export and .trainers.
    # -v (one line per test): what finished is known even when the budget stops the run.
    cmd = [sys.executable, "-P", "-m", "pytest", "--import-mode=append", "-m", "gpu", "-v", "-p", "no:cacheprovider",
           f"--junitxml={junit}", "--continue-on-collection-errors", "--durations=5", *map(str, files)]
    if ctx.dry:
        cmd.insert(4, "--collect-only")  # a CPU skips them all anyway: list what the GPU run will run
    try:
        proc = subprocess.run(cmd, cwd=tests.parent, capture_output=True, text=True, check=False,
                              timeout=max(5.0, ctx.left()))
    except subprocess.TimeoutExpired as exc:
        done = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        lines = [ln for ln in done.splitlines() if re.search(r" (PASSED|FAILED|SKIPPED|ERROR)", ln)]
        return {"status": "failed", "reason": f"pytest ran past the step's budget after {len(lines)} tests",
                "files": [f.name for f in files], "finished": lines}
    tail = proc.stdout.strip().splitlines()[-1:] or proc.stderr.strip().splitlines()[-1:]
    out: dict[str, Any] = {"files": [f.name for f in files], "returncode": proc.returncode, "summary": tail[0] if tail else ""}
    if junit.exists():
        suite = ET.parse(junit).getroot()
        suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
        out.update({k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")})
        out["failed"] = [f"{c.get('classname')}.{c.get('name')}" for c in suite.iter("testcase")
                         if c.find("failure") is not None or c.find("error") is not None]
    if ctx.dry:
        collected = re.search(r"(\d+)(?:/\d+)? tests? collected", proc.stdout)
        out["collected"] = int(collected.group(1)) if collected else 0
        if proc.returncode not in (0, 5) or not out["collected"]:
            out["status"] = "failed"
    else:
        out["slowest"] = [ln.strip() for ln in proc.stdout.split("slowest 5 durations", 1)[-1].splitlines()[1:6]
                          if ln.strip() and "s " in ln]
    if not ctx.dry and proc.returncode not in (0, 5):
        out["status"] = "failed"
        if not ctx.has_av and out.get("errors"):
            out["reason"] = f"{out['errors']} test files or tests could not run without PyAV (carry the av wheel)"
    return out


# ----------------------------------------------------------------------------------- parity

def _photos(count: int, width: int, height: int) -> torch.Tensor:
    """Real photographs (InstanceNorm statistics of noise would flatter fp16) as a uint8 batch."""
    files = sorted(PHOTOS.glob("*.jpg"))[:count]
    images = [np.asarray(Image.open(f).convert("RGB").resize((width, height), Image.BILINEAR)) for f in files]
    return torch.from_numpy(np.stack(images))


def _diff(a: torch.Tensor, b: torch.Tensor) -> dict[str, float]:
    d = (a.int() - b.int()).abs().float()
    return {"max": d.max().item(), "mean": round(d.mean().item(), 4)}


def parity(ctx: CheckContext) -> dict:
    """Every bundled model: CUDA graph vs eager (fp16, must agree exactly up to one level) and
    fp16/bf16 vs fp32 (within the exporters' parity tolerance), InstanceNorm running in the low
    precision as the torch engine runs it. Dry run: bf16 vs fp32 on the CPU, small frames."""
    dev = str(ctx.device)
    style_size, sr_size = ((96, 64), (48, 32)) if ctx.dry else ((1280, 720), (320, 180))
    low = ("bf16",) if ctx.dry else ("fp16", "bf16")
    rows, failures = [], []
    for name in sorted(bundled_models()):
        row: dict[str, Any] = {"model": name}
        try:
            ref_engine = open_engine(name, "torch", EngineOptions(device=dev, precision="fp32", batch_size=2,
                                                                   backend_options=TorchOptions(cuda_graphs=False)))
        except RtstyleError as exc:
            row["skipped"] = first_line(exc)  # e.g. a texture generator takes no frames
            rows.append(row)
            continue
        size = sr_size if ref_engine.scale > 1 else style_size
        frames = _photos(2, *size).to(ctx.device)
        with torch.inference_mode():
            ref = ref_engine(frames)
            for p in low:
                eager = open_engine(name, "torch", EngineOptions(device=dev, precision=p, batch_size=2,
                                                                 backend_options=TorchOptions(cuda_graphs=False)))(frames)
                d = _diff(eager, ref)
                d["tolerance"] = round(255 * parity_tolerance(p, "uint8"), 2)
                d["ok"] = d["max"] <= d["tolerance"]
                row[f"{p}_vs_fp32"] = d
                if not d["ok"]:
                    failures.append(f"{name} {p}")
                if not ctx.dry and p == "fp16":
                    graphed = open_engine(name, "torch", EngineOptions(device=dev, precision=p, batch_size=2))
                    g = _diff(graphed(frames), eager)
                    g["ok"] = g["max"] <= 1
                    row["cuda_graph_vs_eager_fp16"] = g
                    if not g["ok"]:
                        failures.append(f"{name} CUDA graph")
        rows.append(row)
    out: dict[str, Any] = {"models": rows, "frame_size": {"style": size_name(style_size), "sr_input": size_name(sr_size)}}
    if failures:
        out["status"], out["reason"] = "failed", "outside tolerance: " + ", ".join(failures)
    return out


def size_name(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


# ------------------------------------------------------------------------- other backends

def aoti(ctx: CheckContext) -> dict:
    if ctx.dry:
        raise Skip("AOTInductor compiles for minutes on a CPU; the GPU run compiles for CUDA")
    from rtstyle.export.aoti_export import AotiExportConfig, export_aoti

    result = export_aoti("starry_night", ctx.workdir / "starry_night-cuda-fp16.pt2",
                         AotiExportConfig(device=str(ctx.device), precision="fp16", check=True))
    engine = open_engine(result.path, "aoti", EngineOptions(device=str(ctx.device), precision="fp16", batch_size=4))
    frames = [_photos(4, 1920, 1080).to(ctx.device)]
    seconds = summarize(time_calls(engine, frames, ctx.device, 3, 10, max_seconds=10, events=True))
    return {"compile_s": round(result.seconds, 1), "parity": [p.describe() for p in result.parity],
            "fps_1080p_b4": rate(4, seconds)}


def onnxruntime_cuda(ctx: CheckContext) -> dict:
    if importlib.util.find_spec("onnxruntime") is None:
        raise Skip("onnxruntime is not installed")
    import onnxruntime

    providers = onnxruntime.get_available_providers()
    if "CUDAExecutionProvider" not in providers or ctx.dry:
        raise Skip(f"no CUDA execution provider here (providers: {', '.join(providers)}); install onnxruntime-gpu")
    from rtstyle.export.onnx_export import OnnxExportConfig, export_onnx

    path = ctx.workdir / "starry_night-fp16.onnx"
    export_onnx(resolve_model("starry_night"), path, OnnxExportConfig(fp16=True, io="uint8", check=False))
    opts = EngineOptions(device=str(ctx.device), precision="fp16", batch_size=4)
    engine = open_engine(path, "onnxruntime", opts)
    frames = _photos(4, 1280, 720).to(ctx.device)
    ref = open_engine("starry_night", "torch", EngineOptions(device=str(ctx.device), precision="fp32",
                                                             backend_options=TorchOptions(cuda_graphs=False)))(frames)
    d = _diff(engine(frames), ref)
    seconds = summarize(time_calls(engine, [frames], ctx.device, 3, 10, max_seconds=10))
    out = {"engine": engine.describe(), "vs_torch_fp32": d, "fps_720p_b4": rate(4, seconds)}
    if "CUDAExecutionProvider" not in engine.describe() and "Tensorrt" not in engine.describe():
        out["status"], out["reason"] = "failed", f"session fell back: {engine.describe()}"
    return out


# --------------------------------------------------------------------------- grid and pipeline

GRID_MODEL = "starry_night"  # a bundled Johnson network: the targets are about it


def model_grid(ctx: CheckContext) -> dict:
    """``rtstyle bench``'s model-only grid (and its per-frame reference) with CUDA-event timing:
    640x360/1280x720/1920x1080 x batch 1, 4, 8 x fp16/bf16. Dry run: a 64x36 grid in fp32."""
    if ctx.dry:
        cfg = config.BenchConfig(model=GRID_MODEL, device="cpu", backends=("torch",), precisions=("fp32",),
                                resolutions=((64, 36),), batch_sizes=(1, 2), warmup=1, repeats=3, max_seconds=1.0,
                                pipeline=False, quick=True, progress=False)
    else:
        cfg = config.BenchConfig(model=GRID_MODEL, device=str(ctx.device), backends=("torch",),
                                precisions=("fp16", "bf16"), resolutions=config.GPU_RESOLUTIONS,
                                batch_sizes=config.GPU_BATCHES, warmup=5, repeats=20, max_seconds=3.0,
                                pipeline=False, progress=False, cuda_events=True)
    result = bench.run_bench(cfg)
    ctx.shared["bench"] = result
    best = {c["resolution"]: round(c["fps"]["median"], 1) for c in sorted(
        (c for c in result["model_only"] if "fps" in c), key=lambda c: c["fps"]["median"])}
    return {"best_fps_by_resolution": best, "cells": len(result["model_only"]),
            "failed_cells": [c for c in result["model_only"] if "error" in c]}


def _need_av(ctx: CheckContext) -> None:
    if not ctx.has_av:
        raise Skip("PyAV is not installed: carry the av wheel (see README, GPU section) and "
                   "`pip install --no-index --find-links wheels av` first")


def _clip(ctx: CheckContext) -> Path:
    """One generated clip for the pipeline and the video-path steps (1080p, 120 frames on a GPU)."""
    if "clip" not in ctx.shared:
        w, h, n = (128, 72, 8) if ctx.dry else (1920, 1080, 120)
        ctx.shared["clip"] = end_to_end.make_clip(ctx.workdir / "clip.mp4", w, h, n, seed=0)
    return ctx.shared["clip"]


def pipeline(ctx: CheckContext) -> dict:
    """``rtstyle bench``'s decode / engine / encode / end-to-end measurement on the 1080p clip."""
    _need_av(ctx)
    clip = _clip(ctx)
    cfg = config.BenchConfig(model=GRID_MODEL, device=str(ctx.device), clip=str(clip), reference=False,
                            quick=ctx.dry, progress=False, pipeline_batch=8 if not ctx.dry else 2)
    cfg = cfg.resolved(ctx.device)
    model = model_only.prepare_model(cfg, ctx.workdir)
    progress = model_only.BenchProgress(False)
    result = end_to_end.measure_pipeline(model, cfg, ctx.device, ctx.workdir, progress)
    progress.close()
    if "bench" in ctx.shared:
        ctx.shared["bench"]["pipeline"] = result
    return {"efficiency": round(result["efficiency"], 3), "slowest_stage": result["slowest_stage"],
            "end_to_end_fps": round(result["end_to_end"]["fps"], 2),
            "stage_fps": {k: round(v["fps"], 2) for k, v in result["stages"].items()}}


def video_path(ctx: CheckContext) -> dict:
    """The zero-copy pieces: NVDEC decode into torch (vs the software path, within one level),
    the pinned output ring against ``.cpu()``, and NVENC where the GPU has it. Dry run: the
    software decode path and the ring on the CPU."""
    _need_av(ctx)

    clip = _clip(ctx)
    out: dict[str, Any] = {}
    hw = hw_decode_support()
    out["nvdec"] = dataclasses.asdict(hw)
    t0 = time.perf_counter()
    reader = DeviceVideoReader(clip, ctx.device, hardware=hw.usable)
    frames = [f.image for f in reader]
    timing.synchronize(ctx.device)
    out["device_decode"] = {"frames": len(frames), "fps": round(len(frames) / (time.perf_counter() - t0), 1),
                            "frames_on_device": reader.frames_on_device, "notes": reader.path_notes}
    if hw.usable:
        soft = [f.image for _, f in zip(range(8), DeviceVideoReader(clip, ctx.device, hardware=False))]
        d = max(_diff(a, b)["max"] for a, b in zip(frames, soft))
        out["nvdec_vs_software_max_diff"] = d
        if d > 1 or reader.frames_on_device != len(frames):
            out["status"], out["reason"] = "failed", f"NVDEC frames off by {d} levels or not all on the GPU"
    batch = torch.stack(frames[:8 if not ctx.dry else 2])
    out["ring"] = _ring_vs_cpu(OutputRing(slots=4, device=ctx.device), batch, 6 if ctx.dry else 40)
    for codec in ("h264_nvenc", "hevc_nvenc"):
        out[codec] = dataclasses.asdict(encoder_support(codec))
    out["end_to_end"] = _gpu_pipeline(ctx, clip, hw.usable)
    out["encoders"] = _encoder_fps(ctx, [f.cpu().numpy() for f in frames[:8 if ctx.dry else 60]])
    return out


def _encoder_fps(ctx: CheckContext, images: list[np.ndarray]) -> dict:
    """Encode-only fps of libx264 presets and NVENC (where it opens) on the clip's frames: which
    encoder keeps up with the engine (the issue's 0.8 end-to-end efficiency at 1080p)."""
    h, w = images[0].shape[:2]
    choices = [("libx264", "ultrafast"), ("libx264", "veryfast"), ("libx264", "medium")]
    choices += [(c, "p1") for c in ("h264_nvenc",) if encoder_support(c).usable]
    out = {}
    for codec, preset in choices:
        t0 = time.perf_counter()
        with VideoWriter(ctx.workdir / f"enc-{codec}-{preset}.mp4", w, h, config=EncoderConfig(codec=codec, preset=preset),
                         overwrite=True) as writer:
            for i, image in enumerate(images):
                writer.write(image, pts=i)
        out[f"{codec} {preset}"] = round(len(images) / (time.perf_counter() - t0), 1)
    return out


def _gpu_pipeline(ctx: CheckContext, clip: Path, hardware: bool) -> dict:
    """The whole GPU path as ``stylize --decoder pyav-cuda --codec auto`` runs it: device decoding,
    the engine, the output ring, the encoder (NVENC where it opens); fps against the engine alone."""
    batch = 2 if ctx.dry else 8
    engine = open_engine(GRID_MODEL, "torch", EngineOptions(device=str(ctx.device), batch_size=batch))
    source = device_file_source(clip, ctx.device, hardware=hardware)
    info = source.info
    codec, fallback = resolve_codec("auto")
    writer = VideoWriter(ctx.workdir / "gpu-path.mp4", info.width, info.height, info.time_base, info.frame_rate,
                         EncoderConfig(codec=codec, preset="medium"), overwrite=True)
    with writer:
        stats = run_pipeline(source, engine, lambda image, frame: writer.write(image, frame.pts),
                             PipelineConfig(batch_size=batch, output_ring=True))
    out = {"fps": round(stats.fps, 2), "frames": stats.frames_out, "encoder": codec, "encoder_note": fallback,
           "decoder": "NVDEC" if hardware else "FFmpeg on the CPU, converted on the device",
           "frames_on_device": source.reader.frames_on_device, "ms_per_frame": stats.to_dict()["ms_per_frame"]}
    engine_fps = ctx.shared.get("bench", {}).get("pipeline", {}).get("stages", {}).get("engine", {}).get("fps")
    if engine_fps:
        out["efficiency_vs_engine_only"] = round(stats.fps / engine_fps, 3)
    return out


def _ring_vs_cpu(ring, batch: torch.Tensor, rounds: int) -> dict:
    """Frames per second through the ring (copies queued, consumed in order) and through ``.cpu()``."""
    t0 = time.perf_counter()
    for i in range(rounds):
        if not ring.put(batch, list(range(len(batch)))):
            raise RuntimeError("ring refused a batch")
        if i >= 2:  # keep two copies in flight, as the engine would
            ring.release(ring.get())
    ring.close()
    while (slot := ring.get()) is not None:
        ring.release(slot)
    ring_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(rounds):
        batch.cpu().numpy()
    cpu_s = time.perf_counter() - t0
    frames = rounds * len(batch)
    return {"ring_fps": round(frames / ring_s, 1), "cpu_copy_fps": round(frames / cpu_s, 1),
            "waits_for_slot": ring.waits_for_slot, "frame": "x".join(map(str, batch.shape[1:]))}
