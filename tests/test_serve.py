"""rtstyle serve over its API with an aiortc client (no browser): the live track comes back
stylized (by the chosen model, switched mid-stream), file jobs keep every frame and the audio,
photos work, and `rtstyle serve` starts from the command line."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import numpy as np
import pytest
import torch

from rtstyle.benchmarks.serve_latency import stop_server
from rtstyle.engine import EngineOptions, open_engine
from rtstyle.serve.app import STUDIO
from rtstyle.serve.probe import STAMP_ROWS, probe
from tests.helpers_serve import leftovers, run, studio
from tests.helpers_video import audio_duration, make_clip, read_frames

from .conftest import REPO, TINY_STYLE, _save


@pytest.fixture
def two_models(tmp_path) -> tuple[Path, Path]:
    return (_save(tmp_path / "style_a.safetensors", TINY_STYLE, "style", seed=0),
            _save(tmp_path / "style_b.safetensors", TINY_STYLE, "style", seed=1))


def _stylize(model: Path, image: np.ndarray) -> np.ndarray:
    engine = open_engine(model, "torch", EngineOptions(device="cpu", batch_size=1))
    return engine(torch.from_numpy(image)[None])[0].numpy()


def _distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference without the stamp rows."""
    return float(np.abs(a[:-STAMP_ROWS].astype(np.float32) - b[:-STAMP_ROWS].astype(np.float32)).mean())


def test_live_track_comes_back_stylized_and_switches_style(two_models):
    """Frames come back stylized by the chosen model; switching model (and turning temporal smoothing
    on) mid-stream changes which model's output comes back; candidates are loopback only."""
    a, b = two_models

    async def go():
        async with studio(models=(str(a), str(b)), max_side=None) as (url, app):
            result = await probe(url, seconds=90, size=(160, 120), fps=10, settings={"model": "style_a"},
                                 change=(4, {"model": "style_b", "smoothing": 0.3}), frames=16)
            return result, app[STUDIO]

    result, st = run(go())
    assert result.answer["type"] == "answer" and result.session
    candidates = [line for line in result.answer["sdp"].splitlines() if line.startswith("a=candidate:")]
    assert candidates and all(line.split()[4] == "127.0.0.1" for line in candidates), candidates
    assert " typ srflx" not in result.answer["sdp"] and " typ relay" not in result.answer["sdp"]
    # Frames in flight at the switch may show either model (more of them on a loaded machine):
    # "before" came back before the change was asked for, "after" were sent after it was acknowledged.
    before = [r for r in result.received if r.before_change]
    after = [r for r in result.received if r.after_change]
    assert len(before) >= 3 and len(after) >= 3, (len(before), len(after))
    for rec, expect in [(r, "a") for r in before[-3:]] + [(r, "b") for r in after[-3:]]:
        sent = result.sent_images[rec.stamp]
        to_a, to_b = _distance(rec.image, _stylize(a, sent)), _distance(rec.image, _stylize(b, sent))
        assert _distance(rec.image, sent) > 2 * min(to_a, to_b), "the returned frame is not stylized"
        assert (to_a < to_b) == (expect == "a"), (expect, to_a, to_b)
    assert all(r.latency_ms > 0 for r in result.received)
    assert result.server["model"] == "style_b" and result.server["smoothing"] == 0.3 and result.server["error"] is None
    assert not st.sessions and st.session_slots.used == 0  # DELETE closed it


def test_file_job_keeps_every_frame_timestamps_and_audio(two_models, tmp_path):
    clip = make_clip(tmp_path / "in.mp4", frames=20, size=(64, 48), fps=10, vfr=True, audio=True)

    async def go():
        async with studio(models=(str(two_models[0]),)) as (url, app), aiohttp.ClientSession() as http:
            form = aiohttp.FormData()
            form.add_field("model", "style_a")
            form.add_field("file", clip.read_bytes(), filename="holiday.mp4", content_type="video/mp4")
            async with http.post(f"{url}/api/jobs", data=form) as r:
                assert r.status == 202, await r.text()
                job = await r.json()
            for _ in range(600):
                async with http.get(f"{url}/api/jobs/{job['id']}") as r:
                    job = await r.json()
                if job["status"] not in ("queued", "running"):
                    break
                await asyncio.sleep(0.1)
            assert job["status"] == "done", job
            assert job["progress"] == 1.0 and job["frames_done"] == 20
            async with http.get(url + job["download"]) as r:
                assert r.status == 200
                assert "attachment" in r.headers["Content-Disposition"]
                (tmp_path / "out.mp4").write_bytes(await r.read())
            async with http.get(url + job["download"]) as r:
                assert r.status == 404  # one download, then the files are gone
            return leftovers(app[STUDIO].store.root)

    left = run(go())
    assert left == []
    frames_in, times_in = read_frames(clip)
    frames_out, times_out = read_frames(tmp_path / "out.mp4")
    assert len(frames_out) == len(frames_in) == 20
    assert np.allclose(times_out, times_in, atol=1e-3)
    assert abs(audio_duration(tmp_path / "out.mp4") - audio_duration(clip)) < 0.05
    assert np.abs(frames_out[5].astype(float) - frames_in[5].astype(float)).mean() > 10  # stylized


def test_photo_job_returns_a_stylized_png(two_models, tmp_path):
    from PIL import Image

    from rtstyle.serve.probe import probe_pattern

    photo = tmp_path / "p.jpg"
    Image.fromarray(probe_pattern(0, 96, 64)).save(photo, quality=95)

    async def go():
        async with studio(models=(str(two_models[0]),)) as (url, _), aiohttp.ClientSession() as http:
            form = aiohttp.FormData()
            form.add_field("file", photo.read_bytes(), filename="p.jpg")
            async with http.post(f"{url}/api/jobs", data=form) as r:
                job = await r.json()
            while job["status"] in ("queued", "running"):
                await asyncio.sleep(0.05)
                async with http.get(f"{url}/api/jobs/{job['id']}") as r:
                    job = await r.json()
            assert job["status"] == "done", job
            async with http.get(url + job["download"]) as r:
                assert r.headers["Content-Type"] == "image/png"
                return await r.read()

    data = run(go())
    out = tmp_path / "out.png"
    out.write_bytes(data)
    image = np.asarray(Image.open(out))
    assert image.shape == (64, 96, 3)
    assert np.abs(image.astype(float) - probe_pattern(0, 96, 64).astype(float)).mean() > 10


def test_models_and_health(two_models):
    async def go():
        async with studio(models=(str(two_models[0]), "starry_night")) as (url, _), aiohttp.ClientSession() as http:
            async with http.get(f"{url}/api/models") as r:
                models = (await r.json())["models"]
            async with http.get(f"{url}/health") as r:
                health = await r.json()
            async with http.get(f"{url}/") as r:
                page = await r.text()
            async with http.get(f"{url}/static/app.js") as r:
                script = await r.text()
            return models, health, page, script

    models, health, page, script = run(go())
    assert [m["name"] for m in models] == ["style_a", "starry_night"]
    assert models[1] == {"name": "starry_night", "arch": "style", "styles": [], "style_image": False, "alpha": False}
    assert health["status"] == "ok" and health["sessions"] == 0 and health["max_sessions"] == 2
    assert "<script src=\"/static/app.js\">" in page and "requestVideoFrameCallback" in script


def _readme_block(title: str) -> list[str]:
    text = (REPO / "README.md").read_text()
    section = text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]


def test_readme_browser_studio_commands(tmp_path):
    """Every command of the README's "Browser studio" block, as written, against a real `rtstyle serve`
    (on a free port instead of 8000; the benchmark shortened); the server is stopped by pid."""
    if shutil.which("curl") is None:
        pytest.skip("curl not installed")
    lines = _readme_block("Browser studio")
    assert lines[0].startswith("rtstyle serve ") and all(line.startswith(("curl ", "python -m")) for line in lines[1:])
    make_clip(tmp_path / "input.mp4", frames=8, size=(64, 48), fps=8, audio=True)
    proc = subprocess.Popen([sys.executable, "-m", "rtstyle", *shlex.split(lines[0])[1:], "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    job_id = None
    try:
        line = proc.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert match, line + proc.stderr.read()
        port = match.group(1)
        for command in lines[1:]:
            command = command.replace("127.0.0.1:8000", f"127.0.0.1:{port}")
            if command.startswith("python -m"):
                args = [sys.executable, *shlex.split(command)[1:]]
                args[args.index("--out") + 1] = str(tmp_path / "bench")
                args += ["--seconds", "1", "--warmup", "0", "--sizes", "160x120"]
                subprocess.run(args, check=True, capture_output=True, timeout=600, cwd=tmp_path)
                assert "| 160x120 |" in (tmp_path / "bench.md").read_text()
                continue
            if "/ID" in command:
                command = command.replace("/ID", f"/{job_id}")
            out = subprocess.run(shlex.split(command), capture_output=True, text=True, check=True, cwd=tmp_path).stdout
            while command.endswith(f"/api/jobs/{job_id}") and json.loads(out)["status"] in ("queued", "running"):
                time.sleep(0.2)  # the status command, repeated until the job is finished
                out = subprocess.run(shlex.split(command), capture_output=True, text=True, check=True).stdout
            if command.endswith("/api/models"):
                assert [m["name"] for m in json.loads(out)["models"]] == ["starry_night", "great_wave"]
            elif command.endswith("/api/jobs"):
                job_id = json.loads(out)["id"]
            elif command.endswith(f"/api/jobs/{job_id}"):
                assert json.loads(out)["status"] == "done", out
        frames, _ = read_frames(tmp_path / "output.mp4")
        assert len(frames) == 8 and audio_duration(tmp_path / "output.mp4") > 0.9
    finally:
        stop_server(proc)  # SIGINT by pid, then SIGKILL if it hangs
    assert proc.returncode == 0, proc.stderr.read()


def test_adain_sessions_take_a_style_image_and_strength(tmp_path, two_models):
    """AdaIN models: an uploaded style image and the strength change the output live; a non-image
    upload, a bad strength and a style image for a fixed-style model are refused."""
    from PIL import Image

    from rtstyle.checkpoint import save_checkpoint
    from rtstyle.nets import AdaINConfig, build_model
    from rtstyle.serve.catalog import Catalog
    from rtstyle.serve.ice import host_candidates, rtc_configuration
    from rtstyle.serve.probe import _stamped_track, probe_pattern
    from rtstyle.serve.webrtc import SessionEngine, Settings

    torch.manual_seed(0)
    adain = save_checkpoint(tmp_path / "adain.safetensors", build_model(AdaINConfig(width=4)).eval(),
                            {"task": "style", "name": "adain"})
    painting = tmp_path / "painting.png"
    Image.fromarray(probe_pattern(40, 64, 64)[:, :, ::-1].copy()).save(painting)

    catalog = Catalog.build([str(adain), str(two_models[0])], device="cpu")
    assert catalog.get("adain").to_dict()["style_image"] is True
    engine = SessionEngine(catalog, Settings(model="adain"))
    frame = torch.from_numpy(probe_pattern(0, 64, 48))[None]
    first = engine(frame)
    engine.update(Settings(model="adain", style_image=painting))
    second = engine(frame)
    engine.update(Settings(model="adain", style_image=painting, alpha=0.2))
    third = engine(frame)
    engine.update(Settings(model="adain"))  # back to the default painting at full strength
    assert not torch.equal(first, second) and not torch.equal(second, third)
    assert torch.equal(engine(frame), first)

    async def go():
        from aiortc import RTCPeerConnection

        from rtstyle.serve.probe import ProbeResult

        async with studio(models=(str(adain), str(two_models[0])), device="cpu") as (url, _):
            pc = RTCPeerConnection(rtc_configuration())
            pc.addTrack(_stamped_track((160, 120), 5, ProbeResult("", {}), {}))
            with host_candidates(("127.0.0.1",)):
                await pc.setLocalDescription(await pc.createOffer())
            out = []
            try:
                async with aiohttp.ClientSession() as http:
                    async with http.post(f"{url}/offer", json={"sdp": pc.localDescription.sdp, "type": "offer",
                                                               "model": "adain"}) as r:
                        sid = (await r.json())["session"]
                    base = f"{url}/api/sessions/{sid}"
                    for method, path, kwargs in [
                            ("post", "/style-image", {"data": painting.read_bytes()}),
                            ("post", "/style-image", {"data": b"GIF89a not accepted"}),
                            ("post", "", {"json": {"alpha": 0.5}}),
                            ("post", "", {"json": {"alpha": 2}}),
                            ("post", "", {"json": {"model": "style_a"}}),
                            ("post", "/style-image", {"data": painting.read_bytes()}),
                            ("post", "", {"json": {"path": "/etc/passwd"}})]:
                        async with getattr(http, method)(base + path, **kwargs) as r:
                            out.append((r.status, await r.json()))
            finally:
                await pc.close()
            return out

    out = run(go())
    assert [s for s, _ in out] == [200, 415, 200, 400, 200, 400, 400], out
    assert out[0][1]["style_image"] is True and out[2][1]["alpha"] == 0.5
    assert "AdaIN" in out[5][1]["error"] and "unknown parameter" in out[6][1]["error"]


def test_latency_stamps_survive_codec_noise_and_are_absent_on_plain_frames():
    from rtstyle.serve.probe import probe_pattern
    from rtstyle.serve.stamps import read_stamp, write_stamp

    rng = np.random.default_rng(0)
    for number in (0, 1, 77, 4095):
        image = probe_pattern(number, 160, 120)
        write_stamp(image, number)
        noisy = np.clip(image.astype(int) + rng.integers(-40, 41, image.shape), 0, 255).astype(np.uint8)
        assert read_stamp(image) == number and read_stamp(noisy) == number
    assert read_stamp(probe_pattern(3, 160, 120)) is None
    assert read_stamp(np.zeros((120, 160, 3), np.uint8)) is None  # all black fails the check bits


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_serve_command_stops_cleanly_on_signals(tmp_path, signum):
    """Ctrl-C or SIGTERM (also with SIGINT ignored, as in a background shell job) closes the server
    with exit code 0 and leaves no upload folder behind."""
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    # SIGINT ignored by the child's own Python before rtstyle starts (no preexec_fn: running Python
    # between fork and exec is unsafe in this many-threaded test process).
    code = ("import signal, runpy, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); sys.argv[0] = 'rtstyle'; "
            "runpy.run_module('rtstyle', run_name='__main__')")
    proc = subprocess.Popen([sys.executable, "-c", code, "serve", "--port", "0", "--model", "starry_night"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert "http://127.0.0.1:" in proc.stdout.readline()
        assert len(list(tmp_path.glob("rtstyle-serve-*"))) == 1  # the private upload folder
        os.kill(proc.pid, signum)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, proc.stderr.read()
    assert list(tmp_path.glob("rtstyle-serve-*")) == []
