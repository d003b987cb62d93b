"""``rtstyle serve``: a browser studio (live camera stylization over WebRTC and file jobs)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .stylize import add_engine_arguments, add_limit_arguments, limits_from_args


def register(subparsers) -> None:
    p = subparsers.add_parser("serve", help="browser studio: live camera and file jobs in a web page",
                              description=__doc__ + " Needs the web extra: pip install 'rtstyle[web]'.")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default: 127.0.0.1); any other address requires a token")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000; 0 picks a free one)")
    p.add_argument("--model", action="append", default=[],
                   help="a style model to serve (bundled name or file); repeat; default: every bundled style")
    add_engine_arguments(p)
    add_limit_arguments(p, frames=36_000, seconds=600.0)  # ten minutes; the same rule as stylize's (rtstyle.limits)
    p.set_defaults(max_side=480)
    p.add_argument("--token", help="the access token for a non-loopback --host (default: a random one, printed)")
    p.add_argument("--ice-server", action="append", default=[], metavar="URL",
                   help="a STUN/TURN server for WebRTC (default: none, host candidates on --host only)")
    p.add_argument("--max-sessions", type=int, default=2, help="concurrent live sessions (default: 2)")
    p.add_argument("--max-jobs", type=int, default=2, help="unfinished file jobs (default: 2)")
    p.add_argument("--max-upload-mb", type=float, default=200.0, help="largest upload in MB (default: 200)")
    p.add_argument("--max-disk-mb", type=float, default=2048.0,
                   help="every upload and result together, in MB; past it new uploads get 507 (default: 2048)")
    p.add_argument("--upload-grace-seconds", type=float, default=30.0, dest="upload_grace_s", metavar="S",
                   help="a request body may take this long before --min-upload-kbps applies (default: 30)")
    p.add_argument("--min-upload-kbps", type=float, default=32.0, metavar="KB",
                   help="after the grace period a body must arrive at this many kB/s on average, else 408 "
                        "(default: 32)")
    p.add_argument("--max-uploads-per-client", type=int, default=2, metavar="N",
                   help="uploads in flight from one address (default: 2)")
    p.add_argument("--work-dir", type=Path, metavar="DIR",
                   help="where the private folder for uploads and results goes (default: the temp folder)")
    p.add_argument("--keep-minutes", type=float, default=30.0,
                   help="delete uploads and results after this many minutes (default: 30)")
    p.add_argument("--idle-seconds", type=float, default=30.0,
                   help="close a live session that receives no frame for this long (default: 30)")
    p.set_defaults(func=run)


def _check_installed() -> None:
    import importlib.util

    from ..errors import BackendUnavailableError

    missing = [m for m in ("aiohttp", "aiortc") if importlib.util.find_spec(m) is None]
    if missing:
        raise BackendUnavailableError(f"rtstyle serve needs {' and '.join(missing)}: pip install 'rtstyle[web]'")


def run(args: argparse.Namespace) -> int:
    _check_installed()
    import asyncio

    from ..serve.app import serve
    from ..serve.config import STUDIO_LIMITS, ServeConfig

    config = ServeConfig(
        host=args.host, port=args.port, models=tuple(args.model), backend=args.backend, device=args.device,
        precision=args.precision, max_side=args.max_side, token=args.token, ice_servers=tuple(args.ice_server),
        max_sessions=args.max_sessions, max_jobs=args.max_jobs, max_upload_mb=args.max_upload_mb,
        keep_minutes=args.keep_minutes, idle_seconds=args.idle_seconds, limits=limits_from_args(args, STUDIO_LIMITS.hint),
        max_disk_mb=args.max_disk_mb, upload_grace_s=args.upload_grace_s, min_upload_kbps=args.min_upload_kbps,
        max_uploads_per_client=args.max_uploads_per_client, work_dir=args.work_dir,
    ).with_token()

    def ready(url: str) -> None:
        print(f"rtstyle studio: {url}", flush=True)
        if config.token is not None:
            print(f"token: {config.token} (non-loopback --host {config.host}: every request needs it)", flush=True)
        print("Ctrl-C to stop", file=sys.stderr, flush=True)

    try:
        asyncio.run(serve(config, ready))
    except KeyboardInterrupt:
        pass
    return 0
