"""``rtstyle live`` conventions (issue 16): every key in --help, a readable overlay with
on-screen key help, headless runs with nowhere to send frames refused at start, --max-frames
counting processed frames with --every-frame."""

from __future__ import annotations

import numpy as np
import pytest

from rtstyle.choices import LIVE_KEYS
from rtstyle.cli import build_parser, main, subparsers_of
from rtstyle.live import LiveConfig, Styles, run_live
from rtstyle.sinks import Display, draw_text_box
from tests.helpers_video import IdentityEngine, make_clip


def test_help_lists_every_key_the_window_handles():
    text = subparsers_of(build_parser())["live"].format_help()
    styles = Styles(["a", "b"], engines=[IdentityEngine(), IdentityEngine()])
    listed = " ".join(keys for keys, _ in LIVE_KEYS)
    for key in "qnp1spah":
        if key == "h" or styles.handle_key(ord(key)) or key in "npsa1":  # quit, or a key that acts
            assert key in listed, key
    for keys, action in LIVE_KEYS:
        assert keys in text and action in text


@pytest.mark.parametrize("background", [0, 255], ids=["dark", "light"])
def test_overlay_text_is_readable_on_any_style(background):
    frame = np.full((120, 200, 3), background, np.uint8)
    out = draw_text_box(frame, ["12.3 fps  starry_night"])
    assert out.shape == frame.shape and frame.max() == frame.min() == background  # the input is untouched
    box = out[8:24, 8:120]
    text_pixels = box[box.mean(axis=2) > 200]
    backing = np.median(box.mean(axis=2))
    assert len(text_pixels) > 20, "white text drawn"
    assert backing < 100, f"the text sits on a dark box (median {backing:.0f}) whatever the picture"
    assert (out[100:, 150:] == background).all()  # the rest of the frame is left as it was


def test_h_toggles_the_key_help_on_screen():
    display = Display(window=False)
    frame = np.full((200, 420, 3), 255, np.uint8)
    without = display.compose(frame, "10 fps")
    display.toggle_help()
    with_help = display.compose(frame, "10 fps")
    dark_rows = lambda img: int((img.mean(axis=(1, 2)) < 230).sum())  # noqa: E731
    assert dark_rows(with_help) > dark_rows(without) + 5 * len(LIVE_KEYS)
    display.toggle_help()
    assert np.array_equal(display.compose(frame, "10 fps"), without)


def test_headless_with_nowhere_to_send_frames_is_refused_at_start(tmp_path, capsys):
    clip = tmp_path / "clip.mp4"
    code = main(["live", "--camera", str(clip), "--no-window", "--model", str(tmp_path / "missing.safetensors")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "--output" in err and "--virtual-cam" in err and "missing.safetensors" not in err  # before the model


def test_max_frames_counts_processed_frames_with_every_frame(tmp_path):
    clip = make_clip(tmp_path / "in.mp4", frames=12, size=(32, 24), fps=30, audio=False)
    cfg = LiveConfig(source=str(clip), models=("fake",), window=False, every_frame=True, max_frames=5)
    result = run_live(cfg, engines=[IdentityEngine()])
    assert result.ended_by == "max_frames" and result.frames_shown == 5 and result.frames_dropped == 0
