"""The OpenVINO backend on the CPU: parity with torch fp32 (fp32 within the ONNX export's
tolerance, bf16 within the torch backend's), checkpoints and ONNX files of both I/O kinds, SR
scale, tiny frames, the compiled-model cache, and one-line refusals (no Intel GPU, bad options)."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest
import torch

from rtstyle.checkpoint import load_checkpoint
from rtstyle.conditioning import StyleChoice
from rtstyle.engine import EngineOptions, OpenVINOOptions, open_engine
from rtstyle.errors import BackendUnavailableError, CheckpointError, InputError
from rtstyle.frames import to_float, to_uint8
from tests.helpers_export import exported, frames, tiny_checkpoint

ov = pytest.importorskip("openvino")

from rtstyle.backends.openvino_backend import shared_core  # noqa: E402 - after the importorskip
from rtstyle.export.deploy import parity_tolerance  # noqa: E402

# fp32: the ONNX export's own parity bound (1e-3 of the range plus half a uint8 step) in uint8
# steps; bf16: the torch CPU backend's bf16 bound against fp32 (tests/test_engines.py).
FP32_STEPS = math.ceil(255 * parity_tolerance("fp32", "uint8"))
BF16_STEPS = 8


def reference(ckpt, batch: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return to_uint8(load_checkpoint(ckpt).model(to_float(batch)))


def max_diff(a: torch.Tensor, b: torch.Tensor) -> int:
    assert a.shape == b.shape and a.dtype == b.dtype == torch.uint8
    return (a.int() - b.int()).abs().max().item()


def cpu(precision: str, **ov_options) -> EngineOptions:
    return EngineOptions(device="cpu", precision=precision, backend_options=OpenVINOOptions(**ov_options))


@pytest.mark.parametrize("precision,steps", [("fp32", FP32_STEPS), ("bf16", BF16_STEPS)])
def test_checkpoint_matches_torch_fp32(tiny_style_ckpt, precision, steps):
    eng = open_engine(tiny_style_ckpt, "openvino", cpu(precision))
    assert eng.backend == "openvino" and eng.device.type == "cpu" and eng.precision == precision
    assert eng.describe().startswith(f"openvino on CPU ({precision}")
    for shape in [(3, 21, 35), (1, 33, 47), (3, 21, 35)]:
        batch = frames(*shape, seed=shape[1])
        out = eng(batch)
        assert out.shape == batch.shape and out.dtype == torch.uint8
        assert max_diff(out, reference(tiny_style_ckpt, batch)) <= steps
    assert sorted(eng.shapes) == [(21, 35), (33, 47)]  # one compiled model per frame size
    assert eng(frames(2, 7, 9)).shape == (2, 7, 9, 3)  # tiny frames go through the base engine's upsampling


@pytest.mark.parametrize("arch,fp16,io", [("style", False, "float"), ("style", False, "uint8"), ("sr", True, "float")],
                         ids=["style-fp32-float", "style-fp32-uint8", "sr-fp16-float"])
def test_onnx_files_of_both_io_kinds_match_torch(tmp_path_factory, arch, fp16, io):
    ckpt, result = exported(tmp_path_factory, arch, fp16, io)
    eng = open_engine(result.path, "openvino", cpu("fp32"))
    assert eng.scale == (4 if arch == "sr" else 1) and eng.source.uint8_io == (io == "uint8")
    batch = frames(2, 19, 23)
    out = eng(batch)
    assert out.shape == (2, 19 * eng.scale, 23 * eng.scale, 3)
    # An fp16 graph carries fp16 weights: the export's fp16 bound.
    steps = math.ceil(255 * parity_tolerance("fp16" if fp16 else "fp32", "uint8"))
    assert max_diff(out, reference(ckpt, batch)) <= steps


def test_sr_checkpoint_scales(tmp_path):
    ckpt = tiny_checkpoint(tmp_path, "sr")
    eng = open_engine(ckpt, "openvino", cpu("fp32"))
    batch = frames(1, 17, 19)
    assert eng.scale == 4 and max_diff(eng(batch), reference(ckpt, batch)) <= FP32_STEPS


def test_compiled_models_are_cached_on_disk_by_every_setting(tiny_style_ckpt, tmp_path):
    store = tmp_path / "compiled"
    first = open_engine(tiny_style_ckpt, "openvino", cpu("fp32", cache_dir=store))
    expected = first(frames(2, 21, 35))
    blobs = sorted(store.glob("*.blob"))
    assert len(blobs) == 1 and first.cache_hits == 0
    again = open_engine(tiny_style_ckpt, "openvino", cpu("fp32", cache_dir=store))
    assert torch.equal(again(frames(2, 21, 35)), expected) and again.cache_hits == 1
    assert again._model is None  # a cache hit neither converts the checkpoint nor builds the graph
    keys = {again.compile_key(21, 35), again.compile_key(22, 35),
            open_engine(tiny_style_ckpt, "openvino", cpu("bf16", cache_dir=store)).compile_key(21, 35),
            open_engine(tiny_style_ckpt, "openvino", cpu("fp32", cache_dir=store, threads=1)).compile_key(21, 35)}
    assert len(keys) == 4  # shape, precision and threads each change the key
    blobs[0].write_bytes(b"not a compiled model")  # a damaged blob is recompiled and replaced
    healed = open_engine(tiny_style_ckpt, "openvino", cpu("fp32", cache_dir=store))
    assert torch.equal(healed(frames(2, 21, 35)), expected) and healed.cache_hits == 0
    assert blobs[0].stat().st_size > 100


def test_async_requests_overlap_the_frames_of_a_batch(tiny_style_ckpt):
    eng = open_engine(tiny_style_ckpt, "openvino", cpu("fp32", num_streams=2, threads=2))
    batch = frames(4, 21, 35)
    out = eng(batch)
    compiled = eng.shapes[(21, 35)]
    assert int(compiled.compiled.get_property("NUM_STREAMS")) == 2 and len(compiled.requests) >= 2
    assert torch.equal(out, torch.cat([eng(batch[i:i + 1]) for i in range(4)]))  # frame order kept


def test_intel_gpu_is_used_where_present_and_refused_in_one_line_where_not(tiny_style_ckpt):
    if any(d.startswith("GPU") for d in shared_core().available_devices):
        eng = open_engine(tiny_style_ckpt, "openvino", EngineOptions(device="GPU"))
        batch = frames(1, 21, 35)
        assert eng.precision == "fp16" and max_diff(eng(batch), reference(tiny_style_ckpt, batch)) <= BF16_STEPS
        return
    with pytest.raises(BackendUnavailableError) as info:
        open_engine(tiny_style_ckpt, "openvino", EngineOptions(device="GPU"))
    assert "\n" not in str(info.value) and "--device cpu" in str(info.value)


def test_refusals_are_one_line(tiny_style_ckpt, tmp_path_factory):
    with pytest.raises(InputError, match="fp16.*openvino on CPU"):
        open_engine(tiny_style_ckpt, "openvino", cpu("fp16"))
    with pytest.raises(InputError, match="--device cpu or GPU"):
        open_engine(tiny_style_ckpt, "openvino", EngineOptions(device="cuda"))
    with pytest.raises(InputError, match="--backend openvino"):
        open_engine(tiny_style_ckpt, "torch", EngineOptions(device="GPU"))
    with pytest.raises(InputError, match="threads"):
        OpenVINOOptions(threads=0)
    with pytest.raises(InputError, match="'TPU'.*CPU"):
        OpenVINOOptions(device="TPU")
    with pytest.raises(InputError, match="contradicts --device cpu"):
        open_engine(tiny_style_ckpt, "openvino", EngineOptions(device="cpu", backend_options=OpenVINOOptions(device="GPU")))
    _, result = exported(tmp_path_factory, "style", False, "float")
    with pytest.raises(InputError, match="fixed at export"):
        open_engine(result.path, "openvino", EngineOptions(device="cpu", style=StyleChoice(style_index=1)))
    broken = tmp_path_factory.mktemp("broken") / "broken.onnx"
    broken.write_bytes(b"not onnx")
    with pytest.raises(CheckpointError, match="OpenVINO cannot read"):
        open_engine(broken, "openvino", cpu("fp32"))


def test_bench_measures_openvino_with_its_roofline_share(tmp_path):
    from rtstyle.benchmarks.bench import run_bench
    from rtstyle.benchmarks.config import BenchConfig
    from rtstyle.benchmarks.environment import default_precisions

    assert default_precisions("openvino", torch.device("cpu"))[0] == "fp32"
    assert default_precisions("openvino", torch.device("cuda")) == []  # Intel GPUs only, not CUDA ones
    ckpt = tiny_checkpoint(tmp_path, "style")
    result = run_bench(BenchConfig(model=str(ckpt), device="cpu", backends=("openvino",), precisions=("fp32",),
                                   batch_sizes=(2,), resolutions=((40, 24),), warmup=1, repeats=2, rotate=2,
                                   reference=False, pipeline=False, quick=True, progress=False))
    (cell,) = result["model_only"]
    assert cell["backend"] == "openvino" and cell["fps"]["median"] > 0
    assert 0 < cell["roofline"]["achieved_fraction"] and cell["roofline"]["floor_fps"] > 0
    assert result["versions"]["openvino"] == ov.__version__


def test_engines_freed_in_any_order_leave_signals_working(tiny_style_ckpt):
    """Issue 29: `make test` died with "Segmentation fault", no traceback, at the first signal a test
    sent the process after OpenVINO engines had come and gone. Each engine had its own ov.Core,
    whose CPU plugin swaps the thread's signal stack in and, when freed, puts the previous one back
    and unmaps its own: freed in the order they were made, they left an unmapped signal stack, on
    which the kernel could deliver nothing (faulthandler's SIGSEGV handler included). In a fresh
    interpreter, as a signal must not reach pytest itself."""
    code = f"""
import ctypes, faulthandler, gc, os, signal, sys, torch
from rtstyle.engine import EngineOptions, open_engine
faulthandler.enable()  # as under pytest: the main thread has a signal stack to begin with
engines = [open_engine({str(tiny_style_ckpt)!r}, "openvino", EngineOptions(device="cpu", precision="fp32"))
           for _ in range(3)]
for engine in engines:
    engine(torch.zeros(1, 16, 16, 3, dtype=torch.uint8))  # the CPU plugin is loaded and used
del engine
while engines:
    del engines[0]  # freed in the order they were opened
    gc.collect()

class Stack(ctypes.Structure):
    _fields_ = [("sp", ctypes.c_void_p), ("flags", ctypes.c_int), ("size", ctypes.c_size_t)]
stack = Stack()
ctypes.CDLL(None).sigaltstack(None, ctypes.byref(stack))
mapped = any(int(lo, 16) <= (stack.sp or 0) < int(hi, 16) for lo, hi in
             (line.split()[0].split("-") for line in open("/proc/self/maps")))
seen = []
signal.signal(signal.SIGINT, lambda *_: seen.append("SIGINT"))
os.kill(os.getpid(), signal.SIGINT)
print(mapped or not stack.sp, seen)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, f"exit {proc.returncode}: {proc.stderr[-2000:]}"
    assert proc.stdout.split("\n")[-2] == "True ['SIGINT']", proc.stdout
