"""``rtstyle stylize``: stylize videos and photos (a thin wrapper over ``rtstyle.stylize``).

Inputs are video files, photos (jpg, png, webp, bmp, tiff; EXIF orientation applied), animated
GIFs, or folders of any of them, given as arguments or with ffmpeg's -i. Photos come out in the
format of their output's extension (png, jpg, webp), videos as video (-o x.gif: an animated GIF).
Times take seconds or [HH:]MM:SS[.ms], as in ffmpeg: -ss 00:00:01 -t 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import threading
from pathlib import Path

from ..choices import BACKEND_NAMES, DEFAULT_STYLE_MODEL, DEVICES, PRECISIONS
from ..gpu.capabilities import DECODERS
from ..limits import MAX_PIXELS
from .cluster_args import add_cluster_arguments, check_cluster_flags, run_on_cluster
from .output_flags import add_overwrite_flags
from .progress_args import add_progress_arguments, progress_mode


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


def time_arg(text: str) -> float:
    """-ss / -t / -to: seconds or [HH:]MM:SS[.ms], finite and >= 0."""
    from ..errors import InputError
    from ..timecode import parse_time

    try:
        return parse_time(text)
    except InputError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("time: ")) from None


def key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE such as tune=film, got {text!r}")
    return key, value


def add_engine_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", default="auto", choices=["auto", *BACKEND_NAMES], help="inference backend (default: auto)")
    p.add_argument("--device", default="auto", help=f"{', '.join(DEVICES)} or cuda:N (default: auto)")
    p.add_argument("--precision", default="auto", choices=PRECISIONS, help="engine precision (default: auto)")
    p.add_argument("--max-side", type=int, metavar="N", help="shrink the model input so its longer side is at most N")
    p.add_argument("--max-pixels", type=int, default=MAX_PIXELS, metavar="N",
                   help=f"refuse frames larger than N pixels, read from the file header (default {MAX_PIXELS}: 4096x4096)")
    p.add_argument("--trust-model", action="store_true",
                   help="load a .pt2 package or TensorRT engine rtstyle did not export or build here (it runs native code)")


def add_limit_arguments(p: argparse.ArgumentParser, frames: int | None = None, seconds: float | None = None) -> None:
    """Limits on one input besides --max-pixels (rtstyle.limits: one rule for stylize and serve)."""
    none = " (default: no limit)"
    p.add_argument("--max-input-frames", type=int, default=frames, metavar="N",
                   help="refuse an input of more than N frames (from its header, and while decoding)"
                        + (none if frames is None else ""))
    p.add_argument("--max-input-seconds", type=float, default=seconds, metavar="S",
                   help="refuse an input longer than S seconds (from its header, and while decoding)"
                        + (none if seconds is None else ""))


def limits_from_args(args: argparse.Namespace, hint: str | None = None):
    """The ``Limits`` the flags ask for (``hint``: how a refused user can change them)."""
    from ..limits import PIXELS_HINT, Limits

    return Limits(max_pixels=args.max_pixels, max_frames=args.max_input_frames, max_seconds=args.max_input_seconds,
                  hint=hint or PIXELS_HINT)


def add_encoder_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--codec", default="libx264",
                   help="video encoder, e.g. libx264, libx265, h264_nvenc, hevc_nvenc, or auto (h264_nvenc where the GPU "
                        "has NVENC, else libx264); `python -m rtstyle.gpu.capabilities` says which work here "
                        "(default: %(default)s)")
    p.add_argument("--crf", type=float, default=18.0, help="quality, lower is better (default: 18)")
    p.add_argument("--preset", default="auto",
                   help="encoder speed preset; auto: x264/x265 'faster' when the engine runs on the CPU (it shares "
                        "the cores), 'medium' otherwise; other codecs their own default (default: %(default)s)")
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


def add_strength_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--strength", type=float, default=1.0, metavar="S",
                   help="style strength for any model: S x the stylized frame + (1 - S) x the input, in [0, 1] "
                        "(default: 1)")


def style_choice(args: argparse.Namespace):
    from ..conditioning import StyleChoice

    return StyleChoice(style_image=args.style_image, alpha=args.alpha, style_index=args.style_index,
                       style_size=args.style_size)


def add_input_arguments(p: argparse.ArgumentParser, model_default: str, model_help: str, outputs: str) -> None:
    """Inputs (positional and -i), -o and -m: ``stylize`` and ``upscale``."""
    p.add_argument("inputs", nargs="*", type=Path, help="videos, photos, or folders of them")
    p.add_argument("-i", "--input", dest="input_flags", action="append", type=Path, default=[], metavar="INPUT",
                   help="an input, as in ffmpeg (repeatable; alongside the positional inputs; a name may start with -)")
    p.add_argument("-o", "--output", type=Path,
                   help=f"output file (one input) or folder (default: beside the input, {outputs} for "
                        "videos, the photo's own format for photos)")
    p.add_argument("-m", "--model", default=model_default, help=f"{model_help} (default: {model_default})")


def add_span_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-ss", "--start", type=time_arg, metavar="TIME", help="start time in the input: seconds or [HH:]MM:SS[.ms]")
    span = p.add_mutually_exclusive_group()
    span.add_argument("-t", "--duration", type=time_arg, metavar="TIME", help="length to stylize")
    span.add_argument("-to", "--to", type=time_arg, metavar="TIME", help="end time in the input")


def add_file_arguments(p: argparse.ArgumentParser, suffix: str) -> None:
    """Audio, decoder, encoder options, naming, -y/-n, --keep-going, progress and --stats."""
    p.add_argument("--audio", default="copy", choices=("copy", "aac", "none"), help="audio handling (default: copy)")
    p.add_argument("--decoder", default="auto", choices=DECODERS,
                   help="auto (PyAV, OpenCV for what PyAV cannot read), pyav, opencv, or pyav-cuda (NVDEC: frames "
                        "decoded into the engine's GPU; falls back with the reason where it cannot run) (default: auto)")
    p.add_argument("--encoder-opt", type=key_value, action="append", default=[], metavar="KEY=VALUE",
                   help="option passed to the video encoder as-is, e.g. tune=film (repeatable)")
    p.add_argument("--suffix", help=f"folder outputs: added to each input's name (default: {suffix})")
    add_overwrite_flags(p, "existing outputs")
    p.add_argument("--keep-going", action="store_true",
                   help="many inputs: process the good ones when some are bad, go on after a failed one, "
                        "and exit 1 at the end if any failed")
    add_progress_arguments(p)
    p.add_argument("--stats", type=Path, metavar="JSON", help="write per-video statistics to this JSON file")


def register(subparsers) -> None:
    p = subparsers.add_parser("stylize", help="stylize videos and photos", description=__doc__)
    add_input_arguments(p, DEFAULT_STYLE_MODEL, "bundled style name (`rtstyle models`) or checkpoint / .onnx / "
                        "TensorRT engine path", "<stem>_<model>.mp4")
    p.add_argument("--sr", dest="sr_model", help="super-resolution model run after the style model in the same pass")
    add_engine_arguments(p)
    add_limit_arguments(p)
    p.add_argument("--batch-size", type=int, default=4, help="frames per engine call (default: 4)")
    p.add_argument("--resize", type=parse_size, metavar="WxH", help="model input size")
    size = p.add_argument_group("output size (default: the model's output size)")
    size.add_argument("--keep-size", action="store_true", help="back to the input's size (after --max-side/--resize)")
    size.add_argument("--scale", type=float, dest="out_scale", metavar="F", help="the input's size times F")
    size.add_argument("--width", type=int, dest="out_width", metavar="PX", help="output width (alone: keeps the aspect ratio)")
    size.add_argument("--height", type=int, dest="out_height", metavar="PX",
                      help="output height (alone: keeps the aspect ratio)")
    add_span_arguments(p)
    add_encoder_arguments(p)
    add_file_arguments(p, "_<model>")
    p.add_argument("--preview", action="store_true", help="show frames while encoding (needs a display)")
    add_smoothing_argument(p)
    add_strength_argument(p)
    add_style_choice_arguments(p)
    add_cluster_arguments(p)
    p.set_defaults(func=run, codec="auto")  # stylize: NVENC where the GPU has one (live keeps libx264)


def file_settings(args: argparse.Namespace) -> dict:
    """The ``StylizeConfig`` fields that ``stylize`` and ``upscale`` share, from their common flags."""
    from ..errors import InputError
    from ..fsutil import check_regular_input
    from ..video import EncoderConfig

    inputs = [*args.inputs, *args.input_flags]
    if args.output is not None and str(args.output) == "-":
        raise InputError("output '-' (standard output) is not supported; give a file or folder path")
    for item in inputs:  # pipes and devices would read as "empty file" further down
        check_regular_input(item)
    if not inputs:
        raise InputError("no input given; pass videos, photos or folders (as arguments or with -i)")
    duration = args.duration
    if args.to is not None:
        start = args.start or 0.0
        if args.to <= start:
            raise InputError(f"-to {args.to:g} s must be after the start ({start:g} s)")
        duration = args.to - start
    args.codec = codec_choice(args.codec)
    return dict(
        inputs=tuple(inputs), model=args.model, output=args.output, backend=args.backend, device=args.device,
        precision=args.precision, batch_size=args.batch_size, max_side=args.max_side, start=args.start,
        duration=duration,
        encoder=EncoderConfig(codec=args.codec, crf=args.crf, preset=args.preset, pix_fmt=args.pix_fmt, audio=args.audio,
                              options=dict(args.encoder_opt)),
        decoder="auto" if args.decoder == "pyav-cuda" else args.decoder, overwrite=args.overwrite,
        never_overwrite=args.never_overwrite, progress=progress_mode(args), stats_path=args.stats,
        suffix=args.suffix, trust_model=args.trust_model, keep_going=args.keep_going,
        limits=limits_from_args(args),
    )


def run(args: argparse.Namespace) -> int:
    from ..stylize import StylizeConfig

    config = StylizeConfig(
        **file_settings(args), sr_model=args.sr_model, resize=args.resize, preview=args.preview,
        temporal_smoothing=args.temporal_smoothing, style=style_choice(args), strength=args.strength,
        keep_size=args.keep_size, out_scale=args.out_scale, out_width=args.out_width, out_height=args.out_height,
    )
    check_cluster_flags(args)
    if args.ray is not None:
        return run_on_cluster(args, config)
    return run_files(args, config)


def status_printer(args: argparse.Namespace):
    """Where a slow start-up says what it is doing: stderr, unless -q."""
    if progress_mode(args) == "none":
        return lambda line: None
    return lambda line: print(line, file=sys.stderr, flush=True)


def run_files(args: argparse.Namespace, config, check_engine=None) -> int:
    """Check every input, open the engine, run, report: ``stylize``'s and ``upscale``'s common part.
    ``check_engine(engine)`` may refuse the opened engine (``upscale``: a model that does not upscale)."""
    from ..gpu.capabilities import resolve_decoder
    from ..signals import interrupt_on_signals
    from ..stylize import check_plan, open_chain, plan_batch, stylize_batch

    # Every input is checked before a (possibly slow) engine build, and every bad one is named:
    # the limits from the headers, before a frame is decoded (stylize.check_input).
    plan = check_plan(plan_batch(config), config)
    plan.raise_if_bad(config.keep_going)
    if not plan.pairs and not plan.bad:
        print("nothing to do: every output exists (-n)", file=sys.stderr)
        return 0
    many = len(plan.pairs) + len(plan.bad) + len(plan.skipped) > 1
    for src, error in plan.bad:  # only with --keep-going: named now, counted as failed
        print(f"failed: {src}: {error}", file=sys.stderr, flush=True)
    for src, reason in plan.skipped:
        print(f"skipped: {src}: {reason}", file=sys.stderr)

    def done(r) -> None:  # each file as it completes, so a later failure cannot hide finished work
        for w in r.warnings:
            print(f"warning: {w}", file=sys.stderr)
        print(f"{r.input} -> {r.output}" + ("" if r.kind == "photo" else f": {r.stats.summary()}"), flush=True)

    def failed(src, reason: str) -> None:
        print(f"failed: {src}: {reason}", file=sys.stderr, flush=True)

    engine = None
    if plan.pairs:
        engine = open_chain(config, on_status=status_printer(args))
        if check_engine is not None:
            check_engine(engine)
        print(f"engine: {engine.describe()} ({engine.reason})", file=sys.stderr)
        decoder, fallback = resolve_decoder(args.decoder, engine.device.type == "cuda", config.temporal_smoothing > 0)
        if fallback:
            print(fallback, file=sys.stderr)
        config = dataclasses.replace(config, decoder=decoder)
    with interrupt_on_signals(threading.Event()) as stop:
        report = stylize_batch(config, engine, stop, plan, on_done=done, on_failed=failed)
    photos = [r for r in report.done if r.kind == "photo"]
    if photos:
        s = photos[0].stats
        print(f"{len(photos)} photo{'s' if len(photos) > 1 else ''} in {s.wall_s:.1f} s ({s.batches} engine call{'s' if s.batches != 1 else ''})")
    if many or report.failed:
        print(f"summary: {report.summary()}", file=sys.stderr)
    if report.failed:  # --keep-going: the rest ran; the run still fails
        names = ", ".join(str(src) for src, _ in report.failed)
        total = len(report.failed) + len(report.done) + len(report.skipped)
        print(f"rtstyle {args.command}: error: {len(report.failed)} of {total} inputs failed: {names}", file=sys.stderr)
        return 1
    return 0
