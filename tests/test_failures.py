"""Every failure gets an answer (issue 10, items 2, 4, 5, 8, 9, 10, 15, 17).

Each case runs on both transports where it concerns both (the ``transport``
fixture: the built-in server and ``app.asgi`` under uvicorn); the raw-socket
cases (connection reuse, ``Connection: close``, framing refusals, deadlines)
are the built-in server's own machinery.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from h3lab import H3, Config, HTTPError, Response, Server
from h3lab.event import H3Event
from h3lab.server import http11
from h3lab.server.protocol import ACTIVE, HttpProtocol
from h3lab.testing import FakeClock, MemoryTransport
from h3lab.utils.sse import EventStream
from tests.conftest import raw_exchange
from tests.hostile.conftest import parse_responses, reset


def _cyclic() -> dict[str, Any]:
    data: dict[str, Any] = {"name": "loop"}
    data["self"] = data
    return data


def failing_app(config: Config | None = None) -> H3:
    app = H3(config)
    app.get("/ok", lambda e: "ok")
    app.get("/cycle", lambda e: _cyclic())

    @app.get("/cycle-async")
    async def cycle_async(event: H3Event) -> Any:
        await asyncio.sleep(0)
        return _cyclic()

    @app.get("/cycle-error")
    async def cycle_error(event: H3Event) -> None:
        await asyncio.sleep(0)
        raise HTTPError(400, "bad", _cyclic())

    @app.get("/name-async")
    async def name_async(event: H3Event) -> str:
        await asyncio.sleep(0)
        event.set_header("x-name", "日本")
        return "never sent"

    @app.get("/name-sync")
    def name_sync(event: H3Event) -> str:
        event.set_header("x-name", "日本")
        return "never sent"

    @app.get("/download")
    async def download(event: H3Event) -> str:
        await asyncio.sleep(0)
        event.set_header("content-disposition", 'attachment; filename="日本.txt"')
        return "file"

    return app


# -- 2 and 15: unencodable values and headers, on every path ---------------------


@pytest.mark.parametrize(
    "path", ["/cycle", "/cycle-async", "/cycle-error", "/name-async", "/name-sync"]
)
async def test_unsendable_answers_500_and_the_connection_goes_on(transport: Any, path: str) -> None:
    app = failing_app()
    live = await transport(app)
    status, headers, body = await live.fetch("GET", path)
    assert status == 500 and "x-name" not in headers
    assert json.loads(body)["message"] == "Internal Server Error"
    assert (await live.fetch("GET", "/ok"))[2] == b"ok"
    await asyncio.sleep(0.05)
    assert app.pool.stats()["in_use"] == 0  # released on every path


@pytest.mark.parametrize(
    "path", ["/cycle", "/cycle-async", "/cycle-error", "/name-async", "/name-sync"]
)
async def test_unsendable_on_the_raw_connection(path: str) -> None:
    app = failing_app()
    async with Server(app, "127.0.0.1", 0) as server:
        request = b"GET %s HTTP/1.1\r\nHost: t\r\n\r\n" % path.encode()
        # Keep-alive: the 500, then the next request on the same connection.
        data = await raw_exchange(
            server.port,
            request + b"GET /ok HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
            read_timeout=3,
        )
        responses, tail = parse_responses(data)
        assert [r.status for r in responses] == [500, 200] and tail == b""
        assert responses[1].body == b"ok"
        # Connection: close: the 500, then a clean close (no hang).
        closing = request.replace(b"Host: t\r\n", b"Host: t\r\nConnection: close\r\n")
        data = await asyncio.wait_for(raw_exchange(server.port, closing, read_timeout=3), 5)
        responses, tail = parse_responses(data)
        assert [r.status for r in responses] == [500] and tail == b""
        assert responses[0].headers["connection"] == "close"
        assert app.pool.stats()["in_use"] == 0


async def test_non_latin1_filename_is_encoded_per_rfc_8187(transport: Any) -> None:
    live = await transport(failing_app())
    data = await raw_exchange(
        live.port, b"GET /download HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    (response,), _ = parse_responses(data)
    assert response.status == 200 and response.body == b"file"
    assert response.headers["content-disposition"] == (
        "attachment; filename=\"??.txt\"; filename*=UTF-8''%E6%97%A5%E6%9C%AC.txt"
    )


def test_header_encoding_rules() -> None:
    assert http11.header_fields([("x-a", "café")]) == [(b"x-a", b"caf\xe9")]
    with pytest.raises(http11.UnsafeHeader):
        http11.header_fields([("x-name", "日本")])
    with pytest.raises(http11.UnsafeHeader):
        http11.header_fields([("content-disposition", "日本")])  # the type itself
    assert http11.header_fields([("Content-Disposition", 'inline; name="ü€"')]) == [
        (b"Content-Disposition", b"inline; name=\"??\"; name*=UTF-8''%C3%BC%E2%82%AC")
    ]


async def test_a_stuck_active_connection_has_a_deadline() -> None:
    clock = FakeClock()
    app = H3(Config().replace(**{"limits.keepalive_timeout": 1.0}))
    server = Server(app, "127.0.0.1", 0, clock=clock)
    await server.start()
    protocol = HttpProtocol(server.state)
    transport = MemoryTransport()
    protocol.connection_made(transport)
    try:
        protocol.state, protocol.since = ACTIVE, server.now
        clock.advance(0.5)
        assert not transport.closed  # within the deadline
        clock.advance(1.5)
        assert transport.closed  # nothing runs, nothing is sent: closed, never hanging
    finally:
        protocol.connection_lost(None)
        await server.shutdown(0.1)


# -- 4, 5, 8: hooks ----------------------------------------------------------------


async def test_on_error_replacement_is_sent_as_returned(transport: Any) -> None:
    def on_error(event: H3Event, error: HTTPError) -> Response:
        return Response("replaced", 418, headers=[("x-replaced", "1")])

    app = H3(on_error=on_error)

    @app.get("/fails")
    def fails(event: H3Event) -> None:
        event.set_cookie("sid", "from-the-failed-handler")
        raise HTTPError(400, "bad")

    live = await transport(app)
    async with live.request("GET", "/fails") as resp:
        assert resp.status == 418 and await resp.read() == b"replaced"
        assert resp.headers["x-replaced"] == "1"
        assert resp.headers.getall("Set-Cookie", []) == []


async def test_on_response_runs_when_conversion_fails(transport: Any) -> None:
    seen: list[int] = []
    app = H3(on_response=lambda event, response: seen.append(response.status))
    app.get("/object", lambda e: object())
    app.get("/cycle", lambda e: _cyclic())
    live = await transport(app)
    assert (await live.fetch("GET", "/object"))[0] == 500
    assert (await live.fetch("GET", "/cycle"))[0] == 500
    assert seen == [500, 500]


async def test_stats_path_with_an_on_request_hook(transport: Any) -> None:
    calls: list[str] = []
    app = H3(
        Config().replace(**{"server.stats_path": "/__stats"}),
        on_request=lambda event: calls.append(event.path),
    )
    live = await transport(app)
    status, _, body = await live.fetch("GET", "/__stats")
    assert status == 200 and "router" in json.loads(body) and calls == ["/__stats"]


# -- 9, 10, 17: streamed bodies and HEAD ----------------------------------------


class Closable:
    """An async iterator that records whether it was closed."""

    def __init__(self, fail_first: bool = False, gate: asyncio.Event | None = None) -> None:
        self.fail_first = fail_first
        self.gate = gate
        self.closed = False
        self.pulled = 0

    def __aiter__(self) -> Closable:
        return self

    async def __anext__(self) -> bytes:
        if self.gate is not None:
            await self.gate.wait()
        self.pulled += 1
        if self.fail_first:
            raise ValueError("failed before the first chunk")
        if self.pulled > 3:
            raise StopAsyncIteration
        return b"chunk"

    async def aclose(self) -> None:
        self.closed = True


async def test_a_body_failing_before_its_first_chunk_is_a_500(transport: Any) -> None:
    bodies: list[Closable] = []
    app = H3()

    @app.get("/fails")
    def fails(event: H3Event) -> Response:
        bodies.append(Closable(fail_first=True))
        return Response(bodies[-1])

    app.get("/ok", lambda e: "ok")
    live = await transport(app)
    status, _, body = await live.fetch("GET", "/fails")
    assert status == 500 and json.loads(body)["status"] == 500
    assert bodies[0].closed
    assert (await live.fetch("GET", "/ok"))[2] == b"ok"


async def test_head_drops_and_closes_a_streamed_body(transport: Any) -> None:
    bodies: list[Closable] = []
    app = H3()

    @app.get("/stream")
    def stream(event: H3Event) -> Response:
        bodies.append(Closable())
        return Response(bodies[-1], headers={"content-length": "15"})

    live = await transport(app)
    async with live.request("HEAD", "/stream") as resp:
        assert resp.status == 200 and await resp.read() == b""
    await asyncio.sleep(0.05)
    assert bodies[0].closed and bodies[0].pulled == 0
    status, _, body = await live.fetch("GET", "/stream")
    assert status == 200 and body == b"chunk" * 3


async def test_head_to_an_event_stream_closes_it(transport: Any) -> None:
    streams: list[EventStream] = []
    pushed: list[int] = []
    app = H3()

    @app.get("/events")
    def events(event: H3Event) -> Response:
        stream = EventStream(event)
        streams.append(stream)

        async def produce() -> None:
            n = 0
            while not stream.closed:
                await stream.push({"data": n})
                pushed.append(n)
                n += 1
                await asyncio.sleep(0)

        task = asyncio.ensure_future(produce())
        stream.on_closed(task.cancel)
        return stream.response()

    live = await transport(app)
    async with live.request("HEAD", "/events") as resp:
        assert resp.status == 200 and resp.headers["content-type"] == "text/event-stream"
        assert await resp.read() == b""
    await asyncio.sleep(0.1)
    assert streams[0].closed
    count = len(pushed)
    await asyncio.sleep(0.1)
    assert len(pushed) == count and count <= 64  # stopped, and bounded meanwhile


async def test_event_stream_queue_is_bounded() -> None:
    stream = EventStream()
    body = stream.response().body
    for i in range(64):
        await stream.push(str(i))
    blocked = asyncio.ensure_future(stream.push("one too many"))
    await asyncio.sleep(0.02)
    assert not blocked.done()  # backpressure on the producer
    await body.aclose()  # type: ignore[union-attr]  # dropped unread: the producer is released
    await asyncio.wait_for(blocked, 1)
    with pytest.raises(ValueError, match="max_buffered"):
        EventStream(max_buffered=None)  # type: ignore[arg-type]


async def test_a_stream_cancelled_before_it_started_is_closed(transport: Any) -> None:
    gate = asyncio.Event()
    bodies: list[Closable] = []
    app = H3()

    @app.get("/waits")
    def waits(event: H3Event) -> Response:
        bodies.append(Closable(gate=gate))
        return Response(bodies[-1])

    live = await transport(app)
    _reader, writer = await asyncio.open_connection("127.0.0.1", live.port)
    writer.write(b"GET /waits HTTP/1.1\r\nHost: t\r\n\r\n")
    await writer.drain()
    for _ in range(100):
        if bodies:
            break
        await asyncio.sleep(0.01)
    reset(writer)  # gone (RST) before the first chunk
    for _ in range(100):
        if bodies[0].closed:
            break
        await asyncio.sleep(0.02)
    assert bodies[0].closed and bodies[0].pulled == 0
    await asyncio.sleep(0.05)
    assert app.pool.stats()["in_use"] == 0


async def test_every_answer_to_head_has_headers_only() -> None:
    app = H3()
    app.get("/ok", lambda e: "ok")
    async with Server(app, "127.0.0.1", 0) as server:
        cases = [
            # bad framing (llhttp), a refused header, a body too large, a 404
            b"HEAD /ok HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"HEAD /ok HTTP/1.1\r\nHost: t\r\nHost: u\r\n\r\n",
            b"HEAD /ok HTTP/1.1\r\nHost: t\r\nContent-Length: 99999999999\r\n\r\n",
            b"HEAD /missing HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        ]
        for payload in cases:
            data = await raw_exchange(server.port, payload)
            assert data.startswith(b"HTTP/1.1 4"), data[:60]
            assert data.endswith(b"\r\n\r\n"), data  # no body after the head
            assert b"content-length: " in data.lower()
        # A GET refused the same way still carries its JSON body.
        data = await raw_exchange(server.port, b"GET /ok HTTP/1.1\r\nHost: t\r\nHost: u\r\n\r\n")
        assert data.startswith(b"HTTP/1.1 400") and data.endswith(b"}")
