"""The one Engine interface across backends: torch (CPU; CUDA graphs on a GPU), onnxruntime
(float and uint8 I/O models), backend auto-selection and unavailable-backend errors."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from rtstyle import engine as engine_module
from rtstyle.backends import torch_backend
from rtstyle.checkpoint import load_checkpoint
from rtstyle.engine import EngineOptions, TorchOptions, check_backend, choose_backend, open_engine
from rtstyle.errors import BackendUnavailableError, InputError
from rtstyle.frames import to_float, to_uint8
from tests.helpers_export import exported, frames

needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def reference(ckpt: Path, batch: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return to_uint8(load_checkpoint(ckpt).model(to_float(batch)))


def max_diff(a: torch.Tensor, b: torch.Tensor) -> int:
    assert a.shape == b.shape and a.dtype == b.dtype == torch.uint8
    return (a.cpu().int() - b.cpu().int()).abs().max().item()


# --- onnxruntime -----------------------------------------------------------------------------

@pytest.mark.parametrize(
    "arch,fp16,io,lsb", [("style", False, "float", 1), ("sr", True, "float", 3), ("style", True, "uint8", 3)],
    ids=["style-fp32-float", "sr-fp16-float", "style-fp16-uint8"],
)
def test_onnxruntime_engine_matches_torch(tmp_path_factory, arch, fp16, io, lsb, monkeypatch):
    monkeypatch.setenv("RTSTYLE_AUTO_MEASURE", "0")  # the static choice by file kind (measuring: test_backend_choice)
    ckpt, result = exported(tmp_path_factory, arch, fp16, io)
    eng = open_engine(result.path)
    assert eng.backend == "onnxruntime" and eng.device.type == "cpu"
    assert "ONNX model" in eng.reason
    assert eng.scale == (4 if arch == "sr" else 1)
    assert eng.precision == ("fp16" if fp16 else "fp32") and eng.io.kind == io
    batch = frames(3, 21, 35)
    out = eng(batch)
    assert out.shape == (3, 21 * eng.scale, 35 * eng.scale, 3)
    # fp32 may differ from torch by a rounding step; fp16 by ~1e-2 of the range.
    assert max_diff(out, reference(ckpt, batch)) <= lsb
    assert eng(frames(1, 7, 9)).shape == (1, 7 * eng.scale, 9 * eng.scale, 3)  # tiny frames go through too


def test_onnxruntime_rejects_a_precision_the_model_does_not_have(tmp_path_factory):
    _, result = exported(tmp_path_factory, "style", False, "float")
    with pytest.raises(InputError, match="fp32 model"):
        open_engine(result.path, "onnxruntime", EngineOptions(precision="fp16"))


def test_onnxruntime_on_cuda_without_gpu_is_one_line_error(tmp_path_factory):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    _, result = exported(tmp_path_factory, "style", False, "float")
    with pytest.raises(BackendUnavailableError) as info:
        open_engine(result.path, "onnxruntime", EngineOptions(device="cuda"))
    assert "\n" not in str(info.value) and "--device cpu" in str(info.value)


# --- torch -----------------------------------------------------------------------------------

def test_torch_cpu_engine_is_exact_in_fp32_and_close_in_bf16(tiny_style_ckpt):
    batch = frames(2, 19, 23)
    expected = reference(tiny_style_ckpt, batch)
    fp32 = open_engine(tiny_style_ckpt, "torch", EngineOptions(device="cpu", precision="fp32"))
    assert fp32.describe() == "torch on cpu (fp32)"
    assert max_diff(fp32(batch), expected) == 0
    bf16 = open_engine(tiny_style_ckpt, "torch", EngineOptions(device="cpu", precision="bf16"))
    assert max_diff(bf16(batch), expected) <= 8


def test_torch_cpu_rejects_fp16(tiny_style_ckpt):
    with pytest.raises(InputError, match="fp16"):
        open_engine(tiny_style_ckpt, "torch", EngineOptions(device="cpu", precision="fp16"))


def test_graph_cache_keeps_the_most_recent_shapes(monkeypatch):
    captured = []

    class FakeCapture:
        def __init__(self, fn, example, pool=None):
            captured.append(tuple(example.shape))
            self.fn, self.pool = fn, pool

        def __call__(self, x):
            return self.fn(x)

    monkeypatch.setattr(torch_backend, "CapturedShape", FakeCapture)
    cache = torch_backend.GraphCache(lambda x: x + 1, capacity=2)
    for shape in [(1, 4), (2, 4), (1, 4), (3, 4), (2, 4)]:
        assert torch.equal(cache(torch.zeros(shape)), torch.ones(shape))
    # (1,4) was used again before (3,4) arrived, so (2,4) was evicted and had to be recaptured.
    assert captured == [(1, 4), (2, 4), (3, 4), (2, 4)]
    assert list(cache.graphs) == [(3, 4), (2, 4)]
    with pytest.raises(InputError):
        torch_backend.GraphCache(lambda x: x, capacity=0)


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_torch_cuda_engine_with_graphs_matches_fp32(tiny_style_ckpt, precision):
    eng = open_engine(tiny_style_ckpt, "torch", EngineOptions(device="cuda", precision=precision, backend_options=TorchOptions(graph_cache=2)))
    assert "CUDA graphs" in eng.describe() and eng.model.body[0][1].weight.is_contiguous(memory_format=torch.channels_last)
    for shape in [(2, 21, 35), (1, 33, 47), (2, 21, 35), (3, 16, 16)]:
        batch = frames(*shape).cuda()
        out = eng(batch)
        assert out.device.type == "cuda"
        assert max_diff(out, reference(tiny_style_ckpt, batch.cpu())) <= (3 if precision == "fp16" else 8)
    assert len(eng.graphs.graphs) == 2


@pytest.mark.gpu
@pytest.mark.compiles
@needs_gpu
def test_torch_cuda_engine_with_compile(tiny_sr_ckpt):
    eng = open_engine(tiny_sr_ckpt, "torch", EngineOptions(device="cuda", backend_options=TorchOptions(compile=True)))
    batch = frames(2, 24, 40).cuda()
    assert max_diff(eng(batch), reference(tiny_sr_ckpt, batch.cpu())) <= 3


@pytest.mark.gpu
@needs_gpu
def test_onnxruntime_gpu_io_binding(tmp_path_factory):
    pytest.importorskip("onnxruntime")
    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        pytest.skip("onnxruntime-gpu not installed")
    ckpt, result = exported(tmp_path_factory, "style", True, "uint8")
    eng = open_engine(result.path, "onnxruntime", EngineOptions(device="cuda"))
    batch = frames(2, 21, 35).cuda()
    out = eng(batch)
    assert out.device.type == "cuda" and max_diff(out, reference(ckpt, batch.cpu())) <= 3


# --- choosing backends -----------------------------------------------------------------------

@pytest.mark.parametrize(
    "name,backend",
    [("m.onnx", "onnxruntime"), ("m.engine", "tensorrt"), ("m.plan", "tensorrt"), ("m.pt2", "aoti"), ("m.safetensors", "torch")],
)
def test_auto_backend_follows_the_file_kind(name, backend, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    chosen, reason = choose_backend(Path(name), EngineOptions())
    assert chosen == backend and reason


def test_auto_backend_explains_gpu_choices(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(engine_module, "_ort_gpu_installed", lambda: True)
    _, reason = choose_backend(Path("m.onnx"), EngineOptions())
    assert "onnxruntime-gpu" in reason
    _, reason = choose_backend(Path("m.onnx"), EngineOptions(device="cpu"))
    assert "CPU" in reason and "--device cpu" in reason
    name, reason = choose_backend(Path("m.safetensors"), EngineOptions())
    assert name == "torch" and "CUDA" in reason
    monkeypatch.setattr(engine_module, "_ort_gpu_installed", lambda: False)
    assert "onnxruntime-gpu or a GPU missing" in choose_backend(Path("m.onnx"), EngineOptions())[1]


def test_auto_open_records_reason(tiny_sr_ckpt):
    eng = open_engine(tiny_sr_ckpt, options=EngineOptions(device="cpu"))
    assert eng.backend in ("torch", "openvino") and eng.scale == 4 and eng.backend in eng.reason


def test_unknown_backend_lists_the_choices():
    with pytest.raises(InputError, match="onnxruntime"):
        check_backend("tvm", EngineOptions())


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="tensorrt is installed")
def test_unavailable_backend_names_what_is_missing_and_how_to_install(tiny_style_ckpt):
    with pytest.raises(BackendUnavailableError) as info:
        open_engine(tiny_style_ckpt, "tensorrt")
    message = str(info.value)
    assert "\n" not in message and "tensorrt" in message and "pip install" in message


def test_torch_cpu_auto_precision_follows_native_bf16(tiny_style_ckpt, monkeypatch):
    from rtstyle.backends import torch_backend

    for native, expected in ((True, "bf16"), (False, "fp32")):
        monkeypatch.setattr(torch_backend, "cpu_has_native_bf16", lambda native=native: native)
        assert open_engine(tiny_style_ckpt, "torch", EngineOptions(device="cpu")).precision == expected


def test_cpu_engines_keep_freed_memory_unless_disabled():
    import subprocess
    import sys

    from rtstyle.cpu_memory import keep_freed_memory

    assert keep_freed_memory() is sys.platform.startswith("linux")
    code = "from rtstyle.cpu_memory import keep_freed_memory as k; print(k())"
    env = {"RTSTYLE_MALLOC_TUNING": "0", "PATH": ""}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
