"""The -y / -n pair every command that writes files takes (ffmpeg's convention), mapped onto
``rtstyle.outputs.OutputPolicy``."""

from __future__ import annotations

import argparse

from ..outputs import OutputPolicy


def add_overwrite_flags(p: argparse.ArgumentParser, what: str = "an existing output") -> None:
    """-y lands in ``args.overwrite``, -n in ``args.never_overwrite`` (what ``output_policy`` reads)."""
    group = p.add_mutually_exclusive_group()
    group.add_argument("-y", "--overwrite", action="store_true", help=f"replace {what}")
    group.add_argument("-n", "--no-overwrite", dest="never_overwrite", action="store_true",
                       help="never replace an existing file (the default refuses it too; batches skip it)")


def output_policy(args: argparse.Namespace) -> OutputPolicy:
    return OutputPolicy(overwrite=getattr(args, "overwrite", False), never=getattr(args, "never_overwrite", False))
