"""The steps of ``gpu_check`` (see there). Each takes the shared ``CheckContext`` and returns a
JSON-ready dict (``status``/``reason`` keys, when present, become the step's own); ``ctx.dry`` (a
CPU machine) runs the CPU-testable part of the same code, small, and fakes what needs a GPU."""

from __future__ import annotations

import contextlib
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
from rtstyle.choices import DEFAULT_STYLE_MODEL
from rtstyle.engine import EngineOptions, OrtOptions, TorchOptions, open_engine
from rtstyle.errors import BackendUnavailableError, RtstyleError
from rtstyle.export.deploy import parity_tolerance
from rtstyle.gpu.capabilities import codec_support, decoder_support, encoder_support, hw_decode_support, resolve_codec
from rtstyle.gpu.colour import output_spec, rgb_to_nv12
from rtstyle.gpu.decode import DeviceVideoReader, device_file_source
from rtstyle.gpu.ring import OutputRing
from rtstyle.models import bundled_models
from rtstyle.pipeline import PipelineConfig, run_pipeline
from rtstyle.textutil import first_line
from rtstyle.threads import plan_threads
from rtstyle.video import EncoderConfig, VideoWriter

from . import bench, config, end_to_end, model_only, timing
from . import environment as env
from .gpu_wheels import NOT_CARRIED
from .timing import rate, summarize, time_calls

PHOTOS = Path(rtstyle.__file__).resolve().parent / "assets" / "samples" / "photos"
# The grid's two nets, by config: the 250 fps target is about the Johnson-size net (308
# kFLOP per pixel); the bundled default style model (whatever architecture it has) runs beside it.
GRID_NETS = {"johnson": {"arch": "style"}, "bundled": {"model": DEFAULT_STYLE_MODEL}}
PARITY_PERCENTILE = 99.9  # the verdict's percentile of |difference| (the max is reported, not judged)


def _python() -> list[str]:
    """This interpreter; with -P (3.11+) so the checkout's bare rtstyle/ folder (no benchmarks/,
    export/, trainers/ inside) never shadows the installed or path-mapped package."""
    return [sys.executable, "-P"] if sys.version_info >= (3, 11) else [sys.executable]


def _tests_dir() -> Path | None:
    """The source checkout's tests/: beside the package, or in the working directory when the
    package was installed elsewhere (a wheel, or gpu_check.sh's path map)."""
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
    deadline: float  # time.perf_counter() by which the step must end (its budget plus any slack)
    shared: dict[str, Any] = field(default_factory=dict)  # what one step leaves for another (the clip, the grid)

    def left(self) -> float:
        return self.deadline - time.perf_counter()


class Skip(Exception):
    """A step that cannot run here; its message says why."""


# ---------------------------------------------------------------------------- helpers

@contextlib.contextmanager
def fp32_reference():
    """fp32 references without TF32: cuDNN convolutions run in TF32 by default on Ampere and
    later, which would make the "fp32" reference itself ~1e-3 off. Set through the legacy flag,
    which moves cuDNN's conv and RNN settings together (setting only the new per-op
    ``cudnn.conv.fp32_precision`` leaves them mixed, and torch then refuses to report its TF32
    state). Matmuls stay at torch's default ("highest": no TF32)."""
    before = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32 = before


def tf32_state() -> dict[str, Any]:
    """What torch says about TF32 now (an answer torch refuses is reported as its error)."""
    out: dict[str, Any] = {}
    for key, read in (("cudnn_allow_tf32", lambda: torch.backends.cudnn.allow_tf32),
                      ("float32_matmul_precision", torch.get_float32_matmul_precision),
                      ("cudnn_conv_fp32_precision", lambda: torch.backends.cudnn.conv.fp32_precision)):
        try:
            out[key] = read()
        except Exception as exc:  # noqa: BLE001 - AttributeError on older torch, RuntimeError on mixed settings
            out[key] = f"{exc.__class__.__name__}: {first_line(exc)}"
    return out


def diff_stats(a: torch.Tensor, b: torch.Tensor, tolerance: float, mean_tolerance: float) -> dict[str, Any]:
    """|a - b| of two uint8 tensors in levels of 255: the verdict is the ``PARITY_PERCENTILE``
    and the mean against their tolerances (a few saturated pixels of millions cannot fail it; a
    shifted picture or NaNs cannot pass); the max is reported beside them."""
    d = (a.int() - b.int()).abs().flatten()
    counts = torch.bincount(d, minlength=256).cpu().double()
    cdf = counts.cumsum(0) / counts.sum()
    pct = int(torch.searchsorted(cdf, torch.tensor([PARITY_PERCENTILE / 100.0], dtype=torch.float64)).item())
    mean = float((counts * torch.arange(len(counts), dtype=torch.float64)).sum() / counts.sum())
    out = {"max": int(d.max().item()), f"p{PARITY_PERCENTILE:g}": pct, "mean": round(mean, 4),
           "tolerance": round(tolerance, 2), "mean_tolerance": round(mean_tolerance, 2)}
    out["ok"] = pct <= tolerance and mean <= mean_tolerance
    return out


def precision_stats(a: torch.Tensor, reference: torch.Tensor, precision: str) -> dict[str, Any]:
    """``diff_stats`` with the exporters' parity tolerance of ``precision`` (uint8 output) and half
    of it for the mean."""
    tol = 255 * parity_tolerance(precision, "uint8")
    return diff_stats(a, reference, tol, tol / 2)


def _photos(count: int, width: int, height: int) -> torch.Tensor:
    """Real photographs (InstanceNorm statistics of noise would flatter fp16) as a uint8 batch."""
    files = sorted(PHOTOS.glob("*.jpg"))
    images = [np.asarray(Image.open(files[i % len(files)]).convert("RGB").resize((width, height), Image.BILINEAR))
              for i in range(count)]
    return torch.from_numpy(np.stack(images))


def size_name(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def johnson_checkpoint(ctx: CheckContext) -> Path:
    """A freshly initialised Johnson-size net (seed 0) as a checkpoint: speed does not depend on
    trained weights, and the issue's targets are about this architecture."""
    if "johnson" not in ctx.shared:
        cfg = config.BenchConfig(arch=GRID_NETS["johnson"]["arch"])
        ctx.shared["johnson"] = model_only.prepare_model(cfg, ctx.workdir).path
    return ctx.shared["johnson"]


def _reference(model: str | Path, frames: torch.Tensor, device: torch.device) -> torch.Tensor:
    with fp32_reference(), torch.inference_mode():
        engine = open_engine(model, "torch", EngineOptions(device=str(device), precision="fp32",
                                                          backend_options=TorchOptions(cuda_graphs=False)))
        return engine(frames)


def _fps_events(engine, frames: torch.Tensor, batch: int, device: torch.device) -> dict[str, float]:
    seconds = summarize(time_calls(engine, [frames], device, 3, 20, max_seconds=5, events=True))
    return {k: round(v, 1) for k, v in rate(batch, seconds).items()}


# ------------------------------------------------------------------------------- environment

def environment(ctx: CheckContext) -> dict:
    out = {"machine": env.machine_info(), "device": env.device_info(ctx.device), "versions": env.versions(),
           "tf32_defaults": tf32_state(), "threads_beside_a_gpu_engine": dataclasses.asdict(plan_threads(engine_device="cuda")),
           "capabilities": {k: dataclasses.asdict(v) for k, v in {**decoder_support(), **codec_support()}.items()}}
    if torch.cuda.is_available():
        out["cuda_devices"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    if importlib.util.find_spec("onnxruntime") is not None:
        import onnxruntime

        out["onnxruntime_providers"] = onnxruntime.get_available_providers()
        out["onnxruntime_cuda_build"] = getattr(onnxruntime, "cuda_version", "") or None
    for line in (*(f"{k}: {v}" for k, v in out["versions"].items()),
                 *(f"{c['name']}: {'yes' if c['usable'] else 'no'} ({c['reason']})" for c in out["capabilities"].values())):
        print(f"    {line}", flush=True)
    return out


# ------------------------------------------------------------------ AOTInductor, in the background

def aoti_start(ctx: CheckContext) -> dict:
    """Start compiling the Johnson-size net into an AOTInductor package for CUDA (fp16, uint8
    frames, dynamic batch and size) with ``rtstyle export aoti`` in a subprocess: the compile
    (a minute or more on a cold cache) runs on the CPU cores while the tests and the parity checks
    use the GPU; the ``aoti`` step waits for it. Dry run: the same command with --help."""
    ckpt = johnson_checkpoint(ctx)
    package = ctx.workdir / "johnson-cuda-fp16.pt2"
    args = ["export", "aoti", "--help"] if ctx.dry else [
        "export", "aoti", str(ckpt), "-o", str(package), "--device", "cuda", "--precision", "fp16", "--no-check"]
    cmd = [*_python(), "-m", "rtstyle", *args]
    log = ctx.workdir / "aoti-compile.log"
    with open(log, "w") as sink:  # the child keeps its own handle
        proc = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT, cwd=ctx.workdir)
    ctx.shared["aoti_job"] = {"proc": proc, "started": time.perf_counter(), "package": package, "log": log}
    return {"command": " ".join(["python", *cmd[1:]]), "pid": proc.pid}


def stop_background(shared: dict) -> None:
    """Kill a background compile still running (the check ended or was cut short)."""
    job = shared.get("aoti_job")
    if job and job["proc"].poll() is None:
        job["proc"].kill()
        job["proc"].wait()


def _log_tail(path: Path, lines: int = 6) -> str:
    text = path.read_text(errors="replace").strip().splitlines() if path.is_file() else []
    return " | ".join(text[-lines:])


def aoti(ctx: CheckContext) -> dict:
    """Wait for the background compile, then the package against the fp32 torch reference (TF32
    off) on photographs, and its fps at 1080p batch 8 (CUDA events)."""
    job = ctx.shared.get("aoti_job")
    if job is None:
        raise Skip("the aoti-compile step did not start a compile")
    proc = job["proc"]
    try:
        proc.wait(timeout=max(1.0, ctx.left() - (3 if ctx.dry else 20)))  # keep time to load and time it
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return {"status": "failed", "reason": f"AOTInductor compile still running {time.perf_counter() - job['started']:.0f} s "
                f"after it started (cold cache); killed. Log: {_log_tail(job['log'])}"}
    out: dict[str, Any] = {"compile_s": round(time.perf_counter() - job["started"], 1),
                           "compile_note": "wall time from its start, beside the gpu-tests and parity steps"}
    if proc.returncode != 0:
        return {**out, "status": "failed", "reason": f"rtstyle export aoti exited {proc.returncode}: {_log_tail(job['log'])}"}
    if ctx.dry:
        raise Skip("dry run: AOTInductor compiles for minutes on a CPU; the background job ran "
                   "`rtstyle export aoti --help` (exit 0)")
    engine = open_engine(job["package"], "aoti", EngineOptions(device=str(ctx.device), precision="fp16", batch_size=8))
    frames = _photos(2, 1280, 720).to(ctx.device)
    out["vs_torch_fp32_720p"] = precision_stats(engine(frames), _reference(johnson_checkpoint(ctx), frames, ctx.device), "fp16")
    out["fps_1080p_b8"] = _fps_events(engine, _photos(8, 1920, 1080).to(ctx.device), 8, ctx.device)
    out["engine"] = engine.describe()
    if not out["vs_torch_fp32_720p"]["ok"]:
        out["status"], out["reason"] = "failed", "AOTInductor package outside the fp16 parity tolerance"
    return out


# ------------------------------------------------------------------------------------ tests

# Compile-heavy GPU tests (AOTInductor, torch.compile max-autotune: minutes on a cold cache) are
# marked ``compiles`` and left to the aoti step, so this step cannot overrun on a cold machine.
GPU_TESTS_MARKER = "gpu and not compiles"


def gpu_tests(ctx: CheckContext) -> dict:
    tests = _tests_dir()
    if tests is None:
        raise Skip("no tests/ beside the package or in the working directory: run the check from a source checkout")
    files = sorted(p for p in tests.glob("test_*.py") if "mark.gpu" in p.read_text())
    junit = ctx.workdir / "gpu-tests.xml"
    # Without PyAV some test files cannot even be imported: run what can be, count the rest as errors.
    # --import-mode=append (with -P): the installed or path-mapped rtstyle wins over the checkout's
    # bare rtstyle/ folder. -v (one line per test): what finished is known even when time runs out.
    cmd = [*_python(), "-m", "pytest", "--import-mode=append", "-m", GPU_TESTS_MARKER, "-v", "-p", "no:cacheprovider",
           f"--junitxml={junit}", "--continue-on-collection-errors", "--durations=5", *map(str, files)]
    if ctx.dry:
        cmd.insert(cmd.index("-v"), "--collect-only")  # a CPU skips them all anyway: list what the GPU run will run
    try:
        proc = subprocess.run(cmd, cwd=tests.parent, capture_output=True, text=True, check=False,
                              timeout=max(5.0, ctx.left() - 3))
    except subprocess.TimeoutExpired as exc:
        done = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        lines = [ln for ln in done.splitlines() if re.search(r" (PASSED|FAILED|SKIPPED|ERROR)", ln)]
        return {"status": "failed", "reason": f"pytest ran past the step's time after {len(lines)} tests",
                "files": [f.name for f in files], "finished": lines}
    tail = proc.stdout.strip().splitlines()[-1:] or proc.stderr.strip().splitlines()[-1:]
    out: dict[str, Any] = {"files": [f.name for f in files], "marker": GPU_TESTS_MARKER, "returncode": proc.returncode,
                           "summary": tail[0] if tail else ""}
    if junit.exists():
        suite = ET.parse(junit).getroot()
        suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
        out.update({k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")})
        out["failed"] = [f"{c.get('classname')}.{c.get('name')}" for c in suite.iter("testcase")
                         if c.find("failure") is not None or c.find("error") is not None]
        # What each failure said (a GPU run is rare: the reasons must come back with it).
        out["failure_messages"] = {f"{c.get('classname')}.{c.get('name')}": (f.get("message") or f.text or "")[:400]
                                   for c in suite.iter("testcase")
                                   for f in (c.find("failure"), c.find("error")) if f is not None}
        out["skipped_because"] = sorted({(c.find("skipped").get("message") or "")[:160] for c in suite.iter("testcase")
                                         if c.find("skipped") is not None})
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
        out["reason"] = f"{out.get('failures', '?')} failed, {out.get('errors', '?')} errors: {out['summary']}"
        if not ctx.has_av and out.get("errors"):
            out["reason"] += " (without PyAV some test files cannot run: carry the av wheel)"
    return out


# ----------------------------------------------------------------------------------- parity

def parity(ctx: CheckContext) -> dict:
    """Every bundled model: fp16/bf16 vs the fp32 reference (TF32 off) and CUDA graph vs eager
    fp16, on photographs; verdicts on the 99.9th percentile and the mean of |difference| (the max
    is reported). InstanceNorm runs in the low precision, as the torch engine runs it. Dry run:
    bf16 vs fp32 on the CPU, small frames."""
    dev = str(ctx.device)
    style_size, sr_size = ((96, 64), (48, 32)) if ctx.dry else ((1280, 720), (320, 180))
    low = ("bf16",) if ctx.dry else ("fp16", "bf16")
    rows, failures = [], []
    for name in sorted(bundled_models()):
        row: dict[str, Any] = {"model": name}
        try:
            probe = open_engine(name, "torch", EngineOptions(device=dev, precision="fp32", batch_size=2,
                                                             backend_options=TorchOptions(cuda_graphs=False)))
        except RtstyleError as exc:
            row["skipped"] = first_line(exc)  # e.g. a texture generator takes no frames
            rows.append(row)
            continue
        size = sr_size if probe.scale > 1 else style_size
        del probe
        frames = _photos(2, *size).to(ctx.device)
        ref = _reference(name, frames, ctx.device)
        with torch.inference_mode():
            for p in low:
                eager = open_engine(name, "torch", EngineOptions(device=dev, precision=p, batch_size=2,
                                                                 backend_options=TorchOptions(cuda_graphs=False)))(frames)
                row[f"{p}_vs_fp32"] = d = precision_stats(eager, ref, p)
                if not d["ok"]:
                    failures.append(f"{name} {p}")
                if not ctx.dry and p == "fp16":
                    graphed = open_engine(name, "torch", EngineOptions(device=dev, precision=p, batch_size=2))
                    row["cuda_graph_vs_eager_fp16"] = g = diff_stats(graphed(frames), eager, 1, 0.05)
                    if not g["ok"]:
                        failures.append(f"{name} CUDA graph")
        rows.append(row)
    out: dict[str, Any] = {"models": rows, "frame_size": {"style": size_name(style_size), "sr_input": size_name(sr_size)},
                           "reference": {"precision": "fp32", **tf32_state(), "during_reference": "cudnn_allow_tf32 False"},
                           "verdict": f"p{PARITY_PERCENTILE:g} <= tolerance and mean <= mean_tolerance (levels of 255)"}
    if failures:
        out["status"], out["reason"] = "failed", "outside tolerance: " + ", ".join(failures)
    return out


# ------------------------------------------------------------------------ other backends

def onnxruntime_missing() -> str | None:
    """Why onnxruntime's CUDA provider cannot run here (None: it can be tried)."""
    if importlib.util.find_spec("onnxruntime") is None:
        return "onnxruntime is not installed"
    import onnxruntime

    providers = onnxruntime.get_available_providers()
    if "CUDAExecutionProvider" not in providers:
        return (f"onnxruntime-gpu is not installed (onnxruntime {onnxruntime.__version__} here is a CPU build: "
                f"{', '.join(providers)}); the check's wheels leave it out: {NOT_CARRIED['onnxruntime-gpu']}")
    built_for = getattr(onnxruntime, "cuda_version", "") or ""
    torch_cuda = torch.version.cuda or ""
    if built_for and torch_cuda and built_for.split(".")[0] != torch_cuda.split(".")[0]:
        return (f"onnxruntime-gpu {onnxruntime.__version__} is built for CUDA {built_for} but torch {torch.__version__} "
                f"for CUDA {torch_cuda}: their CUDA libraries cannot share one process; install the onnxruntime-gpu "
                f"build for CUDA {torch_cuda.split('.')[0]}")
    return None


def onnxruntime_cuda(ctx: CheckContext) -> dict:
    """onnxruntime's CUDA provider alone (not its TensorRT provider: TensorRT has its own step),
    on the Johnson-size net exported fp16 with uint8 frames: parity and fps."""
    missing = onnxruntime_missing()
    if missing:
        raise Skip(missing)
    if ctx.dry:
        raise Skip("dry run: no GPU")
    import onnxruntime

    if hasattr(onnxruntime, "preload_dlls"):  # CUDA/cuDNN of the same major as torch's, before the session
        onnxruntime.preload_dlls()
    from rtstyle.export.onnx_export import OnnxExportConfig, export_onnx

    path = ctx.workdir / "johnson-fp16.onnx"
    export_onnx(johnson_checkpoint(ctx), path, OnnxExportConfig(fp16=True, io="uint8", check=False))
    opts = EngineOptions(device=str(ctx.device), precision="fp16", batch_size=4,
                         backend_options=OrtOptions(providers=("CUDAExecutionProvider",)))
    try:
        engine = open_engine(path, "onnxruntime", opts)
    except BackendUnavailableError as exc:
        raise Skip(f"onnxruntime's CUDA provider did not load: {first_line(exc)}") from None
    frames = _photos(2, 1280, 720).to(ctx.device)
    out = {"engine": engine.describe(), "cuda_build": getattr(onnxruntime, "cuda_version", None),
           "vs_torch_fp32_720p": precision_stats(engine(frames), _reference(johnson_checkpoint(ctx), frames, ctx.device), "fp16"),
           "fps_1080p_b4": _fps_events(engine, _photos(4, 1920, 1080).to(ctx.device), 4, ctx.device)}
    if not out["vs_torch_fp32_720p"]["ok"]:
        out["status"], out["reason"] = "failed", "onnxruntime CUDA outside the fp16 parity tolerance"
    return out


def tensorrt_missing() -> str | None:
    """Why the TensorRT step cannot run here, starting "TensorRT not installable here" when the
    package does not import (None: it imports)."""
    try:
        import tensorrt  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - ImportError, or OSError from its libraries
        return f"TensorRT not installable here: `import tensorrt` fails ({exc.__class__.__name__}: {first_line(exc)}); " \
               f"{NOT_CARRIED['tensorrt']}"
    return None


TRT_PROFILE = ((1, 360, 640, 3), (8, 1080, 1920, 3), (8, 1080, 1920, 3))  # NHWC uint8: up to batch 8 at 1080p
TRT_OPT_LEVEL = 2  # builder optimisation level: 3 (the default) tunes longer than the step's budget allows


def tensorrt(ctx: CheckContext) -> dict:
    """Build the Johnson-size net's fp16 1080p engine (one profile: batch 1 at 640x360 to batch 8
    at 1080p), report the build time, its parity and its fps at 1080p batch 8."""
    missing = tensorrt_missing()
    if missing:
        raise Skip(missing)
    if ctx.dry:
        raise Skip("dry run: TensorRT builds need a GPU")
    from rtstyle.backends.trt_build import TensorRTBuildConfig
    from rtstyle.export.onnx_export import OnnxExportConfig, export_onnx
    from rtstyle.export.tensorrt_build import build_tensorrt_engine

    onnx_path = ctx.workdir / "johnson-fp16-trt.onnx"
    export_onnx(johnson_checkpoint(ctx), onnx_path, OnnxExportConfig(fp16=True, io="uint8", check=False))
    low, opt, high = TRT_PROFILE
    built = build_tensorrt_engine(onnx_path, ctx.workdir / "johnson-fp16.engine", TensorRTBuildConfig(
        min_shape=low, opt_shape=opt, max_shape=high, max_batch=high[0], precision="fp16", io="uint8",
        optimization_level=TRT_OPT_LEVEL, use_cache=False))
    engine = open_engine(built.path, "tensorrt", EngineOptions(device=str(ctx.device), batch_size=8))
    frames = _photos(2, 1280, 720).to(ctx.device)
    out = {"build_s": round(built.seconds, 1), "optimization_level": TRT_OPT_LEVEL, "engine": engine.describe(),
           "profile": ["x".join(map(str, s)) for s in TRT_PROFILE],
           "vs_torch_fp32_720p": precision_stats(engine(frames), _reference(johnson_checkpoint(ctx), frames, ctx.device), "fp16"),
           "fps_1080p_b8": _fps_events(engine, _photos(8, 1920, 1080).to(ctx.device), 8, ctx.device)}
    if not out["vs_torch_fp32_720p"]["ok"]:
        out["status"], out["reason"] = "failed", "TensorRT engine outside the fp16 parity tolerance"
    return out


# --------------------------------------------------------------------------- grid and pipeline

def _grid(ctx: CheckContext, net: str) -> dict:
    """``rtstyle bench``'s model-only grid (and its per-frame reference) of one of ``GRID_NETS``
    with CUDA graphs and CUDA-event timing: 640x360/1280x720/1920x1080 x batch 1, 4, 8 x
    fp16/bf16. Dry run: a 64x36 grid in fp32."""
    which = GRID_NETS[net]
    if ctx.dry:
        cfg = config.BenchConfig(**which, device="cpu", backends=("torch",), precisions=("fp32",),
                                 resolutions=((64, 36),), batch_sizes=(1, 2), warmup=1, repeats=3, max_seconds=1.0,
                                 pipeline=False, quick=True, progress=False)
    else:
        cfg = config.BenchConfig(**which, device=str(ctx.device), backends=("torch",), precisions=("fp16", "bf16"),
                                 resolutions=config.GPU_RESOLUTIONS, batch_sizes=config.GPU_BATCHES, warmup=5,
                                 repeats=20, max_seconds=2.0, rotate=2, pipeline=False, progress=False, cuda_events=True)
    result = bench.run_bench(cfg)
    if net != "johnson":
        result["targets"] = {}  # the targets are about the Johnson-size net
    ctx.shared.setdefault("bench", {})[net] = result
    best: dict[str, dict[str, float]] = {}
    for c in result["model_only"]:
        if "fps" in c:
            cell = best.setdefault(c["resolution"], {})
            cell[c["precision"]] = round(max(cell.get(c["precision"], 0.0), c["fps"]["median"]), 1)
    work = next(iter(result["work"].values()))
    per_pixel = next(iter(work.values()))["flops"] / _pixels(next(iter(result["work"])))
    return {"model": result["model"]["source"], "kflop_per_pixel": round(per_pixel / 1e3, 1),
            "best_fps_by_resolution": best, "cells": len(result["model_only"]),
            "failed_cells": [c for c in result["model_only"] if "error" in c],
            "reference_speedups": [round(r["speedup"], 2) for r in result.get("reference", []) if "speedup" in r]}


def _pixels(resolution: str) -> int:
    w, h = resolution.split("x")
    return int(w) * int(h)


def grid_johnson(ctx: CheckContext) -> dict:
    return _grid(ctx, "johnson")


def grid_bundled(ctx: CheckContext) -> dict:
    return _grid(ctx, "bundled")


def grid_archs(ctx: CheckContext) -> dict:
    """Every style architecture preset (the architecture study's designs among them) at 1920x1080,
    fp16, batch 1 and 8, CUDA graphs and CUDA events: a few seconds each, so the GPU figure of
    whichever design is bundled next is measured too. Dry run: 64x36 fp32."""
    out: dict[str, Any] = {}
    for name in sorted(config.ARCHS):
        if not name.startswith("style"):
            continue
        if ctx.dry:
            cfg = config.BenchConfig(arch=name, device="cpu", backends=("torch",), precisions=("fp32",),
                                     resolutions=((64, 36),), batch_sizes=(1,), warmup=1, repeats=2, max_seconds=0.5,
                                     reference=False, pipeline=False, quick=True, progress=False)
        else:
            cfg = config.BenchConfig(arch=name, device=str(ctx.device), backends=("torch",), precisions=("fp16",),
                                     resolutions=((1920, 1080),), batch_sizes=(1, 8), warmup=5, repeats=20,
                                     max_seconds=1.5, rotate=2, reference=False, pipeline=False, progress=False,
                                     cuda_events=True)
        result = bench.run_bench(cfg)
        work = next(iter(result["work"].values()))
        res = next(iter(result["work"]))
        out[name] = {"kflop_per_pixel": round(next(iter(work.values()))["flops"] / _pixels(res) / 1e3, 1),
                     "fps": {f"{c['resolution']} b{c['batch']} {c['precision']}": round(c["fps"]["median"], 1)
                             for c in result["model_only"] if "fps" in c},
                     "failed_cells": [c for c in result["model_only"] if "error" in c]}
    return out


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
    """``rtstyle bench``'s decode / engine / encode / end-to-end measurement of the Johnson-size
    net on the 1080p clip, as stylize runs it (encoder threads, NV12 on the GPU, output ring)."""
    _need_av(ctx)
    clip = _clip(ctx)
    cfg = config.BenchConfig(arch=GRID_NETS["johnson"]["arch"], device=str(ctx.device), clip=str(clip), reference=False,
                             quick=ctx.dry, progress=False, pipeline_batch=8 if not ctx.dry else 2)
    cfg = cfg.resolved(ctx.device)
    model = model_only.prepare_model(cfg, ctx.workdir)
    progress = model_only.BenchProgress(False)
    result = end_to_end.measure_pipeline(model, cfg, ctx.device, ctx.workdir, progress)
    progress.close()
    johnson = ctx.shared.get("bench", {}).get("johnson")
    if johnson is not None:
        johnson["pipeline"] = result
    ctx.shared["pipeline"] = result
    return {"clip": f"{result['clip']['width']}x{result['clip']['height']}, {result['clip']['frames']} frames",
            "efficiency": round(result["efficiency"], 3), "slowest_stage": result["slowest_stage"],
            "end_to_end_fps": round(result["end_to_end"]["fps"], 2),
            "stage_fps": {k: round(v["fps"], 2) for k, v in result["stages"].items()},
            "encoder": f"{result['encoder']['codec']} {result['encoder']['preset']}, {result['threads']['encode']} threads",
            "colour_conversion": result["colour_conversion"]}


def video_path(ctx: CheckContext) -> dict:
    """The zero-copy pieces: NVDEC decode into torch (vs the software path, within one level), the
    pinned output ring against ``.cpu()``, NVENC where the GPU has it, and the GPU path end to end
    (decoder on its own stream, engine, NV12 on the GPU, ring, encoder). Without NVDEC the decode
    runs on the CPU and says so: the zero-host-copy target is then not testable here. Dry run:
    the software decode path and the ring on the CPU."""
    _need_av(ctx)
    clip = _clip(ctx)
    out: dict[str, Any] = {}
    hw = hw_decode_support()
    out["nvdec"] = dataclasses.asdict(hw)
    if not hw.usable:
        out["zero_host_copies"] = f"not testable here: frames decode on the CPU ({hw.reason})"
    t0 = time.perf_counter()
    reader = DeviceVideoReader(clip, ctx.device, hardware=hw.usable)
    frames = [f.image for f in reader]
    timing.synchronize(ctx.device)
    out["device_decode"] = {"frames": len(frames), "fps": round(len(frames) / (time.perf_counter() - t0), 1),
                            "frames_on_device": reader.frames_on_device, "notes": reader.path_notes,
                            "decoder": "NVDEC" if hw.usable else "FFmpeg on the CPU, converted on the device"}
    if hw.usable:
        soft = [f.image for _, f in zip(range(8), DeviceVideoReader(clip, ctx.device, hardware=False))]
        d = max(int((a.int() - b.int()).abs().max().item()) for a, b in zip(frames, soft))
        out["nvdec_vs_software_max_diff"] = d
        out["zero_host_copies"] = f"{reader.frames_on_device} of {len(frames)} frames never left the GPU"
        if d > 1 or reader.frames_on_device != len(frames):
            out["status"], out["reason"] = "failed", f"NVDEC frames off by {d} levels or not all on the GPU"
    batch = torch.stack(frames[:8 if not ctx.dry else 2])
    out["ring"] = _ring_vs_cpu(OutputRing(slots=4, device=ctx.device), batch, 6 if ctx.dry else 40)
    for codec in ("h264_nvenc", "hevc_nvenc"):
        out[codec] = dataclasses.asdict(encoder_support(codec))
    out["end_to_end"] = _gpu_pipeline(ctx, clip, hw.usable)
    nv12 = [rgb_to_nv12(f).cpu().numpy() for f in frames[:8 if ctx.dry else 60]]
    out["encoders"] = _encoder_fps(ctx, nv12, frames[0].shape[1], frames[0].shape[0])
    return out


def _encoder_fps(ctx: CheckContext, nv12: list[np.ndarray], w: int, h: int) -> dict:
    """Encode-only fps of libx264 presets and NVENC (where it opens), NV12 frames in, with the
    threads a GPU engine leaves the encoder: which encoder keeps up with the engine."""
    threads = plan_threads(engine_device=ctx.device.type).encode
    choices = [("libx264", "ultrafast"), ("libx264", "veryfast"), ("libx264", "medium")]
    choices += [(c, "p1") for c in ("h264_nvenc",) if encoder_support(c).usable]
    out: dict[str, Any] = {"threads": threads}
    for codec, preset in choices:
        cfg = EncoderConfig(codec=codec, preset=preset, options={"threads": str(threads)} if codec == "libx264" else {})
        t0 = time.perf_counter()
        with VideoWriter(ctx.workdir / f"enc-{codec}-{preset}.mp4", w, h, config=cfg, overwrite=True) as writer:
            for i, image in enumerate(nv12):
                writer.write_nv12(image, pts=i)
        out[f"{codec} {preset}"] = round(len(nv12) / (time.perf_counter() - t0), 1)
    return out


def _gpu_pipeline(ctx: CheckContext, clip: Path, hardware: bool) -> dict:
    """The whole GPU path as ``stylize --decoder pyav-cuda --codec auto`` runs it, with the
    Johnson-size net: device decoding, the engine, NV12 on the GPU, the output ring, the encoder
    (NVENC where it opens) with the cores; fps against the engine alone."""
    batch = 2 if ctx.dry else 8
    engine = open_engine(johnson_checkpoint(ctx), "torch", EngineOptions(device=str(ctx.device), batch_size=batch))
    source = device_file_source(clip, ctx.device, hardware=hardware)
    info = source.info
    codec, fallback = resolve_codec("auto")
    threads = plan_threads(engine_device=engine.device.type)
    writer = VideoWriter(ctx.workdir / "gpu-path.mp4", info.width, info.height, info.time_base, info.frame_rate,
                         EncoderConfig(codec=codec, preset="medium" if codec == "libx264" else None).beside_engine(
                             engine.device.type, threads.encode if codec == "libx264" else None),
                         overwrite=True)
    nv12 = output_spec(*writer.color_tags)
    with torch.inference_mode():  # the CUDA graph of the full batch captured here, not in the engine thread
        engine(torch.stack([f.image for _, f in zip(range(batch), DeviceVideoReader(clip, ctx.device, hardware=False))]))
    with writer:
        stats = run_pipeline(source, engine, lambda image, frame: writer.write_nv12(image, frame.pts),
                             PipelineConfig(batch_size=batch, output_ring=True, output_nv12=nv12))
    out = {"fps": round(stats.fps, 2), "frames": stats.frames_out, "encoder": codec, "encoder_note": fallback,
           "encoder_threads": threads.encode if codec == "libx264" else None,
           "decoder": "NVDEC" if hardware else "FFmpeg on the CPU, converted on the device",
           "frames_on_device": source.reader.frames_on_device, "ms_per_frame": stats.to_dict()["ms_per_frame"]}
    engine_fps = ctx.shared.get("pipeline", {}).get("stages", {}).get("engine", {}).get("fps")
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
