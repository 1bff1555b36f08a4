"""Section 4: faults -- aborted connections, graceful shutdown, unsafe headers.

The leak check runs a storm of connections reset (SO_LINGER 0 -> RST) at
random points of a request and of a response, then counts what the server
still holds: connections, pooled events in use, tasks it created, arena
buffers not returned, and ERROR log records (there must be none).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import signal
import socket
import time
from typing import Any

import pytest

from h3lab.bench.server import ServerProcess
from h3lab.event import H3Event
from h3lab.server.access_log import log_access
from tests.hostile.conftest import (
    GET_OK,
    PRESET_NAMES,
    exchange,
    parse_responses,
    reset,
    still_serves,
)

STORM = 500


class CountingArena:
    """Wraps the app's BufferArena to count buffers out and back."""

    def __init__(self, arena: Any) -> None:
        self.arena = arena
        self.acquired = 0
        self.released = 0

    def acquire(self) -> bytearray:
        self.acquired += 1
        return self.arena.acquire()  # type: ignore[no-any-return]

    def release(self, buf: bytearray) -> None:
        self.released += 1
        self.arena.release(buf)

    def stats(self) -> dict[str, Any]:
        return self.arena.stats()  # type: ignore[no-any-return]


async def aborted_connection(port: int, rng: random.Random) -> None:
    """One connection reset at a random point of a random exchange."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    scenario = rng.randrange(9)
    try:
        if scenario == 1:  # mid request line / headers
            writer.write(b"GET /ok HTTP/1.1\r\nHost: t\r\nX-Part")
        elif scenario == 2:  # mid Content-Length body
            writer.write(
                b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n" + b"x" * 500
            )
        elif scenario == 3:  # mid chunked body, arriving in pieces (uses an arena buffer)
            writer.write(b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
            for _ in range(3):
                writer.write(b"10\r\n" + b"y" * 16 + b"\r\n")
                await writer.drain()
                await asyncio.sleep(0.002)
        elif scenario == 4:  # while the handler runs
            writer.write(b"GET /hang HTTP/1.1\r\nHost: t\r\n\r\n")
        elif scenario == 5:  # mid streaming response
            writer.write(b"GET /firehose HTTP/1.1\r\nHost: t\r\n\r\n")
            await writer.drain()
            await reader.read(rng.randrange(1, 200_000))
        elif scenario == 6:  # with pipelined requests queued behind a slow one
            writer.write(b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n" + GET_OK * 5)
        elif scenario == 7:  # while a complete response is being written
            writer.write(
                b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 200000\r\n\r\n" + b"z" * 200_000
            )
        elif scenario == 8:  # right after a refusal, while the server lingers
            writer.write(b"GET /ok HTTP/1.1\r\nHost : t\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(rng.random() * 0.02)
    except (ConnectionError, OSError):
        pass
    finally:
        reset(writer)


@pytest.mark.parametrize("preset", PRESET_NAMES)
async def test_reset_storm_leaks_nothing(serving: Any, preset: str, caplog: Any) -> None:
    caplog.set_level(logging.WARNING)
    server, _ = await serving(preset)
    arena = server.app.memory.arena
    counting = None
    if arena is not None:
        counting = CountingArena(arena)
        server.app.memory.arena = counting
    baseline_tasks = asyncio.all_tasks()
    rng = random.Random(5)
    limit = asyncio.Semaphore(50)

    async def one() -> None:
        async with limit:
            await aborted_connection(server.port, rng)

    await asyncio.gather(*(one() for _ in range(STORM)))
    for _ in range(200):
        if not server.connections and server.app.pool.stats()["in_use"] == 0:
            break
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.05)  # let cancelled tasks finish unwinding
    assert len(server.connections) == 0
    assert server.app.pool.stats()["in_use"] == 0
    leftover = [t for t in asyncio.all_tasks() - baseline_tasks if not t.done()]
    assert leftover == [], leftover
    if counting is not None:
        assert counting.acquired == counting.released, (counting.acquired, counting.released)
        assert counting.acquired > 0, "the storm never used the arena"
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]
    assert not any("Traceback" in r.getMessage() for r in caplog.records)
    await still_serves(server)


@pytest.mark.parametrize("preset", PRESET_NAMES)
async def test_handler_sees_the_disconnect(serving: Any, preset: str, caplog: Any) -> None:
    caplog.set_level(logging.WARNING)
    server, state = await serving(preset)
    _, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /hang HTTP/1.1\r\nHost: t\r\n\r\n")
    await writer.drain()
    await asyncio.sleep(0.05)
    reset(writer)
    for _ in range(100):
        if state["cancelled"]:
            break
        await asyncio.sleep(0.01)
    assert state["cancelled"] == 1 and server.app.pool.stats()["in_use"] == 0
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    await still_serves(server)


@pytest.mark.parametrize("preset", PRESET_NAMES)
async def test_graceful_shutdown(serving: Any, preset: str) -> None:
    server, state = await serving(preset)
    port = server.port
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    idle_reader, idle_writer = await asyncio.open_connection("127.0.0.1", port)
    idle_writer.write(GET_OK)
    await asyncio.wait_for(idle_reader.readuntil(b"ok"), 2)  # now an idle keep-alive
    writer.write(b"GET /graceful HTTP/1.1\r\nHost: t\r\n\r\n")
    await writer.drain()
    await asyncio.sleep(0.05)
    started = time.monotonic()
    shutdown = asyncio.create_task(server.shutdown(grace=5))
    assert await asyncio.wait_for(idle_reader.read(), 1) == b""  # idle: closed at once
    with pytest.raises(OSError):  # the listener closed first
        await asyncio.open_connection("127.0.0.1", port)
    data = await asyncio.wait_for(reader.read(), 3)  # in flight: finished, then closed
    responses, _ = parse_responses(data)
    assert [r.body for r in responses] == [b"finished"] and state["finished"] == 1
    assert responses[0].headers.get("connection") == "close"
    await shutdown
    assert time.monotonic() - started < 3
    writer.close()
    idle_writer.close()


async def test_shutdown_grace_is_bounded(serving: Any) -> None:
    server, state = await serving()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /hang HTTP/1.1\r\nHost: t\r\n\r\n")
    await writer.drain()
    await asyncio.sleep(0.05)
    started = time.monotonic()
    await server.shutdown(grace=0.3)
    assert time.monotonic() - started < 2.5
    assert await asyncio.wait_for(reader.read(), 2) == b""
    await asyncio.sleep(0.05)
    assert state["cancelled"] == 1 and not server.connections
    writer.close()


def test_sigterm_finishes_in_flight_then_exits_0() -> None:
    with ServerProcess(
        app="tests.hostile.app:create_app", preset="balanced", sample_interval=None, stats_path=None
    ) as srv:
        sock = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        try:
            sock.sendall(b"GET /graceful HTTP/1.1\r\nHost: t\r\n\r\n")
            time.sleep(0.1)
            assert srv.pid is not None
            os.kill(srv.pid, signal.SIGTERM)
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        finally:
            sock.close()
        assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"finished")
        assert srv.proc is not None and srv.proc.wait(timeout=10) == 0


@pytest.mark.parametrize("preset", PRESET_NAMES)
@pytest.mark.parametrize("path", ["/bad-header", "/bad-header-stream"])
async def test_crlf_in_a_response_header_is_a_500_never_sent(
    serving: Any, preset: str, path: str
) -> None:
    server, _ = await serving(preset)
    result = await exchange(
        server.port, b"GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n" % path.encode()
    )
    assert result.statuses == [500]
    assert b"pwned" not in result.data and b"x-injected" not in result.data.lower()
    await still_serves(server)


def test_access_log_escapes_control_bytes(caplog: Any) -> None:
    caplog.set_level(logging.INFO, logger="h3lab.access")
    event = H3Event()
    event.remote = ("127.0.0.1", 1)
    event.method = "GET"
    event.raw_path = "/a\r\nforged 200"
    event.query_string = "x=\x1b[31m\x00"
    log_access(event, 200, 0)
    (record,) = caplog.records
    line = record.getMessage()
    assert "\n" not in line and "\r" not in line and "\x1b" not in line and "\x00" not in line
    assert "\\r\\n" in line and "\\x1b" in line


async def test_access_log_one_line_per_request(serving: Any, caplog: Any) -> None:
    caplog.set_level(logging.INFO, logger="h3lab.access")
    server, _ = await serving("balanced", **{"server.access_log": True})
    await exchange(
        server.port, b"GET /ok?a=%0d%0a HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    lines = [r.getMessage() for r in caplog.records if r.name == "h3lab.access"]
    assert len(lines) == 1 and "\n" not in lines[0] and "/ok?a=%0d%0a" in lines[0]
    await still_serves(server)
