"""Issue 29, upscaling as users know it: ``rtstyle upscale`` with -s/--outscale and --tile/--tile-pad.

Tiles travel the one frame path (source -> batcher -> engine -> sinks) as frames of their own; the
engine never sees more than a batch of tiles, and with the default pad the stitched output equals
the untiled one (the bundled SR nets' receptive field is 14 px). Start-up says what it does."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch

from rtstyle import backend_choice
from rtstyle.cli import build_parser, main, subparsers_of
from rtstyle.engine import Engine, EngineOptions, open_engine
from rtstyle.errors import InputError
from rtstyle.frames import MILLISECONDS, Frame, load_image, save_image
from rtstyle.pipeline import PipelineConfig, run_pipeline
from rtstyle.sources import Source
from rtstyle.tiles import DEFAULT_PAD, Tiled, Tiling, tile_windows
from tests.helpers_video import IdentityEngine, make_clip, read_frames

from .conftest import SAMPLES

PHOTO = SAMPLES / "samples" / "photos" / "skimage_astronaut.jpg"


class Frames(Source):
    """The given pictures as a source."""

    def __init__(self, images: list[np.ndarray]):
        super().__init__()
        self.images = images

    def read(self) -> Frame | None:
        if self.frames_read == len(self.images):
            return None
        i, self.frames_read = self.frames_read, self.frames_read + 1
        return Frame(self.images[i], i, MILLISECONDS, i)


class Recording(Engine):
    """``inner``, recording the batch shapes it was given."""

    backend = "recording"

    def __init__(self, inner: Engine):
        super().__init__(device=inner.device, precision=inner.precision, scale=inner.scale, reason="test")
        self.inner, self.shapes = inner, []

    def _run(self, frames: torch.Tensor) -> torch.Tensor:
        self.shapes.append(tuple(frames.shape))
        return self.inner(frames)


def tiled(engine: Engine, images: list[np.ndarray], tile: int, pad: int, batch: int = 4):
    out: list[tuple[np.ndarray, int]] = []
    tiling = Tiling(Frames(images), lambda image, frame: out.append((image.copy(), frame.index)), tile, pad)
    stats = tiling.finish(run_pipeline(tiling.source, engine, tiling.sink, PipelineConfig(batch_size=batch)))
    return out, stats


@pytest.mark.parametrize("size, tile, pad", [((300, 200), 64, 16), ((64, 64), 64, 16), ((40, 90), 32, 0),
                                             ((17, 130), 50, 30)])
def test_windows_cover_the_frame_once_with_context_and_one_shape(size, tile, pad):
    w, h = size
    boxes = tile_windows(w, h, tile, pad)
    covered = np.zeros((h, w), int)
    shapes = set()
    for (cx0, cy0, cx1, cy1), (wx0, wy0, wx1, wy1) in boxes:
        covered[cy0:cy1, cx0:cx1] += 1
        assert 0 <= wx0 <= cx0 < cx1 <= wx1 <= w and 0 <= wy0 <= cy0 < cy1 <= wy1 <= h
        # pad pixels of real picture around the core wherever the frame has them
        assert cx0 - wx0 >= min(pad, cx0) and wx1 - cx1 >= min(pad, w - cx1)
        assert cy0 - wy0 >= min(pad, cy0) and wy1 - cy1 >= min(pad, h - cy1)
        shapes.add((wx1 - wx0, wy1 - wy0))
    assert (covered == 1).all()
    assert shapes == {(min(tile + 2 * pad, w), min(tile + 2 * pad, h))}


@pytest.fixture(scope="module")
def sr_x4():
    return open_engine("sr_x4", "torch", EngineOptions(device="cpu", precision="fp32"))


def test_tiled_output_equals_untiled_and_a_missing_pad_shows_seams(sr_x4):
    image = load_image(PHOTO)[40:136, 100:244].copy()  # 144x96: 3x2 tiles of 48, several batches
    whole = sr_x4(image)
    engine = Recording(sr_x4)
    out, stats = tiled(engine, [image], 48, DEFAULT_PAD, batch=4)
    assert len(out) == 1 and stats.frames_out == 1 and stats.tiles == 6
    diff = np.abs(out[0][0].astype(int) - whole.astype(int))
    assert diff.max() <= 1 and diff.mean() < 0.01, (diff.max(), diff.mean())  # seams invisible: the same picture
    # The engine saw batches of at most 4 tiles of 48 + 2 x 16, never the frame.
    assert engine.shapes == [(4, 80, 80, 3), (2, 80, 80, 3)]
    seams, _ = tiled(sr_x4, [image], 48, 0)
    gap = np.abs(seams[0][0].astype(int) - whole.astype(int))
    assert gap.max() > 20  # without context the tiles' edges differ: the test can fail


def test_tiles_of_consecutive_frames_share_batches_and_frames_keep_their_order():
    images = [np.full((40, 60, 3), 10 * i, np.uint8) for i in range(3)]
    engine = Recording(IdentityEngine(scale=2))
    out, stats = tiled(engine, images, 32, 4, batch=5)
    assert [i for _, i in out] == [0, 1, 2] and stats.frames_in == stats.frames_out == 3 and stats.tiles == 12
    assert [s[0] for s in engine.shapes] == [5, 5, 2]  # 4 tiles a frame, batched across frames
    for (image, _), src in zip(out, images):
        assert image.shape == (80, 120, 3) and (image == src[0, 0, 0]).all()
    assert "3 frames in, 3 out in 12 tiles" in stats.summary()


def test_a_live_source_cannot_be_tiled():
    source = Frames([])
    source.live = True
    with pytest.raises(InputError, match="live source"):
        Tiled(source, 64)
    with pytest.raises(InputError, match="--tile must be at least 16"):
        Tiled(Frames([]), 8)


# ---------------------------------------------------------------------------------- the command

def upscale_args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["upscale", *argv])


def test_dash_s_is_outscale_and_dash_ss_the_start():
    args = upscale_args("a.png", "-s", "2.5", "-ss", "1")
    assert args.outscale == 2.5 and args.start == 1.0
    args = upscale_args("a.png", "-s", "3")
    assert args.outscale == 3.0 and args.start is None
    help_text = subparsers_of(build_parser())["upscale"].format_help()
    assert "-s F, --outscale F" in help_text and "--tile N" in help_text and "--tile-pad PX" in help_text


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "small.png"
    save_image(path, load_image(PHOTO)[100:160, 150:230].copy())  # 80x60, lossless
    return path


def test_upscale_any_factor_and_tiles_give_the_untiled_picture(tmp_path, photo, capsys):
    fp32 = ["--backend", "torch", "--precision", "fp32", "-q"]
    assert main(["upscale", str(photo), "-o", str(tmp_path / "whole.png"), *fp32]) == 0
    assert main(["upscale", str(photo), "-o", str(tmp_path / "tiled.png"), "--tile", "24", *fp32]) == 0
    whole, tiles = load_image(tmp_path / "whole.png"), load_image(tmp_path / "tiled.png")
    assert whole.shape == (240, 320, 3) and np.abs(whole.astype(int) - tiles.astype(int)).max() <= 1
    # -s: the model's x4, then a resize to the factor asked for (Real-ESRGAN's --outscale)
    assert main(["upscale", str(photo), "-s", "1.5", "-o", str(tmp_path), "--tile", "32", *fp32]) == 0
    assert load_image(tmp_path / "small_x1.5.png").shape == (90, 120, 3)
    assert "small_x1.5.png" in capsys.readouterr().out


def test_upscale_of_a_video_keeps_frames_and_audio(tmp_path):
    clip = make_clip(tmp_path / "in.mp4", frames=6, size=(48, 32), fps=8)
    out = tmp_path / "out.mp4"
    assert main(["upscale", str(clip), "-o", str(out), "-s", "2", "--tile", "16", "--tile-pad", "8", "-q",
                 "--backend", "torch"]) == 0
    images, times = read_frames(out)
    assert len(images) == 6 and images[0].shape == (64, 96, 3) and times[1] == pytest.approx(1 / 8, abs=1e-3)
    from rtstyle.video import probe

    assert probe(out).audio_codecs == ("aac",)


def test_upscale_refuses_a_style_model_and_bad_factors(tmp_path, photo, tiny_style_ckpt, capsys):
    assert main(["upscale", str(photo), "-m", str(tiny_style_ckpt), "-o", str(tmp_path / "x.png"), "-q",
                 "--backend", "torch"]) == 2
    err = capsys.readouterr().err
    assert "is a style model" in err and "rtstyle stylize" in err and err.count("\n") == 1
    assert main(["upscale", str(photo), "-s", "0", "-o", str(tmp_path / "x.png")]) == 2
    assert "-s/--outscale must be a number > 0" in capsys.readouterr().err
    assert main(["upscale", str(photo), "--tile", "8", "-o", str(tmp_path / "x.png")]) == 2
    assert "--tile must be at least 16" in capsys.readouterr().err


def test_first_run_says_it_is_measuring_the_backends(tmp_path, photo, monkeypatch, capsys):
    """The slow part of a first start-up (timing the CPU backends for --backend auto) is named
    while it happens, and an SR model is timed at the input whose output is MEASURE_SIZE."""
    pytest.importorskip("openvino")
    sizes = []

    def measure(engine, batch):
        sizes.append(backend_choice.measure_size(engine.scale))
        return {"torch": 50.0, "openvino": 20.0}[engine.backend]

    monkeypatch.setattr(backend_choice, "measure", measure)
    monkeypatch.setenv("RTSTYLE_CACHE", str(tmp_path / "cache"))
    assert main(["upscale", str(photo), "-o", str(tmp_path / "x.png"), "--progress", "plain"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("sr_x4.safetensors: timing torch and openvino on this CPU") and "first run only" in err[0]
    assert err[1:3] == ["  torch: 50 ms/frame at 80x44", "  openvino: 20 ms/frame at 80x44"]
    assert err[3].startswith("engine: openvino") and sizes == [(80, 44), (80, 44)]
    assert main(["upscale", str(photo), "-o", str(tmp_path / "y.png"), "-q"]) == 0  # cached, and -q: silent
    assert capsys.readouterr().err.startswith("engine: openvino")
    assert backend_choice.measure_size(8) == (40, 22) and backend_choice.measure_size(1) == backend_choice.MEASURE_SIZE
