"""``rtstyle synth``: sample textures from a noise -> texture generator (a thin wrapper over
``rtstyle.synth.synthesize``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .output_flags import add_overwrite_flags
from .stylize import parse_size


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("synth", help="sample textures from a texture generator (train texture --synthesis)",
                       description=__doc__)
    p.add_argument("model", help="texture checkpoint (.safetensors) or bundled model name")
    p.add_argument("-o", "--out", type=Path, required=True,
                   help="image to write (.png, .jpg, ...); with --count N: NAME-000.png ... NAME-(N-1).png")
    p.add_argument("--size", type=parse_size, default=(512, 512), metavar="WxH", help="texture size (default: 512x512)")
    p.add_argument("--count", type=int, default=1, help="how many textures, one seed each (default: 1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the first texture; texture i uses seed+i (default: 0)")
    p.add_argument("--tile", type=int, default=1, metavar="N",
                   help="write each texture repeated NxN times, to show it wraps around without seams")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    add_overwrite_flags(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..synth import SynthConfig, synthesize

    width, height = args.size
    result = synthesize(SynthConfig(model=args.model, out=args.out, width=width, height=height, count=args.count,
                                    seed=args.seed, tile=args.tile, device=args.device, overwrite=args.overwrite))
    for path in result.paths:
        print(path)
    note = "" if result.tileable else " (size not a multiple of 2^scales: the texture does not wrap around)"
    print(f"{len(result.paths)} texture(s) of {width}x{height}, {result.seconds_per_texture * 1000:.0f} ms each{note}")
    return 0
