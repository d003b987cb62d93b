"""The studio's web app (aiohttp): the page, the JSON API, WebRTC signalling, file jobs.

``create_app(config, catalog=None)`` builds the application; ``serve(config, ready)`` runs it until
cancelled and calls ``ready(url)`` once listening (the CLI prints it). See ``rtstyle.serve`` for
the API and the safety rules.
"""

from __future__ import annotations

import asyncio
import collections
import html
import logging
import time
import urllib.parse
from collections.abc import Callable
from importlib import resources
from pathlib import Path

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from yarl import URL

from ..errors import InputError, OutputError, RtstyleError
from ..textutil import first_line
from .catalog import Catalog
from .config import ServeConfig
from .ice import candidate_addresses, drop_mdns_candidates, host_candidates, rtc_configuration
from .jobs import JobManager, JobRequest
from .params import JOB, names, parse_params
from .security import (
    Slots,
    UploadStore,
    check_token,
    inside,
    is_loopback,
    new_id,
    scrub_paths,
    sniff_image,
    sniff_media,
)
from .webrtc import LiveSession, SessionEngine, offered, updated

STYLE_IMAGE_LIMIT = 10 * 2**20
_CHUNK = 2**16
log = logging.getLogger("rtstyle.serve")


def _json_error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


class _Refused(Exception):
    """An answer other than 400 decided while reading a request (413, 415, 429, 507, 408)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _errors(public: Callable[[str], str]):
    """Errors as one-line JSON: rtstyle's own (bad input) as 400, refusals with their status, a
    bug as 500 with no detail (the traceback goes to the server's log only); no message names a
    server path (``public``)."""

    @web.middleware
    async def errors(request: web.Request, handler):
        try:
            return await handler(request)
        except _Refused as exc:
            return _json_error(exc.status, public(str(exc)))
        except RtstyleError as exc:
            return _json_error(400, public(first_line(exc)))
        except web.HTTPException:
            raise
        except Exception:  # noqa: BLE001 - never a traceback to a client
            log.exception("%s %s failed", request.method, request.path)
            return _json_error(500, "internal error: the server's log has the details")

    return errors


def _host_name(host: str) -> str:
    """A Host header's name without its port: "127.0.0.5:8000" -> "127.0.0.5", "[::1]:80" -> "::1"."""
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _same_origin(origin: str, request: web.Request) -> bool:
    """The Origin header names this server: same scheme, host and port (a page served over
    https never talks to this http server, nor the other way round)."""
    try:
        url = URL(origin)
        return (url.scheme, url.host, url.port) == (request.scheme, request.url.host, request.url.port)
    except (ValueError, TypeError):
        return False  # "null" (sandboxed frames, file:) and anything that does not parse


def _guard(config: ServeConfig):
    """Token (non-loopback binds), Host (DNS rebinding) and Origin (cross-site requests) checks."""
    bound = _host_name(config.host if ":" not in config.host else f"[{config.host}]")

    @web.middleware
    async def guard(request: web.Request, handler):
        if config.token is not None:
            auth = request.headers.get("Authorization", "")
            given = auth[7:] if auth.startswith("Bearer ") else request.query.get("token")
            if not check_token(config.token, given):
                return _json_error(401, "a token is required: open the URL printed at start (…?token=…) "
                                        "or send 'Authorization: Bearer TOKEN'")
        else:
            host = _host_name(request.host)
            if not (is_loopback(host) or host == bound):  # 127.0.0.0/8, ::1, localhost
                return _json_error(403, f"unexpected Host {request.host!r}: this server answers loopback names only")
        origin = request.headers.get("Origin")
        if origin is not None and not _same_origin(origin, request):
            return _json_error(403, f"cross-origin request from {origin} refused")
        return await handler(request)

    return guard


class _BodyClock:
    """How long a request body may take: nothing is required during ``grace`` seconds, after
    that the bytes received must keep up with ``rate`` bytes/s on average. A client sending a
    byte every 20 s is cut off just after the grace period; a fast one never waits."""

    def __init__(self, grace: float, rate: float):
        self.start, self.grace, self.rate = time.monotonic(), grace, rate
        self.received = 0

    async def read(self, coro):
        """Await one read of the body (a chunk, a multipart part); 408 when the client is too slow."""
        deadline = self.start + self.grace + self.received / self.rate
        try:
            return await asyncio.wait_for(coro, max(0.0, deadline - time.monotonic()))
        except asyncio.TimeoutError:
            raise _Refused(408, f"the request body came too slowly ({self.received:,} bytes in "
                                f"{time.monotonic() - self.start:.1f} s; needed {self.rate / 1000:g} kB/s after "
                                f"{self.grace:g} s)") from None

    def count(self, n: int) -> None:
        self.received += n


class Studio:
    """The app's state: served models, live sessions, file jobs, private storage."""

    def __init__(self, config: ServeConfig, catalog: Catalog):
        self.config = config
        self.catalog = catalog
        self.store = UploadStore(ttl_s=60 * config.keep_minutes, parent=config.work_dir)
        for folder in self.store.removed_stale:
            log.info("removed %s, left by a server that is gone", folder.name)
        self.jobs = JobManager(self.store, catalog.open, config.max_jobs, check_disk=self._check_disk_while_writing,
                               public=self.public)
        self.session_slots = Slots(config.max_sessions, "live session")
        self.sessions: dict[str, LiveSession] = {}
        self.upload_limit = int(config.max_upload_mb * 2**20)
        self.disk_limit = int(config.max_disk_mb * 2**20)
        self.uploading: collections.Counter[str] = collections.Counter()  # uploads in flight per address
        self._janitor: asyncio.Task | None = None
        # Paths no message may show a client: the private folder, the models' folders.
        self._private = [self.store.root, *{m.path.parent for m in catalog.models.values()}]

    def public(self, text: str) -> str:
        """``text`` without server paths (a file keeps its name)."""
        return scrub_paths(text, self._private)

    def _check_disk(self) -> None:
        """Refuse (507) when the studio's files (uploads arriving, kept, results) pass --max-disk-mb."""
        if self.store.usage() > self.disk_limit:
            raise _Refused(507, f"the studio's storage is full ({self.config.max_disk_mb:g} MB for every upload and "
                                "result together); try again when running jobs are done")

    def _check_disk_while_writing(self) -> None:
        """Between a job's batches: a result that would pass the cap fails its job."""
        try:
            self._check_disk()
        except _Refused as exc:
            raise OutputError(str(exc)) from None

    # ---------------------------------------------------------------------------- basics
    async def index(self, request: web.Request) -> web.Response:
        page = _static("index.html")
        if self.config.token is not None:  # the page's own script must come with the token too
            token = html.escape(urllib.parse.quote(self.config.token, safe=""))
            page = page.replace('src="/static/app.js"', f'src="/static/app.js?token={token}"')
        return web.Response(text=page, content_type="text/html",
                            headers={"Cache-Control": "no-store", "Content-Security-Policy": _CSP})

    async def app_js(self, request: web.Request) -> web.Response:
        return web.Response(text=_static("app.js"), content_type="application/javascript",
                            headers={"Cache-Control": "no-store"})

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "sessions": len(self.sessions), "max_sessions": self.config.max_sessions,
                                  "jobs_running": self.jobs.slots.used, "max_jobs": self.config.max_jobs})

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response({"models": self.catalog.to_list()})

    # ---------------------------------------------------------------------------- live
    async def offer(self, request: web.Request) -> web.Response:
        from aiortc import RTCPeerConnection, RTCSessionDescription

        params = await self._json_body(request)
        if params.get("type") != "offer" or not isinstance(params.get("sdp"), str):
            raise InputError('POST /offer takes {"sdp": "...", "type": "offer"}')
        _check_offer(params["sdp"])
        settings = offered(params, self.catalog)
        if not self.session_slots.acquire():
            return _json_error(503, self.session_slots.busy_message())
        pc = None
        try:
            engine = await asyncio.get_running_loop().run_in_executor(None, SessionEngine, self.catalog, settings)
            pc = RTCPeerConnection(rtc_configuration(self.config.ice_servers))
            session = LiveSession(new_id(), pc, engine, self.store.root, self.config.max_side)
            self.sessions[session.id] = session

            @pc.on("track")
            def on_track(track):
                if track.kind == "video":
                    pc.addTrack(session.output)
                    session.attach(track)

            @pc.on("connectionstatechange")
            async def on_state():
                if pc.connectionState in ("failed", "closed"):
                    await self._end_session(session)

            with host_candidates(candidate_addresses(self.config.host)):
                try:
                    await pc.setRemoteDescription(RTCSessionDescription(sdp=drop_mdns_candidates(params["sdp"]),
                                                                        type="offer"))
                    answer = await pc.createAnswer()
                except (ValueError, AssertionError, KeyError, IndexError, TypeError) as exc:  # aiortc on bad SDP
                    raise InputError(f"the offer cannot be answered: {first_line(exc)}") from None
                await pc.setLocalDescription(answer)
        except BaseException:
            if pc is not None:
                await pc.close()
            for sid, s in list(self.sessions.items()):
                if s.pc is pc:
                    del self.sessions[sid]
            self.session_slots.release()
            raise
        session.watchdog = asyncio.ensure_future(self._end_if_silent(session))
        return web.json_response({"sdp": pc.localDescription.sdp, "type": pc.localDescription.type,
                                  "session": session.id})

    async def _end_if_silent(self, session: LiveSession) -> None:
        """A session that receives no frame for ``idle_seconds`` (an offer never followed by a
        connection, a client gone quiet) gives its slot back: offers alone cannot fill the limit."""
        seen = -1
        while session.id in self.sessions:
            await asyncio.sleep(self.config.idle_seconds)
            if session.mailbox.received == seen:
                await self._end_session(session)
                return
            seen = session.mailbox.received

    async def _end_session(self, session: LiveSession) -> None:
        if self.sessions.pop(session.id, None) is None:
            return
        if session.watchdog is not None and session.watchdog is not asyncio.current_task():
            session.watchdog.cancel()
        await session.close()
        self.session_slots.release()
        for image in session.style_images:
            image.unlink(missing_ok=True)

    def _status(self, session: LiveSession) -> web.Response:
        status = session.status()
        if status["error"]:
            status["error"] = self.public(status["error"])
        return web.json_response(status)

    def _session(self, request: web.Request) -> LiveSession:
        session = self.sessions.get(request.match_info["sid"])
        if session is None:
            raise web.HTTPNotFound(text='{"error": "no such session"}', content_type="application/json")
        return session

    async def session_status(self, request: web.Request) -> web.Response:
        return self._status(self._session(request))

    async def session_update(self, request: web.Request) -> web.Response:
        session = self._session(request)
        session.engine.update(updated(session.engine.settings, await self._json_body(request), self.catalog))
        return self._status(session)

    async def session_style_image(self, request: web.Request) -> web.Response:
        session = self._session(request)
        if self.catalog.get(session.engine.settings.model).arch != "adain":
            raise InputError(f"{session.engine.settings.model} has its style trained in; style images work with AdaIN models")
        data = await self._read_limited(request, STYLE_IMAGE_LIMIT)
        if data is None:
            return _json_error(413, f"style image larger than {STYLE_IMAGE_LIMIT // 2**20} MB")
        ext = sniff_image(data[:32])
        if ext is None:
            return _json_error(415, "not an image: send a JPEG, PNG, WebP or BMP file")
        path = self.store.root / f"style-{session.id}-{new_id()}{ext}"  # server-chosen name, private folder
        path.write_bytes(data)
        session.style_images.append(path)
        try:
            await asyncio.get_running_loop().run_in_executor(None, session.set_style_image, path)
        except InputError:
            path.unlink(missing_ok=True)
            raise
        return self._status(session)

    async def session_delete(self, request: web.Request) -> web.Response:
        await self._end_session(self._session(request))
        return web.json_response({"closed": True})

    # ---------------------------------------------------------------------------- jobs
    async def create_job(self, request: web.Request) -> web.Response:
        """Receive an upload, check it against the limits (``stylize.check_input``, the same
        checks as ``rtstyle stylize``), then take a job slot: a slot is never held while a
        client is still sending. Whatever is refused or abandoned is deleted at once."""
        if not request.content_type.startswith("multipart/"):
            raise InputError("POST /api/jobs takes multipart/form-data with a 'file' part and a 'model' field")
        client = request.remote or "unknown"
        if self.uploading[client] >= self.config.max_uploads_per_client:
            return _json_error(429, f"busy: {self.uploading[client]} uploads from your address are still arriving "
                                    f"(at most {self.config.max_uploads_per_client}); wait for them to finish")
        if self.jobs.slots.used >= self.jobs.slots.limit:  # full now: refused before a byte is read
            return _json_error(429, self.jobs.slots.busy_message())
        self._check_disk()
        job_id, folder = self.store.new_folder()
        self.uploading[client] += 1
        reserved = False
        try:
            fields, path = await self._receive_upload(request, folder)
            job_request = await asyncio.get_running_loop().run_in_executor(None, self._job_request, fields, path)
            if not self.jobs.reserve():
                raise _Refused(429, self.jobs.slots.busy_message())
            reserved = True
            job = self.jobs.submit(job_id, job_request)
        except (ConnectionError, asyncio.CancelledError) as exc:  # the client went away mid-upload
            log.info("upload from %s ended early (%s); its files are deleted", client,
                     first_line(exc) if not isinstance(exc, asyncio.CancelledError) else "cancelled")
            self._drop(job_id, reserved)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return web.Response(status=400)
        except BaseException:
            self._drop(job_id, reserved)
            raise
        finally:
            self.uploading[client] -= 1
            if not self.uploading[client]:
                del self.uploading[client]
        return web.json_response(job.to_dict(self._download_url(job_id)), status=202)

    def _drop(self, job_id: str, reserved: bool) -> None:
        if reserved:
            self.jobs.slots.release()
        self.store.delete(job_id)

    def _job_request(self, fields: dict[str, str], path: Path) -> JobRequest:
        """The job the form asks for (``params.PARAMS``), its input checked against the server's
        limits tightened by the client's own values. Runs on a worker thread (it probes the file)."""
        from ..photos import is_photo
        from ..stylize import check_input

        typed = parse_params(fields, JOB)
        model = typed.get("model") or next(iter(self.catalog.models))
        style = self.catalog.default_choice(model, typed.get("alpha"), typed.get("style_index"))
        limits = self.config.limits.tightened(**{k: typed.get(k) for k in ("max_pixels", "max_frames", "max_seconds")})
        request = JobRequest(model=model, kind="image" if is_photo(path) else "video", input=path, style=style,
                             temporal_smoothing=typed.get("smoothing", 0.0), max_side=typed.get("max_side"),
                             strength=typed.get("strength", 1.0), limits=limits)
        check_input(path, request.stylize_config())  # refused now, with the reason, not after a wait in the queue
        return request

    async def _receive_upload(self, request: web.Request, folder: Path) -> tuple[dict[str, str], Path]:
        """Stream the multipart body: small text fields and one file, written under a server-chosen
        name with a size cap, the disk cap, a content check on its first bytes, and the body clock."""
        clock = _BodyClock(self.config.upload_grace_s, self.config.min_upload_kbps * 1000)
        fields: dict[str, str] = {}
        taken = names(JOB)
        path = None
        try:
            reader = await clock.read(request.multipart())
            while (part := await clock.read(reader.next())) is not None:
                if part.name == "file":
                    if path is not None:
                        raise InputError("one file per job")
                    path = await self._receive_file(part, folder, clock)
                elif part.name in taken:
                    fields[part.name] = await _read_field(part, clock)
                else:
                    raise InputError(f"unexpected form field {part.name!r}; send file, {', '.join(taken)}")
        except (ValueError, AssertionError, LookupError, HttpProcessingError) as exc:  # aiohttp's multipart parser
            reason = exc.message if isinstance(exc, HttpProcessingError) else first_line(exc)
            raise InputError(f"the body is not well-formed multipart/form-data ({reason})") from None
        if path is None:
            raise InputError("no 'file' part in the upload")
        return fields, path

    async def _receive_file(self, part, folder: Path, clock: _BodyClock) -> Path:
        partial = folder / "upload.part"
        size, sniffed = 0, None
        with partial.open("wb") as out:
            while chunk := await clock.read(part.read_chunk(_CHUNK)):
                clock.count(len(chunk))
                if sniffed is None:
                    sniffed = sniff_media(chunk[:32])
                    if sniffed is None:
                        raise _Refused(415, "not a video or photo: send MP4, MOV, MKV/WebM, AVI, JPEG, PNG, WebP or BMP")
                size += len(chunk)
                if size > self.upload_limit:
                    raise _Refused(413, f"upload larger than {self.config.max_upload_mb:g} MB")
                out.write(chunk)
                self._check_disk()  # this file is on disk already: the cap counts it
        if sniffed is None:
            raise InputError("the uploaded file is empty")
        return partial.rename(folder / f"input{sniffed[1]}")

    async def _read_limited(self, request: web.Request, limit: int) -> bytes | None:
        """The whole body (None past ``limit`` bytes), read on the body clock."""
        clock = _BodyClock(self.config.upload_grace_s, self.config.min_upload_kbps * 1000)
        data = bytearray()
        while chunk := await clock.read(request.content.read(_CHUNK)):
            clock.count(len(chunk))
            data += chunk
            if len(data) > limit:
                return None
        return bytes(data)

    async def _json_body(self, request: web.Request) -> dict:
        import json

        data = await self._read_limited(request, STYLE_IMAGE_LIMIT)
        if data is None:
            raise _Refused(413, f"request body larger than {STYLE_IMAGE_LIMIT // 2**20} MB")
        try:
            body = json.loads(data)
        except (ValueError, RecursionError):
            raise InputError("the request body is not JSON") from None
        if not isinstance(body, dict):
            raise InputError("the request body must be a JSON object")
        return body

    def _download_url(self, job_id: str) -> str:
        return f"/api/jobs/{job_id}/download"

    async def job_status(self, request: web.Request) -> web.Response:
        job = self.jobs.get(request.match_info["jid"])
        if job is None:
            return _json_error(404, "no such job (finished jobs are deleted after download or their time limit)")
        return web.json_response(job.to_dict(self._download_url(job.id)))

    async def job_download(self, request: web.Request) -> web.StreamResponse:
        job = self.jobs.get(request.match_info["jid"])
        folder = self.store.folder(request.match_info["jid"])
        if job is None or folder is None or job.status != "done" or job.downloaded or job.output is None:
            return _json_error(404, "nothing to download: the job is unknown, unfinished or already downloaded")
        if not inside(folder, job.output):
            return _json_error(404, "nothing to download")
        job.downloaded = True
        name = f"rtstyle-{job.request.model}{job.output.suffix}"
        response = web.StreamResponse(headers={"Content-Type": "video/mp4" if job.output.suffix == ".mp4" else "image/png",
                                               "Content-Disposition": f'attachment; filename="{name}"',
                                               "Content-Length": str(job.output.stat().st_size)})
        await response.prepare(request)
        try:
            with job.output.open("rb") as f:
                while chunk := f.read(_CHUNK):
                    await response.write(chunk)
            await response.write_eof()
        finally:
            self.jobs.forget(job.id)  # downloaded (or the client went away): the files go now
        return response

    # ---------------------------------------------------------------------------- lifecycle
    async def _janitor_loop(self) -> None:
        while True:
            await asyncio.sleep(min(30.0, self.store.ttl_s / 4))
            self.jobs.purge_expired()

    async def on_startup(self, app: web.Application) -> None:
        self._janitor = asyncio.ensure_future(self._janitor_loop())

    async def on_cleanup(self, app: web.Application) -> None:
        if self._janitor is not None:
            self._janitor.cancel()
        for session in list(self.sessions.values()):
            await self._end_session(session)
        await asyncio.get_running_loop().run_in_executor(None, self.jobs.close)
        self.store.close()


STUDIO = web.AppKey("studio", Studio)  # app[STUDIO]: the state, for tests and extensions

_CSP = "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; style-src 'self' 'unsafe-inline'"


def _static(name: str) -> str:
    return resources.files("rtstyle.serve").joinpath("static", name).read_text(encoding="utf-8")


async def _read_field(part, clock: _BodyClock, limit: int = 200) -> str:
    """A small form field's text; a longer one is refused before it is held in memory."""
    data = bytearray()
    while chunk := await clock.read(part.read_chunk(1024)):
        clock.count(len(chunk))
        data += chunk
        if len(data) > limit:
            raise InputError(f"form field {part.name!r} is longer than {limit} bytes")
    return bytes(data).decode("utf-8", "replace").strip()


def _check_offer(sdp: str) -> None:
    """An offer's SDP parses (aiortc's parser) and holds a video section."""
    from aiortc.sdp import SessionDescription

    try:
        description = SessionDescription.parse(sdp)
    except Exception as exc:  # noqa: BLE001 - the parser raises assertion and value errors alike
        raise InputError(f"the offer's SDP does not parse ({first_line(exc)})") from None
    if not any(m.kind == "video" for m in description.media):
        raise InputError("the offer has no video track; send the camera track")


def create_app(config: ServeConfig, catalog: Catalog | None = None) -> web.Application:
    """The application; ``config.token`` must already be set for a non-loopback host (``with_token``)."""
    if not is_loopback(config.host) and config.token is None:
        raise InputError(f"--host {config.host} is not a loopback address: a token is required "
                         "(use ServeConfig.with_token() or pass --token)")
    catalog = catalog or Catalog.build(config.models, config.backend, config.device, config.precision)
    studio = Studio(config, catalog)
    app = web.Application(middlewares=[_guard(config), _errors(studio.public)], client_max_size=STYLE_IMAGE_LIMIT + 2**20)
    app[STUDIO] = studio
    app.add_routes([
        web.get("/", studio.index), web.get("/static/app.js", studio.app_js), web.get("/health", studio.health),
        web.get("/api/models", studio.models), web.post("/offer", studio.offer),
        web.get("/api/sessions/{sid}", studio.session_status), web.post("/api/sessions/{sid}", studio.session_update),
        web.post("/api/sessions/{sid}/style-image", studio.session_style_image),
        web.delete("/api/sessions/{sid}", studio.session_delete),
        web.post("/api/jobs", studio.create_job), web.get("/api/jobs/{jid}", studio.job_status),
        web.get("/api/jobs/{jid}/download", studio.job_download),
    ])
    app.on_startup.append(studio.on_startup)
    app.on_cleanup.append(studio.on_cleanup)
    return app


async def start(config: ServeConfig, catalog: Catalog | None = None) -> tuple[web.AppRunner, str]:
    """Start listening; returns the runner (``await runner.cleanup()`` stops it) and the page's URL."""
    app = create_app(config, catalog)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port)
    await site.start()
    port = runner.addresses[0][1]
    host = f"[{config.host}]" if ":" in config.host else config.host
    url = f"http://{host}:{port}/" + (f"?token={config.token}" if config.token else "")
    return runner, url


async def serve(config: ServeConfig, ready: Callable[[str], None] | None = None) -> None:
    """Run until cancelled, SIGINT (Ctrl-C) or SIGTERM; either signal closes every session and
    deletes every upload before returning (also when the shell started us with SIGINT ignored)."""
    import signal

    runner, url = await start(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    handled = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, stop.set)
            handled.append(signum)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or no signals here
            pass
    if ready is not None:
        ready(url)
    try:
        await stop.wait()
    finally:
        for signum in handled:
            loop.remove_signal_handler(signum)
        await runner.cleanup()

