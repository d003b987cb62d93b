"""Issue 15: the output container picks a codec that fits (.webm: VP9 + Opus, .gif, .png)
instead of failing with "unexpected" FFmpeg errors. Issue 27: every output holds every frame
(animations for .gif, .png, .webp, every frame's delay kept) or is refused; animated inputs are
read frame by frame."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest
from PIL import Image

from rtstyle.errors import OutputError
from rtstyle.photos import is_photo
from rtstyle.stylize import StylizeConfig, stylize_files, stylize_video
from rtstyle.video import EncoderConfig, VideoReader, VideoWriter, probe
from rtstyle.video.writer import OUTPUT_FORMATS, STILL_IMAGE_EXTENSIONS
from tests.conftest import TINY_STYLE, _save
from tests.helpers_video import IdentityEngine, audio_duration, make_clip, make_packed_avi, read_frames


def stylize(src, out):
    config = StylizeConfig(inputs=(src,), output=out, progress=False, encoder=EncoderConfig(preset="ultrafast"))
    return stylize_video(config, engine=IdentityEngine())


def test_webm_gets_vp9_and_opus(tmp_path):
    src = make_clip(tmp_path / "in.mp4", frames=6, size=(32, 24))
    result = stylize(src, tmp_path / "o.webm")
    with av.open(str(result.output)) as c:
        assert c.streams.video[0].codec_context.name in ("vp9", "libvpx-vp9")
        assert [s.codec_context.name for s in c.streams.audio] in (["opus"], ["libopus"])
        assert sum(1 for _ in c.decode(video=0)) == 6
    assert any("libvpx-vp9" in w for w in result.warnings)


def test_gif_has_every_frame_and_says_the_sound_is_dropped(tmp_path):
    src = make_clip(tmp_path / "in.mp4", frames=5, size=(32, 24))
    result = stylize(src, tmp_path / "o.gif")
    with av.open(str(result.output)) as c:
        assert c.streams.video[0].codec_context.name == "gif" and not c.streams.audio
        assert sum(1 for _ in c.decode(video=0)) == 5
    assert any("holds no audio" in w for w in result.warnings)


@pytest.mark.parametrize("size", [(32, 24), (33, 17)])
def test_png_output_is_one_picture(tmp_path, size):
    import numpy as np
    from PIL import Image as PILImage

    PILImage.fromarray(np.full((size[1], size[0], 3), 120, np.uint8)).save(tmp_path / "still.png")
    result = stylize(tmp_path / "still.png", tmp_path / "out.png")
    with Image.open(result.output) as im:
        assert im.size == size and im.format == "PNG"


# ------------------------------------------------------------------ issue 27: every output holds every frame

STEPS_MS = (100, 200, 100, 300, 150)  # the last frame's duration is what a muxer most often loses
LEVELS = (20, 90, 160, 230, 60)  # one grey level per frame: frame order survives any codec


def animated_gif(path, size=(48, 32)):
    """A 5-frame GIF with the durations STEPS_MS and the grey levels LEVELS."""
    frames = [Image.new("RGB", size, (v, v, v)) for v in LEVELS]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=list(STEPS_MS), loop=0)
    return path


def frame_levels(path) -> tuple[list[float], list[float]]:
    """(mean level, time in s) of every frame, through rtstyle's own reader."""
    from rtstyle.video import VideoReader

    frames = list(VideoReader(path))
    return [float(f.image.mean()) for f in frames], [f.time for f in frames]


def image_durations(path) -> list[float]:
    """Every frame's duration in ms as an image library (PIL, what viewers use) reads it."""
    with Image.open(path) as im:
        out = []
        for i in range(getattr(im, "n_frames", 1)):
            im.seek(i)
            im.load()
            out.append(float(im.info.get("duration") or 0))
        return out


@pytest.mark.parametrize("ext", list(OUTPUT_FORMATS))
def test_every_extension_the_writer_takes_holds_every_frame(tmp_path, ext):
    src = animated_gif(tmp_path / "in.gif")
    result = stylize(src, tmp_path / f"out{ext}")
    assert result.frames_in == result.frames_out == 5 and result.output == tmp_path / f"out{ext}"
    levels, times = frame_levels(result.output)
    assert len(levels) == 5, f"{ext}: {len(levels)} frames written of 5"
    assert all(abs(got - want) < 8 for got, want in zip(levels, LEVELS)), (ext, levels)
    if ext != ".avi":  # AVI keeps a constant rate, no frame times: issue 29a's part
        assert np.allclose(times, np.cumsum((0,) + STEPS_MS[:-1]) / 1000, atol=0.002), (ext, times)
    if ext in (".gif", ".png", ".webp"):  # animations: each frame keeps its delay, the last one too
        assert image_durations(result.output) == list(STEPS_MS), ext


@pytest.mark.parametrize("ext", [*STILL_IMAGE_EXTENSIONS, ".mpg", ".wmv", ".xyz"])
def test_extensions_that_cannot_hold_a_video_are_refused_before_any_work(tmp_path, ext):
    src = animated_gif(tmp_path / "in.gif")
    with pytest.raises(OutputError, match=r"\.mp4") as info:
        stylize(src, tmp_path / f"out{ext}")
    assert "\n" not in str(info.value) and "in.gif is a video" in str(info.value)
    for name in (f"direct{ext}", "no_extension"):  # the writer itself (live recordings, the API)
        with pytest.raises(OutputError, match=r"\.mp4"):
            VideoWriter(tmp_path / name, 48, 32)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.gif"]


def test_the_issue_case_a_video_to_png_keeps_all_30_frames(tmp_path, capsys):
    from rtstyle.cli import main

    src = make_clip(tmp_path / "in.mp4", frames=30, size=(32, 24), fps=10, audio=False)
    model = _save(tmp_path / "m.safetensors", TINY_STYLE, "style")
    code = main(["stylize", str(src), "-m", str(model), "--backend", "torch", "-o", str(tmp_path / "out.png"),
                 "--progress", "none"])
    assert code == 0 and "30 frames in, 30 out" in capsys.readouterr().out
    with Image.open(tmp_path / "out.png") as im:
        assert im.format == "PNG" and im.n_frames == 30  # APNG: every frame
    assert main(["stylize", str(src), "-m", str(model), "-o", str(tmp_path / "out.jpg"), "--progress", "none"]) == 2
    assert "holds one picture" in capsys.readouterr().err and not (tmp_path / "out.jpg").exists()


@pytest.mark.parametrize("kind", ["webp", "apng"])
def test_animated_webp_and_png_inputs_are_read_frame_by_frame_with_their_durations(tmp_path, kind):
    ext = ".webp" if kind == "webp" else ".png"
    frames = [Image.new("RGB", (48, 32), (v, v, v)) for v in LEVELS]
    src = tmp_path / f"anim{ext}"
    frames[0].save(src, save_all=True, append_images=frames[1:], duration=list(STEPS_MS), loop=0,
                   **({"lossless": True} if kind == "webp" else {}))
    levels, times = frame_levels(src)
    assert len(levels) == 5 and all(abs(a - b) < 2 for a, b in zip(levels, LEVELS))
    assert np.allclose(times, np.cumsum((0,) + STEPS_MS[:-1]) / 1000, atol=1e-3)
    # A video for stylize: every frame out, and by default an animation of its own kind.
    config = StylizeConfig(inputs=(src,), output=tmp_path / "out", progress=False)
    [result] = stylize_files(config, engine=IdentityEngine())
    assert result.kind == "video" and result.frames_out == 5 and result.output.suffix == ext
    assert image_durations(result.output) == list(STEPS_MS)
    # A still .webp / .png stays a photo.
    still = tmp_path / f"still{ext}"
    frames[0].save(still)
    assert is_photo(still) and not is_photo(src)


def _same_frames(images, count: int) -> bool:
    """``images`` are frame_pattern(0..count-1), in order (its blue channel counts frames)."""
    blue = [float(im[..., 2].mean()) for im in images]
    return len(blue) == count and all(abs(b - (40 + 9 * i) % 256) < 3 for i, b in enumerate(blue))


def test_avi_output_keeps_the_source_rate_and_one_chunk_per_frame(tmp_path):
    # Issue 29: a 30 fps clip whose time base was 1/600 came out as a 600 fps AVI declaring 605
    # frames for 27. AVI stores a frame rate and one chunk per frame, nothing else.
    src = make_clip(tmp_path / "in.mov", frames=27, size=(64, 48), fps=30)
    result = stylize(src, tmp_path / "o.avi")
    assert result.frames_out == 27 and not result.warnings
    with av.open(str(result.output)) as c:
        stream = c.streams.video[0]
        assert stream.average_rate == 30 and stream.time_base == Fraction(1, 30) and stream.frames == 27
        packets = [p for p in c.demux(stream) if p.size]
        assert [p.dts for p in packets] == list(range(27))  # no empty chunks, no reordered (B) frames
    with av.open(str(result.output)) as c:
        images = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert _same_frames(images, 27)
    info = probe(result.output)
    assert abs(info.duration - 0.9) < 1e-6 and info.audio_codecs == ("aac",)
    assert abs(audio_duration(result.output) - audio_duration(src)) < 0.05


def test_packed_b_frame_avi_keeps_its_frame_times_in_and_out(tmp_path):
    # Issue 29: an XviD clip with packed B-frames had its first frame moved by a frame interval
    # ("N non-increasing timestamps repaired"): its frames carry shuffled pts but the decoder's
    # best-effort times are right, as ffmpeg's are.
    src = make_packed_avi(tmp_path / "xvid.avi", frames=20, fps=24)
    reader = VideoReader(src)
    frames = list(reader)
    assert [f.pts for f in frames] == list(range(20)) and reader.info.time_base == Fraction(1, 24)
    assert _same_frames([f.image for f in frames], 20) and not reader.warnings
    result = stylize(src, tmp_path / "o.avi")
    assert result.frames_out == 20 and not result.warnings
    out = VideoReader(result.output)
    assert [f.pts for f in out] == list(range(20)) and out.info.frame_rate == 24 and not out.warnings
    assert abs(audio_duration(result.output) - audio_duration(src)) < 0.01  # the sound starts with chunk 0, as before
    mp4 = stylize(src, tmp_path / "o.mp4")
    assert [round(t * 1000) for t in read_frames(mp4.output)[1]] == [round(1000 * i / 24) for i in range(20)]
