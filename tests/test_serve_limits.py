"""Issue 27: every limit holds at the studio's door, against a real server on 127.0.0.1.

Slow clients cannot hold job slots (a slot is taken once an upload is on disk; a body must keep
up a minimum rate; uploads in flight are counted per address); a job obeys the same limits as
`rtstyle stylize` (rtstyle.limits), the server's, which a client can only tighten; nothing a
refused, failed or abandoned job uploaded stays, and all jobs together stay under --max-disk-mb;
folders of dead servers go at start; token mode serves its own script; 127.0.0.0/8 is loopback;
Origin compares the scheme; bad input is a one-line 400 naming no server path.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import numpy as np
import pytest
from aiohttp import web
from PIL import Image

from rtstyle.limits import Limits
from rtstyle.serve.app import STUDIO, ServeConfig, create_app
from rtstyle.serve.security import STORE_PREFIX, UploadStore
from tests.helpers_serve import leftovers, run, studio
from tests.helpers_video import make_clip

from .conftest import REPO, TINY_STYLE, _save
from .test_bad_inputs import png_header, size_switching_mkv


@pytest.fixture
def model(tmp_path):
    return str(_save(tmp_path / "style_a.safetensors", TINY_STYLE, "style"))


def _form(data: bytes, name: str = "c.mp4", **fields) -> aiohttp.FormData:
    form = aiohttp.FormData()
    for key, value in {"model": "style_a", **fields}.items():
        form.add_field(key, str(value))
    form.add_field("file", data, filename=name, content_type="application/octet-stream")
    return form


async def _wait_job(http, url: str, job_id: str) -> dict:
    for _ in range(600):
        async with http.get(f"{url}/api/jobs/{job_id}") as r:
            job = await r.json()
        if job.get("status") not in ("queued", "running"):
            return job
        await asyncio.sleep(0.05)
    raise AssertionError(f"job {job_id} still running")


def _one_line_and_private(message: str, root: Path) -> None:
    assert "\n" not in message and "Traceback" not in message
    assert str(root) not in message and "/tmp/" not in message and str(REPO) not in message, message


# ------------------------------------------------------------------------------ slow clients


async def _slow_upload(port: int, source_ip: str, head: bytes, every: float = 0.3, give_up: float = 8.0):
    """A client that sends a valid multipart upload's first bytes, then one byte every ``every``
    seconds (an attacker holding a connection open). Returns (status, seconds until answered)."""
    boundary = "----slowclient"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nstyle_a\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"c.mp4\"\r\n"
            "Content-Type: video/mp4\r\n\r\n").encode() + head
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source_ip, 0))
    start = time.monotonic()
    writer.write(f"POST /api/jobs HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: multipart/form-data; "
                 f"boundary={boundary}\r\nContent-Length: {len(body) + 10_000_000}\r\n\r\n".encode() + body)
    try:
        while time.monotonic() - start < give_up:
            try:
                line = await asyncio.wait_for(reader.readline(), every)
                return int(line.split()[1]) if line else None, time.monotonic() - start
            except asyncio.TimeoutError:
                writer.write(b"\x00")  # one more byte: the connection is alive, just slow
                await writer.drain()
        return None, time.monotonic() - start
    except ConnectionError:
        return None, time.monotonic() - start
    finally:
        writer.close()


def test_slow_clients_hold_no_job_slot_and_are_cut_off(model, tmp_path):
    clip = make_clip(tmp_path / "c.mp4", frames=4, size=(32, 24), audio=False).read_bytes()

    async def go():
        async with studio(models=(model,), max_jobs=1, upload_grace_s=1.0, min_upload_kbps=20.0,
                          max_uploads_per_client=2) as (url, app):
            st, port = app[STUDIO], int(url.rsplit(":", 1)[1])
            slow = [asyncio.ensure_future(_slow_upload(port, "127.0.0.2", clip[:200])) for _ in range(2)]
            await asyncio.sleep(0.4)
            in_flight = st.uploading["127.0.0.2"]
            # A third upload from the same address is refused at once; another address gets the slot.
            third = await _slow_upload(port, "127.0.0.2", clip[:200], give_up=3.0)
            connector = aiohttp.TCPConnector(local_addr=("127.0.0.3", 0))
            async with aiohttp.ClientSession(connector=connector) as http:
                async with http.post(f"{url}/api/jobs", data=_form(clip)) as r:
                    fair = (r.status, await r.json())
                job = await _wait_job(http, url, fair[1]["id"]) if fair[0] == 202 else None
            answers = await asyncio.gather(*slow)
            await asyncio.sleep(0.2)
            return in_flight, third, fair, job, answers, dict(st.uploading), st.jobs.slots.used, leftovers(st.store.root)

    in_flight, third, fair, job, answers, uploading, used, left = run(go())
    assert in_flight == 2
    assert third[0] == 429 and third[1] < 1.0
    assert fair[0] == 202 and job["status"] == "done", (fair, job)
    for status, seconds in answers:  # cut off just after the grace period, not after minutes
        assert status == 408 and 1.0 <= seconds < 3.0, answers
    assert uploading == {} and used == 0
    assert [p.name for p in left if p.suffix] == ["input.mp4", "output.mp4"], left  # only the finished job's


def test_a_client_that_disconnects_mid_upload_is_one_log_line(model, tmp_path, caplog):
    clip = make_clip(tmp_path / "c.mp4", frames=4, size=(32, 24), audio=False).read_bytes()

    async def go():
        async with studio(models=(model,)) as (url, app):
            st, port = app[STUDIO], int(url.rsplit(":", 1)[1])
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            boundary = "----gone"
            head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"c.mp4\"\r\n\r\n"
                    ).encode() + clip[:3000]
            writer.write(f"POST /api/jobs HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: multipart/form-data; "
                         f"boundary={boundary}\r\nContent-Length: 1000000\r\n\r\n".encode() + head)
            await writer.drain()
            for _ in range(100):  # the upload has started
                if st.uploading:
                    break
                await asyncio.sleep(0.02)
            writer.transport.abort()  # gone, mid-body
            for _ in range(200):
                if not st.uploading:
                    break
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.2)
            return dict(st.uploading), leftovers(st.store.root), st.jobs.slots.used

    with caplog.at_level(logging.DEBUG):
        uploading, left, used = run(go())
    assert uploading == {} and left == [] and used == 0
    about = [r for r in caplog.records if r.levelno >= logging.INFO and r.name.startswith(("rtstyle", "aiohttp"))]
    assert len(about) == 1 and "ended early" in about[0].getMessage(), [r.getMessage() for r in about]
    assert not any(r.exc_info for r in caplog.records), "a traceback was logged"


# ------------------------------------------------------------------------------ the same limits as stylize


def test_jobs_obey_the_servers_limits_and_clients_only_tighten_them(model, tmp_path):
    small = make_clip(tmp_path / "small.mp4", frames=8, size=(48, 32), fps=10, audio=False).read_bytes()
    wide = make_clip(tmp_path / "wide.mp4", frames=4, size=(96, 96), audio=False).read_bytes()
    bomb = png_header(tmp_path / "bomb.png", 8000, 8000).read_bytes()
    limits = Limits(max_pixels=64 * 64, max_frames=10, max_seconds=5.0, hint="the studio's limit")

    async def go():
        async with studio(models=(model,), limits=limits) as (url, app):
            st = app[STUDIO]
            out = []
            async with aiohttp.ClientSession() as http:
                for data, name, fields in [
                        (bomb, "bomb.png", {}),  # 64 MP declared by a 100-byte file: refused from the header
                        (wide, "wide.mp4", {}),  # over the server's pixels
                        (wide, "wide.mp4", {"max_pixels": 10**9}),  # a client cannot loosen it
                        (small, "small.mp4", {"max_frames": 5}),  # ... but can tighten
                        (small, "small.mp4", {"max_seconds": 0.5}),
                        (small, "small.mp4", {"max_side": -5}),
                        (small, "small.mp4", {"smoothing": "abc"}),
                        (small, "small.mp4", {"alpha": "x"}),
                        (small, "small.mp4", {"max_frames": 8})]:  # within every limit: runs
                    async with http.post(f"{url}/api/jobs", data=_form(data, name, **fields)) as r:
                        out.append((r.status, await r.json()))
                done = await _wait_job(http, url, out[-1][1]["id"])
            return out, done, st.store.root, leftovers(st.store.root), st.jobs.slots.used

    out, done, root, left, used = run(go())
    assert [s for s, _ in out] == [400] * 8 + [202], out
    errors = [body["error"] for _, body in out[:-1]]
    for error in errors:
        _one_line_and_private(error, root)
    assert "8000x8000 = 64,000,000 pixels, above the limit of 4,096 (the studio's limit)" in errors[0]
    assert "96x96 = 9,216 pixels, above the limit of 4,096" in errors[1] and "above the limit of 4,096" in errors[2]
    assert "holds 8 frames, above the limit of 5 per input" in errors[3]
    assert "above the limit of 0.5 s per input" in errors[4]
    assert errors[5].startswith("max_side must be an integer >= 16") and errors[5].endswith("got '-5'")
    assert "smoothing must be a number in [0, 1)" in errors[6] and "alpha must be a number in [0, 1]" in errors[7]
    assert done["status"] == "done" and done["frames_done"] == 8
    assert [p.name for p in left if p.suffix] == ["input.mp4", "output.mp4"] and used == 0


def test_a_frame_over_the_limit_midway_fails_its_job_and_its_files_go_at_once(model, tmp_path):
    """The header passes (32x32); the stream then switches to 640x480: the decoder refuses the
    frame, the job fails with the reason and its files are deleted then, not at --keep-minutes."""
    data = size_switching_mkv(tmp_path / "switch.mkv").read_bytes()

    async def go():
        async with studio(models=(model,), limits=Limits(max_pixels=64 * 64)) as (url, app):
            st = app[STUDIO]
            async with aiohttp.ClientSession() as http:
                async with http.post(f"{url}/api/jobs", data=_form(data, "switch.mkv")) as r:
                    assert r.status == 202, await r.text()
                    job = await _wait_job(http, url, (await r.json())["id"])
            return job, st.store.root, leftovers(st.store.root), st.jobs.slots.used

    job, root, left, used = run(go())
    assert job["status"] == "failed" and "640x480 = 307,200 pixels, above the limit of 4,096" in job["error"], job
    _one_line_and_private(job["error"], root)
    assert left == [] and used == 0


# ------------------------------------------------------------------------------ disk


def test_all_jobs_together_stay_under_the_disk_cap(model, tmp_path):
    clip = make_clip(tmp_path / "c.mp4", frames=6, size=(32, 24), audio=False).read_bytes()  # ~3 KB
    big = make_clip(tmp_path / "big.mp4", frames=40, size=(160, 120), audio=False).read_bytes()  # ~150 KB
    cap = 100_000 / 2**20  # room for the small clip and its result, not for the big one
    assert len(big) > 100_000 > 10 * len(clip)
    photo = tmp_path / "p.jpg"  # a noisy photo: a small JPEG in, a large lossless PNG out
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (192, 192, 3), dtype=np.uint8)).save(photo, quality=20)

    async def go():
        async with studio(models=(model,), max_disk_mb=cap) as (url, app):
            st = app[STUDIO]
            out = []
            async with aiohttp.ClientSession() as http:
                for data, name in [(big, "big.mp4"), (clip, "c.mp4")]:
                    async with http.post(f"{url}/api/jobs", data=_form(data, name)) as r:
                        out.append((r.status, await r.json()))
                    if name == "big.mp4":
                        after_big = leftovers(st.store.root)
                done = await _wait_job(http, url, out[1][1]["id"])
            return out, after_big, done, st.store.usage(), st.jobs.slots.used

    out, after_big, done, usage, used = run(go())
    assert out[0][0] == 507 and "storage is full" in out[0][1]["error"], out[0]
    assert after_big == []  # the refused upload's part file went with it
    assert out[1][0] == 202 and done["status"] == "done" and usage <= 100_000 and used == 0

    # A result that would pass the cap fails its job (and its files go): a flat PNG in, noise out.
    async def result_too_big():
        async with studio(models=(model,), max_disk_mb=(photo.stat().st_size + 2000) / 2**20) as (url, app):
            async with aiohttp.ClientSession() as http:
                async with http.post(f"{url}/api/jobs", data=_form(photo.read_bytes(), "p.jpg")) as r:
                    job = await _wait_job(http, url, (await r.json())["id"])
            return job, leftovers(app[STUDIO].store.root)

    job, left = run(result_too_big())
    assert job["status"] == "failed" and "storage is full" in job["error"] and left == [], job


def _store_in(parent: Path) -> subprocess.Popen:
    """Another process holding a studio folder under ``parent`` until it is killed."""
    code = ("import sys, time; from rtstyle.serve.security import UploadStore; "
            f"s = UploadStore(parent={str(parent)!r}); print(s.root, flush=True); time.sleep(600)")
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})


def test_folders_of_dead_servers_are_removed_at_start(model, tmp_path):
    dead, alive = _store_in(tmp_path), _store_in(tmp_path)
    try:
        dead_root, alive_root = Path(dead.stdout.readline().strip()), Path(alive.stdout.readline().strip())
        (dead_root / "job").mkdir()
        (dead_root / "job" / "input.mp4").write_bytes(b"x" * 1000)
        os.kill(dead.pid, signal.SIGKILL)  # no cleanup of its own: the kernel drops its lock
        dead.wait()
        fresh_foreign = tmp_path / f"{STORE_PREFIX}older-rtstyle"  # no lock file, recent: left alone
        fresh_foreign.mkdir()

        async def go():
            async with studio(models=(model,), work_dir=tmp_path) as (_, app):
                return app[STUDIO].store.root

        mine = run(go())
        assert not dead_root.exists() and alive_root.is_dir() and fresh_foreign.is_dir()
        assert mine.parent == tmp_path and not mine.exists()  # its own folder goes at shutdown
        old = time.time() - 2 * 86400
        os.utime(fresh_foreign, (old, old))
        UploadStore(parent=tmp_path).close()
        assert not fresh_foreign.exists() and alive_root.is_dir()
    finally:
        for proc in (dead, alive):
            if proc.poll() is None:
                proc.kill()
                proc.wait()


# ------------------------------------------------------------------------------ Host, Origin, token


def test_token_mode_serves_the_pages_own_script(model):
    config = ServeConfig(host="192.0.2.10", port=0, models=(model,)).with_token()

    async def go():
        runner = web.AppRunner(create_app(config))  # configured for a LAN address, listening on loopback
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        try:
            async with aiohttp.ClientSession() as http:
                async with http.get(f"{url}/?token={config.token}") as r:
                    page = await r.text()
                src = re.search(r'<script src="([^"]+)"', page).group(1)
                async with http.get(url + src.replace("&amp;", "&")) as r:
                    script = (r.status, r.content_type)
                async with http.get(f"{url}/static/app.js") as r:
                    bare = r.status
        finally:
            await runner.cleanup()
        return src, script, bare

    src, script, bare = run(go())
    assert src.startswith("/static/app.js?token=") and script == (200, "application/javascript")
    assert bare == 401  # still nothing without the token


def test_127_8_is_loopback_and_origin_compares_the_scheme(model):
    async def go():
        async with studio(models=(model,), host="127.0.0.2") as (url, _):
            port = url.rsplit(":", 1)[1]
            out = []
            async with aiohttp.ClientSession() as http:
                for headers in [{}, {"Host": f"127.0.0.5:{port}"}, {"Host": "127.255.0.1"}, {"Host": "[::1]"},
                                {"Host": "attacker.example"}, {"Host": "128.0.0.1"},
                                {"Origin": f"http://127.0.0.2:{port}"}, {"Origin": f"https://127.0.0.2:{port}"},
                                {"Origin": f"http://127.0.0.2:{int(port) + 1}"}, {"Origin": "null"}]:
                    async with http.get(f"{url}/api/models", headers=headers) as r:
                        out.append(r.status)
            return url, out

    url, out = run(go())
    assert url.startswith("http://127.0.0.2:")  # a 127/8 bind needs no token
    assert out == [200, 200, 200, 200, 403, 403, 200, 403, 403, 403]


# ------------------------------------------------------------------------------ bad input: 400, one line


def test_bad_input_is_a_one_line_400_never_a_500(model):
    from aiortc import RTCPeerConnection

    from rtstyle.serve.ice import host_candidates, rtc_configuration
    from rtstyle.serve.probe import ProbeResult, _stamped_track

    async def go():
        async with studio(models=(model,)) as (url, app):
            root = app[STUDIO].store.root
            pc = RTCPeerConnection(rtc_configuration())
            pc.addTrack(_stamped_track((160, 120), 5, ProbeResult("", {}), {}))
            with host_candidates(("127.0.0.1",)):
                await pc.setLocalDescription(await pc.createOffer())
            sdp = pc.localDescription.sdp
            out = []
            try:
                async with aiohttp.ClientSession() as http:
                    for body in [{"sdp": "m=video\nxx", "type": "offer"},  # aiortc's parser asserts
                                 {"sdp": "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n", "type": "offer"},
                                 {"sdp": "garbage", "type": "offer"},
                                 {"sdp": sdp, "type": "offer", "smoothing": "abc"},
                                 {"sdp": sdp, "type": "offer", "alpha": "x"},
                                 {"sdp": sdp, "type": "offer", "style_index": 1.5},
                                 {"sdp": sdp, "type": "offer", "smoothing": float("nan")},
                                 {"sdp": sdp, "type": "offer", "model": ["a"]}]:
                        async with http.post(f"{url}/offer", json=body) as r:
                            out.append((r.status, await r.json()))
                    async with http.post(f"{url}/offer", data=b"{not json") as r:
                        out.append((r.status, await r.json()))
                    async with http.post(f"{url}/offer", json={"sdp": sdp, "type": "offer"}) as r:
                        sid = (await r.json())["session"]
                    for change in [{"smoothing": "abc"}, {"alpha": [1]}, {"model": "nope"}, {"max_side": 64}]:
                        async with http.post(f"{url}/api/sessions/{sid}", json=change) as r:
                            out.append((r.status, await r.json()))
                    part = b'--x\r\nContent-Disposition: form-data; name="%s"\r\n\r\n'
                    for body, boundary in [(b"--x\r\nnot a part", "; boundary=x"), (b"garbage", ""),
                                           (part % b"file" + b"\x89PNG\r\n\x1a\ncut short", "; boundary=x"),
                                           (part % b"model" + b"m" * 10**6 + b"\r\n--x--\r\n", "; boundary=x")]:
                        async with http.post(f"{url}/api/jobs", data=body,
                                             headers={"Content-Type": "multipart/form-data" + boundary}) as r:
                            out.append((r.status, await r.json()))
                    left = leftovers(root)
            finally:
                await pc.close()
            return root, out, left

    root, out, left = run(go())
    assert left == []
    assert [s for s, _ in out] == [400] * len(out), out
    for _, body in out:
        _one_line_and_private(body["error"], root)
    errors = [body["error"] for _, body in out]
    assert "SDP does not parse" in errors[0] and "no video track" in errors[2]
    assert errors[3].startswith("smoothing must be a number in [0, 1)") and errors[3].endswith("got 'abc'")
    assert "alpha must be a number in [0, 1]" in errors[4] and "style_index must be an integer >= 0" in errors[5]
    assert "unknown parameter(s) 'max_side'" in errors[-5]
    assert all("not well-formed multipart" in e for e in errors[-4:-1]) and "longer than 200 bytes" in errors[-1]


# ------------------------------------------------------------------------------ memory


def png_bomb(path: Path, width: int, height: int) -> Path:
    """A valid PNG of ``width`` x ``height`` black pixels: a few hundred KB that decode in full
    (zlib squeezes the zeros ~1000:1), written row by row so the test holds none of it."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    packer, row = zlib.compressobj(1), bytes(1 + 3 * width)  # filter byte + RGB
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


def _status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of a process, in bytes, from /proc."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {key: int(fields[key].split()[0]) * 1024 for key in ("VmRSS", "VmHWM")}


def _reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM back to the current RSS (Linux >= 4.0)


def test_memory_of_a_job_on_a_frame_over_the_limit_stays_within_the_limits_budget(model, tmp_path):
    """A real `rtstyle serve` process at --max-pixels 512x512: a valid 9000x9000 PNG (243 MB of
    RGB once decoded, under the 100 MP any image may have) is refused at upload, a video that switches to
    6000x5000 after 20 frames (90 MB a frame) fails its job; the server's peak memory grows by
    less than the limit's budget."""
    limit = 512 * 512
    budget = Limits(max_pixels=limit).memory_budget()
    bomb = png_bomb(tmp_path / "bomb.png", 9000, 9000).read_bytes()
    switch = size_switching_mkv(tmp_path / "switch.mkv", small=(64, 48), big=(6000, 5000)).read_bytes()
    warm = make_clip(tmp_path / "warm.mp4", frames=4, size=(64, 48), audio=False).read_bytes()
    env = {**os.environ, "TMPDIR": str(tmp_path), "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "rtstyle", "serve", "--port", "0", "--model", model,
                             "--backend", "torch", "--device", "cpu", "--max-pixels", str(limit)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        url = proc.stdout.readline().split(": ", 1)[1].strip().rstrip("/")

        async def job(http, data: bytes, name: str) -> tuple[int, dict]:
            async with http.post(f"{url}/api/jobs", data=_form(data, name)) as r:
                body = await r.json()
                if r.status != 202:
                    return r.status, body
            return r.status, await _wait_job(http, url, body["id"])

        async def go():
            grown = {}
            async with aiohttp.ClientSession() as http:
                status, done = await job(http, warm, "warm.mp4")  # imports, codecs and kernels loaded
                assert done["status"] == "done", done
                for name, data in (("bomb.png", bomb), ("switch.mkv", switch)):
                    before = _status(proc.pid)["VmRSS"]
                    _reset_peak(proc.pid)
                    status, answer = await job(http, data, name)
                    grown[name] = (_status(proc.pid)["VmHWM"] - before, status, answer)
            return grown

        grown = run(go())
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    bomb_growth, status, answer = grown["bomb.png"]
    assert status == 400 and "9000x9000" in answer["error"], answer
    switch_growth, status, answer = grown["switch.mkv"]
    assert status == 202 and answer["status"] == "failed" and "6000x5000" in answer["error"], answer
    assert bomb_growth < budget and switch_growth < budget, (bomb_growth, switch_growth, budget)
    assert list(tmp_path.glob(f"{STORE_PREFIX}*")) == []
