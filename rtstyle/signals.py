"""Signals that end a run: SIGINT, SIGTERM and SIGHUP (the terminal closed) all ask for a clean
stop with a playable partial output; a signal that was ignored when rtstyle started (``nohup``,
background jobs of a script, whose SIGINT the shell sets to SIG_IGN) stays ignored."""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator

STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


def ignored(signum: int) -> bool:
    return signal.getsignal(signum) is signal.SIG_IGN


@contextlib.contextmanager
def hangup_as_terminate() -> Iterator[None]:
    """While active, SIGHUP does what SIGTERM does at that moment (a run's clean stop, or the
    default exit), unless SIGHUP is ignored. The CLI wraps each command in it."""
    if not hasattr(signal, "SIGHUP") or ignored(signal.SIGHUP) or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGHUP, lambda signum, frame: signal.raise_signal(signal.SIGTERM))
    try:
        yield
    finally:
        signal.signal(signal.SIGHUP, previous)


@contextlib.contextmanager
def interrupt_on_signals(stop: threading.Event) -> Iterator[threading.Event]:
    """SIGINT/SIGTERM/SIGHUP set ``stop`` (a second one interrupts at once); handlers restored
    after; signals ignored at entry stay ignored. Only in the main thread: Python delivers
    signals there."""
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {s: signal.getsignal(s) for s in STOP_SIGNALS if not ignored(s)}

    def handler(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    for s in previous:
        signal.signal(s, handler)
    try:
        yield stop
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
