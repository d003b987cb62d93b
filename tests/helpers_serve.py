"""A studio on 127.0.0.1 for the serve tests: started and stopped inside one asyncio.run."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

pytest.importorskip("aiohttp")
pytest.importorskip("aiortc")

from rtstyle.serve.app import ServeConfig, start


@contextlib.asynccontextmanager
async def studio(**config):
    """Yields (base_url, app); every option of ServeConfig may be given (port 0 by default)."""
    runner, url = await start(ServeConfig(**{"port": 0, **config}))
    try:
        yield url.split("?")[0].rstrip("/"), runner.app
    finally:
        await runner.cleanup()


def run(coro):
    return asyncio.run(coro)


def leftovers(root: Path) -> list[Path]:
    """What the studio's private folder holds besides its lock file (held while the server lives)."""
    from rtstyle.serve.security import LOCK_NAME

    return sorted(p for p in root.rglob("*") if p.name != LOCK_NAME) if root.exists() else []
