"""``rtstyle upscale``: enlarge photos and videos with a super-resolution model, with the flags
Real-ESRGAN users know: -s/--outscale (any factor: the model's scale, then a resize to F times the
input) and --tile N with --tile-pad (large photos and 4K video in bounded memory; with the default
pad the tiles join without a seam: the output equals the untiled one). The same code as
``rtstyle stylize`` with only an SR model (audio, timestamps, photos, folders, -y/-n).
Real-ESRGAN's -n (model name) is -m here; -n is ffmpeg's "never overwrite", as in stylize.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from ..choices import TILE_PAD as DEFAULT_PAD
from .stylize import (
    add_encoder_arguments,
    add_engine_arguments,
    add_file_arguments,
    add_input_arguments,
    add_limit_arguments,
    add_span_arguments,
    file_settings,
    run_files,
)

DEFAULT_SR_MODEL = "sr_x4"


def register(subparsers) -> None:
    p = subparsers.add_parser("upscale", help="enlarge photos and videos with a super-resolution model (-s, --tile)",
                              description=__doc__)
    add_input_arguments(p, DEFAULT_SR_MODEL, "super-resolution model: bundled name (sr_x4, sr_x8) or checkpoint / "
                        ".onnx / engine path", "<stem>_x<scale>.mp4")
    p.add_argument("-s", "--outscale", type=float, metavar="F",
                   help="final scale: the input's size times F, any factor (the model's scale, then a resize, as in "
                        "Real-ESRGAN) (default: the model's scale)")
    p.add_argument("--tile", type=int, default=0, metavar="N",
                   help="run the model on N x N tiles (0: whole frames): large photos and 4K video in bounded memory")
    p.add_argument("--tile-pad", type=int, default=DEFAULT_PAD, metavar="PX",
                   help="pixels of context around each tile; at the default the tiled output equals the untiled one "
                        f"for the bundled models (default: {DEFAULT_PAD})")
    add_engine_arguments(p)
    add_limit_arguments(p)
    p.add_argument("--batch-size", type=int, default=4, help="frames (or tiles, with --tile) per engine call (default: 4)")
    add_span_arguments(p)
    add_encoder_arguments(p)
    add_file_arguments(p, "_x<scale>")
    p.set_defaults(func=run, codec="auto")


def check_upscales(model: str | Path):
    """``run_files``' engine check: a model that does not enlarge is refused by name."""
    from ..errors import InputError

    def check(engine) -> None:
        if engine.scale == 1:
            raise InputError(f"{model} is a style model (it does not enlarge); `rtstyle upscale` takes a "
                             f"super-resolution model such as sr_x4 or sr_x8 (styles: `rtstyle stylize`)")
    return check


def run(args: argparse.Namespace) -> int:
    from ..errors import InputError
    from ..stylize import StylizeConfig

    if args.outscale is not None:
        if not (math.isfinite(args.outscale) and args.outscale > 0):
            raise InputError(f"-s/--outscale must be a number > 0, got {args.outscale:g}")
        if args.suffix is None:
            args.suffix = f"_x{args.outscale:g}"  # photo_x2.png; without -s: photo_sr_x4.png
    config = StylizeConfig(**file_settings(args), out_scale=args.outscale, tile=args.tile or None,
                           tile_pad=args.tile_pad)
    return run_files(args, config, check_upscales(args.model))
