"""The ``rtstyle`` command line. Each subcommand lives in ``rtstyle/commands/<name>.py`` with a
``register(subparsers)`` function; the heavy work is an importable library function that the
command calls. Only this layer prints errors and chooses exit codes.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import os
import re
import sys

from . import __version__
from .argparsing import ArgumentParser
from .errors import Interrupted, RtstyleError
from .signals import hangup_as_terminate

# Order is the order shown in --help.
COMMANDS = ("stylize", "upscale", "live", "serve", "train", "synth", "optimize", "export", "bench", "models", "eval", "demo", "doctor")


_RST_ROLE = re.compile(r":\w+:`([^`]*)`")  # :func:`name` -> name


def plain_text(text: str | None) -> str | None:
    """A docstring as help text: no reStructuredText markup (``x`` and :role:`x` -> x)."""
    if not text:
        return text
    return _RST_ROLE.sub(r"\1", text).replace("``", "")


def show_default(action: argparse.Action) -> str | None:
    """The default an option's help should name, as plain text; None where there is nothing to
    say (no default, a flag, a suppressed option)."""
    default = action.default
    if default is None or default is False or default is argparse.SUPPRESS or action.nargs == 0:
        return None
    if action.help is argparse.SUPPRESS:
        return None
    if isinstance(default, (list, tuple)):
        return " ".join(map(show_value, default)) if default else None
    return show_value(default)


def show_value(value) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


class _HelpFormatter(argparse.HelpFormatter):
    """Every option's default in its help (argparse's ArgumentDefaultsHelpFormatter writes
    ``%(default)s`` even for None and repeats defaults the text already names)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = show_default(action)
        if default is not None and "default" not in text.lower():
            text = f"{text} (default: {default.replace('%', '%%')})" if text.strip() else f"default: {default}"
        return text

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        """Paragraphs are re-wrapped, except those with indented lines (tables, lists): they keep
        their lines, so ``live --help`` can list its keys one per line."""
        out = []
        for para in text.strip().split("\n\n"):
            lines = para.splitlines()
            if any(line[:1].isspace() for line in lines[1:]):
                out.append("\n".join(indent + line for line in lines))
            else:
                out.append(super()._fill_text(para, width, indent))
        return "\n\n".join(out)

    def _format_action(self, action: argparse.Action) -> str:
        if not action.help and show_default(action) is not None:  # argparse shows no help line for these
            action = copy.copy(action)
            action.help = f"default: {show_default(action).replace('%', '%%')}"
        return super()._format_action(action)


class _Parser(ArgumentParser):
    """Usage mistakes are one line too (argparse would print the whole usage first) and point at
    the help of the command that was used; descriptions are shown without docstring markup and
    every default is in the help; options are never abbreviated (``rtstyle.argparsing``).
    Subcommand parsers inherit this class."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _HelpFormatter)
        if kwargs.get("description"):
            kwargs["description"] = plain_text(kwargs["description"])
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    def parse_known_args(self, args=None, namespace=None):
        args = sys.argv[1:] if args is None else list(args)
        return super().parse_known_args(dash_values(self, args), namespace)


# Options whose value is a file: the next word is the value even when it starts with '-', as in
# ffmpeg (`-i -clip.mp4`); argparse alone takes such a word for an option and fails.
PATH_OPTIONS = ("-i", "--input", "-o", "--output")


def dash_values(parser: argparse.ArgumentParser, args: list[str]) -> list[str]:
    """``args`` with ``-i -name`` written as ``-i=-name`` for the PATH_OPTIONS ``parser`` has."""
    takes = {o for o in PATH_OPTIONS if getattr(parser._option_string_actions.get(o), "nargs", 0) is None}
    out: list[str] = []
    words = iter(args)
    for word in words:
        if word == "--":
            out += [word, *words]
            break
        if word in takes:
            value = next(words, None)
            if value is not None and value.startswith("-") and len(value) > 1:
                word = f"{word}={value}"
            elif value is not None:
                out.append(word)
                word = value
        out.append(word)
    return out


def subparsers_of(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The sub-command parsers directly below ``parser`` (name -> parser)."""
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found.update(action.choices)
    return found


def all_parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """``parser`` and every sub-command parser below it, depth first."""
    out = [parser]
    for sub in dict.fromkeys(subparsers_of(parser).values()):  # aliases share a parser
        out += all_parsers(sub)
    return out


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


def innermost_parser(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The sub-command parser that parsed ``args`` (``rtstyle eval temporal ...``: eval temporal's),
    found through the sub-command names argparse stored, so nothing is added to ``args``."""
    while True:
        action = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
        chosen = getattr(args, action.dest, None) if action is not None and action.dest != argparse.SUPPRESS else None
        if chosen not in (action.choices if action is not None else {}):
            return parser
        parser = action.choices[chosen]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        innermost_parser(parser, args).error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        with hangup_as_terminate():  # closing the terminal stops a run like SIGTERM: partial output kept
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
