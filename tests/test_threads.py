"""How the cores are shared between the engine, the decoder and the encoder (rtstyle/threads.py)."""

from __future__ import annotations

import pytest

from rtstyle.errors import InputError
from rtstyle.threads import plan_threads


def test_a_cpu_engine_keeps_the_cores_and_the_video_stages_get_one_each(monkeypatch):
    monkeypatch.delenv("RTSTYLE_ENGINE_THREADS", raising=False)
    plan = plan_threads(16)
    assert (plan.engine, plan.decode, plan.encode) == (16, 1, 1)
    monkeypatch.setenv("RTSTYLE_ENGINE_THREADS", "3")
    assert plan_threads(16).engine == 3


def test_beside_a_gpu_engine_the_encoder_gets_the_cores():
    """x264 on one thread capped a 1080p GPU pipeline near 15 fps: with the engine on the GPU the
    CPU only decodes and encodes, so the encoder takes what the decoder leaves."""
    plan = plan_threads(16, engine_device="cuda")
    assert (plan.engine, plan.decode, plan.encode) == (1, 4, 12)
    assert (plan_threads(1, engine_device="cuda").decode, plan_threads(1, engine_device="cuda").encode) == (1, 1)
    assert plan_threads(2, engine_device="cuda").encode == 1
    with pytest.raises(InputError, match="cores must be >= 1"):
        plan_threads(0, engine_device="cuda")
