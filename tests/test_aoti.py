"""AOTInductor: ``export aoti`` compiles a tiny net on the CPU and the aoti backend runs the
package without the model code; config and package errors; the CUDA path on a GPU."""

from __future__ import annotations

import json
import zipfile

import pytest
import torch

from rtstyle.engine import EngineOptions, open_engine
from rtstyle.errors import CheckpointError, InputError
from rtstyle.export.aoti_export import AotiExportConfig, export_aoti
from tests.helpers_export import frames
from tests.test_engines import max_diff, reference


@pytest.fixture(scope="module")
def cpu_package(tmp_path_factory):
    from tests.helpers_export import tiny_checkpoint

    root = tmp_path_factory.mktemp("aoti")
    ckpt = tiny_checkpoint(root, "style")
    result = export_aoti(ckpt, root / "tiny.pt2", AotiExportConfig(device="cpu"))
    return ckpt, result


@pytest.mark.slow  # one C++ compile: about a minute on two cores
def test_cpu_package_runs_without_model_code(cpu_package):
    ckpt, result = cpu_package
    assert (result.device, result.precision, result.io) == ("cpu", "fp32", "uint8")
    assert result.parity and all(p.max_abs_error <= result.tolerance for p in result.parity)
    eng = open_engine(result.path)
    assert eng.backend == "aoti" and "AOTInductor" in eng.reason and eng.scale == 1
    # Dynamic batch and sides: sizes on and off the style net's stride, batch != traced batch.
    eager = open_engine(ckpt, "torch", EngineOptions(device="cpu", precision="fp32"))
    for shape in [(3, 21, 35), (1, 32, 48), (1, 7, 9)]:  # 7x9: the engines' tiny-frame path
        batch = frames(*shape)
        assert max_diff(eng(batch), eager(batch)) <= 1


@pytest.mark.slow
def test_package_refuses_another_device_or_precision(cpu_package):
    _, result = cpu_package
    with pytest.raises(InputError, match="compiled for cpu"):
        open_engine(result.path, "aoti", EngineOptions(device="cuda"))
    with pytest.raises(InputError, match="fp32"):
        open_engine(result.path, "aoti", EngineOptions(precision="bf16"))


def test_config_errors():
    with pytest.raises(InputError, match="fp16"):
        AotiExportConfig(device="cpu", precision="fp16").resolved()
    with pytest.raises(InputError, match="device"):
        AotiExportConfig(device="tpu")
    with pytest.raises(InputError, match="io"):
        AotiExportConfig(io="rgb")


def test_backend_rejects_files_that_are_not_packages(tmp_path):
    bogus = tmp_path / "model.pt2"
    bogus.write_bytes(b"not a zip")
    with pytest.raises(CheckpointError, match="not an AOTInductor package"):
        open_engine(bogus)
    empty = tmp_path / "empty.pt2"
    with zipfile.ZipFile(empty, "w") as archive:
        archive.writestr("empty/archive_format", "pt2")
    with pytest.raises(CheckpointError, match="no AOTInductor model"):
        open_engine(empty)


def test_backend_reads_the_device_from_package_metadata(tmp_path):
    from rtstyle.backends.aoti_backend import _device

    package = tmp_path / "gpu.pt2"
    with zipfile.ZipFile(package, "w") as archive:
        archive.writestr("gpu/data/aotinductor/model/x.wrapper_metadata.json", json.dumps({"rtstyle.device": "cuda"}))
    with pytest.raises(InputError, match="compiled for cuda"):
        _device(package, "cpu")


@pytest.mark.gpu
@pytest.mark.compiles
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_fp16_package(tmp_path, tiny_sr_ckpt):
    result = export_aoti(tiny_sr_ckpt, tmp_path / "sr.pt2", AotiExportConfig(device="cuda"))
    assert (result.device, result.precision) == ("cuda", "fp16")
    eng = open_engine(result.path)
    batch = frames(2, 21, 35).cuda()
    out = eng(batch)
    assert out.device.type == "cuda" and max_diff(out, reference(tiny_sr_ckpt, batch.cpu())) <= 3
