"""Issue 15: the output container picks a codec that fits (.webm: VP9 + Opus, .gif, .png)
instead of failing with "unexpected" FFmpeg errors."""

from __future__ import annotations

from fractions import Fraction

import av
import pytest
from PIL import Image

from rtstyle.stylize import StylizeConfig, stylize_video
from rtstyle.video import EncoderConfig, VideoReader, probe
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
