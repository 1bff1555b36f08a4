"""Shared fixtures: configs covering every strategy, a live server, a client.

``strategy_config`` is the uvicorn ``http_protocol_cls`` idea applied to every
strategy family: the four presets, plus one config per registered strategy
name (each varied from ``balanced``). ``test_strategy_fixture_covers_registries``
fails if a strategy is registered that this fixture would not run.

``transport`` runs one test body on both transports: ``live = await
transport(app)`` serves ``app`` on the built-in server or through ``app.asgi``
under a real uvicorn, both on 127.0.0.1 (ephemeral port), and returns the same
``Live`` client API either way (``transport.name`` says which).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import hypothesis
import pytest
import uvicorn

from h3lab import H3, Config, Server
from h3lab.config import PRESETS, CacheConfig, RouterConfig
from h3lab.registry import FAMILIES, Family
from h3lab.routing import ROUTERS, Router, make_router
from tests import scheduling

# Hypothesis's per-example deadline is a timed assertion: on parallel workers
# sharing two cores it fails for load, not for a bug. Speed is the benchmarks'
# business; the property tests check behaviour only.
hypothesis.settings.register_profile("h3lab", deadline=None)
hypothesis.settings.load_profile("h3lab")


def _strategy_configs() -> list[tuple[str, Config]]:
    configs = [(f"preset-{name}", Config.preset(name)) for name in PRESETS]
    for strategy in FAMILIES:
        for name in strategy.names():
            overrides: dict[str, Any] = {strategy.field: name}
            if strategy.field == "router.matching":
                # The bare matcher, unless the name promises the route cache.
                if not ROUTERS.get(name).requires_cache:
                    overrides["cache.policy"] = "none"
            elif strategy.field == "cache.policy":
                # Each policy in front of the plain trie ("none": the bare trie).
                overrides["router.matching"] = "trie"
            elif strategy.field == "pool.policy" and name == "bounded":
                overrides["pool.size"] = 2  # small: reuse and drops both happen
                overrides["pool.warmup"] = 1
            configs.append((strategy_id(strategy, name), Config().replace(**overrides)))
    return configs


def strategy_id(strategy: Family, name: str) -> str:
    """``cache-lru``: the fixture id of one strategy's config."""
    return f"{strategy.section}-{name}"


STRATEGY_CONFIGS = _strategy_configs()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist: the longest tests first (tests/scheduling.py)."""
    workers = scheduling.under_xdist()
    if workers:
        scheduling.arrange(items, workers)


def router_variants() -> list[tuple[str, str]]:
    """(matching, cache policy) for every registered router as the suite runs it
    bare: no cache, or an LRU for a name that requires the route cache."""
    return [(name, "lru" if ROUTERS.get(name).requires_cache else "none") for name in ROUTERS]


def build_router(matching: str, policy: str = "none", size: int = 1024) -> Router:
    """``make_router`` from names, as the routing tests parametrize them."""
    return make_router(RouterConfig(matching), CacheConfig(policy, size))


@pytest.fixture(params=[c for _, c in STRATEGY_CONFIGS], ids=[i for i, _ in STRATEGY_CONFIGS])
def strategy_config(request: pytest.FixtureRequest) -> Config:
    return request.param


@pytest.fixture
def config() -> Config:
    return Config()


TRANSPORTS = ("builtin", "uvicorn")


class Live:
    """A running server (built-in or uvicorn) plus an aiohttp session pointed at it."""

    def __init__(
        self, app: H3, port: int, session: aiohttp.ClientSession, transport: str = "builtin"
    ) -> None:
        self.app = app
        self.port = port
        self.session = session
        self.transport = transport
        self.server: Server | None = app.server if transport == "builtin" else None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def request(self, method: str, path: str, **kw: Any) -> Any:
        return self.session.request(method, self.url + path, **kw)

    async def fetch(self, method: str, path: str, **kw: Any) -> tuple[int, dict[str, str], bytes]:
        async with self.request(method, path, **kw) as resp:
            return resp.status, dict(resp.headers), await resp.read()


async def start_uvicorn(asgi_app: Any) -> tuple[uvicorn.Server, int]:
    """uvicorn serving ``asgi_app`` in this loop on 127.0.0.1:<ephemeral>.

    uvicorn's own protocol classes, lifespan and connection handling, driven
    through ``Server.startup`` and ``stop_uvicorn`` rather than ``serve()``:
    ``serve()`` polls for exit every 0.1 s and sleeps another 0.1 s in its
    shutdown, 0.2 s per test across ~100 tests. ``serve()`` itself (signals,
    graceful shutdown) is tested in a subprocess (tests/test_asgi.py).
    """
    config = uvicorn.Config(
        asgi_app, host="127.0.0.1", port=0, log_level="warning", lifespan="on", server_header=False
    )
    config.load()
    server = uvicorn.Server(config)
    server.lifespan = config.lifespan_class(config)
    await server.startup()
    await server.on_tick(0)  # the Date header (refreshed by serve()'s loop, once here)
    if not server.started:
        raise RuntimeError("uvicorn did not start")
    return server, server.servers[0].sockets[0].getsockname()[1]


async def stop_uvicorn(server: uvicorn.Server) -> None:
    """uvicorn's ``Server.shutdown`` without its fixed sleeps."""
    for listener in server.servers:
        listener.close()
    for connection in list(server.server_state.connections):
        connection.shutdown()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while server.server_state.connections and loop.time() < deadline:
        await asyncio.sleep(0.005)
    await server.lifespan.shutdown()
    for listener in server.servers:
        await listener.wait_closed()


class Transports:
    """Starts apps on either transport and stops them all at teardown."""

    def __init__(self) -> None:
        self._stops: list[Callable[[], Awaitable[None]]] = []

    async def start(self, app: H3, transport: str = "builtin") -> Live:
        if transport == "builtin":
            server = Server(app, "127.0.0.1", 0)
            await server.start()
            port = server.port
            stop: Callable[[], Awaitable[None]] = lambda: server.shutdown(grace=1.0)  # noqa: E731
        elif transport == "uvicorn":
            uv, port = await start_uvicorn(app.asgi)
            stop = lambda: stop_uvicorn(uv)  # noqa: E731
        else:
            raise ValueError(f"transport must be one of {list(TRANSPORTS)}, got {transport!r}")
        session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))

        async def close() -> None:
            await session.close()
            await stop()

        self._stops.append(close)
        return Live(app, port, session, transport)

    async def close(self) -> None:
        for stop in reversed(self._stops):
            await stop()


@pytest.fixture
async def serve_on() -> AsyncIterator[Callable[..., Awaitable[Live]]]:
    """``live = await serve_on(app, "builtin" | "uvicorn")``."""
    transports = Transports()
    yield transports.start
    await transports.close()


@pytest.fixture
async def live_factory(serve_on: Any) -> Callable[[H3], Awaitable[Live]]:
    """``live = await live_factory(app)``: serve ``app`` on the built-in server."""
    return lambda app: serve_on(app, "builtin")


class Transport:
    """``live = await transport(app)``: one transport, chosen by the fixture's param."""

    def __init__(self, name: str, serve_on: Callable[..., Awaitable[Live]]) -> None:
        self.name = name
        self._serve_on = serve_on

    def __call__(self, app: H3) -> Awaitable[Live]:
        return self._serve_on(app, self.name)

    def __repr__(self) -> str:
        return f"Transport({self.name})"


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest, serve_on: Any) -> Transport:
    """Each test using it runs once on the built-in server and once under uvicorn."""
    return Transport(request.param, serve_on)


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


async def asgi_request(
    app: H3,
    method: str,
    path: str,
    *,
    headers: list[tuple[bytes, bytes]] | None = None,
    body: bytes | list[bytes] = b"",
    disconnect_after_body: bool = False,
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Drive ``app.asgi`` in process (no socket): (status, headers, body).

    ``body`` as a list arrives in that many ``http.request`` messages;
    ``disconnect_after_body`` sends ``http.disconnect`` instead of its end.
    Any exception escaping ``app.asgi`` propagates to the test.
    """
    target, _, query = path.partition("?")
    pieces = body if isinstance(body, list) else [body]
    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": piece, "more_body": i < len(pieces) - 1}
        for i, piece in enumerate(pieces)
    ]
    if disconnect_after_body:
        messages[-1]["more_body"] = True
        messages.append({"type": "http.disconnect"})
    pending = iter(messages)
    done = asyncio.Event()
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        message = next(pending, None)
        if message is not None:
            return message
        await done.wait()  # the response is complete: the client "leaves"
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body"):
            done.set()

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": target,
        "raw_path": target.encode(),
        "query_string": query.encode(),
        "headers": headers or [],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }
    try:
        await app.asgi(scope, receive, send)
    finally:
        # Without a lifespan, the adapter installs the memory strategy at the
        # first request: undo it so no GC setting outlives the test.
        app.memory.close()
    if not sent:
        return 0, [], b""
    start = sent[0]
    data = b"".join(m.get("body", b"") for m in sent[1:])
    return start["status"], list(start["headers"]), data
