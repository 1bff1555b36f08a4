"""The server's own cost per request, parsing included, without sockets.

``bench_protocol`` feeds batches of pipelined keep-alive GETs into
``HttpProtocol.data_received`` over an in-memory transport, so one operation
is everything the server does in Python for a request: httptools callbacks,
limits, event fill, routing, middleware, conversion, response bytes, pool
release. Kernel and socket costs are left out on purpose -- they are the same
for every configuration and are what makes loopback load runs noisy.

The ``raw`` case is the floor: a bare httptools parser that answers every
request with one fixed byte string, the least any Python server built on
httptools can do. Every batch's responses are checked (count and status)
before timing, so a fast wrong answer raises.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import httptools

from h3lab.bench.micro import BenchmarkError, Case, run_cases

BATCH = 32  # pipelined requests per data_received call
_RAW_RESPONSE = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 13\r\n\r\nHello, World!"
)
_PATHS = {"/plaintext": "/plaintext", "/json": "/json", "/users/:id": "/users/42"}


class MemoryTransport(asyncio.Transport):
    """Counts what the server writes; never blocks, never closes."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.keep = True

    def write(self, data: Any) -> None:
        if self.keep:
            self.writes.append(bytes(data))

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 50000) if name == "peername" else default

    def is_closing(self) -> bool:
        return False

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


def _batch(path: str) -> bytes:
    request = b"GET %s HTTP/1.1\r\nHost: localhost\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n"
    return request % path.encode() * BATCH


def _check(writes: list[bytes], label: str) -> None:
    data = b"".join(writes)
    answered = data.count(b"HTTP/1.1 200 OK\r\n")
    if answered != BATCH or data.count(b"HTTP/1.1 ") != BATCH:
        raise BenchmarkError(f"{label}: {answered} of {BATCH} requests answered 200")


def _loop(feed: Any, batch: bytes) -> Any:
    def run(loops: int) -> int:
        for _ in range(loops):
            feed(batch)
        return loops * BATCH

    return run


class _RawProtocol:
    """The floor: parse, then write one constant response per request."""

    def __init__(self, transport: MemoryTransport) -> None:
        self.transport = transport
        self.parser = httptools.HttpRequestParser(self)
        self.headers: list[tuple[bytes, bytes]] = []

    def on_message_begin(self) -> None:
        self.headers = []

    def on_url(self, url: bytes) -> None:
        self.url = url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_message_complete(self) -> None:
        self.transport.write(_RAW_RESPONSE)


def bench_protocol(
    presets: Sequence[str] | None = None,
    endpoints: Sequence[str] = ("/plaintext", "/json", "/users/:id"),
    **timing: Any,
) -> list[dict[str, Any]]:
    """ns per request through ``HttpProtocol`` per preset and endpoint, and the raw floor."""
    from h3lab.bench.apps import build_app
    from h3lab.bench.results import config_columns
    from h3lab.config import PRESETS, Config
    from h3lab.server.core import Server
    from h3lab.server.protocol import HttpProtocol

    loop = asyncio.new_event_loop()
    cases = []
    for preset in tuple(PRESETS if presets is None else presets):
        config = Config.preset(preset)
        app = build_app(config)
        app.prepare()
        server = Server(app, "127.0.0.1", 0)
        server.loop = loop  # never run: every benchmarked handler completes inline
        for endpoint in endpoints:
            transport = MemoryTransport()
            protocol = HttpProtocol(server)
            protocol.connection_made(transport)
            batch = _batch(_PATHS[endpoint])
            protocol.data_received(batch)
            _check(transport.writes, f"protocol {preset} {endpoint}")
            transport.keep = False
            cases.append(
                Case(
                    "protocol",
                    preset,
                    endpoint,
                    "pipelined-keepalive",
                    _loop(protocol.data_received, batch),
                    config_columns(config),
                    setup=app.memory.install,
                    teardown=app.memory.close,
                )
            )
    for endpoint in endpoints:
        transport = MemoryTransport()
        raw = _RawProtocol(transport)
        batch = _batch(_PATHS[endpoint])
        raw.parser.feed_data(batch)
        _check(transport.writes, f"protocol raw {endpoint}")
        transport.keep = False
        cases.append(
            Case(
                "protocol",
                "raw",
                endpoint,
                "pipelined-keepalive",
                _loop(raw.parser.feed_data, batch),
            )
        )
    try:
        return run_cases(cases, **timing)
    finally:
        loop.close()
