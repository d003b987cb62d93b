"""The engine contract (rtstyle/engine.py), checked the same way for every backend this machine
can run: attributes set at construction, uint8 NHWC in and out on the engine's device, tiny
frames, empty batches, and style choices, precisions and options either honoured or refused
with a one-line error naming the value; never silently ignored.

A new backend joins by one ``CASES`` entry (and, if its model file is a new kind, one
``MODELS`` factory); every check below then runs on it. A case this machine cannot run is
skipped with the reason the registry gives (``engine.check_backend``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest
import torch

from rtstyle.conditioning import StyleChoice
from rtstyle.engine import (
    BACKENDS,
    BackendOptions,
    Engine,
    EngineOptions,
    OpenVINOOptions,
    OrtOptions,
    StyleSwitchable,
    TensorRTOptions,
    TorchOptions,
    check_backend,
    open_engine,
    style_switcher,
)
from rtstyle.errors import BackendUnavailableError, InputError
from tests.helpers_export import exported, frames, tiny_checkpoint
from tests.test_engines import max_diff, reference

# --- model files, made once per session ---------------------------------------------------------

def _checkpoint(factory) -> Path:
    return tiny_checkpoint(_root(factory), "style")


def _onnx(fp16: bool, io: str) -> Callable:
    return lambda factory: exported(factory, "style", fp16, io)[1].path


def _aoti_cpu(factory) -> Path:
    from rtstyle.export.aoti_export import AotiExportConfig, export_aoti

    out = _root(factory) / "style-cpu.pt2"
    if not out.is_file():
        export_aoti(_checkpoint(factory), out, AotiExportConfig(device="cpu", check=False))
    return out


def _tensorrt_engine(factory) -> Path:
    from rtstyle.export.tensorrt_build import build_tensorrt_engine

    return build_tensorrt_engine(_onnx(True, "uint8")(factory)).path


def _root(factory) -> Path:
    root = factory.getbasetemp() / "shared-exports"
    root.mkdir(exist_ok=True)
    return root


MODELS: dict[str, Callable] = {  # how to make each model file, from the tiny style checkpoint
    "checkpoint": _checkpoint,
    "onnx-fp32-float": _onnx(False, "float"),
    "onnx-fp16-uint8": _onnx(True, "uint8"),
    "aoti-cpu": _aoti_cpu,
    "tensorrt-engine": _tensorrt_engine,
}


@dataclass(frozen=True)
class Case:
    """One backend at one device and precision."""

    backend: str
    model: str  # a MODELS key
    device: str  # what the engine is asked for and must report
    precision: str  # what it is asked for
    expect_precision: str  # what it must report
    tolerance: int  # max |difference| in uint8 levels from the fp32 torch reference
    refused_precision: str | None = None  # a precision it must refuse for this model
    bad_options: BackendOptions | None = None  # settings of its own it cannot honour here
    bad_value: str = ""  # what the refusal of bad_options must name
    takes_style: bool = False  # runs multi-style checkpoints (StyleBank index, AdaIN image)
    marks: tuple = field(default=())

    @property
    def id(self) -> str:
        return f"{self.backend}-{self.device}-{self.precision}-{self.model}"


CASES = [
    Case("torch", "checkpoint", "cpu", "fp32", "fp32", 0, refused_precision="fp16",
         bad_options=TorchOptions(cuda_graphs=True), bad_value="cuda_graphs=True", takes_style=True),
    Case("torch", "checkpoint", "cpu", "bf16", "bf16", 8, refused_precision="fp16",
         bad_options=TorchOptions(graph_cache=2), bad_value="graph_cache=2", takes_style=True),
    Case("torch", "checkpoint", "cuda", "fp16", "fp16", 3, takes_style=True, marks=(pytest.mark.gpu,)),
    Case("onnxruntime", "onnx-fp32-float", "cpu", "auto", "fp32", 1, refused_precision="bf16",
         bad_options=OrtOptions(providers=("NoSuchExecutionProvider",)), bad_value="NoSuchExecutionProvider"),
    Case("onnxruntime", "onnx-fp16-uint8", "cpu", "auto", "fp16", 3, refused_precision="fp32",
         bad_options=OrtOptions(providers=("CUDAExecutionProvider",)), bad_value="CUDAExecutionProvider"),
    Case("onnxruntime", "onnx-fp16-uint8", "cuda", "auto", "fp16", 3, marks=(pytest.mark.gpu,)),
    Case("aoti", "aoti-cpu", "cpu", "auto", "fp32", 1, refused_precision="bf16", marks=(pytest.mark.slow,)),
    Case("tensorrt", "tensorrt-engine", "cuda", "auto", "fp16", 3, refused_precision="fp32",
         bad_options=TensorRTOptions(max_shape=(8, 64, 64, 3)), bad_value="max_shape=(8, 64, 64, 3)",
         marks=(pytest.mark.gpu,)),
    Case("openvino", "checkpoint", "cpu", "fp32", "fp32", 1, refused_precision="fp16",
         bad_options=OpenVINOOptions(device="GPU"), bad_value="device='GPU'", takes_style=True),
    Case("openvino", "checkpoint", "cpu", "bf16", "bf16", 8, refused_precision="fp16",
         bad_options=OpenVINOOptions(device="GPU"), bad_value="device='GPU'", takes_style=True),
    Case("openvino", "onnx-fp16-uint8", "cpu", "fp32", "fp32", 3, refused_precision="fp16"),
]


def _params(cases=CASES):
    return [pytest.param(case, id=case.id, marks=case.marks) for case in cases]


def _runnable(case: Case) -> None:
    """Skip, with the registry's own reason, what this machine cannot run."""
    try:
        check_backend(case.backend, EngineOptions(device=case.device))
    except BackendUnavailableError as exc:
        pytest.skip(str(exc))
    if case.device.startswith("cuda") and not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")


def _open(case: Case, factory, **options) -> Engine:
    _runnable(case)
    path = MODELS[case.model](factory)
    settings = {"device": case.device, "precision": case.precision, **options}
    return open_engine(path, case.backend, EngineOptions(**settings))


def _one_line_error(error_type, call) -> str:
    with pytest.raises(error_type) as info:
        call()
    message = str(info.value)
    assert message and "\n" not in message, message
    return message


@pytest.fixture(scope="module")
def opened(tmp_path_factory):
    """Engines by case id, opened once per module (AOTInductor loads take seconds)."""
    engines: dict[str, Engine] = {}

    def get(case: Case) -> Engine:
        if case.id not in engines:
            engines[case.id] = _open(case, tmp_path_factory)
        return engines[case.id]

    return get


# --- the checks --------------------------------------------------------------------------------

def test_every_registered_backend_has_a_case():
    assert {case.backend for case in CASES} >= set(BACKENDS)


@pytest.mark.parametrize("case", _params())
def test_contract_attributes_are_set_at_construction(case, opened):
    engine = opened(case)
    assert isinstance(engine, Engine) and engine.backend == case.backend
    own = vars(engine)  # instance attributes: set by the constructor, not inherited defaults
    for name in ("device", "precision", "scale", "reason"):
        assert name in own, f"{case.backend} engine does not set {name} at construction"
    assert isinstance(engine.device, torch.device) and engine.device.type == torch.device(case.device).type
    assert engine.precision == case.expect_precision
    assert engine.scale == 1
    assert isinstance(engine.reason, str) and engine.reason and "\n" not in engine.reason
    assert engine.describe().startswith(case.backend)


@pytest.mark.parametrize("case", _params())
def test_uint8_nhwc_in_and_out_on_the_device(case, opened, tmp_path_factory):
    engine = opened(case)
    batch = frames(3, 21, 35, seed=1)
    out = engine(batch.to(engine.device))
    assert out.dtype == torch.uint8 and out.shape == (3, 21, 35, 3) and out.device.type == engine.device.type
    assert max_diff(out, reference(_checkpoint(tmp_path_factory), batch)) <= case.tolerance
    for bad in (batch.float(), batch[..., :2], batch[0]):  # float, 2 channels, no batch dimension
        message = _one_line_error(InputError, lambda bad=bad: engine(bad.to(engine.device)))
        assert "uint8 (N, H, W, 3)" in message


@pytest.mark.parametrize("case", _params())
def test_tiny_frames(case, opened):
    engine = opened(case)
    for shape in [(1, 7, 9), (2, 1, 1), (1, 15, 64)]:  # below the networks' minimum side of 16
        out = engine(frames(*shape).to(engine.device))
        assert out.dtype == torch.uint8 and out.shape == (*shape, 3)


@pytest.mark.parametrize("case", _params())
def test_empty_batch(case, opened):
    engine = opened(case)
    for shape in [(0, 21, 35, 3), (2, 0, 35, 3)]:
        out = engine(torch.empty(shape, dtype=torch.uint8, device=engine.device))
        assert out.dtype == torch.uint8 and out.shape == shape and out.device.type == engine.device.type


@pytest.mark.parametrize("case", _params())
def test_a_style_choice_is_taken_or_refused_naming_it(case, tmp_path_factory):
    # The tiny checkpoint has its style trained in: every backend must refuse a choice for it.
    message = _one_line_error(InputError, lambda: _open(case, tmp_path_factory, style=StyleChoice(style_index=1)))
    assert "--style-index 1" in message
    if case.takes_style:  # ... and a backend that takes choices applies them to a multi-style model
        bank = _bank_checkpoint(tmp_path_factory)
        outs = [open_engine(bank, case.backend, EngineOptions(device=case.device, precision=case.precision,
                                                              style=StyleChoice(style_index=i)))(frames(1, 24, 24))
                for i in (0, 1)]
        assert not torch.equal(outs[0], outs[1])


@pytest.mark.parametrize("case", _params())
def test_only_adain_engines_switch_styles(case, opened):
    engine = opened(case)
    assert not isinstance(engine, StyleSwitchable)
    assert "cannot switch style images" in _one_line_error(InputError, lambda: style_switcher(engine))


@pytest.mark.parametrize("case", _params([c for c in CASES if c.refused_precision]))
def test_a_precision_it_cannot_give_is_refused(case, tmp_path_factory):
    _one_line_error(InputError, lambda: _open(case, tmp_path_factory, precision=case.refused_precision))


@pytest.mark.parametrize("case", _params())
def test_options_are_honoured_or_refused(case, tmp_path_factory):
    # Another backend's options: refused, naming both backends.
    foreign = OrtOptions() if case.backend != "onnxruntime" else TorchOptions()
    message = _one_line_error(InputError, lambda: _open(case, tmp_path_factory, backend_options=foreign))
    assert foreign.backend in message and case.backend in message
    # Its own options where they cannot apply: refused, naming the value.
    if case.bad_options is not None:
        message = _one_line_error(InputError, lambda: _open(case, tmp_path_factory, backend_options=case.bad_options))
        assert case.bad_value in message, message


def test_errors_name_the_allowed_values():
    for kwargs, allowed in [({"device": "tpu"}, "cuda"), ({"precision": "int8"}, "bf16"), ({"batch_size": 0}, ">= 1")]:
        assert allowed in _one_line_error(InputError, lambda kwargs=kwargs: EngineOptions(**kwargs))
    assert "max-autotune" in _one_line_error(InputError, lambda: TorchOptions(compile="fastest"))
    assert "uint8" in _one_line_error(InputError, lambda: TensorRTOptions(io="rgb"))
    assert "four positive" in _one_line_error(InputError, lambda: TensorRTOptions(max_shape=(1, 3, 64)))
    assert "onnxruntime" in _one_line_error(InputError, lambda: open_engine("x.safetensors", "openvino-typo"))


# --- helpers ------------------------------------------------------------------------------------

def _bank_checkpoint(factory) -> Path:
    from rtstyle.checkpoint import save_checkpoint
    from rtstyle.nets import StyleBankConfig, build_model

    path = _root(factory) / "bank.safetensors"
    if not path.is_file():
        torch.manual_seed(0)
        meta = {"task": "style", "styles": [{"name": "a.jpg"}, {"name": "b.jpg"}]}
        save_checkpoint(path, build_model(StyleBankConfig(num_styles=2, width=4, bank_layers=2)).eval(), meta)
    return path
