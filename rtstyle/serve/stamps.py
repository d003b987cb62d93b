"""Latency stamps: a 16-cell black/white code in the bottom ``STAMP_ROWS`` rows of a frame (a
12-bit frame number and a 4-bit check). Clients draw it on what they send (the page in
``static/app.js``, ``probe.py``); the server copies it onto the stylized frame, so every frame is
timed from send to return. Codecs blur the cells a little: only their centres are read, and a
cell that is neither black nor white means "no stamp".
"""

from __future__ import annotations

import numpy as np

STAMP_CELLS = 16
STAMP_ROWS = 16

def _check_bits(number: int) -> int:
    return ((number ^ (number >> 4) ^ (number >> 8)) & 0xF) ^ 0x5


def write_stamp(image: np.ndarray, number: int) -> None:
    """Draw ``number`` (mod 4096) as the stamp code into the bottom rows of ``image`` (in place)."""
    h, w = image.shape[:2]
    cell = w // STAMP_CELLS
    number &= 0xFFF
    code = (number << 4) | _check_bits(number)
    rows = min(STAMP_ROWS, h)
    for i in range(STAMP_CELLS):
        bit = (code >> (STAMP_CELLS - 1 - i)) & 1
        image[h - rows:, i * cell:(i + 1) * cell] = 255 if bit else 0


def read_stamp(image: np.ndarray) -> int | None:
    """The stamp number in ``image``, or None when there is no valid code."""
    h, w = image.shape[:2]
    cell = w // STAMP_CELLS
    if cell < 4 or h < 2 * STAMP_ROWS:
        return None
    strip = image[h - STAMP_ROWS + 4:h - 4].astype(np.float32).mean(axis=(0, 2))  # centre rows, all channels
    code = 0
    for i in range(STAMP_CELLS):
        value = strip[i * cell + cell // 4:(i + 1) * cell - cell // 4].mean()
        if 80 < value < 176:
            return None  # not black or white: no stamp here
        code = (code << 1) | int(value >= 128)
    number = code >> 4
    return number if (code & 0xF) == _check_bits(number) else None
