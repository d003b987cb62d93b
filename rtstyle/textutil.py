"""Short text for one-line error messages."""

from __future__ import annotations


def first_line(exc: BaseException) -> str:
    """An exception's first message line, or its class name when it has no message: tracers,
    compilers and native loaders raise pages of context, and rtstyle's errors are one line."""
    text = str(exc).strip()
    return text.splitlines()[0].strip() if text else exc.__class__.__name__
