"""TensorRT engine building and the engine cache (TensorRT >= 10): what the tensorrt backend needs
to turn an ONNX model into an engine, below ``rtstyle.export`` (whose ``export tensorrt`` command
builds through here and copies the engine out).

Precision: an fp16 engine is built from an fp16 ONNX graph (``export onnx --fp16``) as a
*strongly typed* network, so TensorRT runs exactly the graph's types: InstanceNorm in fp32
between casts, everything else in fp16. A checkpoint is exported that way first. An fp32 ONNX
graph asked for fp16 falls back to the FP16 builder flag with the normalisation layers pinned
to fp32 (TensorRT 10 only: TensorRT 11 dropped weak typing).

Every engine lands in an engine cache (``fsutil.cache_dir()/engines``) under the SHA-256 of
every build setting (``BuildSettings``): ONNX checksum, optimisation profile, precision,
typing mode, workspace, optimisation level, TensorRT version and GPU. A changed setting is a
different key, so a stale engine is never reused. The timing cache is shared per TensorRT
version and GPU, and only makes rebuilds faster.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import BackendUnavailableError, ExportError, InputError
from ..fsutil import atomic_path, cache_dir, sha256_file
from ..graph_format import IO_KINDS, LAYOUTS, META_IO, META_PRECISION, META_SCALE, META_TASK, load_onnx
from ..nets import MIN_SIDE
from ..trust import is_trusted, record_trusted

Shape = tuple[int, int, int, int]
PRECISIONS = ("fp16", "fp32")
ENGINE_SUFFIXES = (".engine", ".plan", ".trt")
CACHE_FORMAT = 1  # bump when the engine layout or the key's meaning changes
DEFAULT_MAX_OUTPUT = (1080, 1920)  # default profile: outputs up to 1080p ...
DEFAULT_OPT_OUTPUT = (720, 1280)  # ... tuned for 720p
INSTALL_HINT = "pip install 'rtstyle[trt]' on a machine with an NVIDIA GPU (tensorrt-cu12 10.x; see README)"


@dataclass(frozen=True)
class TensorRTBuildConfig:
    """Build settings. Shapes are in the model's input layout: NCHW (``Nx3xHxW``) for float
    I/O, NHWC (``NxHxWx3``) for uint8 I/O; unset ones get defaults from ``max_batch``."""

    min_shape: Shape | None = None
    opt_shape: Shape | None = None
    max_shape: Shape | None = None
    max_batch: int = 4  # for the default profile
    precision: str = "fp16"
    io: str = "float"  # only when building from a checkpoint (an ONNX model has its own)
    workspace_mb: int = 4096
    optimization_level: int = 3  # TensorRT builder_optimization_level 0..5
    timing_cache: Path | None = None  # default: cache_dir()/tensorrt/timing-<trt>-<gpu>.cache
    use_cache: bool = True  # reuse a cached engine with the same key
    overwrite: bool = False

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise InputError(f"unknown precision {self.precision!r}; choose from {list(PRECISIONS)}")
        if self.io not in IO_KINDS:
            raise InputError(f"unknown io {self.io!r}; choose from {list(IO_KINDS)}")
        if self.workspace_mb < 1:
            raise InputError(f"workspace must be >= 1 MiB, got {self.workspace_mb}")
        if not 0 <= self.optimization_level <= 5:
            raise InputError(f"optimization level must be 0..5, got {self.optimization_level}")
        if self.max_batch < 1:
            raise InputError(f"max batch must be >= 1, got {self.max_batch}")


@dataclass(frozen=True)
class Profile:
    """One optimisation profile: min/opt/max input shapes in ``layout``."""

    min: Shape
    opt: Shape
    max: Shape
    layout: str

    def describe(self) -> str:
        return " / ".join("x".join(map(str, s)) for s in (self.min, self.opt, self.max))


@dataclass(frozen=True)
class BuildSettings:
    """Everything that determines an engine's bytes. Its ``key()`` names the cached engine."""

    onnx_sha256: str
    min_shape: Shape
    opt_shape: Shape
    max_shape: Shape
    precision: str
    strongly_typed: bool
    workspace_mb: int
    optimization_level: int
    tensorrt_version: str
    gpu: str
    cache_format: int = CACHE_FORMAT

    def key(self) -> str:
        text = json.dumps(dataclasses.asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class TensorRTBuildResult:
    path: Path  # the engine (the output, or the cache entry when no output was asked for)
    cache_path: Path
    key: str
    cached: bool  # True when an identical earlier build was reused
    settings: BuildSettings
    seconds: float


def parse_shape(text: str, layout: str = "NCHW") -> Shape:
    """``"1x3x360x640"`` (NCHW) or ``"1x360x640x3"`` (NHWC) -> a 4-tuple, checked."""
    parts = re.split(r"[x,]", text.strip().lower())
    example = "1x3x360x640" if layout == "NCHW" else "1x360x640x3"
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        shape = ()
    if len(shape) != 4 or min(shape) < 1:
        raise InputError(f"shape {text!r} is not four positive integers like {example} ({layout})")
    channels = shape[1] if layout == "NCHW" else shape[3]
    if channels != 3:
        raise InputError(f"shape {text!r} is not {layout} with 3 channels as this model takes; write it like {example}")
    return shape  # type: ignore[return-value]


def profile_shape(text: str, layout: str) -> Shape:
    """A shape as a user types it for a model whose input is in ``layout``: in that layout, or in
    the other one, returned in ``layout``. The three channels say which (``1x3x64x64`` and
    ``1x64x64x3`` are the same frames), so an NCHW habit works for an NHWC (uint8 I/O) model."""
    try:
        return parse_shape(text, layout)
    except InputError as exc:
        other = "NHWC" if layout == "NCHW" else "NCHW"
        try:
            shape = parse_shape(text, other)
        except InputError:
            raise exc from None
        return _shape(shape[0], *_spatial(shape, other), layout)


def _shape(batch: int, h: int, w: int, layout: str) -> Shape:
    return (batch, 3, h, w) if layout == "NCHW" else (batch, h, w, 3)


def _spatial(shape: Shape, layout: str) -> tuple[int, int]:
    return (shape[2], shape[3]) if layout == "NCHW" else (shape[1], shape[2])


def default_profile(layout: str, max_batch: int, scale: int = 1) -> tuple[Shape, Shape, Shape]:
    """(min, opt, max) input shapes: batch 1 at the networks' minimum side up to ``max_batch``
    frames of 1080p output, tuned for 720p (onnxruntime's TensorRT provider uses it too)."""
    max_h, max_w = (-(-side // scale) for side in DEFAULT_MAX_OUTPUT)
    opt_h, opt_w = (-(-side // scale) for side in DEFAULT_OPT_OUTPUT)
    return (_shape(1, MIN_SIDE, MIN_SIDE, layout), _shape(max_batch, opt_h, opt_w, layout),
            _shape(max_batch, max_h, max_w, layout))


def compute_profile(config: TensorRTBuildConfig, layout: str, scale: int = 1) -> Profile:
    """The optimisation profile: the config's shapes, ``default_profile`` for unset ones, validated."""
    low, opt, high = default_profile(layout, config.max_batch, scale)
    profile = Profile(config.min_shape or low, config.opt_shape or opt, config.max_shape or high, layout)
    for name, shape in (("min", profile.min), ("opt", profile.opt), ("max", profile.max)):
        parse_shape("x".join(map(str, shape)), layout)  # same checks as for typed-in shapes
        if min(_spatial(shape, layout)) < MIN_SIDE:
            raise InputError(f"{name} shape {'x'.join(map(str, shape))} has a side below the networks' minimum {MIN_SIDE}")
    if not all(a <= b <= c for a, b, c in zip(profile.min, profile.opt, profile.max)):
        raise InputError(f"profile shapes must satisfy min <= opt <= max in every dimension, got {profile.describe()}")
    return profile


def engine_cache_dir() -> Path:
    """Where built engines are kept, by key; ``TensorRTOptions.cache_dir`` chooses another folder."""
    return cache_dir() / "engines"


def default_timing_cache(tensorrt_version: str, gpu: str) -> Path:
    slug = re.sub(r"[^A-Za-z0-9.]+", "-", f"{tensorrt_version}-{gpu}").strip("-")
    return cache_dir() / "tensorrt" / f"timing-{slug}.cache"


def gpu_description(index: int | None = None) -> str:
    """Name and compute capability of GPU ``index`` (default: the current one): engines only run
    on the GPU model they were built for, so the key names the GPU the build runs on."""
    import torch

    index = torch.cuda.current_device() if index is None else index
    major, minor = torch.cuda.get_device_capability(index)
    return f"{torch.cuda.get_device_name(index)} sm_{major}{minor}"


@dataclass(frozen=True)
class OnnxInfo:
    """What the build needs to know about an ONNX model."""

    io: str
    precision: str
    scale: int


def onnx_info(path: Path) -> OnnxInfo:
    """I/O kind, precision and scale of an ONNX model, from rtstyle metadata or the graph."""
    import onnx

    proto = load_onnx(path)
    meta = {p.key: p.value for p in proto.metadata_props}
    if meta.get(META_TASK) == "texture":
        raise InputError(f"{path.name} is a texture generator: TensorRT engines here are built for video models "
                         "(frames in, frames out); run it with onnxruntime or `rtstyle synth`")
    elem = proto.graph.input[0].type.tensor_type.elem_type
    io = meta.get(META_IO) or ("uint8" if elem == onnx.TensorProto.UINT8 else "float")
    has_fp16 = any(init.data_type == onnx.TensorProto.FLOAT16 for init in proto.graph.initializer)
    precision = meta.get(META_PRECISION) or ("fp16" if has_fp16 or elem == onnx.TensorProto.FLOAT16 else "fp32")
    return OnnxInfo(io, precision, int(meta.get(META_SCALE, 1)))


def build_cached_engine(
    onnx_path: Path, config: TensorRTBuildConfig | None = None, *, device: int | None = None,
    cache: Path | None = None, source: Path | None = None,
) -> TensorRTBuildResult:
    """Build (or fetch from the engine cache ``cache``, default ``engine_cache_dir()``) a TensorRT
    engine for the ONNX model ``onnx_path``, on CUDA device ``device`` (default: the current one)."""
    import torch

    start = time.perf_counter()
    config = config or TensorRTBuildConfig()
    trt = import_tensorrt()
    device = torch.cuda.current_device() if device is None else device
    info = onnx_info(onnx_path)
    profile = compute_profile(config, LAYOUTS[info.io], info.scale)
    strongly_typed = _strongly_typed(trt, info, config.precision, onnx_path)
    settings = BuildSettings(
        onnx_sha256=sha256_file(onnx_path),
        min_shape=profile.min,
        opt_shape=profile.opt,
        max_shape=profile.max,
        precision=config.precision,
        strongly_typed=strongly_typed,
        workspace_mb=config.workspace_mb,
        optimization_level=config.optimization_level,
        tensorrt_version=trt.__version__,
        gpu=gpu_description(device),
    )
    key = settings.key()
    cache_path = (cache or engine_cache_dir()) / f"{key}.engine"
    # An engine is code (rtstyle.trust): reuse a cached one only if this rtstyle recorded building it.
    cached = config.use_cache and cache_path.is_file() and is_trusted(cache_path)
    if not cached:
        timing = config.timing_cache or default_timing_cache(settings.tensorrt_version, settings.gpu)
        with torch.cuda.device(device):  # the builder times kernels on the current device
            engine = _build(trt, onnx_path, settings, timing)
        with atomic_path(cache_path) as tmp:
            tmp.write_bytes(engine)
            record_trusted(tmp, cache_path.name)  # hashed before the rename: what we vouch for is what we wrote
        with atomic_path(cache_path.with_suffix(".json")) as tmp:
            tmp.write_text(json.dumps({**dataclasses.asdict(settings), "source": str(source or onnx_path)}, indent=2) + "\n")
    return TensorRTBuildResult(cache_path, cache_path, key, cached, settings, time.perf_counter() - start)


def import_tensorrt():
    """``tensorrt`` (>= 10) on a CUDA machine, or a one-line error saying what is missing."""
    import torch

    try:
        import tensorrt as trt
    except ImportError:
        raise BackendUnavailableError(f"TensorRT is not installed; {INSTALL_HINT}") from None
    if int(trt.__version__.split(".")[0]) < 10:
        raise BackendUnavailableError(f"TensorRT {trt.__version__} is too old; rtstyle needs >= 10 ({INSTALL_HINT})")
    if not torch.cuda.is_available():
        raise BackendUnavailableError("TensorRT needs a CUDA GPU and none is available here (torch sees no CUDA device)")
    return trt


def _strongly_typed(trt, info: OnnxInfo, precision: str, onnx_path: Path) -> bool:
    if info.precision == precision:
        return True
    if info.precision == "fp16":
        raise InputError(f"{onnx_path.name} is an fp16 model; for an fp32 engine export one without --fp16")
    if not hasattr(trt.BuilderFlag, "FP16"):
        raise InputError(
            f"{onnx_path.name} is an fp32 model and TensorRT {trt.__version__} builds only strongly typed networks; "
            "export it with `rtstyle export onnx --fp16` (or build from the checkpoint)"
        )
    return False


def _build(trt, onnx_path: Path, settings: BuildSettings, timing_path: Path) -> bytes:
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if settings.strongly_typed else 0
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if hasattr(trt, "OnnxParserFlag") and hasattr(trt.OnnxParserFlag, "NATIVE_INSTANCENORM"):
        parser.set_flag(trt.OnnxParserFlag.NATIVE_INSTANCENORM)  # a layer TensorRT can type, not a plugin
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)).strip() for i in range(parser.num_errors)]
        raise ExportError(f"TensorRT could not parse {onnx_path.name}: {len(errors)} error(s): " + " | ".join(errors))

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, settings.workspace_mb << 20)
    config.builder_optimization_level = settings.optimization_level
    if not settings.strongly_typed:
        _fp16_with_fp32_norms(trt, network, config)
    profile = builder.create_optimization_profile()
    name = network.get_input(0).name
    profile.set_shape(name, settings.min_shape, settings.opt_shape, settings.max_shape)
    # TensorRT answers an invalid profile (shapes the network cannot take) with -1 here, not an
    # exception; the build would then fail far from the cause, or use no profile at all.
    if config.add_optimization_profile(profile) < 0:
        shapes = " / ".join("x".join(map(str, s)) for s in (settings.min_shape, settings.opt_shape, settings.max_shape))
        raise ExportError(f"TensorRT refused the optimisation profile {shapes} (min/opt/max) for input {name!r} of "
                          f"{onnx_path.name}; see its log above")
    _load_timing_cache(config, timing_path)

    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ExportError(f"TensorRT failed to build an engine from {onnx_path.name}; see its log above")
    _save_timing_cache(config.get_timing_cache(), timing_path)
    return bytes(serialized)


def _fp16_with_fp32_norms(trt, network: Any, config: Any) -> None:
    """Weakly typed fp16: everything may run in fp16 except the normalisations and
    reductions, whose sums of squares overflow it."""
    config.set_flag(trt.BuilderFlag.FP16)
    config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
    keep = {trt.LayerType.NORMALIZATION, trt.LayerType.REDUCE}
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if layer.type in keep:
            layer.precision = trt.float32
            for j in range(layer.num_outputs):
                layer.set_output_type(j, trt.float32)


def _load_timing_cache(config: Any, path: Path) -> None:
    """The saved timing cache, or a fresh one when it is unreadable or was made on another GPU or
    TensorRT: ``set_timing_cache`` refuses a mismatched one (returns False), and a build with no
    cache set would then fail to save its timings after finishing."""
    data = path.read_bytes() if path.is_file() else b""
    cache = config.create_timing_cache(data)
    if cache is not None and config.set_timing_cache(cache, ignore_mismatch=False):
        return
    fresh = config.create_timing_cache(b"")
    if fresh is None or not config.set_timing_cache(fresh, ignore_mismatch=False):
        raise ExportError("TensorRT could not create an empty timing cache")


def _save_timing_cache(cache: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(bytes(cache.serialize()))
