"""``CountingEngine``: an engine that passes batches to another and counts the frames, so a job
running in another thread or process (a Ray worker, a studio file job) can report progress."""

from __future__ import annotations

import torch

from .engine import Engine


class CountingEngine(Engine):
    """Delegates to ``inner`` (which does its own frame checks) and counts the frames it stylized.

    ``frames`` is read from other threads; an int assignment is atomic in CPython, so a reader sees
    the count before or after a batch, never a torn value.
    """

    backend = "counting"

    def __init__(self, inner: Engine):
        super().__init__(device=inner.device, precision=inner.precision, scale=inner.scale, reason=inner.reason)
        self.inner = inner
        self.frames = 0

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        out = self.inner(frames)
        self.frames += len(frames)
        return out

    def _run(self, frames: torch.Tensor) -> torch.Tensor:
        return self.inner(frames)

    def describe(self) -> str:
        return self.inner.describe()
