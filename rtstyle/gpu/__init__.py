"""The GPU video path (runtime layer): NV12/P010 -> RGB on the device (``colour``), a pinned
output ring for asynchronous device-to-host copies (``ring``), PyAV hardware decoding handed to
torch by DLPack (``decode``) and encoder capability detection (``nvenc``).

Everything here is device-agnostic where it can be, so the CPU test suite runs the same code.
"""
