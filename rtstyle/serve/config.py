"""The studio's settings (no web framework needed to build or check them)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..errors import InputError
from ..limits import Limits
from .security import is_loopback, new_token, validate_token

# What a studio refuses from one upload unless its flags say otherwise (rtstyle.limits: the same
# rule as `rtstyle stylize`, whose own defaults leave frames and length free): ten minutes.
STUDIO_LIMITS = Limits(max_frames=36_000, max_seconds=600.0,
                       hint="the studio's limit: rtstyle serve --max-pixels; the job field max_side shrinks frames")


@dataclass(frozen=True)
class ServeConfig:
    host: str = "127.0.0.1"
    port: int = 8000
    models: tuple[str, ...] = ()  # none: every bundled style model
    backend: str = "auto"
    device: str = "auto"
    precision: str = "auto"
    max_side: int | None = 480  # live frames are shrunk to this longer side before the engine
    token: str | None = None  # required for non-loopback binds (generated when not given)
    ice_servers: tuple[str, ...] = ()  # stun:/turn: URLs; none: host candidates only
    max_sessions: int = 2
    max_jobs: int = 2
    max_upload_mb: float = 200.0
    keep_minutes: float = 30.0  # uploads and results are deleted after this, downloaded or not
    idle_seconds: float = 30.0  # a live session that receives no frame for this long is closed
    # Every job obeys these (a client's own values can only tighten them): rtstyle.limits.
    limits: Limits = field(default_factory=lambda: STUDIO_LIMITS)
    max_disk_mb: float = 2048.0  # every upload (arriving or kept) and result together; past it: 507
    # A request body must arrive at min_upload_kbps on average once upload_grace_s have passed
    # (a client sending a byte every 20 s is cut off), so an upload takes at most
    # upload_grace_s + max_upload_mb / min_upload_kbps.
    upload_grace_s: float = 30.0
    min_upload_kbps: float = 32.0
    max_uploads_per_client: int = 2  # uploads in flight from one address
    work_dir: Path | None = None  # where the private upload folder goes (default: the temp folder)

    def __post_init__(self) -> None:
        if self.token is not None:
            validate_token(self.token)
        if not 0 <= self.port <= 65535:
            raise InputError(f"--port must be in 0..65535, got {self.port}")
        for name in ("max_sessions", "max_jobs", "max_uploads_per_client"):
            if getattr(self, name) < 1:
                raise InputError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        for name in ("max_upload_mb", "keep_minutes", "idle_seconds", "max_disk_mb", "upload_grace_s", "min_upload_kbps"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise InputError(f"--{name.replace('_', '-')} must be a number > 0, got {value!r}")
        if self.max_side is not None and self.max_side < 16:
            raise InputError(f"--max-side must be >= 16, got {self.max_side}")
        for url in self.ice_servers:
            if not url.startswith(("stun:", "stuns:", "turn:", "turns:")):
                raise InputError(f"--ice-server {url!r} must be a stun:, stuns:, turn: or turns: URL")

    def with_token(self) -> ServeConfig:
        """The config with a fresh token when the bind is not loopback and none was given."""
        if self.token is None and not is_loopback(self.host):
            return replace(self, token=new_token())
        return self
