"""The ceiling: a bare httptools protocol on uvloop answering fixed responses.

No framework, no routing table, no request object: the URL is split once,
/plaintext and /json are answered from pre-encoded bytes, /users/<id> with
``user_body`` encoded per request (as every peer does; no per-id cache), and
everything else is a 404; with keep-alive, pipelining (responses written in order, in
the parser callback) and cached ``Date``/``Server`` headers so it passes the
same verification as every other server.

``python -m h3lab.bench.peer_apps.raw --port 8000``
"""

from __future__ import annotations

import asyncio

import httptools

from h3lab.bench.peer_apps import JSON_BODY, JSON_TYPE, PLAINTEXT, TEXT_TYPE, user_body
from h3lab.bench.peer_apps.bare import date_line, main


def _response(status: bytes, ctype: str, body: bytes, keep_alive: bool) -> bytes:
    return b"".join(
        (
            b"HTTP/1.1 ",
            status,
            b"\r\nserver: raw\r\ncontent-type: ",
            ctype.encode(),
            b"\r\ncontent-length: %d\r\n" % len(body),
            date_line(),
            b"" if keep_alive else b"connection: close\r\n",
            b"\r\n",
            body,
        )
    )


class RawProtocol(asyncio.Protocol):
    __slots__ = ("parser", "transport", "url")

    def __init__(self) -> None:
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a Transport (asyncio types the base)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            assert self.transport is not None
            self.transport.write(_response(b"400 Bad Request", TEXT_TYPE, b"bad request", False))
            self.transport.close()

    def on_message_begin(self) -> None:
        self.url = b""

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_message_complete(self) -> None:
        keep_alive = self.parser.should_keep_alive()
        path = self.url.partition(b"?")[0]
        if path == b"/plaintext":
            out = _response(b"200 OK", TEXT_TYPE, PLAINTEXT, keep_alive)
        elif path == b"/json":
            out = _response(b"200 OK", JSON_TYPE, JSON_BODY, keep_alive)
        elif path.startswith(b"/users/") and path.count(b"/") == 2 and len(path) > 7:
            out = _response(b"200 OK", JSON_TYPE, user_body(path[7:].decode("latin-1")), keep_alive)
        else:
            out = _response(b"404 Not Found", TEXT_TYPE, b"Not Found", keep_alive)
        assert self.transport is not None
        self.transport.write(out)
        if not keep_alive:
            self.transport.close()


if __name__ == "__main__":
    main(RawProtocol, "raw")
