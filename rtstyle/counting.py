"""``CountingEngine``: an engine that passes batches to another and counts the frames, so a job
running in another thread or process (a Ray worker, a studio file job) can report progress;
``after_batch`` (optional) runs after each batch and may stop the job by raising (the studio's
disk cap)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from .engine import Engine


class CountingEngine(Engine):
    """Delegates to ``inner`` (which does its own frame checks) and counts the frames it stylized.

    ``frames`` is read from other threads; an int assignment is atomic in CPython, so a reader sees
    the count before or after a batch, never a torn value.
    """

    backend = "counting"

    def __init__(self, inner: Engine, after_batch: Callable[[], None] | None = None):
        super().__init__(device=inner.device, precision=inner.precision, scale=inner.scale, reason=inner.reason)
        self.inner = inner
        self.after_batch = after_batch
        self.frames = 0

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        out = self.inner(frames)
        self.frames += len(frames)
        if self.after_batch is not None:
            self.after_batch()
        return out

    def _run(self, frames: torch.Tensor) -> torch.Tensor:
        return self.inner(frames)

    def describe(self) -> str:
        return self.inner.describe()
