"""``rtstyle eval <what>``: evaluation commands, one module each (``eval_<what>.py``)."""

from __future__ import annotations

import argparse
import importlib

EVALS = ("quality", "temporal", "sr", "grid")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("eval", help="measure models: quality vs optimisation, flicker, SR metrics, image grids")
    esub = parser.add_subparsers(dest="what", metavar="WHAT", required=True)
    for name in EVALS:
        importlib.import_module(f"rtstyle.commands.eval_{name}").register(esub)
