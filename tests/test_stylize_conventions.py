"""``rtstyle stylize`` as users expect it (issue 16): photos first-class (formats by extension,
EXIF orientation, folders mixing photos and videos, batched), animated GIF in and out, ffmpeg's
-i/-ss/-t/-to/-y/-n, a default model, encoder options, output size control, --suffix."""

from __future__ import annotations

import av
import pytest
from PIL import Image

from rtstyle.choices import DEFAULT_STYLE_MODEL
from rtstyle.cli import build_parser, main, subparsers_of
from rtstyle.errors import InputError
from rtstyle.stylize import StylizeConfig, output_size, stylize_files
from rtstyle.timecode import parse_time
from tests.helpers_video import frame_pattern, make_clip


def photo(path, size=(48, 32), seed=0, exif_orientation=None):
    image = Image.fromarray(frame_pattern(seed, *size))
    if exif_orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        image.save(path, exif=exif)
    else:
        image.save(path)
    return path


def frames_of(path):
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def run(*argv, model=None):
    return main(["stylize", *argv, *(["--model", str(model)] if model else []), "--device", "cpu", "-q"])


def test_photo_to_png_with_the_default_model(tmp_path, capsys):
    src = photo(tmp_path / "photo.jpg", (64, 40))
    assert run(str(src), "-o", str(tmp_path / "out.png")) == 0
    with Image.open(tmp_path / "out.png") as out:
        assert out.format == "PNG" and out.size == (64, 40)
    assert f"-> {tmp_path / 'out.png'}" in capsys.readouterr().out
    assert f"(default: {DEFAULT_STYLE_MODEL})" in " ".join(subparsers_of(build_parser())["stylize"].format_help().split())


@pytest.mark.parametrize("ext, fmt", [(".jpg", "JPEG"), (".webp", "WEBP"), (".png", "PNG")])
def test_output_format_follows_the_extension(tmp_path, tiny_style_ckpt, ext, fmt):
    src = photo(tmp_path / "in.bmp")
    assert run(str(src), "-o", str(tmp_path / f"out{ext}"), model=tiny_style_ckpt) == 0
    with Image.open(tmp_path / f"out{ext}") as out:
        assert out.format == fmt and out.size == (48, 32)


def test_exif_orientation_is_honoured(tmp_path, tiny_style_ckpt):
    src = photo(tmp_path / "portrait.jpg", (48, 32), exif_orientation=6)  # stored landscape, shown turned 90 degrees
    assert run(str(src), "-o", str(tmp_path / "out.png"), model=tiny_style_ckpt) == 0
    assert Image.open(tmp_path / "out.png").size == (32, 48)


def test_mixed_folder_of_photos_and_videos_with_a_suffix(tmp_path, tiny_style_ckpt):
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(5):
        photo(folder / f"p{i}.jpg", seed=i)
    photo(folder / "scan.tiff")
    make_clip(folder / "clip.mp4", frames=6, audio=False)
    out = tmp_path / "out"
    config = StylizeConfig(inputs=folder, model=tiny_style_ckpt, output=out, device="cpu", batch_size=4,
                           progress=False, suffix="_styled")
    results = stylize_files(config)
    assert sorted(p.name for p in out.iterdir()) == ["clip_styled.mp4", "p0_styled.jpg", "p1_styled.jpg", "p2_styled.jpg",
                                                      "p3_styled.jpg", "p4_styled.jpg", "scan_styled.png"]
    photos = [r for r in results if r.kind == "photo"]
    assert len(photos) == 6 and all(r.output is not None for r in photos)
    assert photos[0].stats.batches == 2  # six same-sized photos, batch 4: two engine calls, not six
    assert len(frames_of(out / "clip_styled.mp4")) == 6


def test_the_default_suffix_names_the_model(tmp_path, tiny_style_ckpt):
    src = photo(tmp_path / "a.png")
    assert run(str(src), model=tiny_style_ckpt) == 0
    assert (tmp_path / f"a_{tiny_style_ckpt.stem}.png").is_file()


def test_animated_gif_in_and_out(tmp_path, tiny_style_ckpt):
    frames = [Image.fromarray(frame_pattern(i, 40, 32)) for i in range(4)]
    gif = tmp_path / "anim.gif"
    frames[0].save(gif, save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert run(str(gif), "-o", str(tmp_path / "out.gif"), model=tiny_style_ckpt) == 0
    with Image.open(tmp_path / "out.gif") as out:
        assert out.is_animated and out.n_frames == 4 and out.size == (40, 32)
    clip = make_clip(tmp_path / "clip.mp4", frames=5, audio=True)
    assert run(str(clip), "-o", str(tmp_path / "clip.gif"), model=tiny_style_ckpt) == 0
    with Image.open(tmp_path / "clip.gif") as out:
        assert out.n_frames == 5


def test_ffmpeg_style_inputs_and_times(tmp_path, tiny_style_ckpt):
    a = make_clip(tmp_path / "a.mp4", frames=24, fps=24, audio=False)  # 1 s
    b = make_clip(tmp_path / "b.mp4", frames=24, fps=24, audio=False)
    out = tmp_path / "out"
    assert run(str(a), "-i", str(b), "-o", str(out), "-ss", "00:00:00.25", "-to", "0.75", model=tiny_style_ckpt) == 0
    for name in ("a", "b"):
        assert len(frames_of(out / f"{name}_{tiny_style_ckpt.stem}.mp4")) == 12
    assert run("-i", str(a), "-o", str(tmp_path / "t.mp4"), "-ss", "0.5", "-t", "00:00.25", model=tiny_style_ckpt) == 0
    assert len(frames_of(tmp_path / "t.mp4")) == 6


@pytest.mark.parametrize("argv, words", [
    (["-ss", "nan"], "-ss/--start: expected seconds"),
    (["-t", "inf"], "-t/--duration: expected seconds"),
    (["-to", "1:75"], "-to/--to: expected seconds"),
    (["-t", "1", "-to", "2"], "not allowed with argument"),
    (["-y", "-n"], "not allowed with argument"),
    (["--encoder-opt", "novalue"], "KEY=VALUE"),
    (["--bogus"], "unrecognized arguments"),
])
def test_usage_errors_are_one_line_and_point_at_stylize_help(tmp_path, capsys, argv, words):
    with pytest.raises(SystemExit) as exc:
        main(["stylize", "clip.mp4", *argv])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and words in err and err.count("\n") == 1
    assert err.rstrip().endswith("(see rtstyle stylize --help)")


def test_time_formats():
    assert parse_time("90") == 90 and parse_time("1.5") == 1.5 and parse_time("01:30") == 90
    assert parse_time("1:02:03.5") == 3723.5
    for bad in ("nan", "inf", "-1", "1:75", "a", ""):
        with pytest.raises(InputError):
            parse_time(bad)


def test_no_overwrite_skips_existing_outputs(tmp_path, tiny_style_ckpt, capsys):
    src = photo(tmp_path / "a.png")
    dst = tmp_path / "out.png"
    dst.write_bytes(b"keep me")
    assert run(str(src), "-o", str(dst), "-n", model=tiny_style_ckpt) == 0
    assert dst.read_bytes() == b"keep me" and "nothing to do" in capsys.readouterr().err
    assert run(str(src), "-o", str(dst), model=tiny_style_ckpt) == 2  # neither -y nor -n: refused
    assert run(str(src), "-o", str(dst), "-y", model=tiny_style_ckpt) == 0
    assert Image.open(dst).format == "PNG"


def test_encoder_options_reach_the_encoder(tmp_path, tiny_style_ckpt):
    clip = make_clip(tmp_path / "clip.mp4", frames=12, audio=False)
    assert run(str(clip), "-o", str(tmp_path / "g2.mp4"), "--encoder-opt", "g=2", "--encoder-opt",
               "keyint_min=2", model=tiny_style_ckpt) == 0
    with av.open(str(tmp_path / "g2.mp4")) as c:
        keyframes = sum(p.is_keyframe for p in c.demux(video=0) if p.size)
    assert keyframes >= 5  # a keyframe every 2 frames (x264's default is every 250)


def test_output_size_control(tmp_path, tiny_style_ckpt):
    clip = make_clip(tmp_path / "clip.mp4", frames=3, size=(64, 48), audio=False)
    cases = {"keep.mp4": (["--max-side", "32", "--keep-size"], (64, 48)), "small.mp4": (["--max-side", "32"], (32, 24)),
             "w.mp4": (["--width", "40"], (40, 30)), "h.mp4": (["--height", "24"], (32, 24)),
             "scale.mp4": (["--scale", "0.5"], (32, 24)), "wh.mp4": (["--width", "50", "--height", "20"], (50, 20))}
    for name, (flags, size) in cases.items():
        assert run(str(clip), "-o", str(tmp_path / name), *flags, model=tiny_style_ckpt) == 0
        assert frames_of(tmp_path / name)[0].shape[1::-1] == size, name
    src = photo(tmp_path / "p.png", (80, 60))
    assert run(str(src), "-o", str(tmp_path / "p_out.png"), "--max-side", "40", "--keep-size", model=tiny_style_ckpt) == 0
    assert Image.open(tmp_path / "p_out.png").size == (80, 60)
    with pytest.raises(InputError, match="one way to size"):
        StylizeConfig(inputs="x.mp4", keep_size=True, out_scale=2)
    assert output_size(StylizeConfig(inputs="x.mp4", out_width=30), (60, 40), (60, 40), rotation=90) == (45, 30)


@pytest.mark.parametrize("src_name, out_name, words", [("p.png", "out.mp4", "is a photo"),
                                                       ("c.mp4", "out.jpg", "is a video")])
def test_photo_and_video_outputs_do_not_mix(tmp_path, capsys, src_name, out_name, words):
    src = photo(tmp_path / src_name) if src_name.endswith(".png") else make_clip(tmp_path / src_name, frames=2)
    assert run(str(src), "-o", str(tmp_path / out_name)) == 2
    assert words in capsys.readouterr().err


def test_a_broken_photo_is_named_before_the_engine_is_built(tmp_path, capsys):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg at all")
    assert run(str(bad), "-o", str(tmp_path / "out.png"), "--model", str(tmp_path / "missing.safetensors")) == 2
    err = capsys.readouterr().err
    assert "not a readable image" in err and "broken.jpg" in err and "missing.safetensors" not in err
