"""The studio's safe defaults: a token for non-loopback binds, Host/Origin checks, upload size and
content checks, server-chosen file names, session and job limits, and no ICE server by default."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiohttp import web

from rtstyle.errors import InputError
from rtstyle.serve.app import STUDIO, ServeConfig, create_app
from rtstyle.serve.ice import drop_mdns_candidates, host_candidates, rtc_configuration
from rtstyle.serve.security import is_loopback, sniff_media
from tests.helpers_serve import leftovers, run, studio
from tests.helpers_video import make_clip

from .conftest import TINY_STYLE, _save


@pytest.fixture
def model(tmp_path):
    return str(_save(tmp_path / "style_a.safetensors", TINY_STYLE, "style"))


def test_non_loopback_bind_needs_a_token(model):
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.0.2.10") and not is_loopback("example.org")
    with pytest.raises(InputError, match="a token is required"):
        create_app(ServeConfig(host="0.0.0.0", models=(model,)))
    with pytest.raises(InputError, match="at least 16 characters"):
        ServeConfig(host="0.0.0.0", token="short")
    assert ServeConfig(models=(model,)).with_token().token is None  # loopback: no token
    config = ServeConfig(host="192.0.2.10", port=0, models=(model,)).with_token()
    assert config.token and len(config.token) >= 16

    async def go():
        # Configured for a non-loopback host, listening on loopback for the test.
        runner = web.AppRunner(create_app(config))
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        codes = []
        try:
            async with aiohttp.ClientSession() as http:
                for path, headers in [("/health", {}), ("/api/models", {"Authorization": "Bearer wrong-token-wrong-token"}),
                                      ("/", {}), (f"/health?token={config.token}", {}),
                                      ("/api/models", {"Authorization": f"Bearer {config.token}"})]:
                    async with http.get(url + path, headers=headers) as r:
                        codes.append(r.status)
        finally:
            await runner.cleanup()
        return codes

    assert run(go()) == [401, 401, 401, 200, 200]


def test_foreign_host_and_cross_origin_requests_are_refused(model):
    async def go():
        async with studio(models=(model,)) as (url, _):
            port = url.rsplit(":", 1)[1]
            async with aiohttp.ClientSession() as http:
                out = []
                for headers in [{}, {"Host": f"localhost:{port}"}, {"Host": "attacker.example"},
                                {"Origin": "http://attacker.example"}, {"Origin": f"http://127.0.0.1:{port}"}]:
                    async with http.get(f"{url}/api/models", headers=headers) as r:
                        out.append(r.status)
                return out

    assert run(go()) == [200, 200, 403, 403, 200]


def _form(data: bytes, filename: str) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("model", "style_a")
    form.add_field("file", data, filename=filename, content_type="video/mp4")
    return form


def test_oversized_and_non_media_uploads_are_refused(model, tmp_path):
    clip = make_clip(tmp_path / "c.mp4", frames=12, size=(64, 48)).read_bytes()

    async def go():
        async with studio(models=(model,), max_upload_mb=len(clip) / 2 / 2**20) as (url, app):
            st = app[STUDIO]
            async with aiohttp.ClientSession() as http:
                statuses = []
                for data, name in [(clip, "c.mp4"), (b"#!/bin/sh\necho not a video\n" * 10, "clip.mp4"),
                                   (b"\x00" * 64, "clip.mov"), (b"", "empty.mp4")]:
                    async with http.post(f"{url}/api/jobs", data=_form(data, name)) as r:
                        statuses.append((r.status, (await r.json())["error"]))
                async with http.post(f"{url}/api/jobs", json={"file": "/etc/passwd"}) as r:
                    statuses.append((r.status, (await r.json())["error"]))
                return statuses, leftovers(st.store.root), st.jobs.slots.used

    statuses, left, used = run(go())
    assert [s for s, _ in statuses] == [413, 415, 415, 400, 400], statuses
    assert "larger than" in statuses[0][1] and "not a video or photo" in statuses[1][1]
    assert left == [] and used == 0  # nothing kept, every slot given back


def test_crafted_file_names_and_ids_cannot_reach_the_file_system(model, tmp_path):
    clip = make_clip(tmp_path / "c.mp4", frames=6, size=(64, 48), audio=False).read_bytes()

    async def go():
        async with studio(models=(model,)) as (url, app):
            root = app[STUDIO].store.root
            async with aiohttp.ClientSession() as http:
                ids = []
                for name in ["../../escape.mp4", "/tmp/escape-abs.mp4", "..\\..\\escape.mp4", "a/../../../escape.mp4"]:
                    async with http.post(f"{url}/api/jobs", data=_form(clip, name)) as r:
                        assert r.status == 202, await r.text()
                        ids.append((await r.json())["id"])
                    while True:  # one at a time: the job limit is 2
                        async with http.get(f"{url}/api/jobs/{ids[-1]}") as r:
                            if (await r.json())["status"] not in ("queued", "running"):
                                break
                        await asyncio.sleep(0.05)
                files = sorted(p.relative_to(root).as_posix() for p in leftovers(root) if p.is_file())
                probes = []
                for path in ["/api/jobs/..%2F..%2Fetc%2Fpasswd/download", "/api/jobs/../../etc/passwd",
                             f"/api/jobs/{ids[0]}%2F..%2F{ids[1]}/download", "/api/jobs/AAAAAAAAAAAAAAAA/download"]:
                    async with http.get(url + path) as r:
                        probes.append(r.status)
                return root, ids, files, probes, root.stat().st_mode & 0o777

    root, ids, files, probes, mode = run(go())
    assert files == sorted(f"{i}/{n}" for i in ids for n in ("input.mp4", "output.mp4"))
    assert not list(root.parent.glob("escape*")) and not list(tmp_path.parent.glob("escape*"))
    assert all(code == 404 for code in probes), probes
    assert mode == 0o700  # private to the server's user
    assert not root.exists()  # removed at shutdown


def test_session_and_job_limits_answer_busy(model):
    from aiortc import RTCPeerConnection

    from rtstyle.serve.probe import ProbeResult, _stamped_track

    async def offer_sdp() -> tuple[RTCPeerConnection, str]:
        pc = RTCPeerConnection(rtc_configuration())
        pc.addTrack(_stamped_track((160, 120), 5, ProbeResult("", {}), {}))
        with host_candidates(("127.0.0.1",)):
            await pc.setLocalDescription(await pc.createOffer())
        return pc, pc.localDescription.sdp

    async def go():
        async with studio(models=(model,), max_sessions=1, max_jobs=1) as (url, app):
            st = app[STUDIO]
            pcs, out = [], []
            async with aiohttp.ClientSession() as http:
                for _ in range(2):
                    pc, sdp = await offer_sdp()
                    pcs.append(pc)
                    async with http.post(f"{url}/offer", json={"sdp": sdp, "type": "offer"}) as r:
                        out.append((r.status, await r.json()))
                async with http.delete(f"{url}/api/sessions/{out[0][1]['session']}") as r:
                    assert r.status == 200
                pc, sdp = await offer_sdp()
                pcs.append(pc)
                async with http.post(f"{url}/offer", json={"sdp": sdp, "type": "offer"}) as r:
                    out.append((r.status, await r.json()))
                assert st.jobs.reserve()  # the one job slot taken
                async with http.post(f"{url}/api/jobs", data=_form(b"\x00" * 100, "x.mp4")) as r:
                    out.append((r.status, await r.json()))
                st.jobs.slots.release()
            for pc in pcs:
                await pc.close()
            return out

    out = run(go())
    assert [status for status, _ in out] == [200, 503, 200, 429]
    assert "busy" in out[1][1]["error"] and "busy" in out[3][1]["error"]


def test_no_ice_server_unless_configured_and_no_mdns():
    assert rtc_configuration().iceServers == []
    assert [s.urls for s in rtc_configuration(("stun:stun.example.org:3478",)).iceServers] == ["stun:stun.example.org:3478"]
    with pytest.raises(InputError, match="stun:"):
        ServeConfig(ice_servers=("http://x",))
    sdp = ("v=0\r\na=candidate:1 1 udp 2113937151 abcd-1234.local 54400 typ host\r\n"
           "a=candidate:2 1 udp 2113937151 127.0.0.1 54401 typ host\r\n")
    assert drop_mdns_candidates(sdp) == "v=0\r\na=candidate:2 1 udp 2113937151 127.0.0.1 54401 typ host\r\n"

    import aioice.ice

    with host_candidates(("127.0.0.1",)):
        assert aioice.ice.get_host_addresses(True, True) == ["127.0.0.1"]
    assert "127.0.0.1" not in aioice.ice.get_host_addresses(True, False)  # outside the block: aioice's own rule


def test_uploads_are_recognised_by_content_not_name():
    assert sniff_media(b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00") == ("video", ".mp4")
    assert sniff_media(b"\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00") == ("video", ".mov")
    assert sniff_media(b"\x1a\x45\xdf\xa3\x01\x00\x00\x00") == ("video", ".mkv")
    assert sniff_media(b"\xff\xd8\xff\xe0\x00\x10JFIF") == ("image", ".jpg")
    assert sniff_media(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR") == ("image", ".png")
    assert sniff_media(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == ("image", ".webp")
    for bad in [b"<html><script>", b"#!/bin/sh\n", b"PK\x03\x04zip", b"", b"ftyp"]:
        assert sniff_media(bad) is None


def test_silent_sessions_and_old_uploads_are_cleaned_up(model, tmp_path):
    """An offer never followed by frames gives its slot back after --idle-seconds; finished jobs
    not downloaded are deleted after --keep-minutes."""
    from aiortc import RTCPeerConnection

    from rtstyle.serve.probe import ProbeResult, _stamped_track

    clip = make_clip(tmp_path / "c.mp4", frames=4, size=(64, 48), audio=False).read_bytes()

    async def go():
        async with studio(models=(model,), max_sessions=1, idle_seconds=0.5, keep_minutes=0.005) as (url, app):
            st = app[STUDIO]
            pc = RTCPeerConnection(rtc_configuration())
            pc.addTrack(_stamped_track((160, 120), 5, ProbeResult("", {}), {}))
            with host_candidates(("127.0.0.1",)):
                await pc.setLocalDescription(await pc.createOffer())
            try:
                async with aiohttp.ClientSession() as http:
                    async with http.post(f"{url}/offer", json={"sdp": pc.localDescription.sdp, "type": "offer"}) as r:
                        assert r.status == 200
                    held = len(st.sessions)
                    await asyncio.sleep(2.0)
                    released = (len(st.sessions), st.session_slots.used)
                    async with http.post(f"{url}/api/jobs", data=_form(clip, "c.mp4")) as r:
                        job_id = (await r.json())["id"]
                    for _ in range(300):
                        async with http.get(f"{url}/api/jobs/{job_id}") as r:
                            status = r.status
                        if status == 404:
                            break
                        await asyncio.sleep(0.1)
                    return held, released, status, leftovers(st.store.root)
            finally:
                await pc.close()

    held, released, status, left = run(go())
    assert held == 1 and released == (0, 0)
    assert status == 404 and left == []
