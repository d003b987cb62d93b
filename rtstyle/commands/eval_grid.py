"""``rtstyle eval grid``: before/after image grid for style models on held-out photos."""

from __future__ import annotations

import argparse
from pathlib import Path

from .output_flags import add_overwrite_flags


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("grid", help="before/after grid of style models on a folder of photos")
    p.add_argument("--model", action="append", required=True, help="style model (repeat for several)")
    p.add_argument("--style-image", action="append", default=[], type=Path, metavar="PAINTING",
                   help="for AdaIN models: one column per style image (repeatable)")
    p.add_argument("--images", type=Path, required=True, help="folder of photos")
    p.add_argument("-o", "--out", type=Path, required=True, help="PNG/JPEG to write")
    p.add_argument("--size", type=int, default=256, help="tile side in pixels")
    p.add_argument("--limit", type=int, default=4, help="at most this many photos")
    add_overwrite_flags(p)
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from ..gallery import style_grid

    out = style_grid(args.model, args.images, args.out, args.size, args.limit, tuple(args.style_image), args.overwrite)
    print(f"wrote {out}")
    return 0
