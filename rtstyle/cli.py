"""The ``rtstyle`` command line. Each subcommand lives in ``rtstyle/commands/<name>.py`` with a
``register(subparsers)`` function; the heavy work is an importable library function that the
command calls. Only this layer prints errors and chooses exit codes.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from . import __version__
from .errors import Interrupted, RtstyleError

# Order is the order shown in --help.
COMMANDS = ("stylize", "live", "serve", "train", "synth", "optimize", "export", "bench", "models", "eval", "demo", "doctor")


class _Parser(argparse.ArgumentParser):
    """Usage mistakes are one line too (argparse would print the whole usage first); subcommand
    parsers inherit this class."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="rtstyle", description="Real-time video stylization: train, export, stylize, benchmark."
    )
    parser.add_argument("--version", action="version", version=f"rtstyle {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        # Command modules are light: heavy imports happen inside their handlers.
        importlib.import_module(f"rtstyle.commands.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except Interrupted as exc:
        print(f"rtstyle {args.command}: {exc}", file=sys.stderr)
        return exc.exit_code
    except RtstyleError as exc:
        print(f"rtstyle {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:
        # The reader went away (`rtstyle models --json | head -1`): not an error. Point stdout at
        # devnull so the interpreter's final flush does not raise again (Python's signal docs).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print(f"rtstyle {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug or a library failure: still one line, the traceback on request
        if os.environ.get("RTSTYLE_DEBUG"):
            raise
        reason = " ".join(str(exc).split()) or "no message"
        print(f"rtstyle {args.command}: error: unexpected {type(exc).__name__}: {reason} "
              f"(set RTSTYLE_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
