"""WebSocket upgrades and frames, over raw sockets (where a client library would refuse).

A bad handshake is refused like any hostile request -- the exact status,
``connection: close``, nothing after it interpreted, the handler never
called -- and bad frames close the connection with the RFC 6455 code:
1009 past ``limits.max_websocket_message_size`` (one huge frame or many
fragments), 1007 for invalid UTF-8 in a text message, 1002 for an unmasked
client frame or an oversized control frame. The server keeps serving.
"""

from __future__ import annotations

import asyncio
import json
import os
import struct
from typing import Any

import pytest
from wsproto.connection import Connection, ConnectionType
from wsproto.events import CloseConnection, Message

from tests.hostile.conftest import exchange, still_serves

KEY = b"dGhlIHNhbXBsZSBub25jZQ=="
LIMIT = 1024


def upgrade(
    headers: bytes = b"", *, key: bytes | None = KEY, version: bytes | None = b"13"
) -> bytes:
    head = b"GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    if key is not None:
        head += b"Sec-WebSocket-Key: " + key + b"\r\n"
    if version is not None:
        head += b"Sec-WebSocket-Version: " + version + b"\r\n"
    return head + headers + b"\r\n"


SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n"

HANDSHAKES = [
    pytest.param(upgrade(key=b"not base64 at all!!!!!!!"), 400, id="key-not-base64"),
    pytest.param(upgrade(key=b"AAAAAAAAAAAAAAAAAAAA"), 400, id="key-15-bytes"),
    pytest.param(upgrade(key=b"AAAAAAAAAAAAAAAAAAAAAAAAAAAA"), 400, id="key-21-bytes"),
    pytest.param(upgrade(key=None), 400, id="key-missing"),
    pytest.param(upgrade(b"Sec-WebSocket-Key: " + KEY + b"\r\n"), 400, id="key-twice"),
    pytest.param(upgrade(version=None), 400, id="version-missing"),
    pytest.param(upgrade(version=b"8"), 426, id="version-8"),
    pytest.param(upgrade(b"Sec-WebSocket-Version: 13\r\n"), 426, id="version-twice"),
    pytest.param(upgrade(b"Sec-WebSocket-Protocol: a b\r\n"), 400, id="subprotocol-not-a-token"),
    pytest.param(upgrade(b"Content-Length: 5\r\n") + b"hello", 400, id="with-content-length"),
    pytest.param(
        upgrade(b"Transfer-Encoding: chunked\r\n") + b"5\r\nhello\r\n0\r\n\r\n",
        400,
        id="with-chunked-body",
    ),
    pytest.param(upgrade().replace(b"HTTP/1.1", b"HTTP/1.0", 1), 400, id="http-1.0"),
]


@pytest.mark.parametrize(("wire", "status"), HANDSHAKES)
async def test_bad_handshake_is_refused_and_never_reaches_the_handler(
    serving: Any, wire: bytes, status: int
) -> None:
    server, state = await serving("balanced")
    result = await exchange(server.port, wire + SMUGGLED)
    assert result.statuses == [status], result.data[:300]
    assert result.closed
    head, _, body = result.data.partition(b"\r\n\r\n")
    assert b"connection: close" in head.lower()
    assert json.loads(body)["status"] == status
    if status == 426:
        assert b"sec-websocket-version: 13" in head.lower()
    assert state["ws_calls"] == 0 and state["smuggled"] == 0
    await still_serves(server)


async def test_upgrade_for_a_path_without_a_websocket_route_is_plain_http(serving: Any) -> None:
    server, state = await serving("balanced")
    result = await exchange(server.port, upgrade().replace(b"/ws", b"/ok", 1) + SMUGGLED)
    assert result.statuses == [200] and result.closed and result.data.endswith(b"ok")
    assert state["ws_calls"] == 0 and state["smuggled"] == 0


# -- frames --------------------------------------------------------------------


def frame(
    opcode: int, payload: bytes, *, fin: bool = True, mask: bool = True, length: int | None = None
) -> bytes:
    """A client frame; ``length`` may announce more than ``payload`` holds."""
    size = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | opcode])
    mask_bit = 0x80 if mask else 0
    if size < 126:
        head += bytes([mask_bit | size])
    elif size < 1 << 16:
        head += bytes([mask_bit | 126]) + struct.pack("!H", size)
    else:
        head += bytes([mask_bit | 127]) + struct.pack("!Q", size)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


class RawWebSocket:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.parser = Connection(ConnectionType.CLIENT)  # reads the server's frames

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def close_frame(self, timeout: float = 5.0) -> tuple[int, str]:
        """Read until the server's Close; its code and reason."""
        async with asyncio.timeout(timeout):
            while True:
                for event in self.parser.events():
                    if isinstance(event, CloseConnection):
                        return event.code, event.reason
                data = await self.reader.read(65536)
                assert data, "connection closed without a Close frame"
                self.parser.receive_data(data)

    async def until_eof(self, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while await self.reader.read(65536):
                pass

    def close(self) -> None:
        self.writer.close()


async def open_ws(port: int) -> RawWebSocket:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(upgrade())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 101 "), head
    # RFC 6455 1.3's example key and its accept token.
    assert b"\r\nsec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in head
    return RawWebSocket(reader, writer)


async def wait_for_code(state: dict[str, Any], code: int) -> None:
    async with asyncio.timeout(5):
        while code not in state["ws_codes"]:
            await asyncio.sleep(0.01)


FRAME_CASES = [
    # One frame announcing 1 MiB: refused after its first bytes, never buffered whole.
    pytest.param(frame(0x2, b"x" * 2048, length=1 << 20), 1009, id="oversized-frame"),
    # Many small fragments adding up past the limit.
    pytest.param(
        frame(0x1, b"a" * 200, fin=False)
        + b"".join(frame(0x0, b"a" * 200, fin=False) for _ in range(8))
        + frame(0x0, b"a"),
        1009,
        id="fragmented-oversized-message",
    ),
    pytest.param(frame(0x1, b"ok \xff\xfe"), 1007, id="invalid-utf8-text"),
    pytest.param(frame(0x1, b"hello", mask=False), 1002, id="unmasked-client-frame"),
    pytest.param(frame(0x9, b"p" * 126), 1002, id="oversized-ping"),
    pytest.param(frame(0x3, b"?"), 1002, id="reserved-opcode"),
    pytest.param(frame(0x9, b"p", fin=False), 1002, id="fragmented-control-frame"),
]


@pytest.mark.parametrize(("wire", "code"), FRAME_CASES)
async def test_bad_frames_close_with_their_code(serving: Any, wire: bytes, code: int) -> None:
    # (A client stuck inside a frame never sends its Close: linger_timeout ends it.)
    server, state = await serving(
        "balanced",
        **{"limits.max_websocket_message_size": LIMIT, "limits.linger_timeout": 0.5},
    )
    ws = await open_ws(server.port)
    try:
        await ws.send(frame(0x1, b"before"))  # a good message first: echoed
        await ws.send(wire)
        got, _ = await ws.close_frame()
        assert got == code
        if code == 1009:  # still a valid conversation: we answer the Close
            await ws.send(frame(0x8, struct.pack("!H", 1009)))
        await ws.until_eof()  # and the server ends the connection
    finally:
        ws.close()
    await wait_for_code(state, code)  # the handler's receive() said so
    assert state["ws_calls"] == 1
    await still_serves(server)


async def test_close_handshake_times_out_when_the_client_never_answers(serving: Any) -> None:
    server, state = await serving(
        "balanced",
        **{"limits.max_websocket_message_size": LIMIT, "limits.linger_timeout": 0.3},
    )
    ws = await open_ws(server.port)
    try:
        await ws.send(frame(0x2, b"x" * (LIMIT + 1)))
        assert (await ws.close_frame())[0] == 1009
        # We never send our Close: the server gives up after linger_timeout.
        await ws.until_eof(timeout=3)
    finally:
        ws.close()
    await wait_for_code(state, 1009)
    assert not [c for c in server.connections if type(c).__name__ == "WebSocketProtocol"]
    await still_serves(server)


async def test_client_close_is_answered_and_the_server_ends_the_connection(serving: Any) -> None:
    server, state = await serving("balanced")
    ws = await open_ws(server.port)
    client = Connection(ConnectionType.CLIENT)
    try:
        await ws.send(client.send(Message(data="hi")))
        await ws.send(client.send(CloseConnection(code=4000, reason="done")))
        assert await ws.close_frame() == (4000, "done")
        await ws.until_eof()
    finally:
        ws.close()
    await wait_for_code(state, 4000)
    await still_serves(server)
