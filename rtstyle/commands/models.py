"""``rtstyle models``: list the bundled models with their provenance; ``models pack`` makes one."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .output_flags import add_overwrite_flags


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list bundled models and how they were trained")
    p.add_argument("--json", action="store_true", help="print the full metadata as JSON")
    p.set_defaults(func=_run_list)
    msub = p.add_subparsers(dest="action", metavar="ACTION")
    pack = msub.add_parser("pack", help="turn a training checkpoint into a small release file (fp16, no optimiser)")
    pack.add_argument("checkpoint", type=Path)
    pack.add_argument("-o", "--out", type=Path, required=True, help="release file (.safetensors)")
    pack.add_argument("--name", help="model name (default: the output file name)")
    pack.add_argument("--fp32", action="store_true", help="keep fp32 weights")
    pack.add_argument("--style-image", type=Path, metavar="IMAGE",
                      help="embed this style image (must be the one the model was trained on: sha256 checked) so "
                           "eval quality/temporal need no copy of it; default: keep the checkpoint's own")
    add_overwrite_flags(pack)
    pack.add_argument("--recipe", help="how the model was trained (commands, schedule, CPU time), stored in its metadata")
    pack.set_defaults(func=_run_pack)


def _run_list(args: argparse.Namespace) -> int:
    from ..models import describe_bundled

    rows = describe_bundled()
    if args.json:
        json.dump(rows, sys.stdout, indent=2)
        print()
        return 0
    if not rows:
        print("no bundled models")
        return 0
    for row in rows:
        print(f"{row['name']:<22} {row['summary']}")
        print(f"{'':<22} {row['provenance']}")
        if row["measured"]:
            print(f"{'':<22} {row['measured']}")
    return 0


def _run_pack(args: argparse.Namespace) -> int:
    import torch

    from ..models import pack_model

    out = pack_model(args.checkpoint, args.out, name=args.name, dtype=None if args.fp32 else torch.float16,
                     style_image=args.style_image, overwrite=args.overwrite, recipe=args.recipe)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB)")
    return 0
