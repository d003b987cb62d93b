"""``rtstyle live``: stylize a camera feed in a window (a thin wrapper over ``rtstyle.live``)."""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

from ..choices import DEFAULT_STYLE_MODEL, LIVE_KEYS
from ..errors import InputError, Interrupted
from .output_flags import add_overwrite_flags
from .stylize import (
    add_encoder_arguments,
    add_engine_arguments,
    add_smoothing_argument,
    add_strength_argument,
    add_style_choice_arguments,
    codec_choice,
    style_choice,
    time_arg,
)


def key_help() -> str:
    return "keys in the window:\n" + "\n".join(f"  {keys:<10} {action}" for keys, action in LIVE_KEYS)


def register(subparsers) -> None:
    p = subparsers.add_parser("live", help="stylize a camera feed live", description=__doc__, epilog=key_help())
    p.add_argument("--camera", default="0", metavar="N|URL|FILE", help="camera index, stream URL or video file (default: 0)")
    p.add_argument("--model", "-m", action="append",
                   help=f"style model; repeat to switch with the n/p/1-9 keys (default: {DEFAULT_STYLE_MODEL})")
    add_engine_arguments(p)
    win = p.add_mutually_exclusive_group()
    win.add_argument("--window", dest="window", action="store_true", default=None, help="require a window")
    win.add_argument("--no-window", dest="window", action="store_false", help="headless (no window)")
    p.add_argument("--output", type=Path, metavar="FILE", help="also record the stylized feed")
    add_overwrite_flags(p, "an existing --output")
    add_encoder_arguments(p)
    p.add_argument("--audio", default="copy", choices=("copy", "aac", "none"),
                   help="--output of a video file: its sound, in sync, cut where the run stops; cameras record "
                        "none (OpenCV delivers no sound) (default: copy)")
    p.set_defaults(preset="veryfast")
    p.add_argument("--virtual-cam", action="store_true", help="send frames to a virtual camera (pyvirtualcam)")
    p.add_argument("--max-frames", type=int, metavar="N",
                   help="stop after N frames shown: frames skipped to keep up with the camera do not count (with "
                        "--every-frame none are skipped)")
    p.add_argument("--duration", type=time_arg, metavar="SECONDS", help="stop after this many seconds")
    p.add_argument("--reconnect", action="store_true", help="reopen the camera after a disconnect")
    p.add_argument("--every-frame", action="store_true",
                   help="--camera FILE: process every frame in order, no dropping, no real-time pacing "
                        "(the same frames as `rtstyle stylize FILE`)")
    p.add_argument("--no-fps", dest="show_fps", action="store_false", help="no fps overlay")
    add_smoothing_argument(p)
    add_strength_argument(p)
    add_style_choice_arguments(p)
    p.add_argument("--style-dir", type=Path, metavar="DIR",
                   help="AdaIN models: folder of style images; s/a apply the next/previous one live")
    p.set_defaults(func=run)


def check_has_a_consumer(args: argparse.Namespace, gui: bool) -> None:
    """Headless with nowhere to send frames would stylize the feed and throw every frame away:
    refused before the model and camera are opened."""
    headless = args.window is False or (args.window is None and not gui)
    if headless and args.output is None and not args.virtual_cam:
        why = "--no-window" if args.window is False else "no display or GUI-enabled OpenCV here"
        raise InputError(f"nothing would be shown or kept ({why}); add --output FILE, --virtual-cam, or run with a "
                         f"window")


def run(args: argparse.Namespace) -> int:
    from ..limits import check_media_pixels
    from ..live import LiveConfig, run_live
    from ..signals import interrupt_on_signals
    from ..sinks import gui_available
    from ..video import EncoderConfig

    check_has_a_consumer(args, gui_available() if args.window is None else bool(args.window))
    if Path(args.camera).is_file():  # a file acting as a camera: its frame size from the header
        check_media_pixels(args.camera, args.max_pixels)
    config = LiveConfig(
        source=args.camera, models=tuple(args.model or (DEFAULT_STYLE_MODEL,)), backend=args.backend, device=args.device,
        precision=args.precision, max_side=args.max_side, window=args.window, output=args.output,
        overwrite=args.overwrite, trust_model=args.trust_model, virtual_cam=args.virtual_cam, max_frames=args.max_frames,
        duration=args.duration, reconnect=args.reconnect, every_frame=args.every_frame, show_fps=args.show_fps,
        temporal_smoothing=args.temporal_smoothing, style_dir=args.style_dir, style=style_choice(args), strength=args.strength,
        encoder=EncoderConfig(codec=codec_choice(args.codec), crf=args.crf, preset=args.preset, pix_fmt=args.pix_fmt, audio=args.audio),
    )
    with interrupt_on_signals(threading.Event()) as stop:
        result = run_live(config, stop=stop)
    for w in result.warnings:
        print(f"warning: {w}", file=sys.stderr)
    if result.headless and args.window is None:
        print("no display or GUI-enabled OpenCV: ran headless", file=sys.stderr)
    print(result.summary() + (f"; recorded {result.output}" if result.output else ""))
    if result.ended_by == "interrupted":
        raise Interrupted("live run interrupted" + (f"; recording finalised: {result.output}" if result.output else ""))
    return 0
