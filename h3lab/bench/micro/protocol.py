"""The server's own cost per request, parsing included, without sockets.

``bench_protocol`` feeds batches of pipelined keep-alive GETs into
``HttpProtocol.data_received`` over ``h3lab.testing.MemoryTransport``, with
a bare ``ServerState`` (no listener), so one operation is everything the
server does in Python for a request: httptools callbacks, limits, event
fill, routing, middleware, conversion, response bytes, pool release.
Kernel and socket costs are left out on purpose -- they are the same for
every configuration and are what makes loopback load runs noisy.

The ``raw`` case is the floor: a bare httptools parser that answers every
request with one fixed byte string, the least any Python server built on
httptools can do. The ``framework-floor`` case is the framework floor of
``h3lab bench peers`` (``peer_apps/floor.py``: a request object, a route
table, the handler in its own context, its result encoded, no checks), so
``performance`` against ``framework-floor`` is the price of h3lab's checks and
features, in process. Every batch's responses are checked (count and status)
before timing, so a fast wrong answer raises.

Every request runs in its own asyncio Task (``h3lab.server.tasks``), so the
batches are fed from a callback of a running event loop, as a socket read
is. The ``task-start`` rows price the ways a request's coroutine can be run,
for a coroutine that returns at once: ``send`` (a bare ``coro.send(None)``,
no task, no context: what the server did before issue 10), ``context``
(the same in a copied ``contextvars`` context), ``server`` (what
``start_request_task`` does on this interpreter), ``eager`` (3.12+'s
``eager_start``), ``scheduled`` (``loop.create_task``, answered one loop
iteration later).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Sequence
from contextvars import copy_context
from typing import Any

import httptools

from h3lab.bench.micro.harness import BenchmarkError, Case, run_cases

BATCH = 32  # pipelined requests per data_received call
_RAW_RESPONSE = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 13\r\n\r\nHello, World!"
)
_PATHS = {"/plaintext": "/plaintext", "/json": "/json", "/users/:id": "/users/42"}


def _batch(path: str) -> bytes:
    request = b"GET %s HTTP/1.1\r\nHost: localhost\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n"
    return request % path.encode() * BATCH


def _check(writes: list[bytes], label: str) -> None:
    data = b"".join(writes)
    answered = data.count(b"HTTP/1.1 200 OK\r\n")
    if answered != BATCH or data.count(b"HTTP/1.1 ") != BATCH:
        raise BenchmarkError(f"{label}: {answered} of {BATCH} requests answered 200")


def _in_loop(loop: asyncio.AbstractEventLoop, run: Callable[[int], int]) -> Callable[[int], int]:
    """``run`` called from a callback of the running ``loop`` (where a socket read
    is delivered): request tasks start eagerly and no task is current."""

    def call(loops: int) -> int:
        out: list[int] = []

        def callback() -> None:
            try:
                out.append(run(loops))
            finally:
                loop.stop()

        loop.call_soon(callback)
        loop.run_forever()
        return out[0]

    return call


def _loop(loop: asyncio.AbstractEventLoop, feed: Any, batch: bytes) -> Any:
    def run(loops: int) -> int:
        for _ in range(loops):
            feed(batch)
        return loops * BATCH

    return _in_loop(loop, run)


async def _returns_at_once() -> str:
    return "ok"


def _task_start_cases(loop: asyncio.AbstractEventLoop) -> list[Case]:
    """ns per coroutine for each way of running a request's coroutine (module docstring)."""
    from h3lab.server.tasks import start_mode, start_request_task

    def send(loops: int) -> int:
        for _ in range(loops):
            coro = _returns_at_once()
            try:  # noqa: SIM105 - contextlib.suppress would be timed too
                coro.send(None)
            except StopIteration:
                pass
        return loops

    def context(loops: int) -> int:
        for _ in range(loops):
            coro = _returns_at_once()
            try:  # noqa: SIM105 - contextlib.suppress would be timed too
                copy_context().run(coro.send, None)
            except StopIteration:
                pass
        return loops

    def server(loops: int) -> int:
        for _ in range(loops):
            task = start_request_task(loop, _returns_at_once())
            if not task.done():
                raise BenchmarkError("a request task that returns at once did not finish eagerly")
        return loops

    def eager(loops: int) -> int:
        for _ in range(loops):
            asyncio.Task(_returns_at_once(), loop=loop, eager_start=True)  # type: ignore[call-arg]  # eager_start is 3.12+, behind a version check
        return loops

    def scheduled(loops: int) -> int:
        # One task at a time, each answered one loop iteration later (the
        # pipelined case: the next request waits for the previous answer).
        async def chain() -> None:
            for _ in range(loops):
                await loop.create_task(_returns_at_once())

        loop.run_until_complete(chain())
        return loops

    variants: list[tuple[str, Callable[[int], int]]] = [
        ("send", _in_loop(loop, send)),
        ("context", _in_loop(loop, context)),
        ("server", _in_loop(loop, server)),
        ("scheduled", scheduled),
    ]
    if sys.version_info >= (3, 12):
        variants.insert(3, ("eager", _in_loop(loop, eager)))
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    return [
        Case(
            "protocol",
            "task-start",
            name,
            "returns-at-once",
            fn,
            {"python": version, "loop": type(loop).__module__.split(".")[0], "mode": start_mode()},
        )
        for name, fn in variants
    ]


class _RawProtocol:
    """The floor: parse, then write one constant response per request."""

    def __init__(self, transport: Any) -> None:
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
    task_start: bool = True,
    **timing: Any,
) -> list[dict[str, Any]]:
    """ns per request through ``HttpProtocol`` per preset and endpoint, the raw
    floor, the framework floor (``framework-floor``), and (``task_start``) the cost of
    each way to start a request's task."""
    from h3lab.bench.apps import build_app
    from h3lab.bench.results import config_columns
    from h3lab.config import PRESETS, Config
    from h3lab.server.core import _loop_factory
    from h3lab.server.protocol import HttpProtocol
    from h3lab.server.state import ServerState
    from h3lab.testing import MemoryTransport

    loop = _loop_factory("auto")()  # uvloop where installed, as h3lab serve runs
    cases = []
    for preset in tuple(PRESETS if presets is None else presets):
        config = Config.preset(preset)
        app = build_app(config)
        app.prepare()
        # What a connection needs of a server, with no listener: ServerState.
        state = ServerState(app, loop=loop)
        for endpoint in endpoints:
            transport = MemoryTransport()
            protocol = HttpProtocol(state)
            protocol.connection_made(transport)
            batch = _batch(_PATHS[endpoint])

            def feed(_: int, p: HttpProtocol = protocol, b: bytes = batch) -> int:
                p.data_received(b)
                return 1

            _in_loop(loop, feed)(1)
            _check(transport.writes, f"protocol {preset} {endpoint}")
            transport.record = False
            cases.append(
                Case(
                    "protocol",
                    preset,
                    endpoint,
                    "pipelined-keepalive",
                    _loop(loop, protocol.data_received, batch),
                    config_columns(config),
                    setup=app.memory.install,
                    teardown=app.memory.close,
                )
            )
    from h3lab.bench.peer_apps import FLOOR_NAME
    from h3lab.bench.peer_apps.floor import FloorProtocol

    def floor_feed(transport: MemoryTransport) -> Callable[[bytes], None]:
        floor = FloorProtocol()
        floor.connection_made(transport)
        return floor.data_received

    # The two floors, fed the same batches (each answer checked before timing).
    bare: list[tuple[str, Callable[[MemoryTransport], Callable[[bytes], None]]]] = [
        ("raw", lambda transport: _RawProtocol(transport).parser.feed_data),
        (FLOOR_NAME, floor_feed),
    ]
    for name, make_feed in bare:
        for endpoint in endpoints:
            transport = MemoryTransport()
            feed_batch = make_feed(transport)
            batch = _batch(_PATHS[endpoint])
            feed_batch(batch)
            _check(transport.writes, f"protocol {name} {endpoint}")
            transport.record = False
            cases.append(
                Case(
                    "protocol",
                    name,
                    endpoint,
                    "pipelined-keepalive",
                    _loop(loop, feed_batch, batch),
                )
            )
    if task_start:
        cases += _task_start_cases(loop)
    try:
        return run_cases(cases, **timing)
    finally:
        loop.close()
