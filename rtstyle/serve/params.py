"""The parameters a client may send, in one table: each one's type, range and where it is taken.

``PARAMS[name]`` says how to read a value (a JSON value, or a multipart form field's text) and
which requests take it: ``offer`` (``POST /offer``), ``session`` (``POST /api/sessions/ID``) and
``job`` (``POST /api/jobs``). ``parse_params(raw, where)`` checks every value of a request at
once: an unknown name, a wrong type or a value out of range is an ``InputError`` naming the
parameter and what it takes (the app answers 400 with it). A new parameter is one entry here
and a field where it is used (``webrtc.Settings``, ``jobs.JobRequest``).

The job limits (``max_pixels``, ``max_frames``, ``max_seconds``) can only tighten the server's
own (``rtstyle.limits.Limits.tightened``); ``max_side`` only ever shrinks a frame.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import InputError

OFFER, SESSION, JOB = "offer", "session", "job"
LIVE = frozenset({OFFER, SESSION})
EVERYWHERE = frozenset({OFFER, SESSION, JOB})


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError
    number = float(value)
    if not math.isfinite(number):
        raise ValueError
    return number


def _integer(value: Any) -> int:
    number = _number(value)
    if not number.is_integer():
        raise ValueError
    return int(number)


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > 200:
        raise ValueError
    return value.strip()


def _between(read: Callable[[Any], float], low: float, high: float | None, low_open: bool = False,
             high_open: bool = False):
    def parse(value: Any):
        number = read(value)
        if (number <= low if low_open else number < low) or \
                (high is not None and (number >= high if high_open else number > high)):
            raise ValueError
        return number

    return parse


@dataclass(frozen=True)
class Param:
    parse: Callable[[Any], Any]  # raises ValueError (or TypeError) for a value it does not take
    takes: str  # what the error message says it takes
    where: frozenset[str]


PARAMS: dict[str, Param] = {
    "model": Param(_text, "a served model's name (GET /api/models)", EVERYWHERE),
    "alpha": Param(_between(_number, 0.0, 1.0), "a number in [0, 1] (AdaIN style strength)", EVERYWHERE),
    "style_index": Param(_between(_integer, 0, None), "an integer >= 0 (a StyleBank style)", EVERYWHERE),
    "strength": Param(_between(_number, 0.0, 1.0), "a number in [0, 1] (style strength: blend with the input)",
                      EVERYWHERE),
    "smoothing": Param(_between(_number, 0.0, 1.0, high_open=True), "a number in [0, 1) (temporal smoothing)",
                       EVERYWHERE),
    "max_side": Param(_between(_integer, 16, None), "an integer >= 16 (shrink the longer side to it)",
                      frozenset({JOB})),
    "max_pixels": Param(_between(_integer, 1, None), "an integer >= 1 (refuse larger frames)", frozenset({JOB})),
    "max_frames": Param(_between(_integer, 1, None), "an integer >= 1 (refuse longer inputs)", frozenset({JOB})),
    "max_seconds": Param(_between(_number, 0.0, None, low_open=True), "a number of seconds > 0 (refuse longer inputs)",
                         frozenset({JOB})),
}


def names(where: str) -> list[str]:
    """The parameters a request of kind ``where`` takes, in table order."""
    return [name for name, param in PARAMS.items() if where in param.where]


def parse_params(raw: dict[str, Any], where: str) -> dict[str, Any]:
    """The typed values of ``raw``; None and "" mean "not given" and are left out."""
    unknown = sorted(set(raw) - set(names(where)))
    if unknown:
        raise InputError(f"unknown parameter(s) {', '.join(map(repr, unknown))}; this request takes "
                         f"{', '.join(names(where))}")
    typed: dict[str, Any] = {}
    for name, value in raw.items():
        if value is None or value == "":
            continue
        try:
            typed[name] = PARAMS[name].parse(value)
        except (ValueError, TypeError, OverflowError):
            shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
            raise InputError(f"{name} must be {PARAMS[name].takes}, got {shown}") from None
    return typed
