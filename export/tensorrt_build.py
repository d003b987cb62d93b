"""``rtstyle export tensorrt``: ONNX model or checkpoint -> TensorRT engine file (TensorRT >= 10).

The build and its engine cache live in the runtime layer (``rtstyle.backends.trt_build``), which the
tensorrt backend uses too; this module adds what exporting needs: a checkpoint exported to ONNX
first (fp16 for an fp16 engine), the output file checked, and the engine copied out with its
sidecar JSON (the backend reads the engine's precision from it).
"""

from __future__ import annotations

import hashlib
import shutil
import time
from pathlib import Path

from rtstyle.backends.trt_build import (  # noqa: F401 - the build API, re-exported for `rtstyle.export` users
    ENGINE_SUFFIXES,
    INSTALL_HINT,
    PRECISIONS,
    BuildSettings,
    OnnxInfo,
    Profile,
    TensorRTBuildConfig,
    TensorRTBuildResult,
    build_cached_engine,
    compute_profile,
    default_timing_cache,
    engine_cache_dir,
    gpu_description,
    import_tensorrt,
    onnx_info,
    parse_shape,
    profile_shape,
)
from rtstyle.fsutil import cache_dir, sha256_file
from rtstyle.models import resolve_model
from rtstyle.outputs import OutputPolicy
from rtstyle.trust import record_trusted

from .deploy import check_output_path


def build_tensorrt_engine(
    model: str | Path, out: str | Path | None = None, config: TensorRTBuildConfig | None = None,
    *, device: int | None = None,
) -> TensorRTBuildResult:
    """Build (or fetch from the engine cache) a TensorRT engine for ``model`` (an .onnx file,
    a checkpoint or a bundled model name) on CUDA device ``device``, and copy it to ``out`` when given."""
    start = time.perf_counter()
    config = config or TensorRTBuildConfig()
    source = resolve_model(model)
    if out is not None:
        out = Path(out)
        check_output_path(out, config.overwrite, source, ENGINE_SUFFIXES)
    import_tensorrt()
    onnx_path = source if source.suffix.lower() == ".onnx" else onnx_from_checkpoint(source, config)
    result = build_cached_engine(onnx_path, config, device=device, source=source)
    if out is None:
        return result
    # The sidecar travels with the engine: the backend reads its precision from it. The copy is
    # an output like any other (rtstyle.outputs) and is recorded as trusted (rtstyle.trust).
    policy = OutputPolicy(overwrite=config.overwrite)
    for src, dst in ((result.cache_path.with_suffix(".json"), out.with_suffix(".json")), (result.cache_path, out)):
        with policy.writing(dst, [source]) as tmp:
            shutil.copyfile(src, tmp)
            if dst == out:
                record_trusted(tmp, out.name)
    return TensorRTBuildResult(out, result.cache_path, result.key, result.cached, result.settings,
                               time.perf_counter() - start)


def onnx_from_checkpoint(checkpoint: Path, config: TensorRTBuildConfig) -> Path:
    """Export the checkpoint to ONNX (fp16 for an fp16 engine) once, into the cache."""
    from .onnx_export import OnnxExportConfig, export_onnx

    onnx_config = OnnxExportConfig(fp16=config.precision == "fp16", io=config.io, overwrite=True)
    digest = hashlib.sha256(f"{sha256_file(checkpoint)}-{onnx_config}".encode()).hexdigest()[:32]
    path = cache_dir() / "onnx" / f"{digest}.onnx"
    if not path.is_file():
        export_onnx(checkpoint, path, onnx_config)
    return path
