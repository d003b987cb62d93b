"""Progress that suits where it goes: a bar on a terminal, plain periodic lines in a log or a pipe.

A tqdm bar written to a file becomes one huge line of carriage returns, so ``--progress auto``
(the default) draws the bar only when stderr is a terminal and otherwise prints one plain line
every few seconds plus a last line at the end. ``json`` prints the same fields as JSON lines for
programs; ``none`` (``-q``) prints nothing. Every long-running command takes its progress object
from :func:`progress` and uses the small tqdm subset below, so the mode is chosen in one place.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import IO, Any

from .choices import PROGRESS_MODES
from .errors import InputError

PLAIN_INTERVAL_S = 5.0  # seconds between plain/json lines
_ENV = "RTSTYLE_PROGRESS"  # default mode for every command, e.g. in CI logs


def resolve_mode(mode: str | bool | None, stream: IO[str] | None = None) -> str:
    """``auto`` (also None / True; $RTSTYLE_PROGRESS, when set, decides for these) -> bar on a
    terminal, plain elsewhere; False is ``none``. Configs' ``progress`` fields take a bool or a mode."""
    if mode is False:
        return "none"
    if mode in (None, True, "auto"):
        mode = os.environ.get(_ENV) or "auto"
    if mode not in PROGRESS_MODES:
        raise InputError(f"unknown progress mode {mode!r}; choose from {', '.join(PROGRESS_MODES)}")
    if mode != "auto":
        return mode
    stream = stream or sys.stderr
    isatty = getattr(stream, "isatty", None)
    return "bar" if isatty is not None and isatty() else "plain"


class LineProgress:
    """tqdm's ``update``/``set_postfix``/``close``/``n``/``total``, printed as periodic lines."""

    def __init__(self, total: int | None, desc: str, unit: str, *, initial: int = 0, as_json: bool = False,
                 stream: IO[str] | None = None, interval: float = PLAIN_INTERVAL_S) -> None:
        self.total, self.desc, self.unit, self.n = total, desc, unit, initial
        self._start_n = initial
        self._json, self._stream, self._interval = as_json, stream or sys.stderr, interval
        self._t0 = self._last = time.perf_counter()
        self._postfix: dict[str, Any] = {}
        self._closed = False

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.perf_counter()
        if now - self._last >= self._interval:
            self._last = now
            self._emit(final=False)

    def set_postfix(self, ordered_dict: dict[str, Any] | None = None, refresh: bool = True, **kwargs: Any) -> None:
        self._postfix = {**(ordered_dict or {}), **kwargs}

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        self._postfix = {"info": s}

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._emit(final=True)

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def fields(self) -> dict[str, Any]:
        elapsed = time.perf_counter() - self._t0
        rate = (self.n - self._start_n) / elapsed if elapsed > 0 else 0.0
        done = round(self.n, 1) if isinstance(self.n, float) else self.n
        out: dict[str, Any] = {"task": self.desc, "done": done, "total": self.total, "unit": self.unit,
                               "rate": round(rate, 2), "elapsed_s": round(elapsed, 1)}
        if self.total and rate > 0:
            out["eta_s"] = round(max(0, self.total - self.n) / rate, 1)
        # A postfix never replaces a field of the line itself (a loss called "total" once did).
        return {**out, **{k: v for k, v in self._postfix.items() if k not in out}}

    def _emit(self, final: bool) -> None:
        f = self.fields()
        if self._json:
            line = json.dumps({**f, "final": final})
        else:
            count = f"{_num(f['done'])}/{_num(f['total'])}" if f["total"] else _num(f["done"])
            pct = f" ({100 * f['done'] / f['total']:.0f}%)" if f["total"] else ""
            eta = f", eta {f['eta_s']:.0f} s" if "eta_s" in f and not final else ""
            extra = "".join(f", {k} {v}" for k, v in self._postfix.items())
            line = f"{self.desc}: {count} {self.unit}s{pct}, {f['rate']:.1f} {self.unit}/s{eta}{extra}" + \
                   (f", done in {f['elapsed_s']:.1f} s" if final else "")
        try:
            print(line, file=self._stream, flush=True)
        except (BrokenPipeError, ValueError):  # the log went away: progress is not worth failing for
            pass


def _num(x: float) -> str:
    """A count for a line: an integer as it is, a fractional amount (CPU seconds) to the unit."""
    return f"{x:.0f}" if isinstance(x, float) else str(x)


class NoProgress:
    """``--progress none`` / ``-q``: the same interface, silent."""

    def __init__(self, total: int | None = None, initial: int = 0) -> None:
        self.total, self.n = total, initial

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix(self, *args: Any, **kwargs: Any) -> None:
        pass

    def set_postfix_str(self, *args: Any, **kwargs: Any) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> NoProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def progress(total: int | None, desc: str, unit: str = "frame", *, mode: str | bool | None = None, initial: int = 0,
             leave: bool = False, stream: IO[str] | None = None):
    """A progress object for ``mode`` (see the module docstring); tqdm's interface either way."""
    resolved = resolve_mode(mode, stream)
    if resolved == "none":
        return NoProgress(total, initial)
    if resolved == "bar":
        from tqdm import tqdm

        return tqdm(total=total or None, initial=initial, desc=desc, unit=unit, dynamic_ncols=True, leave=leave,
                    file=stream or sys.stderr)
    return LineProgress(total, desc, unit, initial=initial, as_json=resolved == "json", stream=stream)
