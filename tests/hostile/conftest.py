"""Raw-socket helpers and the app every hostile test serves.

``exchange`` sends bytes and reads until the server closes (or a timeout):
a test can then assert both the exact answer and that the connection was
closed. ``serving(preset)`` starts the server in-process on an ephemeral
loopback port. Every test ends with ``still_serves``: a normal request on a
new connection must succeed.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import struct
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from h3lab import Config, Server
from h3lab.config import PRESETS
from tests.hostile.app import make_app

PRESET_NAMES = list(PRESETS)
GET_OK = b"GET /ok HTTP/1.1\r\nHost: t\r\n\r\n"


@dataclass
class Exchange:
    data: bytes
    closed: bool
    """The server closed the connection (EOF or reset) before the timeout."""

    @property
    def statuses(self) -> list[int]:
        return statuses(self.data)


def statuses(data: bytes) -> list[int]:
    """Final statuses of the responses in a byte stream (interim 1xx excluded)."""
    return [r.status for r in parse_responses(data)[0] if r.status >= 200]


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


class Malformed(AssertionError):
    """The server's output is not a sequence of well-formed HTTP/1.1 responses."""


_STATUS_LINE = re.compile(rb"HTTP/1\.1 (\d{3}) [^\r\n]*")


def parse_responses(data: bytes) -> tuple[list[Response], bytes]:
    """Split a response stream into responses; returns them and any unparsed tail.

    Strict: every response must have a status line, ``name: value`` headers,
    and a body framed by Content-Length or chunked encoding (a response with
    neither ends the stream). Raises ``Malformed`` otherwise.
    """
    responses: list[Response] = []
    at = 0
    while at < len(data):
        start = at
        end = data.find(b"\r\n\r\n", at)
        if end < 0:
            return responses, data[at:]
        lines = data[at:end].split(b"\r\n")
        match = _STATUS_LINE.fullmatch(lines[0])
        if match is None:
            raise Malformed(f"bad status line {lines[0][:80]!r}")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep or not name or name != name.strip() or b"\r" in value:
                raise Malformed(f"bad header line {line[:80]!r}")
            headers[name.decode("latin-1").lower()] = value.strip().decode("latin-1")
        status = int(match[1])
        at = end + 4
        if status < 200 or status in (204, 304):
            body = b""
        elif "content-length" in headers:
            length = int(headers["content-length"])
            if len(data) - at < length:
                return responses, data[start:]
            body, at = data[at : at + length], at + length
        elif headers.get("transfer-encoding") == "chunked":
            body = b""
            while True:
                line_end = data.find(b"\r\n", at)
                if line_end < 0:
                    return responses, data[start:]
                size = int(data[at:line_end], 16)
                body += data[line_end + 2 : line_end + 2 + size]
                at = line_end + 2 + size + 2
                if size == 0:
                    break
        else:
            body, at = data[at:], len(data)
        responses.append(Response(status, headers, body))
    return responses, b""


@pytest.fixture
async def serving() -> AsyncIterator[Callable[..., Any]]:
    """``server, state = await serving("balanced" or a Config, **{"limits.x": v})``."""
    started: list[Server] = []

    async def start(
        preset: str | Config = "balanced", **overrides: Any
    ) -> tuple[Server, dict[str, Any]]:
        config = preset if isinstance(preset, Config) else Config.preset(preset)
        if overrides:
            config = config.replace(**overrides)
        app, state = make_app(config)
        server = Server(app, "127.0.0.1", 0)
        await server.start()
        started.append(server)
        return server, state

    yield start
    for server in started:
        await server.shutdown(grace=0.5)


async def exchange(
    port: int,
    payload: bytes | list[bytes],
    *,
    timeout: float = 3.0,
    pause: float = 0.0,
) -> Exchange:
    """Send ``payload`` (or its pieces, ``pause`` s apart), read until close or ``timeout``."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    data = b""
    closed = False
    try:
        for piece in payload if isinstance(payload, list) else [payload]:
            try:
                writer.write(piece)
                await writer.drain()
            except (ConnectionError, OSError):
                break  # the server refused and closed mid-send: read what it said
            if pause:
                await asyncio.sleep(pause)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            left = deadline - loop.time()
            if left <= 0:
                break
            try:
                chunk = await asyncio.wait_for(reader.read(65536), left)
            except TimeoutError:
                break
            except (ConnectionError, OSError):
                closed = True
                break
            if not chunk:
                closed = True
                break
            data += chunk
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()
    return Exchange(data, closed)


async def still_serves(server: Server) -> None:
    """A normal request on a new connection succeeds."""
    result = await exchange(
        server.port, b"GET /ok HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", timeout=5
    )
    assert result.data.startswith(b"HTTP/1.1 200 OK"), result.data[:200]
    assert result.data.endswith(b"\r\n\r\nok") and result.closed


def reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST (SO_LINGER 0), as a crashed or impatient client does."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def body_of(data: bytes) -> bytes:
    return data.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in data else b""
