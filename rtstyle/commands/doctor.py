"""``rtstyle doctor``: what this machine can do (Python, torch, GPUs, backends, FFmpeg, camera)."""

from __future__ import annotations

import argparse
import json
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("doctor", help="one screen of what this machine can do (paste it into bug reports)",
                       description="Lists Python, torch and its CUDA build, GPUs with NVENC/NVDEC, every backend "
                                   "(available or what is missing), OpenCV GUI or headless, pyvirtualcam, the "
                                   "encoders FFmpeg offers and what the per-user cache holds (backend timings, "
                                   "compiled models, converted weights, the trust list) with sizes. Always exits 0: "
                                   "a missing piece is a finding.")
    p.add_argument("--json", action="store_true", help="print the checks as JSON (default: a table)")
    p.add_argument("--clear-cache", action="store_true",
                   help="empty the per-user cache ($RTSTYLE_CACHE, else ~/.cache/rtstyle) of everything rtstyle "
                        "rebuilds by itself (timings are measured again, models compiled again); the trust list "
                        "of models rtstyle built here stays, and so do files rtstyle did not write")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from ..doctor import as_dicts, clear_cache, collect, format_report, human_size

    if args.clear_cache:
        done = clear_cache()
        print(f"removed {len(done.removed)} entr{'ies' if len(done.removed) != 1 else 'y'} "
              f"({human_size(done.freed)}) from {done.folder}" + "".join(f"\n  {e.path.name}" for e in done.removed))
        for entry in done.kept:
            why = "the trust list: delete it by hand to forget the models built here" if entry.what else "not rtstyle's"
            print(f"kept {entry.path.name} ({why})")
        return 0
    checks = collect()
    if args.json:
        json.dump(as_dicts(checks), sys.stdout, indent=2)
        print()
    else:
        print(format_report(checks))
    return 0
