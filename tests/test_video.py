"""Decoding, probing and encoding (rtstyle/video/) on tiny synthetic clips."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from rtstyle.errors import InputError, OutputError
from rtstyle.video import AudioSource, EncoderConfig, VideoReader, VideoWriter, probe
from tests.helpers_video import audio_duration, frame_pattern, frame_times_ms, make_clip, read_frames


def test_probe_describes_clip(tmp_path):
    info = probe(make_clip(tmp_path / "c.mp4", frames=12, size=(64, 48)))
    assert (info.width, info.height, info.num_frames) == (64, 48, 12)
    assert info.audio_codecs == ("aac",) and info.codec == "h264" and not info.decode_order_timestamps


def test_reader_keeps_vfr_timestamps(tmp_path):
    path = make_clip(tmp_path / "vfr.mp4", frames=15, vfr=True, audio=False)
    frames = list(VideoReader(path))
    assert [round(f.time * 1000) for f in frames] == frame_times_ms(15, 24, vfr=True)
    assert [f.index for f in frames] == list(range(15))
    assert frames[0].image.dtype == np.uint8 and frames[0].image.shape == (48, 64, 3)


def test_reader_window_rebases_time(tmp_path):
    path = make_clip(tmp_path / "c.mp4", frames=24, fps=24, audio=False)
    frames = list(VideoReader(path, start=0.25, duration=0.5))
    assert len(frames) == 12
    assert frames[0].pts == 0 and abs(frames[-1].time - 11 / 24) < 1e-3


@pytest.mark.parametrize("make", [
    lambda p: p.write_bytes(b""),
    lambda p: p.write_text("this is not a video\n" * 20),
    lambda p: make_clip(p, video=False),
])
def test_bad_inputs_give_one_line_errors(tmp_path, make):
    path = tmp_path / "bad.mp4"
    make(path)
    with pytest.raises(InputError) as err:
        VideoReader(path)
    assert "bad.mp4" in str(err.value) and "\n" not in str(err.value)


def test_missing_input(tmp_path):
    with pytest.raises(InputError, match="not found"):
        probe(tmp_path / "nope.mp4")


def test_image_reads_as_one_frame_video(tmp_path):
    from PIL import Image

    Image.fromarray(frame_pattern(0, 30, 20)).save(tmp_path / "still.png")
    frames = list(VideoReader(tmp_path / "still.png"))
    assert len(frames) == 1 and frames[0].image.shape == (20, 30, 3)


@pytest.mark.parametrize("codec,pix_fmt,suffix", [
    ("libx264", "yuv420p10le", ".mp4"),  # 10-bit
    ("ffv1", "gray", ".mkv"),
    ("png", "rgba", ".mov"),  # alpha
])
def test_high_depth_alpha_gray_decode_to_rgb(tmp_path, codec, pix_fmt, suffix):
    path = make_clip(tmp_path / f"v{suffix}", frames=4, codec=codec, pix_fmt=pix_fmt, audio=False)
    assert probe(path).pix_fmt == pix_fmt
    frames = list(VideoReader(path))
    assert len(frames) == 4 and frames[0].image.shape == (48, 64, 3) and frames[0].image.dtype == np.uint8


def test_truncated_file_ends_at_last_good_frame(tmp_path):
    path = make_clip(tmp_path / "t.mkv", frames=40, size=(96, 64), audio=False)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 6 // 10])
    reader = VideoReader(path)
    frames = list(reader)
    assert 5 < len(frames) < 40
    assert reader.warnings and "t.mkv" in reader.warnings[0]


def test_truncated_mp4_without_index_is_a_clear_error(tmp_path):
    path = make_clip(tmp_path / "t.mp4", frames=20)
    path.write_bytes(path.read_bytes()[:2000])  # the moov index is written last: gone
    with pytest.raises(InputError, match="t.mp4.*truncated"):
        VideoReader(path)


def test_opencv_fallback_decoder(tmp_path):
    path = make_clip(tmp_path / "c.mp4", frames=10, audio=False)
    pyav = list(VideoReader(path))
    cv = list(VideoReader(path, decoder="opencv"))
    assert len(cv) == len(pyav) == 10
    assert np.abs(cv[3].image.astype(int) - pyav[3].image.astype(int)).mean() < 3


@pytest.mark.parametrize("size", [(1, 1), (2, 3), (33, 17), (301, 2)])
def test_writer_keeps_odd_and_tiny_sizes(tmp_path, size):
    w, h = size
    out = tmp_path / "o.mp4"
    with VideoWriter(out, w, h, Fraction(1, 1000), Fraction(25)) as writer:
        for i in range(3):
            writer.write(frame_pattern(i, w, h), pts=40 * i)
    images, times = read_frames(out)
    assert len(images) == 3 and images[0].shape == (h, w, 3)
    assert times == [0.0, 0.04, 0.08]


def test_writer_copies_rotation_and_audio(tmp_path):
    src = make_clip(tmp_path / "rot.mp4", frames=12, rotation=90)
    info = probe(src)
    assert info.rotation == 90
    out = tmp_path / "o.mp4"
    writer = VideoWriter(out, 64, 48, info.time_base, info.frame_rate, rotation=info.rotation, color=info.color,
                         audio=AudioSource(src))
    for f in VideoReader(src):
        writer.write(f.image, f.pts, f.duration)
    writer.close()
    assert probe(out).rotation == 90 and probe(out).audio_codecs == ("aac",)
    assert abs(audio_duration(out) - audio_duration(src)) < 0.03


def test_writer_reencodes_audio_to_aac(tmp_path):
    src = make_clip(tmp_path / "c.mp4", frames=12)
    out = tmp_path / "o.mkv"
    writer = VideoWriter(out, 64, 48, Fraction(1, 1000), config=EncoderConfig(audio="aac"), audio=AudioSource(src))
    for f in VideoReader(src):
        writer.write(f.image, round(f.time * 1000))
    writer.close()
    assert probe(out).audio_codecs == ("aac",)
    assert abs(audio_duration(out) - audio_duration(src)) < 0.15


def test_writer_refuses_existing_output_and_cleans_up(tmp_path):
    out = tmp_path / "o.mp4"
    out.write_bytes(b"old")
    with pytest.raises(OutputError, match="-y"):
        VideoWriter(out, 8, 8)
    writer = VideoWriter(out, 8, 8, overwrite=True)
    writer.write(frame_pattern(0, 8, 8))
    writer.close(keep=False)  # an error path: the old file stays, no temp file left
    assert out.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.mp4"]


def test_writer_errors(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError):
        VideoWriter(tmp_path / "file" / "o.mp4", 8, 8)
    with pytest.raises(InputError, match="unknown video encoder"):
        VideoWriter(tmp_path / "o.mp4", 8, 8, config=EncoderConfig(codec="nonesuch264"))
    assert not list(tmp_path.glob("*.mp4")) and not list(tmp_path.glob(".o*"))


def test_decode_order_timestamps_are_repaired(shared_data):
    """box.mp4 stores decode times as pts (B-frames): frames must still come out evenly spaced."""
    path = shared_data / "videos" / "box.mp4"
    assert probe(path).decode_order_timestamps
    times = [f.time for f in VideoReader(path, duration=3.0)]
    steps = np.diff(times)
    assert len(times) > 80 and steps.min() > 0.03 and steps.max() < 0.036


def test_nv12_frames_encode_like_rgb_ones(tmp_path):
    """``write_nv12`` (frames converted on the engine's GPU) gives the file ``write`` gives, within
    the one level the two conversions may differ by; losslessly encoded, so only they differ."""
    import av
    import torch

    from rtstyle.gpu.colour import output_spec, rgb_to_nv12

    frames = [frame_pattern(i, 64, 48) for i in range(4)]
    planes = {}
    for mode in ("rgb", "nv12"):
        path = tmp_path / f"{mode}.mp4"
        with VideoWriter(path, 64, 48, config=EncoderConfig(crf=0, preset="ultrafast")) as w:
            for i, image in enumerate(frames):
                if mode == "rgb":
                    w.write(image, i)
                else:
                    w.write_nv12(rgb_to_nv12(torch.from_numpy(image), output_spec(*w.color_tags)).numpy(), i)
        with av.open(str(path)) as c:
            planes[mode] = [f.to_ndarray(format="yuv420p").astype(int) for f in c.decode(video=0)]
    assert len(planes["nv12"]) == 4
    assert max(np.abs(a - b).max() for a, b in zip(planes["rgb"], planes["nv12"])) <= 1
    with VideoWriter(tmp_path / "bad.mp4", 64, 48) as w, pytest.raises(InputError, match=r"NV12 \(72, 64\)"):
        w.write_nv12(np.zeros((48, 64), np.uint8))


def test_auto_preset_follows_the_engine_device():
    cfg = EncoderConfig()
    assert cfg.preset == "auto"
    assert cfg.beside_engine("cpu", 1).preset == "faster"  # the encoder shares the engine's cores
    assert cfg.beside_engine("cpu", 1).options == {"threads": "1"}
    assert cfg.beside_engine("cuda", 2).preset == "medium"
    assert EncoderConfig(preset="veryfast").beside_engine("cpu").preset == "veryfast"  # the user's choice stays
    assert EncoderConfig(options={"threads": "4"}).beside_engine("cpu", 1).options == {"threads": "4"}
    assert EncoderConfig(codec="libsvtav1").beside_engine("cpu").preset is None  # numeric presets: codec default


def _x264_settings(path) -> str:
    data = path.read_bytes()
    start = data.index(b"x264 - core")
    return data[start:data.index(b"\x00", start)].decode("ascii", "replace")


@pytest.mark.parametrize("preset, subme", [("auto", "subme=7"), ("faster", "subme=4")])
def test_writer_passes_the_preset_to_x264(tmp_path, preset, subme):
    # x264 writes its settings into the stream: medium (the unresolved "auto") uses subme 7, faster 4.
    out = tmp_path / f"{preset}.mp4"
    with VideoWriter(out, 64, 48, Fraction(1, 30), Fraction(30), EncoderConfig(preset=preset, audio="none")) as w:
        for i in range(3):
            w.write(np.full((48, 64, 3), 40 * i, np.uint8), pts=i)
    assert subme in _x264_settings(out).split()
