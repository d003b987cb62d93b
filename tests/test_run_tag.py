"""The run tag every video output carries (``rtstyle.video.tag``): what ``--skip-existing`` judges an
output by, in every container the writer produces; never a count of frames or packets."""

from __future__ import annotations

import os
from fractions import Fraction

import av
import numpy as np
import pytest
from PIL import Image

from rtstyle.cluster.plan import why_incomplete
from rtstyle.stylize import StylizeConfig, stylize_files
from rtstyle.video import EncoderConfig, VideoWriter
from rtstyle.video.animated import iter_webp
from rtstyle.video.tag import RunTag, read_tag
from rtstyle.video.writer import OUTPUT_FORMATS
from tests.helpers_video import make_clip, make_packed_avi, read_frames

CONTAINERS = sorted(OUTPUT_FORMATS)  # every extension the writer takes


def _write(path, source, frames: int, partial: bool = False, **window) -> VideoWriter:
    writer = VideoWriter(path, 32, 24, Fraction(1, 10), Fraction(10), EncoderConfig(preset="ultrafast"),
                         tag=RunTag.for_source(source, window.get("start"), window.get("duration")))
    for i in range(frames):
        writer.write(np.full((24, 32, 3), 30 * i, np.uint8), i)
    writer.close(keep=True, partial=partial)
    return writer


@pytest.mark.parametrize("ext", CONTAINERS)
def test_every_container_keeps_the_tag_and_stays_valid(tmp_path, ext):
    """Sealed at finalisation into the file itself (rewritten in place, or appended where the muxer
    keeps no tags): the file still decodes, every frame, and the tag says how the run ended."""
    source = make_clip(tmp_path / "in.mp4", frames=4, size=(32, 24), audio=False)
    frames = 5
    done, stopped = tmp_path / f"done{ext}", tmp_path / f"stopped{ext}"
    writer = _write(done, source, frames)
    _write(stopped, source, frames, partial=True)
    assert not [w for w in writer.warnings if "run tag" in w], writer.warnings
    assert read_tag(done).end == "done" and read_tag(done).frames == frames
    assert read_tag(stopped).end == "stop" and read_tag(stopped).frames == frames
    if ext == ".webp":  # FFmpeg decodes only still WebP: PIL reads the animation (as rtstyle does)
        assert len(list(iter_webp(done))) == frames
    else:
        with av.open(str(done)) as c:
            assert sum(1 for _ in c.decode(video=0)) == frames
    if ext in (".gif", ".png", ".webp"):  # appended blocks: other readers take the file as it is too
        with Image.open(done) as img:
            assert img.n_frames == frames
            for i in range(frames):
                img.seek(i)
                img.load()
    assert why_incomplete(source, done, StylizeConfig(inputs=(source,))) is None
    assert "interrupted" in why_incomplete(source, stopped, StylizeConfig(inputs=(source,)))


def test_the_tag_names_the_source_and_the_window(tmp_path):
    source = make_clip(tmp_path / "in.mp4", frames=4, size=(32, 24), audio=False)
    out = tmp_path / "o.mkv"
    _write(out, source, 3, start=1.5, duration=2.0)
    tag = read_tag(out)
    assert (tag.start, tag.duration) == (1.5, 2.0)
    assert tag.why_not_complete(source, 1.5, 2.0) is None
    assert "another window" in tag.why_not_complete(source, None, None)
    os.utime(source, ns=(source.stat().st_atime_ns, source.stat().st_mtime_ns + 10**9))
    assert "changed since" in tag.why_not_complete(source, 1.5, 2.0)


def test_foreign_and_older_outputs_have_no_tag(tmp_path):
    """A file another program wrote (or an rtstyle before tags): incomplete for --skip-existing, with why."""
    source = make_clip(tmp_path / "in.mp4", frames=4, size=(32, 24), audio=False)
    foreign = make_clip(tmp_path / "foreign.mp4", frames=4, size=(32, 24), audio=False)
    assert read_tag(foreign) is None and read_tag(tmp_path / "missing.mp4") is None
    assert "no rtstyle run tag" in why_incomplete(source, foreign, StylizeConfig(inputs=(source,)))


def test_packed_bframes_avi_output_is_complete_by_its_tag(tmp_path, tiny_style_ckpt):
    """An AVI with packed B-frames (XviD style) in: the single-machine output says it is complete, as
    a count of the input's packets against the output's frames could not tell."""
    src = make_packed_avi(tmp_path / "x.avi", frames=12, audio=False)
    with av.open(str(src)) as c:
        sizes = [p.size for p in c.demux(video=0) if p.size]
    assert len(sizes) == 12 and sum(size <= 8 for size in sizes) >= 4  # N-VOP placeholders hold the B-frames' slots
    config = StylizeConfig(inputs=(src,), model=str(tiny_style_ckpt), output=tmp_path / "x_out.mp4", device="cpu", backend="torch",
                           encoder=EncoderConfig(preset="ultrafast"), progress=False)
    (result,) = stylize_files(config)
    assert len(read_frames(result.output)[0]) == result.frames_out == read_tag(result.output).frames
    assert why_incomplete(src, result.output, config) is None
