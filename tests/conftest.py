"""Shared fixtures: configs covering every strategy, a live server, a client.

``strategy_config`` is the uvicorn ``http_protocol_cls`` idea applied to every
strategy family: the four presets, plus one config per registered strategy
name (each varied from ``balanced``). ``test_strategy_fixture_covers_registries``
fails if a strategy is registered that this fixture would not run.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest

from h3lab import H3, Config, Server
from h3lab.config import PRESETS, strategy_names

FAMILIES = {
    "router": "router.matching",
    "cache": "cache.policy",
    "pool": "pool.policy",
    "memory": "memory.strategy",
    "middleware": "middleware.execution",
}


def _strategy_configs() -> list[tuple[str, Config]]:
    configs = [(f"preset-{name}", Config.preset(name)) for name in PRESETS]
    for short, family in FAMILIES.items():
        for name in strategy_names(family):
            overrides: dict[str, Any] = {family: name}
            if family == "cache.policy" and name == "none":
                overrides["router.matching"] = "trie"  # hybrid needs a cache
            if family == "router.matching" and name != "hybrid":
                overrides["cache.policy"] = "none"  # the bare matcher, no cache
            if family == "pool.policy" and name == "bounded":
                overrides["pool.size"] = 2  # small: reuse and drops both happen
                overrides["pool.warmup"] = 1
            configs.append((f"{short}-{name}", Config().replace(**overrides)))
    return configs


STRATEGY_CONFIGS = _strategy_configs()


@pytest.fixture(params=[c for _, c in STRATEGY_CONFIGS], ids=[i for i, _ in STRATEGY_CONFIGS])
def strategy_config(request: pytest.FixtureRequest) -> Config:
    return request.param


@pytest.fixture
def config() -> Config:
    return Config()


class Live:
    """A running server plus an aiohttp session pointed at it."""

    def __init__(self, server: Server, session: aiohttp.ClientSession) -> None:
        self.server = server
        self.session = session
        self.app = server.app

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def port(self) -> int:
        return self.server.port

    def request(self, method: str, path: str, **kw: Any) -> Any:
        return self.session.request(method, self.url + path, **kw)

    async def fetch(self, method: str, path: str, **kw: Any) -> tuple[int, dict[str, str], bytes]:
        async with self.request(method, path, **kw) as resp:
            return resp.status, dict(resp.headers), await resp.read()


@pytest.fixture
async def live_factory() -> AsyncIterator[Callable[[H3], Any]]:
    """``live = await live_factory(app)``: serve ``app`` on 127.0.0.1:<ephemeral>."""
    started: list[tuple[Server, aiohttp.ClientSession]] = []

    async def start(app: H3) -> Live:
        server = Server(app, "127.0.0.1", 0)
        await server.start()
        session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        started.append((server, session))
        return Live(server, session)

    yield start
    for server, session in started:
        await session.close()
        await server.shutdown(grace=1.0)


async def raw_exchange(
    port: int, payload: bytes, *, read_timeout: float = 2.0, chunks: list[bytes] | None = None
) -> bytes:
    """Send raw bytes, read until the server closes (or the timeout), return all bytes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for piece in chunks or [payload]:
            writer.write(piece)
            await writer.drain()
        data = b""
        try:
            while True:
                chunk = await asyncio.wait_for(reader.read(65536), read_timeout)
                if not chunk:
                    break
                data += chunk
        except TimeoutError:
            pass
        return data
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
