"""What a signal meets in the test process: the main thread's signal stack and the fatal-signal
handlers (faulthandler's, which name the thread and frame of a crash).

Issue 29: `make test` once died with "Segmentation fault" and nothing else. OpenVINO's CPU plugin
had left the main thread's signal stack (``sigaltstack``) pointing at memory it had unmapped
(rtstyle opened one ``ov.Core`` per engine; see ``openvino_backend.shared_core``), so the first
signal a test sent the process could not be delivered; and Ray's ``shutdown()`` had reset
faulthandler's SIGSEGV handler to the default, so nothing was reported. ``conftest.py`` checks
both after every test, so the test that breaks them fails by name instead of a later one crashing.
Linux with glibc (x86-64, arm64) only; elsewhere the checks say nothing.
"""

from __future__ import annotations

import ctypes
import platform
import signal

FATAL = tuple(getattr(signal, n) for n in ("SIGSEGV", "SIGFPE", "SIGABRT", "SIGBUS", "SIGILL") if hasattr(signal, n))
SUPPORTED = platform.system() == "Linux" and platform.machine() in ("x86_64", "aarch64") and platform.libc_ver()[0] == "glibc"
_SIGACTION_BYTES = 512  # more than glibc's struct sigaction (152 bytes): an opaque buffer, handler first


class _Stack(ctypes.Structure):
    _fields_ = [("sp", ctypes.c_void_p), ("flags", ctypes.c_int), ("size", ctypes.c_size_t)]


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def fatal_handlers() -> dict[int, ctypes.Array]:
    """The kernel's view of each fatal signal's handler (``sigaction``), as opaque structs."""
    if not SUPPORTED:
        return {}
    libc, found = _libc(), {}
    for sig in FATAL:
        buf = ctypes.create_string_buffer(_SIGACTION_BYTES)
        if libc.sigaction(int(sig), None, buf) == 0:
            found[int(sig)] = buf
    return found


def changed_handlers(baseline: dict[int, ctypes.Array]) -> list[str]:
    """Names of the fatal signals whose handler is no longer the one in ``baseline``."""
    now = fatal_handlers()
    handler = ctypes.c_void_p
    return [signal.Signals(sig).name for sig, buf in baseline.items()
            if sig in now and handler.from_buffer(now[sig]).value != handler.from_buffer(buf).value]


def restore_handlers(baseline: dict[int, ctypes.Array]) -> None:
    libc = _libc()
    for sig, buf in baseline.items():
        libc.sigaction(sig, buf, None)


def signal_stack_problem() -> str | None:
    """Why a signal could not be delivered to this thread (its alternate signal stack is set but
    not mapped), or None."""
    if not SUPPORTED:
        return None
    stack = _Stack()
    if _libc().sigaltstack(None, ctypes.byref(stack)) != 0 or not stack.sp or stack.flags & 2:  # 2: SS_DISABLE
        return None
    with open("/proc/self/maps") as maps:
        ranges = [tuple(int(x, 16) for x in line.split(None, 1)[0].split("-")) for line in maps]
    if all(any(low <= addr < high for low, high in ranges) for addr in (stack.sp, stack.sp + stack.size - 1)):
        return None
    return (f"the main thread's signal stack ({stack.size} bytes at {stack.sp:#x}) is not mapped: the next signal "
            f"to this process (Ctrl-C, SIGTERM, a test's os.kill) would kill it with SIGSEGV and no traceback")


def disable_signal_stack() -> None:
    """Stop using the thread's (broken) signal stack: handlers then run on the thread's own stack."""
    if SUPPORTED:
        _libc().sigaltstack(ctypes.byref(_Stack(None, 2, 0)), None)  # 2: SS_DISABLE
