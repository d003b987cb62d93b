"""The GPU code paths' control flow, run on the CPU with stand-ins for CUDA and TensorRT: address
alignment of split batches, checked TensorRT results, the TensorRT engine's own stream, CUDA graph
capture (device guard, thread-local capture mode, one shared pool), the timing-cache fallback,
builds on the requested GPU, and onnxruntime's TensorRT provider settings and fallbacks."""

from __future__ import annotations

import contextlib
import types
from pathlib import Path

import pytest
import torch

from rtstyle.backends import ort_backend, torch_backend, trt_backend, trt_build
from rtstyle.backends.trt_backend import TRT_ALIGNMENT, TensorRTEngine, aligned_for_tensorrt
from rtstyle.errors import BackendUnavailableError, CheckpointError, ExportError, InputError
from rtstyle.graph_format import GraphIO

# --- TensorRT: alignment, checked results, its own stream -----------------------------------------


def _aligned_view(nbytes: int) -> torch.Tensor:
    """A uint8 view of ``nbytes`` starting at a 256-byte aligned address."""
    buffer = torch.zeros(nbytes + TRT_ALIGNMENT, dtype=torch.uint8)
    offset = -buffer.data_ptr() % TRT_ALIGNMENT
    return buffer[offset:offset + nbytes]


def test_misaligned_chunks_are_copied_and_aligned_ones_are_not():
    x = _aligned_view(3 * 21 * 35 * 3).view(3, 21, 35, 3)
    x.copy_(torch.randint(0, 256, x.shape, dtype=torch.uint8))
    first, second = x.split(2)  # the repository's GPU test: batch 3 at 21x35, max batch 2
    assert second.data_ptr() - x.data_ptr() == 4410 and second.data_ptr() % TRT_ALIGNMENT != 0
    assert aligned_for_tensorrt(first) is first  # offset 0: used in place
    moved = aligned_for_tensorrt(second)
    assert moved.data_ptr() != second.data_ptr() and torch.equal(moved, second) and moved.is_contiguous()


class FakeContext:
    """An IExecutionContext that records calls and can refuse them like TensorRT does (False)."""

    def __init__(self, refuse: str = ""):
        self.refuse = refuse
        self.calls: list[tuple] = []
        self.shape: tuple[int, ...] = ()

    def set_input_shape(self, name, shape):
        self.calls.append(("shape", name, tuple(shape)))
        self.shape = tuple(shape)
        return self.refuse != "shape"

    def get_tensor_shape(self, name):
        return self.shape  # a style net: output shape = input shape

    def set_tensor_address(self, name, address):
        self.calls.append(("address", name, address))
        return self.refuse != "address"

    def execute_async_v3(self, stream_handle):
        self.calls.append(("execute", stream_handle))
        return self.refuse != "execute"


class FakeStream:
    def __init__(self, name: str, log: list):
        self.name, self.log, self.cuda_stream = name, log, hash(name)

    def wait_stream(self, other):
        self.log.append(("wait", self.name, other.name))


def _engine(context: FakeContext, log: list) -> TensorRTEngine:
    """A TensorRTEngine around a fake context, built without a GPU (uint8 io, max batch 2)."""
    engine = object.__new__(TensorRTEngine)
    engine.context, engine.io = context, GraphIO("uint8")
    engine.input_name, engine.output_name, engine.output_dtype = "frames", "output", torch.uint8
    engine.min_shape, engine.max_shape = (1, 16, 16, 3), (2, 64, 64, 3)
    engine.device, engine.stream = torch.device("cpu"), FakeStream("engine", log)
    return engine


@pytest.fixture
def cuda_stand_ins(monkeypatch):
    """torch.cuda's stream API replaced by recorders; returns the shared event log."""
    log: list = []
    caller = FakeStream("caller", log)

    @contextlib.contextmanager
    def use_stream(stream):
        log.append(("enter", stream.name))
        yield
        log.append(("exit", stream.name))

    @contextlib.contextmanager
    def device_guard(device):
        log.append(("device", str(device)))
        yield

    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: caller)
    monkeypatch.setattr(torch.cuda, "stream", use_stream)
    monkeypatch.setattr(torch.cuda, "device", device_guard)
    monkeypatch.setattr(trt_backend, "record_stream", lambda tensor, stream: log.append(("record", stream.name)))
    return log


def test_tensorrt_runs_on_its_own_stream_ordered_both_ways(cuda_stand_ins):
    log, context = cuda_stand_ins, FakeContext()
    engine = _engine(context, log)
    batch = torch.randint(0, 256, (3, 21, 35, 3), dtype=torch.uint8)
    out = engine._run(batch)
    assert out.shape == (3, 21, 35, 3)
    # The engine's stream waits for the caller's, x is recorded on it, work runs inside it,
    # then the caller waits for the engine and each output is recorded on the caller's stream.
    assert log == [("device", "cpu"), ("wait", "engine", "caller"), ("record", "engine"), ("enter", "engine"),
                   ("exit", "engine"), ("wait", "caller", "engine"), ("record", "caller"), ("record", "caller")]
    executes = [c for c in context.calls if c[0] == "execute"]
    assert executes == [("execute", engine.stream.cuda_stream)] * 2  # two chunks, both on the engine's stream
    input_addresses = [c[2] for c in context.calls if c[:2] == ("address", "frames")]
    assert input_addresses[1] != batch.data_ptr() + 4410  # the misaligned second chunk was copied


@pytest.mark.parametrize("refuse,match", [("shape", "refused input shape"), ("address", "refused the address"),
                                          ("execute", "execution failed")])
def test_tensorrt_false_results_raise(cuda_stand_ins, refuse, match):
    engine = _engine(FakeContext(refuse), cuda_stand_ins)
    with pytest.raises(RuntimeError, match=match):
        engine._run(torch.zeros(1, 32, 32, 3, dtype=torch.uint8))


def test_tensorrt_shape_outside_the_profile_is_an_input_error(cuda_stand_ins):
    with pytest.raises(InputError, match="outside this engine's profile"):
        _engine(FakeContext(), cuda_stand_ins)._run(torch.zeros(1, 80, 32, 3, dtype=torch.uint8))


# --- TensorRT build: timing cache, the requested GPU ----------------------------------------------

class FakeBuilderConfig:
    def __init__(self, accept: list[bool]):
        self.accept = accept  # set_timing_cache results, in call order
        self.created: list[bytes] = []
        self.set: list[object] = []

    def create_timing_cache(self, data: bytes):
        self.created.append(data)
        return ("cache", data)

    def set_timing_cache(self, cache, ignore_mismatch):
        assert ignore_mismatch is False
        self.set.append(cache)
        return self.accept.pop(0)


def test_timing_cache_from_another_gpu_falls_back_to_a_fresh_one(tmp_path):
    path = tmp_path / "timing.cache"
    path.write_bytes(b"from another GPU")
    config = FakeBuilderConfig([False, True])
    trt_build._load_timing_cache(config, path)
    assert config.created == [b"from another GPU", b""] and config.set[-1] == ("cache", b"")
    config = FakeBuilderConfig([True])
    trt_build._load_timing_cache(config, path)
    assert config.created == [b"from another GPU"]
    with pytest.raises(ExportError, match="timing cache"):
        trt_build._load_timing_cache(FakeBuilderConfig([False, False]), path)


def test_gpu_description_reads_the_requested_device(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index: (9, index))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index: f"GPU{index}")
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    assert trt_build.gpu_description(1) == "GPU1 sm_91" and trt_build.gpu_description() == "GPU0 sm_90"


def test_engine_builds_on_the_requested_device(monkeypatch, tmp_path):
    onnx_path = tmp_path / "m.onnx"
    onnx_path.write_bytes(b"graph")
    seen: dict = {}

    @contextlib.contextmanager
    def device_guard(index):
        seen["guard"] = index
        yield

    monkeypatch.setattr(trt_build, "import_tensorrt", lambda: types.SimpleNamespace(__version__="10.9.0"))
    monkeypatch.setattr(trt_build, "onnx_info", lambda path: trt_build.OnnxInfo("uint8", "fp16", 1))
    monkeypatch.setattr(trt_build, "_strongly_typed", lambda *args: True)
    monkeypatch.setattr(trt_build, "gpu_description", lambda index: seen.setdefault("described", index) and "GPU")
    monkeypatch.setattr(trt_build, "_build", lambda *args: seen.setdefault("built_under", seen.get("guard")) and b"")
    monkeypatch.setattr(torch.cuda, "device", device_guard)
    result = trt_build.build_cached_engine(onnx_path, device=1, cache=tmp_path / "engines")
    assert seen == {"described": 1, "guard": 1, "built_under": 1}
    assert result.path.parent == tmp_path / "engines" and result.path.is_file() and not result.cached


# --- torch: CUDA graph capture ------------------------------------------------------------------

def test_cuda_graphs_capture_under_a_device_guard_thread_local_with_one_pool(monkeypatch):
    log: list = []
    pools = iter(["pool-1", "pool-2"])

    @contextlib.contextmanager
    def device_guard(device):
        log.append(("device", str(device)))
        yield

    @contextlib.contextmanager
    def capture(graph, pool=None, capture_error_mode="global"):
        log.append(("capture", pool, capture_error_mode))
        yield

    class FakeGraph:
        def replay(self):
            log.append(("replay",))

    monkeypatch.setattr(torch.cuda, "device", device_guard)
    monkeypatch.setattr(torch.cuda, "Stream", lambda device=None: FakeStream("side", []))
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: FakeStream("current", []))
    monkeypatch.setattr(torch.cuda, "stream", lambda stream: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "graph_pool_handle", lambda: next(pools))
    monkeypatch.setattr(torch.cuda, "CUDAGraph", FakeGraph)
    monkeypatch.setattr(torch.cuda, "graph", capture)
    cache = torch_backend.GraphCache(lambda x: x + 1, capacity=4)
    for shape in [(1, 4), (2, 4), (1, 4)]:
        assert torch.equal(cache(torch.zeros(shape)), torch.ones(shape))
    captures = [entry for entry in log if entry[0] == "capture"]
    assert captures == [("capture", "pool-1", "thread_local")] * 2  # two shapes, one pool
    assert log.count(("replay",)) == 3 and log.count(("device", "cpu")) == 5  # 2 captures + 3 replays guarded


# --- onnxruntime: the TensorRT provider ---------------------------------------------------------

def test_ort_tensorrt_provider_gets_a_profile_and_fp16_for_fp16_models():
    facts = ort_backend.ModelFacts("frames", "uint8", "fp16", 1)
    providers = ort_backend._providers(["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
                                       torch.device("cuda", 1), True, facts, batch=4)
    (trt_name, trt_options), (cuda_name, cuda_options), cpu = providers
    assert trt_name == "TensorrtExecutionProvider" and trt_options["trt_fp16_enable"] is True
    assert trt_options["device_id"] == 1 and cuda_options == {"device_id": 1} and cpu == "CPUExecutionProvider"
    assert trt_options["trt_profile_min_shapes"] == "frames:1x16x16x3"
    assert trt_options["trt_profile_opt_shapes"] == "frames:4x720x1280x3"
    assert trt_options["trt_profile_max_shapes"] == "frames:4x1080x1920x3"
    sr = ort_backend.trt_profile_shapes("images", "float", 2, 4)
    assert sr["trt_profile_max_shapes"] == "images:2x3x270x480"  # up to 1080p output at x4


@pytest.mark.parametrize("version,expected", [("10.9.0", True), ("11.0.0", False), (None, True)])
def test_fp16_of_an_fp32_model_only_where_tensorrt_has_weak_typing(monkeypatch, version, expected):
    monkeypatch.setattr(ort_backend, "import_tensorrt_libraries", lambda: version)
    assert ort_backend._trt_weak_fp16(["TensorrtExecutionProvider", "CPUExecutionProvider"]) is expected
    assert ort_backend._trt_weak_fp16(["CUDAExecutionProvider"]) is False


def test_ort_provider_fallback_is_said_or_refused():
    asked = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    cuda = torch.device("cuda", 0)
    assert ort_backend._check_fallback(asked, asked, cuda, "why") == "why"
    reason = ort_backend._check_fallback(asked, asked[1:], cuda, "why")
    assert "TensorrtExecutionProvider did not load" in reason and "running on CUDAExecutionProvider" in reason
    assert "\n" not in reason
    with pytest.raises(BackendUnavailableError, match="loaded none of"):
        ort_backend._check_fallback(asked, ["CPUExecutionProvider"], cuda, "why")


def test_ort_imports_tensorrt_before_onnxruntime(monkeypatch, tmp_path):
    order: list[str] = []
    monkeypatch.setattr(ort_backend, "import_tensorrt_libraries", lambda: order.append("tensorrt"))
    real_import = __import__

    def spy(name, *args, **kwargs):
        if name == "onnxruntime":
            order.append("onnxruntime")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr("builtins.__import__", spy)
    from rtstyle.engine import EngineOptions

    with pytest.raises(CheckpointError):  # the model does not exist; only the import order matters here
        ort_backend.open(Path(tmp_path / "missing.onnx"), EngineOptions(device="cpu"), "test")
    assert order[:2] == ["tensorrt", "onnxruntime"]


@pytest.mark.parametrize("fp16,io", [(True, "uint8"), (False, "float")])
def test_gpu_provider_settings_read_the_model_without_a_cpu_session(tmp_path_factory, monkeypatch, fp16, io):
    """A CPU session may lack fp16 kernels the GPU providers have: an rtstyle model is read from
    its file, and says the same as a session would."""
    import onnxruntime as ort

    from tests.helpers_export import exported

    path = exported(tmp_path_factory, "style", fp16, io)[1].path
    from_session = ort_backend._model_facts(ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]), path)
    monkeypatch.setattr(ort_backend, "_session", lambda *args: pytest.fail("a CPU session was opened"))
    from_file = ort_backend._facts_before_session(ort, path)
    assert from_file == from_session == ort_backend.ModelFacts(
        "frames" if io == "uint8" else "images", io, "fp16" if fp16 else "fp32", 1)
