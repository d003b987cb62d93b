"""The ``rtstyle`` command line. Each subcommand lives in ``rtstyle/commands/<name>.py`` with a
``register(subparsers)`` function; the heavy work is an importable library function that the
command calls. Only this layer prints errors and chooses exit codes.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from . import __version__
from .errors import RtstyleError

# Order is the order shown in --help.
COMMANDS = ("stylize", "live", "train", "export", "bench", "models", "eval", "demo")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rtstyle", description="Real-time video stylization: train, export, stylize, benchmark."
    )
    parser.add_argument("--version", action="version", version=f"rtstyle {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"rtstyle.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"rtstyle.commands.{name}":
                continue  # command not built yet
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except RtstyleError as exc:
        print(f"rtstyle {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"rtstyle {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
