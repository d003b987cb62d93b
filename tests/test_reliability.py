"""Issue 8, reliability: bad inputs, faults, long runs and security, end to end through the CLI.

Each bad input must give one stderr line naming the bad value, a non-zero exit code and no output
or hidden temp file; each fault must leave either a playable output with every frame processed
before it, or nothing. Cases already covered elsewhere are not repeated here:

* missing / empty / text-as-.mp4 / audio-only input, output exists without -y, output equals
  input: ``test_stylize.py::test_cli_bad_inputs_one_line_exit_2``;
* truncated files, image as video, 10-bit / alpha / gray decoding, odd and tiny writer sizes:
  ``test_video.py``; VFR end to end: ``test_stylize.py::test_cli_stylizes_vfr_clip_with_audio``;
* corrupt, foreign and wrong-task checkpoints at the library level: ``test_checkpoint.py``;
  style image that is not an image, wrong-kind ``--resume``: ``test_trainers.py``;
* SIGINT/SIGTERM at the library level: ``test_stylize.py::test_signal_finalises_playable_partial_output``;
* engine errors stopping all pipeline threads: ``test_pipeline.py``;
* camera disconnect and ``--reconnect``: ``test_live.py``;
* the numpy-only unpickler and the VGG checksum: ``test_vgg.py``.
"""

from __future__ import annotations

import ast
import contextlib
import csv
import errno
import os
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import date
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import safetensors.torch
import torch

from rtstyle import stylize as stylize_module
from rtstyle.cli import main
from rtstyle.engine import Engine
from rtstyle.live import LiveConfig, run_live
from rtstyle.stylize import StylizeConfig, stylize_video
from rtstyle.video import EncoderConfig, VideoReader, VideoWriter, probe
from tests.conftest import REPO, TINY_STYLE
from tests.helpers_video import FailingEngine, IdentityEngine, frame_pattern, make_clip, read_frames

# ------------------------------------------------------------------------------------ helpers


def cli(capsys, *argv) -> tuple[int, list[str]]:
    """Run ``rtstyle ARGV``; returns the exit code and the stderr lines other than the engine
    choice and warnings (so an error must be exactly one line, with no usage text around it)."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse usage errors
        code = exc.code
    err = capsys.readouterr().err.strip().splitlines()
    return code, [line for line in err if not line.startswith(("engine: ", "warning: "))]


def assert_one_line_error(code: int, errors: list[str], *names: str, exit_code: int = 2) -> None:
    assert code == exit_code and len(errors) == 1, (code, errors)
    for name in names:
        assert name in errors[0], (name, errors[0])


def leftovers(folder: Path) -> list[str]:
    """Hidden partial files or probe files a failed run must not leave behind."""
    return sorted(p.name for p in folder.rglob(".*"))


def stylize_argv(src: Path, out: Path, model, *extra) -> list:
    return ["stylize", src, "-o", out, "--model", model, "--no-progress", "--preset", "ultrafast", "--device", "cpu",
            *extra]


def zero_frame_clip(path: Path) -> Path:
    """A container with a video stream but no frames at all."""
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=24)
        vs.width, vs.height, vs.pix_fmt = 64, 48, "yuv420p"
        out.start_encoding()  # write the header although no packet follows
    return path


@contextlib.contextmanager
def small_filesystem(path: Path, options: str):
    """A tmpfs at ``path`` (needs root and mount(8)); skips the test where it cannot be made."""
    path.mkdir()
    try:
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True)
    except FileNotFoundError:
        pytest.skip("mount(8) not available")
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


@pytest.fixture
def clip(tmp_path) -> Path:
    return make_clip(tmp_path / "in.mp4", frames=6, audio=False)


# ------------------------------------------------------------------------------ bad inputs


@pytest.mark.parametrize("suffix,message", [
    (".mp4", "no video stream"),  # mp4 drops a track without samples
    (".mkv", "not a readable video"),  # matroska without a single cluster
])
def test_zero_frame_video_is_one_line_error(tmp_path, tiny_style_ckpt, capsys, suffix, message):
    src = zero_frame_clip(tmp_path / f"zero{suffix}")
    code, errors = cli(capsys, *stylize_argv(src, tmp_path / "o.mp4", tiny_style_ckpt))
    assert_one_line_error(code, errors, src.name, message)
    assert not (tmp_path / "o.mp4").exists() and not leftovers(tmp_path)


def test_truncated_video_finishes_output_and_warns(tmp_path, tiny_style_ckpt, capsys):
    src = make_clip(tmp_path / "cut.mkv", frames=40, size=(96, 64), audio=False)
    src.write_bytes(src.read_bytes()[: src.stat().st_size * 6 // 10])
    decodable = len(list(VideoReader(src)))
    out = tmp_path / "o.mp4"
    code = main([str(a) for a in stylize_argv(src, out, tiny_style_ckpt)])
    err = capsys.readouterr().err
    assert code == 0, err
    assert re.search(r"warning: cut\.mkv: .*(damaged|truncated)", err)
    images, _ = read_frames(out)
    assert 5 < decodable < 40 and len(images) == decodable  # every good frame, then a finished file


@pytest.mark.parametrize("codec,pix_fmt,suffix,rotation", [
    ("libx264", "yuv420p10le", ".mp4", 0),  # 10-bit
    ("png", "rgba", ".mov", 0),  # alpha
    ("ffv1", "gray", ".mkv", 0),  # grayscale
    ("libx264", None, ".mp4", 90),  # rotation metadata
])
def test_unusual_sources_stylize_end_to_end(tmp_path, tiny_style_ckpt, capsys, codec, pix_fmt, suffix, rotation):
    src = make_clip(tmp_path / f"in{suffix}", frames=4, codec=codec, pix_fmt=pix_fmt, rotation=rotation, audio=False)
    out = tmp_path / "o.mp4"
    code = main([str(a) for a in stylize_argv(src, out, tiny_style_ckpt)])
    assert code == 0, capsys.readouterr().err
    info = probe(out)
    assert (info.width, info.height, info.num_frames, info.rotation) == (64, 48, 4, rotation)
    assert info.pix_fmt in ("yuv420p", "yuvj420p")  # player-friendly 8-bit 4:2:0 whatever the source


@pytest.mark.parametrize("size", [(1, 1), (2, 3), (2000, 16), (16, 1200)], ids=str)
def test_tiny_and_extreme_aspect_frames_through_a_real_net(tmp_path, tiny_style_ckpt, capsys, size):
    w, h = size
    src = make_clip(tmp_path / "in.mkv", frames=2, size=size, audio=False)
    out = tmp_path / "o.mp4"
    code = main([str(a) for a in stylize_argv(src, out, tiny_style_ckpt)])
    assert code == 0, capsys.readouterr().err
    images, _ = read_frames(out)
    assert len(images) == 2 and images[0].shape == (h, w, 3)


def _foreign_safetensors(path: Path) -> Path:
    safetensors.torch.save_file({"encoder.weight": torch.zeros(3, 3)}, str(path))
    return path


@pytest.mark.parametrize("make,message", [
    (lambda p: p.write_bytes(os.urandom(300)) and p, "not a safetensors checkpoint"),
    (lambda p: p.write_text("just text\n") and p, "not a safetensors checkpoint"),
    (_foreign_safetensors, "not an rtstyle checkpoint"),
    (lambda p: p, "model file not found"),
], ids=["random-bytes", "text", "foreign-safetensors", "missing"])
def test_bad_checkpoints_are_one_line_errors(tmp_path, clip, tiny_style_ckpt, capsys, make, message):
    model = tmp_path / "model.safetensors"
    make(model)
    out = tmp_path / "o.mp4"
    for argv in (stylize_argv(clip, out, model), stylize_argv(clip, out, tiny_style_ckpt, "--sr", model)):
        code, errors = cli(capsys, *argv)
        assert_one_line_error(code, errors, "model.safetensors", message)
    assert not out.exists() and not leftovers(tmp_path)


def test_unknown_model_name_lists_the_bundled_ones(tmp_path, clip, capsys):
    code, errors = cli(capsys, *stylize_argv(clip, tmp_path / "o.mp4", "no_such_style"))
    assert_one_line_error(code, errors, "'no_such_style'", "bundled")


def test_sr_flag_needs_a_super_resolution_model(tmp_path, clip, tiny_style_ckpt, tiny_sr_ckpt, capsys):
    code, errors = cli(capsys, *stylize_argv(clip, tmp_path / "o.mp4", tiny_style_ckpt, "--sr", tiny_style_ckpt))
    assert_one_line_error(code, errors, "--sr", str(tiny_style_ckpt), "super-resolution")
    assert not (tmp_path / "o.mp4").exists()
    # --model takes either task: an SR model alone upscales the video.
    code, _ = cli(capsys, *stylize_argv(clip, tmp_path / "o.mp4", tiny_sr_ckpt))
    assert code == 0 and (probe(tmp_path / "o.mp4").width, probe(tmp_path / "o.mp4").height) == (256, 192)


@pytest.mark.parametrize("flag,value,names", [
    ("--backend", "nonesuch", ["'nonesuch'", "onnxruntime"]),
    ("--device", "tpu", ["'tpu'", "cuda:N"]),
    ("--precision", "fp8", ["'fp8'", "bf16"]),
    ("--decoder", "ffmpeg", ["'ffmpeg'", "opencv"]),
    ("--resize", "640x", ["'640x'", "WIDTHxHEIGHT"]),
])
def test_unknown_option_values_are_one_line_errors(tmp_path, clip, tiny_style_ckpt, capsys, flag, value, names):
    code, errors = cli(capsys, *stylize_argv(clip, tmp_path / "o.mp4", tiny_style_ckpt, flag, value))
    assert_one_line_error(code, errors, *names)
    assert not (tmp_path / "o.mp4").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is present")
@pytest.mark.parametrize("command", ["stylize", "live", "train"])
def test_gpu_requested_where_none_exists(tmp_path, clip, tiny_style_ckpt, capsys, command):
    samples = REPO / "rtstyle" / "assets" / "samples"
    argv = {
        "stylize": stylize_argv(clip, tmp_path / "o.mp4", tiny_style_ckpt),
        "live": ["live", "--camera", clip, "--model", tiny_style_ckpt, "--no-window", "--output", tmp_path / "rec.mp4",
                 "--device", "cpu"],
        "train": ["train", "style", "--style", samples / "styles" / "starry_night.jpg", "--data", samples / "photos",
                  "--out", tmp_path / "t.safetensors", "--no-progress", "--device", "cpu"],
    }[command]
    argv[argv.index("cpu")] = "cuda"
    code, errors = cli(capsys, *argv)
    assert_one_line_error(code, errors, "'cuda'", "no CUDA GPU", "--device cpu")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4", "tiny_style.safetensors"]


def test_unwritable_output_folder(tmp_path, clip, tiny_style_ckpt, capsys):
    locked = tmp_path / "locked"
    with contextlib.ExitStack() as stack:
        if os.geteuid() == 0:  # root writes through permissions: use a read-only file system
            stack.enter_context(small_filesystem(locked, "ro,size=64k"))
        else:
            locked.mkdir(mode=0o500)
            stack.callback(locked.chmod, 0o700)
        code, errors = cli(capsys, *stylize_argv(clip, locked / "o.mp4", tiny_style_ckpt))
        assert_one_line_error(code, errors, str(locked / "o.mp4"), "not writable")
        assert not list(locked.iterdir())
    # A path through a regular file is no folder at all.
    code, errors = cli(capsys, *stylize_argv(clip, clip / "o.mp4", tiny_style_ckpt))
    assert_one_line_error(code, errors, str(clip / "o.mp4"))


def test_output_that_cannot_be_created_names_the_file_not_the_codec(tmp_path):
    """FFmpeg opens the file only when encoding starts; a refusal there is a folder problem."""
    with small_filesystem(tmp_path / "ro", "ro,size=64k") as ro:
        with pytest.raises(Exception) as info:
            VideoWriter(ro / "o.mp4", 16, 16)
    message = str(info.value)
    assert type(info.value).__name__ == "OutputError" and str(ro / "o.mp4") in message
    assert "codec" not in message and "\n" not in message


# ---------------------------------------------------------------------------------- faults


def _identity_engine(monkeypatch, engine=None):
    """Make the CLI use ``engine`` (default: identity) instead of opening --model."""
    engine = engine or IdentityEngine()
    monkeypatch.setattr(stylize_module, "open_chain", lambda config, on_status=None: engine)
    return engine


def test_disk_full_mid_stream_write_hook(tmp_path, monkeypatch, capsys):
    """The muxer reports ENOSPC after a few packets: one clear error, nothing at the output path."""
    src = make_clip(tmp_path / "in.mp4", frames=40, audio=True)
    out = tmp_path / "o.mp4"
    out.write_bytes(b"previous result")
    _identity_engine(monkeypatch)
    original = VideoWriter._mux
    calls = []

    def full_after_five(self, packets):
        calls.append(1)
        if len(calls) <= 5:
            return original(self, packets)

        def failing():
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            yield  # a generator, like the encoder's packet lists

        return original(self, failing())

    monkeypatch.setattr(VideoWriter, "_mux", full_after_five)
    code, errors = cli(capsys, *stylize_argv(src, out, "identity", "-y", "--batch-size", "2"))
    assert_one_line_error(code, errors, "disk full", str(out), "No space left on device")
    assert out.read_bytes() == b"previous result"  # never replaced by a truncated file
    assert not leftovers(tmp_path)


@pytest.mark.parametrize("fs_size,frames", [("64k", 60), ("12k", 8)], ids=["mid-stream", "at-finalise"])
def test_disk_full_on_a_small_filesystem(tmp_path, monkeypatch, capsys, fs_size, frames):
    """A real full disk: FFmpeg fails either while writing packets or when writing the index at
    the end; both are one-line errors and leave the small disk empty."""
    src = tmp_path / "noise.mkv"
    rng = np.random.default_rng(0)
    with VideoWriter(src, 128, 96, Fraction(1, 25), Fraction(25), EncoderConfig(crf=0, preset="ultrafast")) as w:
        for i in range(frames):
            w.write(rng.integers(0, 256, (96, 128, 3), dtype=np.uint8), i)  # noise: big packets
    _identity_engine(monkeypatch)
    with small_filesystem(tmp_path / "small", f"size={fs_size}") as small:
        out = small / "o.mp4"
        code, errors = cli(capsys, *stylize_argv(src, out, "identity", "--crf", "0"))
        assert_one_line_error(code, errors, "disk full", str(out))
        assert list(small.iterdir()) == []


def test_engine_error_mid_stream_is_one_line_and_stops_promptly(tmp_path, monkeypatch, capsys):
    src = make_clip(tmp_path / "in.mp4", frames=300, size=(32, 32), audio=False)
    _identity_engine(monkeypatch, FailingEngine(fail_at=3))
    result = {}
    runner = threading.Thread(target=lambda: result.setdefault("code", main(
        [str(a) for a in stylize_argv(src, tmp_path / "o.mp4", "x", "--batch-size", "2")])))
    runner.start()
    runner.join(timeout=60)
    assert not runner.is_alive(), "stylize hung after an engine error"
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert_one_line_error(result["code"], errors, "RuntimeError", "engine failure at batch 3", exit_code=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]
    assert not [t.name for t in threading.enumerate() if t.name.startswith("rtstyle-")]


def _wait_for_encoded_frames(path: Path, proc: subprocess.Popen, timeout: float = 60) -> None:
    """Until the child's hidden partial output holds some encoded video."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"stylize ended before the signal: {proc.communicate()[1][-2000:]}")
        if path.exists() and path.stat().st_size > 4000:
            return
        time.sleep(0.02)
    pytest.fail("no frames encoded in time")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_to_the_cli_finalises_every_processed_frame(tmp_path, tiny_style_ckpt, signum):
    """A real process and a real signal: exit code 130, and the output plays and holds exactly the
    frames the message reports."""
    src = make_clip(tmp_path / "in.mp4", frames=400, size=(64, 48))
    out = tmp_path / "o.mp4"
    argv = stylize_argv(src, out, tiny_style_ckpt, "--batch-size", "1")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "rtstyle", *map(str, argv)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_encoded_frames(tmp_path / f".o.partial-{proc.pid}.mp4", proc)
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    lines = [line for line in err.splitlines() if line.startswith("rtstyle stylize:")]
    assert len(lines) == 1 and str(out) in lines[0], err
    reported = int(re.search(r"interrupted after (\d+) frames", lines[0]).group(1))
    images, times = read_frames(out)
    assert 0 < reported < 400 and len(images) == reported
    assert probe(out).audio_codecs == ("aac",) and not leftovers(tmp_path)


class _DisconnectingCamera:
    """A camera that delivers ``frames`` pictures, then fails every read (unplugged)."""

    def __init__(self, frames: int):
        self.left = frames
        self.n = 0

    def read(self):
        if self.left <= 0:
            return False, None
        time.sleep(0.005)
        self.left -= 1
        self.n += 1
        return True, frame_pattern(self.n, 32, 24)[..., ::-1].copy()

    def release(self):
        pass


def test_camera_disconnect_finalises_the_recording(tmp_path):
    out = tmp_path / "rec.mp4"
    cfg = LiveConfig(source="0", models=("fake",), window=False, output=out)
    result = run_live(cfg, open_capture=lambda source: _DisconnectingCamera(5), engines=[IdentityEngine()])
    assert result.ended_by == "disconnected" and "disconnected" in result.summary()
    images, _ = read_frames(out)
    assert len(images) == result.frames_shown > 0 and not leftovers(tmp_path)


# -------------------------------------------------------------------------------- security

_PACKAGES = ("rtstyle", "trainers", "export", "benchmarks")
# Calls that unpickle: a user-supplied file must never reach one of them.
_UNPICKLING = {"pickle.load", "pickle.loads", "pickle.Unpickler", "cPickle.load", "dill.load", "dill.loads",
               "joblib.load", "pandas.read_pickle", "pd.read_pickle", "torch.jit.load"}


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return node.id if isinstance(node, ast.Name) else ""


def _keyword(call: ast.Call, name: str):
    return next((k.value for k in call.keywords if k.arg == name), None)


def _unsafe_loads(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = _dotted(node.func)
            weights_only = _keyword(node, "weights_only")
            allow_pickle = _keyword(node, "allow_pickle")
            if name in _UNPICKLING:
                found.append((node.lineno, name))
            elif name == "torch.load" and not (isinstance(weights_only, ast.Constant) and weights_only.value is True):
                found.append((node.lineno, "torch.load without weights_only=True"))
            elif name in ("np.load", "numpy.load") and not (allow_pickle is None or (
                    isinstance(allow_pickle, ast.Constant) and allow_pickle.value is False)):
                found.append((node.lineno, "np.load with allow_pickle"))
        elif isinstance(node, ast.ClassDef):
            # The one allowed unpickler: vgg's, which resolves numpy array classes only.
            bases = [_dotted(b) for b in node.bases]
            if "pickle.Unpickler" in bases and node.name != "_NumpyOnlyUnpickler":
                found.append((node.lineno, f"pickle.Unpickler subclass {node.name}"))
    return found


def test_no_pickle_load_of_user_files():
    sources = [p for pkg in _PACKAGES for p in sorted((REPO / pkg).rglob("*.py"))]
    assert len(sources) > 20
    unsafe = [f"{p.relative_to(REPO)}:{line}: {what}" for p in sources
              for line, what in _unsafe_loads(ast.parse(p.read_text(), str(p)))]
    assert not unsafe, unsafe


def test_the_scanner_catches_unsafe_loads():
    code = ("import pickle, torch, numpy as np\n"
            "pickle.load(f)\n"
            "torch.load(p)\n"
            "torch.load(p, weights_only=False)\n"
            "np.load(p, allow_pickle=True)\n"
            "class U(pickle.Unpickler): pass\n"
            "torch.load(p, weights_only=True)\n"
            "np.load(p)\n")
    assert sorted(line for line, _ in _unsafe_loads(ast.parse(code))) == [2, 3, 4, 5, 6]


def test_checkpoint_load_never_unpickles(tiny_style_ckpt, monkeypatch):
    """Loading (and running) a checkpoint goes through safetensors only."""
    import pickle

    def refuse(*args, **kwargs):
        raise AssertionError("pickle used while loading a checkpoint")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    from rtstyle.engine import EngineOptions, open_engine

    engine = open_engine(tiny_style_ckpt, "torch", EngineOptions(device="cpu"))
    assert engine(torch.zeros(1, 16, 16, 3, dtype=torch.uint8)).shape == (1, 16, 16, 3)


def test_output_paths_are_never_built_from_file_contents(tmp_path, capsys):
    """A checkpoint whose metadata names a path outside the folder still writes beside the input,
    named after the checkpoint's file name."""
    work = tmp_path / "work"
    work.mkdir()
    model = work / "model.safetensors"
    torch.manual_seed(0)
    from rtstyle.checkpoint import save_checkpoint
    from rtstyle.nets import build_model

    save_checkpoint(model, build_model(TINY_STYLE), {"task": "style", "name": "../../escaped",
                                                     "style_image": {"name": "../../escaped.jpg", "sha256": "0"}})
    src = make_clip(work / "in.mp4", frames=2, audio=False)
    code = main(["stylize", str(src), "--model", str(model), "--no-progress", "--device", "cpu"])
    assert code == 0, capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["in.mp4", "in_model.mp4", "model.safetensors"]


# ------------------------------------------------------------------------------- long runs

LONG_FRAMES = 10_000
LONG_SIZE = (320, 180)
RSS_EVERY = 100  # frames between memory samples
WARMUP_FRAMES = 1000
RSS_GROWTH_LIMIT_MB = 50


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def _long_clip(path: Path, frames: int, size: tuple[int, int]) -> Path:
    """A flat background with a moving square: cheap to make and to encode, yet every frame differs."""
    w, h = size
    with VideoWriter(path, w, h, Fraction(1, 25), Fraction(25),
                     EncoderConfig(crf=23, preset="ultrafast", options={"g": "250"})) as writer:
        for i in range(frames):
            image = np.full((h, w, 3), (40, 90, 160), np.uint8)
            x, y = (7 * i) % (w - 32), (3 * i) % (h - 32)
            image[y:y + 32, x:x + 32] = (250, 220, 30)
            writer.write(image, i)
    return path


class MemorySampledEngine(Engine):
    """A real torch engine (a 1x1 conv through ``TorchEngine``'s uint8 -> float -> uint8 path) that
    records the process's resident memory every ``RSS_EVERY`` frames."""

    backend = "torch-sampled"

    def __init__(self):
        from rtstyle.backends.torch_backend import TorchEngine

        conv = torch.nn.Conv2d(3, 3, 1)
        with torch.no_grad():
            conv.weight.copy_(torch.eye(3)[:, :, None, None] * 0.9)
            conv.bias.fill_(0.05)
        self.inner = TorchEngine(conv, torch.device("cpu"), "fp32", 1, "a 1x1 conv")
        super().__init__(device=self.inner.device, precision="fp32", scale=1, reason="memory sampling")
        self.frames = 0
        self.samples: list[tuple[int, float]] = []

    def _run(self, frames: torch.Tensor) -> torch.Tensor:
        out = self.inner(frames)
        before = self.frames
        self.frames += len(frames)
        if self.frames // RSS_EVERY != before // RSS_EVERY:
            self.samples.append((self.frames, _rss_mb()))
        return out


def _write_memory_results(samples: list[tuple[int, float]], note: str) -> None:
    results = REPO / "benchmarks" / "results"
    stem = results / f"memory-10k-{date.today().isoformat()}"
    with open(stem.with_suffix(".csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["frames", "rss_mb"])
        writer.writerows((n, f"{mb:.1f}") for n, mb in samples)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot([n for n, _ in samples], [mb for _, mb in samples], lw=1.2)
    ax.axvline(WARMUP_FRAMES, color="grey", ls="--", lw=0.8, label="end of warm-up")
    ax.set_xlabel("frames through the pipeline")
    ax.set_ylabel("resident memory (MB)")
    ax.set_title(f"rtstyle stylize, {LONG_FRAMES} frames {LONG_SIZE[0]}x{LONG_SIZE[1]}, CPU")
    ax.text(0.01, 0.03, note, transform=ax.transAxes, fontsize=8)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(stem.with_suffix(".png"), dpi=120)
    plt.close(fig)


@pytest.mark.slow
def test_ten_thousand_frames_exact_count_and_flat_memory(tmp_path):
    src = _long_clip(tmp_path / "long.mp4", LONG_FRAMES, LONG_SIZE)
    engine = MemorySampledEngine()
    config = StylizeConfig(inputs=(src,), output=tmp_path / "o.mp4", batch_size=4, progress=False,
                           encoder=EncoderConfig(crf=30, preset="ultrafast"))
    result = stylize_video(config, engine=engine)
    assert result.frames_in == result.frames_out == LONG_FRAMES
    frames = 0
    with av.open(str(result.output)) as c:
        for packet in c.demux(video=0):
            frames += packet.size > 0
    assert frames == LONG_FRAMES
    after_warmup = [mb for n, mb in engine.samples if n >= WARMUP_FRAMES]
    growth = max(after_warmup) - after_warmup[0]
    note = (f"after warm-up: start {after_warmup[0]:.0f} MB, max {max(after_warmup):.0f} MB, "
            f"end {after_warmup[-1]:.0f} MB; growth {growth:.1f} MB")
    print(note, result.stats.summary())
    if os.environ.get("RTSTYLE_WRITE_RESULTS") == "1":
        _write_memory_results(engine.samples, note)
    assert growth < RSS_GROWTH_LIMIT_MB, engine.samples
