"""The studio's settings (no web framework needed to build or check them)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..errors import InputError
from .security import is_loopback, new_token, validate_token


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

    def __post_init__(self) -> None:
        if self.token is not None:
            validate_token(self.token)
        if not 0 <= self.port <= 65535:
            raise InputError(f"--port must be in 0..65535, got {self.port}")
        for name in ("max_sessions", "max_jobs"):
            if getattr(self, name) < 1:
                raise InputError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.max_upload_mb <= 0 or self.keep_minutes <= 0 or self.idle_seconds <= 0:
            raise InputError("--max-upload-mb, --keep-minutes and --idle-seconds must be > 0")
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
