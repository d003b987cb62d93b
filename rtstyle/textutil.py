"""Short text for one-line error messages."""

from __future__ import annotations

import re

# A line that only says where a native library raised ("Exception from src/inference/src/cpp/core.cpp:84:",
# "model_reader.cpp:148:"): OpenVINO puts one or more before its message.
_SOURCE_LOCATION = re.compile(r"^(Exception from )?[\w./\\-]+\.(c|cc|cpp|cxx|h|hpp):\d+:?$")


def first_line(exc: BaseException) -> str:
    """An exception's first message line, or its class name when it has no message: tracers,
    compilers and native loaders raise pages of context, and rtstyle's errors are one line.
    Lines that only name a source location are skipped: the message is what comes after them."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    message = [line for line in lines if not _SOURCE_LOCATION.match(line)]
    return (message or lines or [exc.__class__.__name__])[0]
