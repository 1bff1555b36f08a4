"""The framework floor: the least a framework layer does per request, and nothing more.

``raw`` is the server's ceiling; this is what any framework must add on top
of it, written carefully and without one check more:

* the parser collects every header (a framework hands them to the handler);
* a request object per request (method, path, query, headers, params);
* a route table: static routes in a dict, parameter routes matched segment
  by segment, registered in the order every peer uses (/plaintext, /json,
  the 50 filler routes, /users/:id);
* the handler runs in its own copy of the ``contextvars`` context (the
  per-request isolation h3lab gives every request);
* the handler's return value becomes the response: ``str`` as text, anything
  else as JSON (orjson when installed, as h3lab's ``performance`` preset);
  an exception as a 500.

Left out on purpose, because h3lab does them and this measures what is
left without them: limits and header validation (Host, framing, sizes),
refusals with their status, middleware, error pages, pooling, deadlines,
pipelining back-pressure, graceful shutdown. So ``h3lab / framework-floor`` is the
price of those, and ``framework-floor / raw`` is what no framework can get back.

``python -m h3lab.bench.peer_apps.floor --port 8000``
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from contextvars import copy_context
from typing import Any

import httptools

from h3lab.bench.peer_apps import FLOOR_NAME, JSON_TYPE, N_FILLER, TEXT_TYPE
from h3lab.bench.peer_apps.bare import date_line, main


def _stdlib_dumps(value: Any) -> bytes:
    """The standard library, compact as every peer encodes (no orjson installed)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


_dumps: Callable[[Any], bytes]
try:
    from orjson import dumps as _dumps
except ImportError:
    _dumps = _stdlib_dumps


Handler = Callable[["Request"], Any]

_TEXT = TEXT_TYPE.encode()
_JSON = JSON_TYPE.encode()
_SERVER_THEN_TYPE = b"\r\nserver: " + FLOOR_NAME.encode() + b"\r\ncontent-type: "
_NOT_FOUND = (b"404 Not Found", _TEXT, b"Not Found")
_ERROR = (b"500 Internal Server Error", _TEXT, b"Internal Server Error")


class Request:
    __slots__ = ("headers", "keep_alive", "method", "params", "path", "query")

    def __init__(
        self,
        method: str,
        path: str,
        query: bytes,
        headers: list[tuple[bytes, bytes]],
        keep_alive: bool,
    ) -> None:
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.keep_alive = keep_alive
        self.params: dict[str, str] = {}


class Router:
    """Static routes by (method, path); parameter routes by (method, segment count)."""

    def __init__(self) -> None:
        self.static: dict[tuple[str, str], Handler] = {}
        self.dynamic: dict[tuple[str, int], list[tuple[list[str], Handler]]] = {}

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        if ":" not in pattern:
            self.static[(method, pattern)] = handler
            return
        segments = pattern.strip("/").split("/")
        self.dynamic.setdefault((method, len(segments)), []).append((segments, handler))

    def match(self, method: str, path: str) -> tuple[Handler, dict[str, str]] | None:
        handler = self.static.get((method, path))
        if handler is not None:
            return handler, {}
        segments = path.strip("/").split("/")
        for pattern, handler in self.dynamic.get((method, len(segments)), ()):
            params = {}
            for want, got in zip(pattern, segments, strict=True):
                if want[0] == ":":
                    params[want[1:]] = got
                elif want != got:
                    break
            else:
                return handler, params
        return None


def _filler(i: int) -> Handler:
    return lambda request: {"resource": i, "id": request.params["id"]}


ROUTER = Router()
ROUTER.add("GET", "/plaintext", lambda request: "Hello, World!")
ROUTER.add("GET", "/json", lambda request: {"message": "Hello, World!"})
for _i in range(N_FILLER):
    ROUTER.add("GET", f"/api/v1/resource{_i}/:id", _filler(_i))
ROUTER.add("GET", "/users/:id", lambda request: {"id": request.params["id"]})


def answer(request: Request) -> tuple[bytes, bytes, bytes]:
    """Status, content type and body for ``request`` (run in the request's own context)."""
    match = ROUTER.match(request.method, request.path)
    if match is None:
        return _NOT_FOUND
    request.params = match[1]
    try:
        result = match[0](request)
    except Exception:
        return _ERROR
    if type(result) is str:
        return b"200 OK", _TEXT, result.encode()
    return b"200 OK", _JSON, _dumps(result)


class FloorProtocol(asyncio.Protocol):
    __slots__ = ("headers", "parser", "transport", "url")

    def __init__(self) -> None:
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a Transport (asyncio types the base)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            assert self.transport is not None
            self.transport.write(
                b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            )
            self.transport.close()

    def on_message_begin(self) -> None:
        self.url = b""
        self.headers = []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_message_complete(self) -> None:
        parser = self.parser
        path, _, query = self.url.partition(b"?")
        request = Request(
            parser.get_method().decode("ascii"),
            path.decode("latin-1"),
            query,
            self.headers,
            parser.should_keep_alive(),
        )
        status, ctype, body = copy_context().run(answer, request)
        assert self.transport is not None
        self.transport.write(
            b"".join(
                (
                    b"HTTP/1.1 ",
                    status,
                    _SERVER_THEN_TYPE,
                    ctype,
                    b"\r\ncontent-length: %d\r\n" % len(body),
                    date_line(),
                    b"" if request.keep_alive else b"connection: close\r\n",
                    b"\r\n",
                    body,
                )
            )
        )
        if not request.keep_alive:
            self.transport.close()


if __name__ == "__main__":
    main(FloorProtocol, "floor")
