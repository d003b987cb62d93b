"""Times as users type them (ffmpeg's ``-ss``/``-t``/``-to``): seconds (``90``, ``1.5``) or
``[HH:]MM:SS[.ms]`` (``01:30``, ``00:01:30.250``). NaN, infinities and negative times are refused
with a one-line error."""

from __future__ import annotations

import math

from .errors import InputError


def parse_time(text: str | float, what: str = "time") -> float:
    """Seconds from ``text``; raises InputError naming ``what`` and the accepted forms."""
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        value = _parse(str(text).strip())
    if value is None or not math.isfinite(value) or value < 0:
        raise InputError(f"{what}: expected seconds (e.g. 90 or 1.5) or [HH:]MM:SS[.ms] (e.g. 00:01:30.5), "
                         f"finite and >= 0, got {text!r}")
    return value


def _parse(text: str) -> float | None:
    parts = text.split(":")
    if not 1 <= len(parts) <= 3 or any(p.strip() == "" for p in parts):
        return None
    try:
        numbers = [float(p) for p in parts]
    except ValueError:
        return None
    if len(parts) > 1 and (any(n != int(n) or n < 0 for n in numbers[:-1]) or not 0 <= numbers[-1] < 60
                           or (len(parts) == 3 and numbers[1] >= 60)):
        return None  # 1:75 or 1.5:30 are typos, not times
    seconds = 0.0
    for n in numbers:
        seconds = seconds * 60 + n
    return seconds
