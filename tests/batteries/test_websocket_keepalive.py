"""Keepalive pings and permessage-deflate on the built-in server's WebSockets.

Both are the ASGI server's job under ``app.asgi`` (uvicorn's
``--ws-ping-interval`` / ``--ws-per-message-deflate``), so these run on the
built-in server only, with short intervals, a real aiohttp client (which
offers permessage-deflate with ``compress=15``) and raw sockets where the
bytes on the wire are the point.
"""

from __future__ import annotations

import asyncio
import base64
import os
import zlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from h3lab import H3, Config, Server, WebSocket

LIMIT = 64 * 1024
INTERVAL = 0.15
TIMEOUT = 0.15


def build(state: dict[str, Any], cfg: Config) -> H3:
    app = H3(cfg)

    @app.ws("/echo")
    async def echo(ws: WebSocket) -> None:
        await ws.accept()
        async for message in ws:
            await ws.send(message)
        state["close_code"] = ws.close_code
        state["done"].set()

    @app.ws("/greet")
    async def greet(ws: WebSocket) -> None:
        await ws.accept()
        await ws.send("a" * 1000)
        await ws.receive()

    return app


def config(**limits: Any) -> Config:
    values = {
        "limits.max_websocket_message_size": LIMIT,
        "limits.websocket_ping_interval": INTERVAL,
        "limits.websocket_ping_timeout": TIMEOUT,
        "limits.linger_timeout": 0.3,
    }
    values.update(limits)
    return Config().replace(**values)


@pytest.fixture
async def served(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Server, dict[str, Any]]]:
    state: dict[str, Any] = {"done": asyncio.Event(), "close_code": None}
    cfg = getattr(request, "param", None) or config()
    app = build(state, cfg)
    server = Server(app, "127.0.0.1", 0)
    await server.start()
    yield server, state
    await server.shutdown(grace=1.0)


async def test_pings_are_sent_and_a_silent_peer_is_closed_with_1011(
    served: tuple[Server, dict[str, Any]],
) -> None:
    server, state = served
    # autoping=False: the client neither answers Pings nor hides them.
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(server.url + "/echo", autoping=False) as ws,
    ):
        first = await ws.receive(timeout=2)
        assert first.type == aiohttp.WSMsgType.PING
        # We stay silent: within the timeout (plus a tick) the server gives up.
        closing = await ws.receive(timeout=2)
        assert closing.type == aiohttp.WSMsgType.CLOSE
        assert closing.data == 1011 and closing.extra == "keepalive ping timeout"
    await asyncio.wait_for(state["done"].wait(), 5)
    assert state["close_code"] == 1011


async def test_a_peer_that_answers_pings_stays_connected(
    served: tuple[Server, dict[str, Any]],
) -> None:
    server, _ = served
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(server.url + "/echo") as ws,
    ):
        # aiohttp answers Pings (autoping) from inside receive(): keep one waiting.
        echo = asyncio.create_task(ws.receive())
        await asyncio.sleep(4 * (INTERVAL + TIMEOUT))  # four ping rounds
        assert not echo.done(), f"the server sent {echo.result()}"  # e.g. a 1011 Close
        await ws.send_str("still here")
        message = await asyncio.wait_for(echo, 2)
        assert message.type == aiohttp.WSMsgType.TEXT and message.data == "still here"


@pytest.mark.parametrize("served", [config(**{"limits.websocket_ping_interval": 0})], indirect=True)
async def test_interval_zero_sends_no_pings(served: tuple[Server, dict[str, Any]]) -> None:
    server, _ = served
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(server.url + "/echo", autoping=False) as ws,
    ):
        with pytest.raises(asyncio.TimeoutError):
            await ws.receive(timeout=3 * (INTERVAL + TIMEOUT))
        await ws.send_str("no pings, still open")
        assert await ws.receive_str(timeout=2) == "no pings, still open"


def test_bad_keepalive_values_are_value_errors_naming_the_field() -> None:
    with pytest.raises(ValueError, match=r"limits\.websocket_ping_interval"):
        Config().replace("limits.websocket_ping_interval", -1)
    with pytest.raises(ValueError, match=r"limits\.websocket_ping_timeout"):
        Config().replace("limits.websocket_ping_timeout", 0)
    with pytest.raises(ValueError, match=r"server\.websocket_per_message_deflate"):
        Config().replace("server.websocket_per_message_deflate", "yes")


# -- permessage-deflate ----------------------------------------------------------


async def test_deflate_is_negotiated_with_a_client_that_offers_it(
    served: tuple[Server, dict[str, Any]],
) -> None:
    server, _ = served
    text = "compress me " * 2000  # 24 KB, far under the limit once inflated
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(server.url + "/echo", compress=15) as ws:
            assert ws.compress == 15  # the server accepted the offer
            await ws.send_str(text)
            assert await ws.receive_str(timeout=5) == text
            await ws.send_bytes(os.urandom(1000))  # incompressible: still fine
            assert len(await ws.receive_bytes(timeout=5)) == 1000
        async with session.ws_connect(server.url + "/echo") as ws:
            assert ws.compress == 0  # not offered: not used


async def test_the_limit_applies_to_the_inflated_message(
    served: tuple[Server, dict[str, Any]],
) -> None:
    server, state = served
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(server.url + "/echo", compress=15) as ws,
    ):
        # ~1 KB on the wire, LIMIT * 16 inflated: a small deflate bomb.
        await ws.send_bytes(b"\0" * (LIMIT * 16))
        message = await ws.receive(timeout=5)
        assert message.type == aiohttp.WSMsgType.CLOSE and message.data == 1009
    await asyncio.wait_for(state["done"].wait(), 5)


async def read_head(reader: asyncio.StreamReader) -> bytes:
    return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)


async def raw_upgrade(server: Server, path: str, extensions: str | None) -> tuple[bytes, bytes]:
    """The 101 head and the first frame the server sends, from a raw socket."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        key = base64.b64encode(os.urandom(16))
        request = (
            b"GET %s HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n" % (path.encode(), key)
        )
        if extensions is not None:
            request += b"Sec-WebSocket-Extensions: %s\r\n" % extensions.encode()
        writer.write(request + b"\r\n")
        head = await read_head(reader)
        first = await asyncio.wait_for(reader.readexactly(2), 5)
        length = first[1] & 0x7F
        if length == 126:
            length = int.from_bytes(await reader.readexactly(2), "big")
        payload = await asyncio.wait_for(reader.readexactly(length), 5)
        return head, first[:1] + payload
    finally:
        writer.close()


async def test_compressed_frames_on_the_wire(served: tuple[Server, dict[str, Any]]) -> None:
    server, _ = served
    head, frame = await raw_upgrade(server, "/greet", "permessage-deflate; client_max_window_bits")
    assert head.startswith(b"HTTP/1.1 101")
    assert b"sec-websocket-extensions: permessage-deflate" in head.lower()
    assert frame[0] & 0x40, "RSV1 (compressed) is not set"
    payload = frame[1:]
    assert len(payload) < 100  # 1000 "a"s, deflated
    assert zlib.decompressobj(-15).decompress(payload + b"\x00\x00\xff\xff") == b"a" * 1000
    # A malformed offer is declined (no extension), never an error.
    head, frame = await raw_upgrade(
        server, "/greet", "permessage-deflate; client_max_window_bits=x"
    )
    assert head.startswith(b"HTTP/1.1 101") and b"extensions" not in head.lower()
    assert not frame[0] & 0x40 and frame[1:] == b"a" * 1000


@pytest.mark.parametrize(
    "served", [config(**{"server.websocket_per_message_deflate": False})], indirect=True
)
async def test_deflate_can_be_turned_off(served: tuple[Server, dict[str, Any]]) -> None:
    server, _ = served
    head, frame = await raw_upgrade(server, "/greet", "permessage-deflate")
    assert b"extensions" not in head.lower() and frame[1:] == b"a" * 1000
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(server.url + "/echo", compress=15) as ws,
    ):
        assert ws.compress == 0
        await ws.send_str("plain")
        assert await ws.receive_str(timeout=5) == "plain"
