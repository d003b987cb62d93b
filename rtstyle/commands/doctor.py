"""``rtstyle doctor``: what this machine can do (Python, torch, GPUs, backends, FFmpeg, camera)."""

from __future__ import annotations

import argparse
import json
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("doctor", help="one screen of what this machine can do (paste it into bug reports)",
                       description="Lists Python, torch and its CUDA build, GPUs with NVENC/NVDEC, every backend "
                                   "(available or what is missing), OpenCV GUI or headless, pyvirtualcam and the "
                                   "encoders FFmpeg offers. Always exits 0: a missing piece is a finding.")
    p.add_argument("--json", action="store_true", help="print the checks as JSON (default: a table)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from ..doctor import as_dicts, collect, format_report

    checks = collect()
    if args.json:
        json.dump(as_dicts(checks), sys.stdout, indent=2)
        print()
    else:
        print(format_report(checks))
    return 0
