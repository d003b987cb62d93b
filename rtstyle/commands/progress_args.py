"""``--progress auto|bar|plain|json|none``, ``-q/--quiet`` and ``--no-progress``: one set of flags
for every long-running command, all setting ``args.progress`` to a mode of ``rtstyle.progress``."""

from __future__ import annotations

import argparse

from ..choices import PROGRESS_MODES


def add_progress_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--progress", choices=PROGRESS_MODES, default="auto",
                   help="auto: a bar on a terminal, plain lines every few seconds in a log or pipe; json: the same "
                        "as JSON lines; none: nothing (default: auto, or $RTSTYLE_PROGRESS)")
    p.add_argument("-q", "--quiet", "--no-progress", dest="progress", action="store_const", const="none",
                   help="no progress output (--progress none)")


def progress_mode(args: argparse.Namespace) -> str:
    """The value for a config's ``progress`` field (auto lets $RTSTYLE_PROGRESS decide, see
    ``rtstyle.progress.resolve_mode``)."""
    return getattr(args, "progress", "auto")
