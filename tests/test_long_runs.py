"""Issue 29: the long optimisation runs. ``rtstyle optimize`` stopped by SIGINT or SIGTERM writes the
image it reached (as ``stylize`` finalises a partial video) and its progress shows an ETA;
``rtstyle eval quality`` shows one progress over every image's iterations (so its ETA is the run's)
and times the network warm."""

from __future__ import annotations

import io
import json
import signal
import threading
import time

import pytest
import torch

from rtstyle.cli import main
from rtstyle.errors import Interrupted
from rtstyle.frames import load_image
from rtstyle.losses import LossConfig
from rtstyle.optimize import OptimizerSettings, optimize_image, optimize_pixels
from rtstyle.progress import LineProgress
from rtstyle.quality import WARMUP_RUNS, time_network
from tests.test_optimize import CONTENT, SHALLOW, STYLE, _config, content, loss_fn  # noqa: F401 - fixtures
from tests.test_quality import PHOTOS, trained_like_ckpt  # noqa: F401 - fixture
from tests.test_signals import _start

SHALLOW_FLAGS = ["--content-layers", "relu2_2", "--style-layers", "relu1_2,relu2_2"]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_stopped_optimize_writes_the_image_so_far(tmp_path, signum):
    out = tmp_path / "out.png"
    proc = _start(["optimize", CONTENT, "--style", STYLE, "-o", out, "--iterations", "2000", "--size", "32",
                   "--style-size", "32", "--device", "cpu", "--save-every", "1", "-q", *SHALLOW_FLAGS])
    try:
        first = tmp_path / "out_00001.png"  # written after the first iteration: the run is under way
        deadline = time.monotonic() + 120
        while not first.exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1] if proc.poll() else "slow"
            time.sleep(0.05)
        proc.send_signal(signum)
        err = proc.communicate(timeout=120)[1]
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "optimisation stopped after" in err and "of 2000 iterations" in err and f"image so far is in {out}" in err
    assert err.count("\n") == 1
    assert load_image(out).shape == (21, 32, 3)  # chelsea 451x300 at 32 px
    assert not list(tmp_path.glob(".*partial*"))


def test_a_stop_before_the_first_iteration_writes_nothing(tmp_path):
    stop = threading.Event()
    stop.set()
    with pytest.raises(Interrupted, match="no iteration finished, nothing written"):
        optimize_image(_config(tmp_path, loss=LossConfig(**SHALLOW)), stop)
    assert not (tmp_path / "out.png").exists()


def test_optimize_progress_shows_an_eta_and_stops_between_iterations(loss_fn, content):  # noqa: F811
    stream = io.StringIO()
    bar = LineProgress(6, "optimize", "it", stream=stream, interval=0)
    stop = threading.Event()
    seen = []

    def on_iteration(k, image):
        seen.append(k)
        if k == 3:
            stop.set()

    trace = optimize_pixels(loss_fn, content, 6, OptimizerSettings(optimizer="adam"), bar=bar, stop=stop,
                            on_iteration=on_iteration)
    assert trace.interrupted and seen == [1, 2, 3] and len(trace.history) == 4
    lines = stream.getvalue().splitlines()
    assert lines and all("eta" in line for line in lines) and "3/6 its" in lines[-1]


def test_eval_quality_has_one_progress_over_every_image(tmp_path, trained_like_ckpt, capsys):  # noqa: F811
    images = [PHOTOS / "caer_puppy.jpg", PHOTOS / "skimage_coffee.jpg"]
    rc = main(["eval", "quality", "--model", str(trained_like_ckpt), "--images", *map(str, images),
               "--style-dir", str(STYLE.parent), "--iterations", "1,3", "--size", "32", "--optimizer", "adam",
               "--timing-runs", "1", "--device", "cpu", "--progress", "json"])
    assert rc == 0
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    assert lines and {line["task"] for line in lines} == {"eval quality (2 images)"}
    final = lines[-1]
    assert final["final"] and final["done"] == final["total"] == 6 and "eta_s" in final


def test_the_network_is_timed_warm():
    class SlowFirstCalls(torch.nn.Module):
        """Like a CPU kernel's first calls: slow until warm."""

        calls = 0

        def forward(self, x):
            SlowFirstCalls.calls += 1
            if SlowFirstCalls.calls <= WARMUP_RUNS:
                time.sleep(0.3)
            return x * 2

    output, seconds = time_network(SlowFirstCalls(), torch.ones(1, 3, 8, 8), runs=3)
    assert SlowFirstCalls.calls == WARMUP_RUNS + 3 and seconds < 0.1 and torch.equal(output, torch.full((1, 3, 8, 8), 2.0))
