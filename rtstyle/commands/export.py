"""``rtstyle export onnx|tensorrt|aoti``: thin wrappers over the ``export`` package."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..choices import IO_KINDS, LAYOUTS
from .output_flags import add_overwrite_flags


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "export",
        help="turn a checkpoint into a deployable engine (ONNX, TensorRT, AOTInductor)",
        description="Turn a checkpoint (or bundled model name) into a deployable engine.",
    )
    formats = parser.add_subparsers(dest="format", metavar="FORMAT", required=True)
    _register_onnx(formats)
    _register_tensorrt(formats)
    _register_aoti(formats)


def _common(parser: argparse.ArgumentParser, model_help: str, suffix: str) -> None:
    parser.add_argument("model", help=model_help)
    parser.add_argument("-o", "--output", type=Path, required=True, help=f"output file ({suffix})")
    add_overwrite_flags(parser)


def _register_onnx(formats) -> None:
    p = formats.add_parser("onnx", help="ONNX with dynamic batch/height/width, parity-checked with ONNX Runtime")
    _common(p, "checkpoint (.safetensors) or bundled model name", ".onnx")
    p.add_argument("--fp16", action="store_true", help="half precision (InstanceNorm stays fp32)")
    p.add_argument("--io", choices=IO_KINDS, default="float", help="float NCHW [0,1] or uint8 NHWC frames in/out (default: float)")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default 18, at least 17)")
    p.add_argument("--no-check", action="store_true", help="skip the ONNX Runtime vs PyTorch parity check")
    p.add_argument("--style-index", type=int, metavar="N", help="StyleBank models: the style (bank) to export")
    p.add_argument("--style-image", type=Path, metavar="IMAGE",
                   help="AdaIN models: bake this style in (default: style_mean/style_std/alpha are graph inputs)")
    p.add_argument("--alpha", type=float, help="AdaIN models with --style-image: style strength in [0, 1]")
    p.set_defaults(func=_run_onnx)


def _register_tensorrt(formats) -> None:
    p = formats.add_parser("tensorrt", help="TensorRT engine (FP16 by default; needs tensorrt>=10 and a GPU)")
    _common(p, "ONNX model, checkpoint or bundled model name", ".engine, .plan or .trt")
    p.add_argument("--min-shape", help="smallest input, e.g. 1x3x16x16 (BxCxHxW) or 1x16x16x3 (BxHxWxC): either "
                                       "order, for float (NCHW) and uint8 (NHWC) models alike")
    p.add_argument("--opt-shape", help="shape to tune for, e.g. 4x3x720x1280")
    p.add_argument("--max-shape", help="largest input, e.g. 4x3x1080x1920")
    p.add_argument("--max-batch", type=int, default=4, help="batch size of the default profile (default 4)")
    p.add_argument("--fp32", action="store_true", help="build an fp32 engine instead of fp16")
    p.add_argument("--io", choices=IO_KINDS, default="float", help="I/O kind when building from a checkpoint")
    p.add_argument("--workspace-mb", type=int, default=4096, help="builder workspace limit in MiB (default 4096)")
    p.add_argument("--opt-level", type=int, default=3, help="builder optimisation level 0..5 (default 3)")
    p.add_argument("--timing-cache", type=Path, help="timing cache file (default: in the rtstyle cache)")
    p.add_argument("--no-cache", action="store_true", help="rebuild even if the engine cache has this engine")
    p.set_defaults(func=_run_tensorrt)


def _register_aoti(formats) -> None:
    p = formats.add_parser("aoti", help="AOTInductor package (.pt2), runs without the Python model code")
    _common(p, "checkpoint (.safetensors) or bundled model name", ".pt2")
    p.add_argument("--device", default="auto", help="device the package is compiled for: auto, cpu, cuda (default auto)")
    p.add_argument("--precision", default="auto", help="auto (fp16 on CUDA, fp32 on CPU), fp32, fp16 or bf16")
    p.add_argument("--io", choices=IO_KINDS, default="uint8", help="uint8 NHWC frames or float NCHW [0,1] (default: uint8)")
    p.add_argument("--no-check", action="store_true", help="skip the parity check against PyTorch")
    p.set_defaults(func=_run_aoti)


def _print_parity(parity, tolerance: float) -> None:
    if parity:
        probes = ", ".join(p.describe() for p in parity)
        print(f"parity vs PyTorch (max abs error, [0,1] scale): {probes}; tolerance {tolerance:g}: OK")
    else:
        print("parity check skipped (--no-check)")


def _run_onnx(args: argparse.Namespace) -> int:
    from rtstyle.conditioning import StyleChoice
    from rtstyle.export.onnx_export import OPSET, OnnxExportConfig, export_onnx

    config = OnnxExportConfig(
        fp16=args.fp16, io=args.io, opset=args.opset or OPSET, check=not args.no_check, overwrite=args.overwrite,
        style=StyleChoice(style_image=args.style_image, alpha=args.alpha, style_index=args.style_index),
    )
    result = export_onnx(args.model, args.output, config)
    _print_parity(result.parity, result.tolerance)
    print(f"wrote {result.path} ({result.precision}, {result.io} io, opset {result.opset}) in {result.seconds:.1f} s")
    return 0


def _run_tensorrt(args: argparse.Namespace) -> int:
    from rtstyle.export.deploy import check_output_path
    from rtstyle.export.tensorrt_build import (
        ENGINE_SUFFIXES,
        TensorRTBuildConfig,
        build_tensorrt_engine,
        compute_profile,
        import_tensorrt,
        onnx_info,
        profile_shape,
    )

    from ..models import resolve_model

    model = Path(args.model)
    onnx = onnx_info(model) if model.suffix.lower() == ".onnx" and model.is_file() else None
    io = onnx.io if onnx is not None else args.io
    shapes = {
        f"{name}_shape": profile_shape(text, LAYOUTS[io])
        for name in ("min", "opt", "max")
        if (text := getattr(args, f"{name}_shape")) is not None
    }
    config = TensorRTBuildConfig(
        **shapes,
        max_batch=args.max_batch,
        precision="fp32" if args.fp32 else "fp16",
        io=io,
        workspace_mb=args.workspace_mb,
        optimization_level=args.opt_level,
        timing_cache=args.timing_cache,
        use_cache=not args.no_cache,
        overwrite=args.overwrite,
    )
    # Input and output mistakes first (the profile too, where the ONNX file gives the model's scale),
    # then what is missing, before promising a long build.
    check_output_path(args.output, args.overwrite, resolve_model(args.model), ENGINE_SUFFIXES)
    if onnx is not None:
        profile = compute_profile(config, LAYOUTS[io], onnx.scale)
        print(f"profile ({io} frames, {LAYOUTS[io]}) min/opt/max: {profile.describe()}", flush=True)
    import_tensorrt()
    print("building TensorRT engine (minutes on first build; cached afterwards)...", flush=True)
    result = build_tensorrt_engine(args.model, args.output, config)
    s = result.settings
    shapes_text = " / ".join("x".join(map(str, shape)) for shape in (s.min_shape, s.opt_shape, s.max_shape))
    how = "reused from the engine cache" if result.cached else f"built in {result.seconds:.0f} s"
    typing = "strongly typed" if s.strongly_typed else "FP16 flag, norms fp32"
    print(f"wrote {result.path} ({s.precision}, {typing}, profile min/opt/max {shapes_text}; {how}; key {result.key[:12]})")
    return 0


def _run_aoti(args: argparse.Namespace) -> int:
    from rtstyle.export.aoti_export import AotiExportConfig, export_aoti

    config = AotiExportConfig(
        device=args.device, precision=args.precision, io=args.io, check=not args.no_check, overwrite=args.overwrite
    )
    print("compiling with AOTInductor (a minute or more)...", flush=True)
    result = export_aoti(args.model, args.output, config)
    _print_parity(result.parity, result.tolerance)
    print(f"wrote {result.path} ({result.device}, {result.precision}, {result.io} io) in {result.seconds:.0f} s")
    return 0
