"""The studio's web app (aiohttp): the page, the JSON API, WebRTC signalling, file jobs.

``create_app(config, catalog=None)`` builds the application; ``serve(config, ready)`` runs it until
cancelled and calls ``ready(url)`` once listening (the CLI prints it). See ``rtstyle.serve`` for
the API and the safety rules.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from importlib import resources
from pathlib import Path

from aiohttp import web

from ..errors import InputError, RtstyleError
from .catalog import Catalog
from .config import ServeConfig
from .ice import candidate_addresses, drop_mdns_candidates, host_candidates, rtc_configuration
from .jobs import JobManager, JobRequest
from .security import (
    Slots,
    UploadStore,
    check_token,
    inside,
    is_loopback,
    new_id,
    sniff_image,
    sniff_media,
)
from .webrtc import LiveSession, SessionEngine, Settings, updated

STYLE_IMAGE_LIMIT = 10 * 2**20
_CHUNK = 2**16


def _json_error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


@web.middleware
async def _errors(request: web.Request, handler):
    try:
        return await handler(request)
    except RtstyleError as exc:
        return _json_error(400, str(exc))


def _guard(config: ServeConfig):
    """Token (non-loopback binds), Host (DNS rebinding) and Origin (cross-site requests) checks."""
    loopback_names = {"127.0.0.1", "localhost", "[::1]", config.host if ":" not in config.host else f"[{config.host}]"}

    @web.middleware
    async def guard(request: web.Request, handler):
        if config.token is not None:
            auth = request.headers.get("Authorization", "")
            given = auth[7:] if auth.startswith("Bearer ") else request.query.get("token")
            if not check_token(config.token, given):
                return _json_error(401, "a token is required: open the URL printed at start (…?token=…) "
                                        "or send 'Authorization: Bearer TOKEN'")
        else:
            host = request.host.rsplit(":", 1)[0] if not request.host.endswith("]") else request.host
            if host not in loopback_names:
                return _json_error(403, f"unexpected Host {request.host!r}: this server answers loopback names only")
        origin = request.headers.get("Origin")
        if origin is not None and origin.split("://", 1)[-1] != request.host:
            return _json_error(403, f"cross-origin request from {origin} refused")
        return await handler(request)

    return guard


class Studio:
    """The app's state: served models, live sessions, file jobs, private storage."""

    def __init__(self, config: ServeConfig, catalog: Catalog):
        self.config = config
        self.catalog = catalog
        self.store = UploadStore(ttl_s=60 * config.keep_minutes)
        self.jobs = JobManager(self.store, catalog.open, config.max_jobs)
        self.session_slots = Slots(config.max_sessions, "live session")
        self.sessions: dict[str, LiveSession] = {}
        self.upload_limit = int(config.max_upload_mb * 2**20)
        self._janitor: asyncio.Task | None = None

    # ---------------------------------------------------------------------------- basics
    async def index(self, request: web.Request) -> web.Response:
        return web.Response(text=_static("index.html"), content_type="text/html",
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

        params = await _json_body(request)
        if params.get("type") != "offer" or not isinstance(params.get("sdp"), str):
            raise InputError('POST /offer takes {"sdp": "...", "type": "offer"}')
        if "m=video" not in params["sdp"]:
            raise InputError("the offer has no video track; send the camera track")
        settings = Settings(model=str(params.get("model") or next(iter(self.catalog.models))),
                            alpha=params.get("alpha"), style_index=params.get("style_index"),
                            smoothing=float(params.get("smoothing") or 0.0),
                            strength=_strength(params)).check(self.catalog)
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
                await pc.setRemoteDescription(RTCSessionDescription(sdp=drop_mdns_candidates(params["sdp"]), type="offer"))
                answer = await pc.createAnswer()
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

    def _session(self, request: web.Request) -> LiveSession:
        session = self.sessions.get(request.match_info["sid"])
        if session is None:
            raise web.HTTPNotFound(text='{"error": "no such session"}', content_type="application/json")
        return session

    async def session_status(self, request: web.Request) -> web.Response:
        return web.json_response(self._session(request).status())

    async def session_update(self, request: web.Request) -> web.Response:
        session = self._session(request)
        session.engine.update(updated(session.engine.settings, await _json_body(request), self.catalog))
        return web.json_response(session.status())

    async def session_style_image(self, request: web.Request) -> web.Response:
        session = self._session(request)
        if self.catalog.get(session.engine.settings.model).arch != "adain":
            raise InputError(f"{session.engine.settings.model} has its style trained in; style images work with AdaIN models")
        data = await _read_limited(request.content, STYLE_IMAGE_LIMIT)
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
        return web.json_response(session.status())

    async def session_delete(self, request: web.Request) -> web.Response:
        await self._end_session(self._session(request))
        return web.json_response({"closed": True})

    # ---------------------------------------------------------------------------- jobs
    async def create_job(self, request: web.Request) -> web.Response:
        if not request.content_type.startswith("multipart/"):
            raise InputError("POST /api/jobs takes multipart/form-data with a 'file' part and a 'model' field")
        if not self.jobs.reserve():
            return _json_error(429, self.jobs.slots.busy_message())
        job_id, folder = self.store.new_folder()
        try:
            fields, kind, path, error = await self._receive_upload(request, folder)
            if error is not None:
                raise error
            model = fields.get("model") or next(iter(self.catalog.models))
            style = self.catalog.default_choice(model, _float(fields, "alpha"), _int(fields, "style_index"))
            job_request = JobRequest(model=model, kind=kind, input=path, style=style,
                                     temporal_smoothing=_float(fields, "smoothing") or 0.0,
                                     max_side=_int(fields, "max_side"), strength=_strength(fields))
        except BaseException:
            self.jobs.slots.release()
            self.store.delete(job_id)
            raise
        job = self.jobs.submit(job_id, job_request)
        return web.json_response(job.to_dict(self._download_url(job_id)), status=202)

    async def _receive_upload(self, request: web.Request, folder: Path):
        """Stream the multipart body: small text fields and one file, written under a server-chosen
        name with a size cap and a content check on its first bytes."""
        reader = await request.multipart()
        fields: dict[str, str] = {}
        kind = path = None
        while (part := await reader.next()) is not None:
            if part.name == "file":
                if path is not None:
                    return fields, None, None, InputError("one file per job")
                partial = folder / "upload.part"
                size, head = 0, b""
                with partial.open("wb") as out:
                    while chunk := await part.read_chunk(_CHUNK):
                        if not head:
                            head = chunk[:32]
                            sniffed = sniff_media(head)
                            if sniffed is None:
                                return fields, None, None, web.HTTPUnsupportedMediaType(
                                    text='{"error": "not a video or photo: send MP4, MOV, MKV/WebM, AVI, JPEG, PNG, WebP or BMP"}',
                                    content_type="application/json")
                        size += len(chunk)
                        if size > self.upload_limit:
                            return fields, None, None, web.HTTPRequestEntityTooLarge(
                                max_size=self.upload_limit, actual_size=size,
                                text=f'{{"error": "upload larger than {self.config.max_upload_mb:g} MB"}}',
                                content_type="application/json")
                        out.write(chunk)
                if not head:
                    return fields, None, None, InputError("the uploaded file is empty")
                kind, ext = sniffed
                path = partial.rename(folder / f"input{ext}")
            elif part.name in ("model", "alpha", "style_index", "smoothing", "max_side", "strength"):
                fields[part.name] = (await part.read(decode=True))[:200].decode("utf-8", "replace").strip()
            else:
                return fields, None, None, InputError(f"unexpected form field {part.name!r}; send file, model, "
                                                      "alpha, style_index, smoothing, max_side, strength")
        if path is None:
            return fields, None, None, InputError("no 'file' part in the upload")
        return fields, kind, path, None

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


async def _json_body(request: web.Request) -> dict:
    try:
        body = await request.json()
    except ValueError:
        raise InputError("the request body is not JSON") from None
    if not isinstance(body, dict):
        raise InputError("the request body must be a JSON object")
    return body


async def _read_limited(stream, limit: int) -> bytes | None:
    data = bytearray()
    while chunk := await stream.read(_CHUNK):
        data += chunk
        if len(data) > limit:
            return None
    return bytes(data)


def _float(fields: dict, name: str) -> float | None:
    try:
        return float(fields[name]) if fields.get(name) not in (None, "") else None
    except ValueError:
        raise InputError(f"{name} must be a number, got {fields[name]!r}") from None


def _strength(fields: dict) -> float:
    """The optional ``strength`` of an offer or a job (rtstyle.strength): 1 when not given."""
    value = _float(fields, "strength")
    return 1.0 if value is None else value


def _int(fields: dict, name: str) -> int | None:
    try:
        return int(fields[name]) if fields.get(name) not in (None, "") else None
    except ValueError:
        raise InputError(f"{name} must be an integer, got {fields[name]!r}") from None


def create_app(config: ServeConfig, catalog: Catalog | None = None) -> web.Application:
    """The application; ``config.token`` must already be set for a non-loopback host (``with_token``)."""
    if not is_loopback(config.host) and config.token is None:
        raise InputError(f"--host {config.host} is not a loopback address: a token is required "
                         "(use ServeConfig.with_token() or pass --token)")
    catalog = catalog or Catalog.build(config.models, config.backend, config.device, config.precision)
    studio = Studio(config, catalog)
    app = web.Application(middlewares=[_guard(config), _errors], client_max_size=STYLE_IMAGE_LIMIT + 2**20)
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

