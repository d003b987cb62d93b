"""Issue 15: the output container picks a codec that fits (.webm: VP9 + Opus, .gif, .png)
instead of failing with "unexpected" FFmpeg errors."""

from __future__ import annotations

import av
import pytest
from PIL import Image

from rtstyle.stylize import StylizeConfig, stylize_video
from rtstyle.video import EncoderConfig
from tests.helpers_video import IdentityEngine, make_clip


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
