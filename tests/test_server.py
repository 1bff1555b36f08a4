"""The HTTP/1.1 server over raw sockets: framing, pipelining, limits, timeouts,
disconnects, backpressure, shutdown. Each test ends by checking the server
still serves a normal request."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import struct
from typing import Any

import pytest

from h3lab import H3, Config, Server
from h3lab.event import H3Event
from h3lab.server import framing
from h3lab.server.protocol import HttpProtocol
from h3lab.testing import FakeClock, MemoryTransport
from tests.conftest import raw_exchange

GET_OK = b"GET /ok HTTP/1.1\r\nHost: t\r\n\r\n"


def make_app(config: Config | None = None) -> tuple[H3, dict[str, Any]]:
    app = H3(config or Config())
    state: dict[str, Any] = {"produced": 0, "cancelled": 0, "finished": 0}

    app.get("/ok", lambda e: "ok")

    @app.get("/slow/:id")
    async def slow(event: H3Event) -> str:
        await asyncio.sleep(0.05)
        return f"slow {event.params['id']}"

    @app.get("/fast/:id")
    def fast(event: H3Event) -> str:
        return f"fast {event.params['id']}"

    @app.post("/echo")
    async def echo(event: H3Event) -> bytes:
        return await event.body()

    @app.get("/hang")
    async def hang(event: H3Event) -> str:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            state["cancelled"] += 1
            raise
        return "never"

    @app.get("/firehose")
    async def firehose(event: H3Event) -> Any:
        async def chunks() -> Any:
            while True:
                state["produced"] += 1
                yield b"x" * 65536

        return chunks()

    @app.get("/graceful")
    async def graceful(event: H3Event) -> str:
        await asyncio.sleep(0.3)
        state["finished"] += 1
        return "finished"

    return app, state


async def serving(config: Config | None = None) -> tuple[Server, dict[str, Any]]:
    app, state = make_app(config)
    server = Server(app, "127.0.0.1", 0)
    await server.start()
    return server, state


async def still_serves(server: Server) -> None:
    data = await raw_exchange(
        server.port, b"GET /ok HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    assert data.startswith(b"HTTP/1.1 200 OK") and data.endswith(b"\r\n\r\nok")


def reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST (SO_LINGER 0), as a crashed or impatient client does."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def statuses(data: bytes) -> list[int]:
    """Final statuses of every response in a byte stream (interim 100s excluded)."""
    return [int(code) for code in re.findall(rb"HTTP/1\.[01] (\d{3}) ", data) if code != b"100"]


async def test_pipelined_requests_answered_in_order() -> None:
    server, _ = await serving()
    try:
        payload = (
            b"GET /fast/1 HTTP/1.1\r\nHost: t\r\n\r\n"
            b"GET /slow/2 HTTP/1.1\r\nHost: t\r\n\r\n"
            b"GET /fast/3 HTTP/1.1\r\nHost: t\r\n\r\n"
            b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello"
            b"GET /fast/5 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
        )
        data = await raw_exchange(server.port, payload)
        bodies = [b"fast 1", b"slow 2", b"fast 3", b"hello", b"fast 5"]
        positions = [data.index(b"\r\n\r\n" + body) for body in bodies]
        assert positions == sorted(positions) and statuses(data) == [200] * 5
        await still_serves(server)
    finally:
        await server.shutdown(1)


async def test_byte_by_byte_request() -> None:
    server, _ = await serving()
    try:
        payload = (
            b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc"
        )
        data = await raw_exchange(server.port, b"", chunks=[bytes([b]) for b in payload])
        assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"\r\n\r\nabc")
    finally:
        await server.shutdown(1)


async def test_chunked_request_body() -> None:
    server, _ = await serving()
    try:
        payload = (
            b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
        )
        data = await raw_exchange(server.port, payload)
        assert data.endswith(b"\r\n\r\nhello world")
    finally:
        await server.shutdown(1)


async def test_http10_closes_unless_keep_alive() -> None:
    server, _ = await serving()
    try:
        data = await raw_exchange(server.port, b"GET /ok HTTP/1.0\r\n\r\n")
        assert data.startswith(b"HTTP/1.1 200") and b"connection: close" in data.lower()
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /ok HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        head = await reader.readuntil(b"\r\n\r\n")
        assert b"connection: keep-alive" in head.lower()
        writer.write(b"GET /ok HTTP/1.0\r\n\r\n")  # second request on the same connection
        rest = await asyncio.wait_for(reader.read(), 2)
        assert b"ok" in rest and b"HTTP/1.1 200" in rest
        writer.close()
    finally:
        await server.shutdown(1)


@pytest.mark.parametrize(
    ("payload", "status"),
    [
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: t\r\nBad Header\r\n\r\n", 400),
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: t\r\n\r\n", 414),
        (b"GET /ok HTTP/1.1\r\nHost: t\r\nX-Big: " + b"v" * 9000 + b"\r\n\r\n", 431),
        (
            b"GET /ok HTTP/1.1\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(120)) + b"\r\n",
            431,
        ),
        (b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 99999999\r\n\r\n", 413),
        (b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nExpect: magic\r\n\r\nab", 417),
    ],
    ids=["garbage", "bad-header", "long-url", "long-header", "many-headers", "huge-body", "expect"],
)
async def test_bad_requests_get_4xx_close_and_server_survives(payload: bytes, status: int) -> None:
    server, _ = await serving()
    try:
        data = await raw_exchange(server.port, payload + GET_OK)
        assert statuses(data) == [status], data[:200]
        assert b"connection: close" in data.lower()
        assert json.loads(data.split(b"\r\n\r\n", 1)[1])["status"] == status
        await still_serves(server)
    finally:
        await server.shutdown(1)


async def test_expect_100_continue() -> None:
    server, _ = await serving()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(
            b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"
        )
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(b"body")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
        assert head.startswith(b"HTTP/1.1 200") and await reader.readexactly(4) == b"body"
        writer.close()
    finally:
        await server.shutdown(1)


async def test_client_disconnect_cancels_handler_quietly(caplog: Any) -> None:
    server, state = await serving()
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /hang HTTP/1.1\r\nHost: t\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(0.05)
        reset(writer)
        await asyncio.sleep(0.05)
        assert state["cancelled"] == 1
        assert server.app.pool.stats()["in_use"] == 0
        assert not [r for r in caplog.records if r.levelname == "ERROR"]
        await still_serves(server)
    finally:
        await server.shutdown(1)


async def test_write_backpressure_bounds_a_slow_reader() -> None:
    server, state = await serving(Config().replace("limits.write_buffer_high", 65536))
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", server.port, limit=1024)
        writer.write(b"GET /firehose HTTP/1.1\r\nHost: t\r\n\r\n")
        await asyncio.sleep(0.5)  # we never read: kernel buffers fill, then the server waits
        produced = state["produced"]
        await asyncio.sleep(0.5)
        assert state["produced"] == produced, (
            "the producer kept going for a client that never reads"
        )
        conn = next(iter(server.connections))
        assert conn.transport.get_write_buffer_size() <= 65536 * 2
        reset(writer)
        await asyncio.sleep(0.05)
        assert server.app.pool.stats()["in_use"] == 0
        await still_serves(server)
    finally:
        await server.shutdown(1)


# -- deadlines, on a fake clock (tests/hostile/test_slow.py has them end to end) --


class Connected:
    """A started server on a fake clock, and one connection to it in memory."""

    def __init__(self, server: Server, clock: FakeClock) -> None:
        self.server = server
        self.clock = clock
        self.protocol = HttpProtocol(server.state)
        self.transport = MemoryTransport()
        self.protocol.connection_made(self.transport)

    def advance(self, seconds: float) -> None:
        """Move the server's clock (its ticker, and so every deadline, fires on the way)."""
        self.clock.advance(seconds)

    async def close(self) -> None:
        self.protocol.connection_lost(None)
        await self.server.shutdown(0.1)


async def settled(conn: Connected) -> None:
    """Let the loop run the request Tasks' done callbacks (real time, not the fake clock):
    the bytes of a response are written before its Task is done."""
    for _ in range(200):
        if conn.protocol.running is None and not conn.protocol.queue:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the connection's requests never finished")


async def connected(**limits: Any) -> Connected:
    app, _ = make_app(Config().replace(**{f"limits.{k}": v for k, v in limits.items()}))
    clock = FakeClock()
    server = Server(app, "127.0.0.1", 0, clock=clock)
    await server.start()
    return Connected(server, clock)


async def test_keep_alive_idle_timeout_closes() -> None:
    conn = await connected(keepalive_timeout=0.2)
    try:
        conn.protocol.data_received(GET_OK)
        assert statuses(conn.transport.data) == [200]
        conn.advance(0.15)
        assert not conn.transport.closed  # within the idle timeout
        conn.advance(0.15)
        assert conn.transport.closed and not conn.transport.eof_written  # closed, no answer due
    finally:
        await conn.close()


async def test_keep_alive_idle_counts_from_the_end_of_the_last_response() -> None:
    # A response still in the client's buffer is not idle time.
    conn = await connected(keepalive_timeout=0.2, send_timeout=10)
    try:
        conn.protocol.data_received(GET_OK)
        conn.transport.buffered = 100_000
        conn.advance(0.1)
        conn.transport.buffered = 50_000  # progress: the client reads, slowly
        conn.advance(0.3)
        assert not conn.transport.closed
        conn.transport.buffered = 0  # all sent: idle from now on
        conn.advance(0.15)
        assert not conn.transport.closed
        conn.advance(0.15)
        assert conn.transport.closed
    finally:
        await conn.close()


async def test_header_deadline_cuts_a_slowloris() -> None:
    conn = await connected(header_timeout=0.3)
    try:
        conn.protocol.data_received(b"GET /ok HTTP/1.1\r\nHost: t\r\n")
        # A header every 50 ms: an inactivity timer would never fire; the
        # absolute deadline does, and the answer is followed by FIN (linger).
        for _ in range(5):
            conn.advance(0.05)
            conn.protocol.data_received(b"X-a: b\r\n")
        assert conn.transport.data == b""
        conn.advance(0.2)
        assert statuses(conn.transport.data) == [408]
        assert b"Request header timeout" in conn.transport.data
        assert conn.transport.eof_written and not conn.transport.closed
    finally:
        await conn.close()


async def test_body_deadline_cuts_a_slow_post() -> None:
    conn = await connected(body_timeout=0.3)
    try:
        conn.protocol.data_received(
            b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n"
        )
        for _ in range(5):
            conn.advance(0.05)
            conn.protocol.data_received(b"x")
        assert conn.transport.data == b""
        conn.advance(0.2)
        assert statuses(conn.transport.data) == [408]
        assert b"Request body timeout" in conn.transport.data
    finally:
        await conn.close()


async def test_header_deadline_waits_while_we_do_not_read() -> None:
    # Reading paused by the server (pipeline cap): the time is ours, not the client's.
    conn = await connected(header_timeout=0.2, max_pipeline=2)
    try:
        conn.protocol.data_received(b"GET /slow/1 HTTP/1.1\r\nHost: t\r\n\r\n" * 3 + b"GET /ok")
        assert not conn.transport.reading
        conn.advance(1)
        assert conn.transport.data == b""  # no 408: the handlers are still running
        for _ in range(200):
            if statuses(conn.transport.data) == [200, 200, 200]:
                break
            await asyncio.sleep(0.01)
        await settled(conn)
        assert conn.transport.reading  # read again: the head's clock runs from now
        conn.advance(0.1)
        assert statuses(conn.transport.data) == [200, 200, 200]
        conn.advance(0.2)
        assert statuses(conn.transport.data) == [200, 200, 200, 408]
    finally:
        await conn.close()


async def test_linger_ends_after_a_refusal() -> None:
    conn = await connected(linger_timeout=0.3)
    try:
        conn.protocol.data_received(b"GET /ok HTTP/1.1\r\nHost : t\r\n\r\n")
        assert statuses(conn.transport.data) == [400] and conn.transport.eof_written
        conn.protocol.data_received(GET_OK)  # discarded while lingering
        assert statuses(conn.transport.data) == [400]
        conn.advance(0.2)
        assert not conn.transport.closed
        conn.advance(0.2)
        assert conn.transport.closed and not conn.transport.aborted
    finally:
        await conn.close()


async def test_send_timeout_aborts_a_client_that_stopped_reading() -> None:
    conn = await connected(send_timeout=0.5, keepalive_timeout=100, linger_timeout=0.2)
    try:
        conn.protocol.data_received(GET_OK)
        conn.transport.buffered = 70_000  # and it never moves
        conn.advance(0.4)
        assert not conn.transport.closed
        conn.advance(0.3)
        assert conn.transport.aborted
    finally:
        await conn.close()


async def test_keep_alive_idle_timeout_after_an_async_handler() -> None:
    # A response produced by a Task must leave the connection idle (and so
    # subject to the keep-alive timeout), not "active" forever.
    conn = await connected(keepalive_timeout=0.2)
    try:
        conn.protocol.data_received(b"GET /slow/1 HTTP/1.1\r\nHost: t\r\n\r\n")
        for _ in range(200):  # the handler sleeps 50 ms of real time
            if b"slow 1" in conn.transport.data:
                break
            await asyncio.sleep(0.01)
        assert conn.transport.data.endswith(b"slow 1")
        await settled(conn)  # the Task's done callback ends the request, on real time
        conn.advance(0.15)
        assert not conn.transport.closed
        conn.advance(0.15)
        assert conn.transport.closed
    finally:
        await conn.close()


async def test_linger_timeout_over_a_socket() -> None:
    # The real ticker and a real client that neither reads to EOF nor closes.
    server, _ = await serving(Config().replace("limits.linger_timeout", 0.3))
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /ok HTTP/1.1\r\nHost : t\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(), 2)  # up to the server's FIN
        assert statuses(answer) == [400]
        assert server.connections  # lingering: still open on our side
        for _ in range(300):
            if not server.connections:
                break
            await asyncio.sleep(0.01)
        assert not server.connections
        writer.close()
    finally:
        await server.shutdown(1)


async def test_half_close_still_gets_the_response() -> None:
    server, _ = await serving()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /slow/1 HTTP/1.1\r\nHost: t\r\n\r\n")
        writer.write_eof()
        data = await asyncio.wait_for(reader.read(), 2)
        assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"slow 1")
        writer.close()
    finally:
        await server.shutdown(1)


async def test_max_connections_refuses_excess_fast() -> None:
    server, _ = await serving(Config().replace("limits.max_connections", 2))
    try:
        held = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(2)]
        await asyncio.sleep(0.05)
        data = await raw_exchange(server.port, GET_OK, read_timeout=1)
        assert statuses(data) == [503]
        reader, writer = held[0]
        writer.write(GET_OK)  # existing connections are unaffected
        assert (await reader.readuntil(b"ok")).startswith(b"HTTP/1.1 200")
        for _, w in held:
            w.close()
    finally:
        await server.shutdown(1)


async def test_max_requests_per_connection() -> None:
    server, _ = await serving(Config().replace("limits.max_requests_per_connection", 2))
    try:
        data = await raw_exchange(server.port, GET_OK * 3)
        assert statuses(data) == [200, 200] and b"connection: close" in data.lower()
    finally:
        await server.shutdown(1)


async def test_graceful_shutdown_finishes_in_flight() -> None:
    server, state = await serving()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    idle_reader, idle_writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /graceful HTTP/1.1\r\nHost: t\r\n\r\n")
    await writer.drain()
    await asyncio.sleep(0.05)
    shutdown = asyncio.create_task(server.shutdown(grace=5))
    assert await asyncio.wait_for(idle_reader.read(), 1) == b""  # idle closed at once
    data = await asyncio.wait_for(reader.read(), 3)
    assert data.endswith(b"finished") and state["finished"] == 1
    await shutdown
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", server.port)
    writer.close()
    idle_writer.close()


async def test_head_has_length_but_no_body() -> None:
    server, _ = await serving()
    try:
        data = await raw_exchange(
            server.port, b"HEAD /ok HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
        )
        assert b"content-length: 2" in data.lower() and data.endswith(b"\r\n\r\n")
    finally:
        await server.shutdown(1)


async def test_absolute_form_routes_by_path() -> None:
    server, _ = await serving()
    try:
        data = await raw_exchange(
            server.port,
            b"GET http://example.com/fast/9?x=1 HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n",
        )
        assert data.endswith(b"fast 9")
    finally:
        await server.shutdown(1)


# -- framing (sans-IO) and the as-it-arrives accounting ------------------------------


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        (b"example.com", True),
        (b"localhost:8080", True),
        (b"127.0.0.1:1", True),
        (b"[::1]:443", True),
        (b"[v1.fe80::1]", True),
        (b"xn--bcher-kva.example", True),
        (b"a%41b", True),
        (b"h:", True),  # an empty port is allowed by RFC 3986
        (b"  t  ", True),  # OWS around the value
        (b"", False),
        (b"a b", False),
        (b"a/b", False),
        (b"user@a", False),
        (b"a:b", False),
        (b"a:65536", False),
        (b"a:123456", False),
        (b"[::g]", False),
        (b"[::1", False),
        (b"a%4", False),
        (b"\xc3\xa9.example", False),
    ],
)
def test_valid_host(value: bytes, valid: bool) -> None:
    assert framing.valid_host(value) is valid


@pytest.mark.parametrize(
    ("values", "version", "status"),
    [
        ([b"chunked"], "1.1", None),
        ([b"CHUNKED"], "1.1", None),
        ([b", chunked"], "1.1", None),
        ([b"chunked"], "1.0", 400),
        ([b"gzip, chunked"], "1.1", 501),
        ([b"gzip"], "1.1", 501),
        ([b"identity"], "1.1", 501),
        ([b"chunked;q=1"], "1.1", 501),
        ([b""], "1.1", 400),
    ],
)
def test_check_transfer_encoding(values: list[bytes], version: str, status: int | None) -> None:
    if status is None:
        framing.check_transfer_encoding(values, version)
    else:
        with pytest.raises(framing.Refusal) as refusal:
            framing.check_transfer_encoding(values, version)
        assert refusal.value.status == status


@pytest.mark.parametrize(
    ("url", "method", "result"),
    [
        (b"*", "OPTIONS", b"*"),
        (b"*", "GET", 400),
        (b"http://h/a?b", "GET", b"/a?b"),
        (b"HTTPS://h:8/a", "GET", b"/a"),
        (b"http://h", "GET", b"/"),
        (b"http://u@h/a", "GET", 400),
        (b"http://:8/a", "GET", 400),
        (b"ftp://h/a", "GET", 400),
        (b"http:/h/a", "GET", 400),
    ],
)
def test_target_path(url: bytes, method: str, result: bytes | int) -> None:
    if isinstance(result, bytes):
        assert framing.target_path(url, method) == result
    else:
        with pytest.raises(framing.Refusal) as refusal:
            framing.target_path(url, method)
        assert refusal.value.status == result


def test_unknown_method_line_and_rtsp_detection() -> None:
    assert framing.unknown_method_line(b"FOO / HTTP/1.1\r\nHost: t\r\n\r\n")
    assert framing.unknown_method_line(b"GET / HTTP/1.1\r\nHost: t\r\n\r\nBREW /pot HTTP/1.1\r\n")
    assert not framing.unknown_method_line(b"GARBAGE\r\n\r\nGET /ok HTTP/1.1\r\nHost: t\r\n\r\n")
    assert not framing.unknown_method_line(b"\x16\x03\x01\x00")
    assert framing.rtsp_request_line(b"GET /x RTSP/1.0\r\n\r\n", b"/x")
    assert not framing.rtsp_request_line(b"GET /x HTTP/1.0\r\n\r\n", b"/x")
    assert not framing.rtsp_request_line(None, b"/x")


async def test_head_bytes_counted_from_the_request_start_in_a_shared_read() -> None:
    # A read holding complete requests and the start of the next one: only the
    # next one's bytes count against its head limits.
    server, _ = await serving()
    try:
        protocol = HttpProtocol(server.state)
        transport = MemoryTransport()
        protocol.connection_made(transport)
        partial = b"GET /ok HTTP/1.1\r\nHost: t\r\nX-Long: " + b"v" * 3000
        protocol.data_received(
            GET_OK * 20
            + b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc"
            + partial
        )
        assert protocol._hdr_line == 3000 + len(b"X-Long: ")
        assert protocol._hdr_total == len(partial) and not protocol._hdr_first
        protocol.data_received(b"v" * 100)  # continuing: exact
        assert protocol._hdr_line == 3108 and protocol._hdr_total == len(partial) + 100
        protocol.data_received(b"\r\n\r\n")
        assert transport.data.count(b"HTTP/1.1 200 OK") == 22
        # The request line itself, split: still counted as the request line.
        protocol.data_received(b"GET /" + b"a" * 100)
        assert protocol._hdr_first and protocol._hdr_line == 105
        protocol.data_received(b"b" * 9000)
        assert statuses(transport.data)[-1] == 414
    finally:
        await server.shutdown(0.1)


async def test_shutdown_does_not_wait_for_idle_connections_after_async_handlers() -> None:
    server, _ = await serving()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /slow/1 HTTP/1.1\r\nHost: t\r\n\r\n")
    await asyncio.wait_for(reader.readuntil(b"slow 1"), 2)
    started = asyncio.get_running_loop().time()
    await server.shutdown(grace=5)
    assert asyncio.get_running_loop().time() - started < 2
    writer.close()


async def test_http10_keep_alive_through_proxy_connection() -> None:
    # llhttp treats Proxy-Connection like Connection: the version must then be
    # read from the parser (the no-Connection-header fast path does not apply).
    server, _ = await serving()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /ok HTTP/1.0\r\nProxy-Connection: keep-alive\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
        assert head.startswith(b"HTTP/1.1 200") and b"connection: keep-alive" in head.lower()
        writer.write(b"GET /ok HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        rest = await asyncio.wait_for(reader.read(), 2)
        assert rest.startswith(b"ok") and statuses(rest) == [200]
        writer.close()
    finally:
        await server.shutdown(1)
