"""TensorRT support that runs without TensorRT (shapes, profiles, cache keys, typing decisions,
CLI errors), plus an engine build-and-run test where tensorrt imports and a GPU exists."""

from __future__ import annotations

import dataclasses
import importlib.util
import types

import pytest
import torch

from rtstyle.backends import trt_build as tb
from rtstyle.backends.trt_build import (
    BuildSettings,
    OnnxInfo,
    TensorRTBuildConfig,
    compute_profile,
    parse_shape,
    profile_shape,
)
from rtstyle.cli import main
from rtstyle.errors import BackendUnavailableError, InputError
from rtstyle.export.tensorrt_build import build_tensorrt_engine
from tests.helpers_export import exported, frames

HAS_TRT = importlib.util.find_spec("tensorrt") is not None


def test_parse_shape_in_both_layouts():
    assert parse_shape("1x3x360x640") == (1, 3, 360, 640)
    assert parse_shape("4x360x640x3", "NHWC") == (4, 360, 640, 3)
    assert parse_shape(" 2,3,16,16 ") == (2, 3, 16, 16)


@pytest.mark.parametrize(
    "text,layout,match",
    [("1x360x640x3", "NCHW", "NCHW with 3 channels"), ("1x3x360x640", "NHWC", "1x360x640x3"),
     ("1x3x360", "NCHW", "four positive integers"), ("0x3x16x16", "NCHW", "four positive"), ("axbxcxd", "NCHW", "four")],
)
def test_parse_shape_errors_name_the_layout(text, layout, match):
    with pytest.raises(InputError, match=match):
        parse_shape(text, layout)


def test_profile_shapes_are_read_in_either_order():
    # Issue 29: the README exports an NHWC (uint8-io) model, then builds it with NCHW-ordered shapes.
    assert profile_shape("1x3x64x64", "NHWC") == (1, 64, 64, 3) == profile_shape("1x64x64x3", "NHWC")
    assert profile_shape("4x720x1280x3", "NCHW") == (4, 3, 720, 1280) == profile_shape("4x3x720x1280", "NCHW")
    with pytest.raises(InputError, match="NHWC with 3 channels"):  # 3 channels in neither place
        profile_shape("1x4x64x64", "NHWC")


def test_default_profile_scales_with_the_model():
    style = compute_profile(TensorRTBuildConfig(max_batch=2), "NCHW", scale=1)
    assert style.min == (1, 3, 16, 16) and style.opt == (2, 3, 720, 1280) and style.max == (2, 3, 1080, 1920)
    sr = compute_profile(TensorRTBuildConfig(), "NHWC", scale=4)
    assert sr.min == (1, 16, 16, 3) and sr.max == (4, 270, 480, 3)  # outputs up to 1080p


def test_profile_keeps_given_shapes_and_validates_order():
    config = TensorRTBuildConfig(min_shape=(1, 3, 32, 32), opt_shape=(1, 3, 360, 640), max_shape=(2, 3, 720, 1280))
    profile = compute_profile(config, "NCHW")
    assert (profile.min, profile.opt, profile.max) == ((1, 3, 32, 32), (1, 3, 360, 640), (2, 3, 720, 1280))
    with pytest.raises(InputError, match="min <= opt <= max"):
        compute_profile(TensorRTBuildConfig(max_shape=(1, 3, 100, 100)), "NCHW")
    with pytest.raises(InputError, match="minimum 16"):
        compute_profile(TensorRTBuildConfig(min_shape=(1, 3, 8, 8)), "NCHW")
    with pytest.raises(InputError, match="NHWC"):
        compute_profile(TensorRTBuildConfig(max_shape=(4, 3, 1080, 1920)), "NHWC")


def test_build_config_rejects_bad_values():
    for kwargs, match in [({"precision": "int8"}, "precision"), ({"workspace_mb": 0}, "workspace"),
                          ({"optimization_level": 7}, "0..5"), ({"io": "rgb"}, "io"), ({"max_batch": 0}, "batch")]:
        with pytest.raises(InputError, match=match):
            TensorRTBuildConfig(**kwargs)


def settings() -> BuildSettings:
    return BuildSettings(
        onnx_sha256="ab" * 32, min_shape=(1, 3, 16, 16), opt_shape=(4, 3, 720, 1280), max_shape=(4, 3, 1080, 1920),
        precision="fp16", strongly_typed=True, workspace_mb=4096, optimization_level=3,
        tensorrt_version="10.9.0", gpu="NVIDIA H100 80GB HBM3 sm_90",
    )


def _changed(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, tuple):
        return (value[0] + 1, *value[1:])
    return value + "x"


def test_cache_key_changes_with_every_setting():
    base = settings()
    assert base.key() == settings().key() and len(base.key()) == 64
    keys = {base.key()}
    for field in dataclasses.fields(BuildSettings):
        changed = dataclasses.replace(base, **{field.name: _changed(getattr(base, field.name))})
        keys.add(changed.key())
    assert len(keys) == 1 + len(dataclasses.fields(BuildSettings))


def test_cache_lives_under_the_rtstyle_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("RTSTYLE_CACHE", str(tmp_path))
    assert tb.engine_cache_dir() == tmp_path / "engines"
    timing = tb.default_timing_cache("10.9.0", "NVIDIA H100 80GB HBM3 sm_90")
    assert timing.parent == tmp_path / "tensorrt" and " " not in timing.name


def test_onnx_info_reads_exported_models(tmp_path_factory):
    _, sr16 = exported(tmp_path_factory, "sr", True, "float")
    assert tb.onnx_info(sr16.path) == OnnxInfo("float", "fp16", 4)
    _, style = exported(tmp_path_factory, "style", True, "uint8")
    assert tb.onnx_info(style.path) == OnnxInfo("uint8", "fp16", 1)


def fake_trt(with_fp16_flag: bool):
    flags = types.SimpleNamespace(**({"FP16": 1} if with_fp16_flag else {}))
    return types.SimpleNamespace(BuilderFlag=flags, __version__="10.9.0" if with_fp16_flag else "11.0.0")


def test_typing_mode_follows_the_onnx_precision(tmp_path):
    onnx_path = tmp_path / "m.onnx"
    assert tb._strongly_typed(fake_trt(True), OnnxInfo("float", "fp16", 1), "fp16", onnx_path) is True
    assert tb._strongly_typed(fake_trt(True), OnnxInfo("float", "fp32", 1), "fp32", onnx_path) is True
    assert tb._strongly_typed(fake_trt(True), OnnxInfo("float", "fp32", 1), "fp16", onnx_path) is False
    with pytest.raises(InputError, match="without --fp16"):
        tb._strongly_typed(fake_trt(True), OnnxInfo("float", "fp16", 1), "fp32", onnx_path)
    with pytest.raises(InputError, match="--fp16"):
        tb._strongly_typed(fake_trt(False), OnnxInfo("float", "fp32", 1), "fp16", onnx_path)


def test_a_profile_tensorrt_refuses_stops_the_build(tmp_path):
    """``add_optimization_profile`` answers a bad profile with -1, not an exception: the build
    must stop there with the shapes named, not fail later far from the cause."""
    class Config:
        builder_optimization_level = 0

        def set_memory_pool_limit(self, *a):
            pass

        def add_optimization_profile(self, profile):
            return -1

    network = types.SimpleNamespace(get_input=lambda i: types.SimpleNamespace(name="frames"))
    builder = types.SimpleNamespace(create_network=lambda flags: network, create_builder_config=Config,
                                    create_optimization_profile=lambda: types.SimpleNamespace(set_shape=lambda *a: None))
    trt = types.SimpleNamespace(
        Logger=type("Logger", (), {"WARNING": 0, "__init__": lambda self, level: None}), Builder=lambda logger: builder,
        NetworkDefinitionCreationFlag=types.SimpleNamespace(STRONGLY_TYPED=0), MemoryPoolType=types.SimpleNamespace(WORKSPACE=0),
        OnnxParser=lambda network, logger: types.SimpleNamespace(parse_from_file=lambda path: True, num_errors=0))
    settings = BuildSettings("0" * 64, (1, 360, 640, 3), (8, 1080, 1920, 3), (8, 1080, 1920, 3), "fp16", True, 64, 2,
                             "11.0", "test GPU")
    with pytest.raises(tb.ExportError, match=r"refused the optimisation profile 1x360x640x3 / 8x1080x1920x3 / 8x1080x1920x3"):
        tb._build(trt, tmp_path / "m.onnx", settings, tmp_path / "timing.cache")


def test_cli_shape_error_is_one_line(tmp_path_factory, tmp_path, capsys):
    _, result = exported(tmp_path_factory, "style", True, "uint8")
    code = main(["export", "tensorrt", str(result.path), "-o", str(tmp_path / "m.engine"), "--max-shape", "4x4x720x1280"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and "NHWC" in err and "1x360x640x3" in err
    # Shapes past the parser are checked against each other before TensorRT is looked for.
    code = main(["export", "tensorrt", str(result.path), "-o", str(tmp_path / "m.engine"), "--min-shape", "1x3x64x64",
                 "--max-shape", "1x3x32x32"])
    assert code == 2 and "min <= opt <= max" in capsys.readouterr().err


def test_cli_wrong_output_suffix(tmp_path_factory, tmp_path, capsys):
    _, result = exported(tmp_path_factory, "style", False, "float")
    assert main(["export", "tensorrt", str(result.path), "-o", str(tmp_path / "m.onnx")]) == 2
    assert ".engine" in capsys.readouterr().err


@pytest.mark.skipif(HAS_TRT and torch.cuda.is_available(), reason="TensorRT is usable here")
def test_build_without_tensorrt_says_what_is_missing(tmp_path_factory, tmp_path, capsys):
    _, result = exported(tmp_path_factory, "style", True, "float")
    with pytest.raises(BackendUnavailableError, match="TensorRT|CUDA"):
        build_tensorrt_engine(result.path, tmp_path / "m.engine")
    assert main(["export", "tensorrt", str(result.path), "-o", str(tmp_path / "m.engine")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and ("pip install" in err or "CUDA" in err)
    assert not (tmp_path / "m.engine").exists()


@pytest.mark.gpu
@pytest.mark.skipif(not (HAS_TRT and torch.cuda.is_available()), reason="needs tensorrt and a CUDA GPU")
@pytest.mark.parametrize("io", ["float", "uint8"])
def test_engine_builds_caches_and_matches_torch(tmp_path_factory, tmp_path, io):
    from rtstyle.engine import EngineOptions, open_engine
    from tests.test_engines import max_diff, reference

    ckpt, result = exported(tmp_path_factory, "style", True, io)
    layout = "NHWC" if io == "uint8" else "NCHW"
    config = TensorRTBuildConfig(
        min_shape=parse_shape("1x3x16x16" if layout == "NCHW" else "1x16x16x3", layout),
        opt_shape=parse_shape("2x3x64x64" if layout == "NCHW" else "2x64x64x3", layout),
        max_shape=parse_shape("2x3x128x128" if layout == "NCHW" else "2x128x128x3", layout),
        workspace_mb=512,
    )
    first = build_tensorrt_engine(result.path, tmp_path / "m.engine", config)
    assert not first.cached and first.settings.strongly_typed and first.path.is_file()
    again = build_tensorrt_engine(result.path, tmp_path / "m2.engine", config)
    assert again.cached and again.key == first.key
    other = build_tensorrt_engine(result.path, None, dataclasses.replace(config, workspace_mb=256))
    assert other.key != first.key and not other.cached

    eng = open_engine(first.path, options=EngineOptions(device="cuda"))
    assert eng.backend == "tensorrt" and eng.io.kind == io and eng.precision == "fp16"
    batch = frames(3, 21, 35).cuda()  # batch 3 > profile max 2: runs in chunks
    out = eng(batch)
    assert out.device.type == "cuda" and max_diff(out, reference(ckpt, batch.cpu())) <= 3
    with pytest.raises(InputError, match="profile"):
        eng(frames(1, 200, 64).cuda())


# --- the tensorrt backend's own checks (no TensorRT needed) ---------------------------------------

def test_a_built_engine_refuses_build_settings_before_anything_else(tmp_path):
    from pathlib import Path

    from rtstyle.backends import trt_backend
    from rtstyle.engine import EngineOptions, TensorRTOptions

    options = EngineOptions(backend_options=TensorRTOptions(max_shape=(4, 3, 64, 64), io="uint8"))
    with pytest.raises(InputError, match=r"max_shape=\(4, 3, 64, 64\), io=uint8 cannot apply") as info:
        trt_backend.open(Path(tmp_path / "m.engine"), options, "test")
    assert "\n" not in str(info.value)
    with pytest.raises(InputError, match="fp16 or fp32"):
        trt_backend.open(Path(tmp_path / "m.onnx"), EngineOptions(precision="bf16"), "test")


def test_checkpoints_reach_tensorrt_through_a_cached_onnx_trace(tiny_style_ckpt, tmp_path, monkeypatch):
    """The runtime traces a checkpoint itself (rtstyle.backends.onnx_graph, below rtstyle.export):
    the graph it hands the builder runs like the checkpoint, and is traced once."""
    import onnxruntime as ort

    from rtstyle.backends import trt_backend
    from rtstyle.engine import EngineOptions, TensorRTOptions
    from tests.test_engines import max_diff, reference

    built = []
    monkeypatch.setattr(trt_backend, "build_cached_engine",
                        lambda onnx_path, config, **kw: built.append((onnx_path, config, kw)) or types.SimpleNamespace(path=onnx_path))
    settings = TensorRTOptions(io="uint8", cache_dir=tmp_path / "engines")
    options = EngineOptions(precision="fp32", batch_size=3, backend_options=settings)
    first = trt_backend._cached_engine(tiny_style_ckpt, options, settings, torch.device("cuda", 1))
    onnx_path, config, kwargs = built[0]
    assert (config.precision, config.io, config.max_batch) == ("fp32", "uint8", 3)
    assert kwargs == {"device": 1, "cache": tmp_path / "engines", "source": tiny_style_ckpt}
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    batch = frames(2, 21, 35)
    out = torch.from_numpy(session.run(None, {session.get_inputs()[0].name: batch.numpy()})[0])
    assert max_diff(out, reference(tiny_style_ckpt, batch)) <= 1
    stamp = onnx_path.stat().st_mtime_ns
    assert trt_backend._cached_engine(tiny_style_ckpt, options, settings, torch.device("cuda", 1)) == first
    assert onnx_path.stat().st_mtime_ns == stamp  # reused, not traced again


def test_an_onnx_model_refuses_another_io(tmp_path_factory):
    from rtstyle.backends import trt_backend
    from rtstyle.engine import EngineOptions, TensorRTOptions

    _, result = exported(tmp_path_factory, "style", True, "uint8")
    settings = TensorRTOptions(io="float")
    with pytest.raises(InputError, match="uint8 io, so io='float' cannot apply"):
        trt_backend._cached_engine(result.path, EngineOptions(backend_options=settings), settings, torch.device("cuda", 0))
