"""``rtstyle eval sr``: bicubic vs model vs ground truth (PSNR, SSIM, LPIPS) on held-out photos."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .output_flags import add_overwrite_flags, output_policy


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sr", help="compare an SR model with bicubic upsampling: PSNR, SSIM, LPIPS and crops")
    p.add_argument("--model", required=True, help="SR model (bundled name or checkpoint)")
    p.add_argument("--images", type=Path, required=True, help="folder of held-out photos (never the training ones)")
    p.add_argument("-o", "--out", type=Path, required=True,
                   help="figure to write (PNG): low-res | bicubic | model | ground truth, one row per photo")
    p.add_argument("--crop", type=int, default=192, help="ground-truth side in pixels (the photo shrunk to a centre square)")
    p.add_argument("--limit", type=int, help="at most this many photos")
    p.add_argument("--json", type=Path, help="write the metrics (per image, mean, wins) as JSON")
    p.add_argument("--per-image", action="store_true", help="print every photo's metrics, not only the means")
    add_overwrite_flags(p, "existing outputs (-o and --json)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from ..sr_eval import METHODS, sr_comparison

    policy = output_policy(args)  # the one output rule (rtstyle.outputs), before the work
    policy.check(args.out)
    if args.json:
        policy.check(args.json, [args.out])
    report = sr_comparison(args.model, args.images, args.out, args.crop, args.limit)
    n = len(report.per_image)
    head = f"{'':<28} {'PSNR-Y dB':>10} {'SSIM-Y':>7} {'LPIPS':>7} {'colour':>7}"
    if args.per_image:
        print(head)
        for row in report.per_image:
            for method in METHODS:
                label = f"{row['image'][:18]} {method}"
                print(f"{label:<28} {_cells(row[method])}")
    print(f"x{report.scale}, {n} photos, {report.crop} px ground truth; colour = largest mean-RGB shift (8-bit levels)")
    print(head)
    for method in METHODS:
        name = report.model if method == "model" else method
        print(f"{'mean ' + name:<28} {_cells(report.mean[method])}")
    w = report.wins
    print(f"{report.model} beats bicubic on PSNR-Y {w['psnr']}/{n}, SSIM-Y {w['ssim']}/{n}, LPIPS {w['lpips']}/{n}, "
          f"colour {w['colour_shift']}/{n} photos")
    print(f"figure: {report.figure}")
    if args.json:
        with policy.writing(args.json, [args.out]) as tmp:
            tmp.write_text(json.dumps(report.to_dict(), indent=2) + "\n")
        print(f"json:   {args.json}")
    return 0


def _cells(m: dict) -> str:
    return f"{m['psnr']:>10.2f} {m['ssim']:>7.4f} {m['lpips']:>7.4f} {m['colour_shift']:>7.2f}"
