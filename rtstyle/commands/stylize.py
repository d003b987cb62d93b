"""``rtstyle stylize``: stylize video files (a thin wrapper over ``rtstyle.stylize``)."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import threading
from pathlib import Path

from ..choices import BACKEND_NAMES, DEVICES, PRECISIONS
from ..gpu.capabilities import DECODERS
from .cluster_args import add_cluster_arguments, check_cluster_flags, run_on_cluster


def codec_choice(requested: str) -> str:
    """``--codec``: ``auto`` and NVENC codecs that cannot run here resolved, the fallback said once."""
    from ..gpu.capabilities import resolve_codec

    codec, fallback = resolve_codec(requested)
    if fallback:
        print(fallback, file=sys.stderr)
    return codec


def parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 640x360, got {text!r}") from None
    return w, h


def add_engine_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", default="auto", choices=["auto", *BACKEND_NAMES], help="inference backend (default: auto)")
    p.add_argument("--device", default="auto", help=f"{', '.join(DEVICES)} or cuda:N (default: auto)")
    p.add_argument("--precision", default="auto", choices=PRECISIONS, help="engine precision (default: auto)")
    p.add_argument("--max-side", type=int, metavar="N", help="shrink the model input so its longer side is at most N")


def add_encoder_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--codec", default="libx264",
                   help="video encoder, e.g. libx264, libx265, h264_nvenc, hevc_nvenc, or auto (h264_nvenc where the GPU "
                        "has NVENC, else libx264); `python -m rtstyle.gpu.capabilities` says which work here "
                        "(default: %(default)s)")
    p.add_argument("--crf", type=float, default=18.0, help="quality, lower is better (default: 18)")
    p.add_argument("--preset", default="medium", help="encoder speed preset (default: %(default)s)")
    p.add_argument("--pix-fmt", help="output pixel format (default: yuv420p, yuv444p for odd sizes)")


def add_smoothing_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--temporal-smoothing", type=float, default=0.0, metavar="ALPHA",
                   help="blend each frame with the previous output warped by optical flow, weight ALPHA in [0, 1) "
                        "(less flicker; 0 = off) (default: 0)")


def add_style_choice_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("multi-style models")
    g.add_argument("--style-image", type=Path, metavar="IMAGE", help="AdaIN models: the style image to apply")
    g.add_argument("--alpha", type=float, metavar="A", help="AdaIN models: style strength in [0, 1] (default 1)")
    g.add_argument("--style-size", type=int, default=512, metavar="PX",
                   help="AdaIN models: longer side the style image is read at (default 512)")
    g.add_argument("--style-index", type=int, metavar="N", help="StyleBank models: which of its styles to apply")


def style_choice(args: argparse.Namespace):
    from ..conditioning import StyleChoice

    return StyleChoice(style_image=args.style_image, alpha=args.alpha, style_index=args.style_index,
                       style_size=args.style_size)


def register(subparsers) -> None:
    p = subparsers.add_parser("stylize", help="stylize video files", description=__doc__)
    p.add_argument("inputs", nargs="+", type=Path, help="video files or folders of videos")
    p.add_argument("-o", "--output", type=Path, help="output file (one input) or folder (default: beside the input, <stem>_<model>.mp4)")
    p.add_argument("--model", required=True, help="bundled style name or checkpoint / .onnx / TensorRT engine path")
    p.add_argument("--sr", dest="sr_model", help="super-resolution model run after the style model in the same pass")
    add_engine_arguments(p)
    p.add_argument("--batch-size", type=int, default=4, help="frames per engine call (default: 4)")
    p.add_argument("--resize", type=parse_size, metavar="WxH", help="model input size")
    p.add_argument("--start", type=float, metavar="SECONDS", help="start time in the input")
    p.add_argument("--duration", type=float, metavar="SECONDS", help="length to stylize")
    add_encoder_arguments(p)
    p.add_argument("--audio", default="copy", choices=("copy", "aac", "none"), help="audio handling (default: copy)")
    p.add_argument("--decoder", default="auto", choices=DECODERS,
                   help="auto (PyAV, OpenCV for what PyAV cannot read), pyav, opencv, or pyav-cuda (NVDEC: frames "
                        "decoded into the engine's GPU; falls back with the reason where it cannot run) (default: auto)")
    p.add_argument("-y", "--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--preview", action="store_true", help="show frames while encoding (needs a display)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--stats", type=Path, metavar="JSON", help="write per-video statistics to this JSON file")
    add_smoothing_argument(p)
    add_style_choice_arguments(p)
    add_cluster_arguments(p)
    p.set_defaults(func=run, codec="auto")  # stylize: NVENC where the GPU has one (live keeps libx264)


def run(args: argparse.Namespace) -> int:
    from ..gpu.capabilities import resolve_decoder
    from ..stylize import StylizeConfig, interrupt_on_signals, open_chain, plan_outputs, stylize_files
    from ..video import EncoderConfig, VideoReader

    args.codec = codec_choice(args.codec)
    config = StylizeConfig(
        inputs=tuple(args.inputs), model=args.model, output=args.output, sr_model=args.sr_model,
        backend=args.backend, device=args.device, precision=args.precision, batch_size=args.batch_size,
        resize=args.resize, max_side=args.max_side, start=args.start, duration=args.duration,
        encoder=EncoderConfig(codec=args.codec, crf=args.crf, preset=args.preset, pix_fmt=args.pix_fmt, audio=args.audio),
        decoder="auto" if args.decoder == "pyav-cuda" else args.decoder, overwrite=args.overwrite, preview=args.preview, progress=not args.no_progress,
        stats_path=args.stats, temporal_smoothing=args.temporal_smoothing, style=style_choice(args),
    )
    check_cluster_flags(args)
    if args.ray is not None:
        return run_on_cluster(args, config)
    for src, _ in plan_outputs(config):  # bad inputs and outputs fail before a (possibly slow) engine build
        VideoReader(src, decoder=config.decoder)
    engine = open_chain(config)
    print(f"engine: {engine.describe()} ({engine.reason})", file=sys.stderr)
    decoder, fallback = resolve_decoder(args.decoder, engine.device.type == "cuda", args.temporal_smoothing > 0)
    if fallback:
        print(fallback, file=sys.stderr)
    config = dataclasses.replace(config, decoder=decoder)
    with interrupt_on_signals(threading.Event()) as stop:
        results = stylize_files(config, engine, stop)
    for r in results:
        for w in r.warnings:
            print(f"warning: {w}", file=sys.stderr)
        s = r.stats
        print(f"{r.input} -> {r.output}: {s.summary()}")
    return 0
