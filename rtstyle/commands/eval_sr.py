"""``rtstyle eval sr``: bicubic vs model vs ground truth (PSNR, SSIM, LPIPS) on held-out photos."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sr", help="compare an SR model with bicubic upsampling: PSNR, SSIM, LPIPS and crops")
    p.add_argument("--model", required=True, help="SR model (bundled name or checkpoint)")
    p.add_argument("--images", type=Path, required=True, help="folder of held-out photos")
    p.add_argument("-o", "--out", type=Path, required=True, help="figure to write (PNG)")
    p.add_argument("--crop", type=int, default=192, help="ground-truth crop side in pixels")
    p.add_argument("--limit", type=int, help="at most this many photos")
    p.add_argument("--json", type=Path, help="write the metrics as JSON")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from ..fsutil import atomic_path
    from ..gallery import sr_comparison

    report = sr_comparison(args.model, args.images, args.out, args.crop, args.limit)
    print(f"{'method':<10} {'PSNR-Y dB':>10} {'SSIM':>7} {'LPIPS':>7}")
    for method, m in report.mean.items():
        print(f"{method:<10} {m['psnr']:>10.2f} {m['ssim']:>7.4f} {m['lpips']:>7.4f}")
    print(f"figure: {report.figure}")
    if args.json:
        with atomic_path(args.json) as tmp:
            tmp.write_text(json.dumps({"per_image": report.per_image, "mean": report.mean}, indent=2) + "\n")
    return 0
