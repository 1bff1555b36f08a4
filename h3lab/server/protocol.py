"""The HTTP/1.1 connection: httptools parser callbacks, dispatch, responses.

Theory of operation
-------------------
httptools calls back as it parses: ``on_message_begin``, ``on_url``,
``on_header`` (once per complete header), ``on_headers_complete``,
``on_body`` (zero or more), ``on_message_complete``. A request is dispatched
at ``on_message_complete``, when its body is complete: handlers always see a
whole body.

Every request runs in its own copy of the ``contextvars`` context, so a
``ContextVar`` one request sets is never seen by another. How it is isolated
is decided once per route, from its chain (``app.resolve``,
``middleware.chain_is_sync``), never per request:

* a chain that cannot await (synchronous before-middleware and a synchronous
  handler, no onion layer, no ``on_request`` hook) runs in a context copy
  with no asyncio Task (``_serve_sync``): nothing in it can suspend, so a Task
  would buy nothing but cost ~4-5 us on Python 3.11. Deliberately, in such a
  handler ``asyncio.current_task()`` is ``None`` on the built-in server (under
  an ASGI server it is the server's task);
* every other request -- an ``async def`` handler or layer, even one that
  returns without suspending (it may enter ``asyncio.timeout`` first) -- runs
  in its own asyncio Task (``_serve``: handler, conversion, response,
  release), so ``asyncio.current_task()``, ``asyncio.timeout`` and aiohttp
  behave exactly as under uvicorn. The task is started *eagerly*
(``h3lab.server.tasks``): its first step runs inside the parser callback, so
a handler that does not suspend (the common case: no real I/O) is answered
right there, with no event-loop round trip. A task that suspends holds
``self.running`` until it ends (``_request_done``, a done callback), and
later pipelined requests wait in ``self.queue`` meanwhile, so responses
leave in request order.

Hostile input (see ``h3lab.server.framing`` for who refuses what)
------------------------------------------------------------------
* Every limit is counted as bytes arrive. A request head that is complete
  in one read is checked once, at ``on_headers_complete``, from what the
  callbacks gave (no extra cost per header). A read that ends *inside* a
  head goes through ``_headers_arriving``, which measures the unfinished
  line and section from the raw bytes -- httptools buffers an unfinished
  header silently, so that is the only place its size is visible.
* A refusal answers once, then closes gracefully: FIN after the answer, then
  read and discard for ``limits.linger_timeout`` (so the client reads the
  4xx instead of a reset). From the refusal on, ``self.parser`` is a sink:
  no byte that follows is ever interpreted as a request. The same holds after
  a request that ends the connection (Connection: close, HTTP/1.0, an
  Upgrade attempt, the per-connection request cap).
* ``self.parser`` is the object bytes are fed to: the llhttp parser, a
  ``_Held`` buffer while reading is paused (pipeline cap, write
  backpressure) or the ``_DISCARD`` sink. Reads larger than ``FEED_SLICE``
  are parsed in slices so one read full of pipelined requests cannot queue
  more than a slice's worth past the cap.

Timeouts are not per-request timers (a ``call_later`` per request is one of
the most expensive things a server can do per request): the server's ticker
walks the connections a few times a second and applies each deadline
(``check_deadlines``): absolute header and body deadlines (slowloris and slow
POST are cut even while bytes trickle in), keep-alive idle, linger, and a
send timeout for a client that stopped reading.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import deque
from collections.abc import Coroutine
from contextvars import copy_context
from types import CoroutineType
from typing import TYPE_CHECKING, Any
from urllib.parse import quote_from_bytes, unquote

import httptools

from h3lab.app import plain_500
from h3lab.errors import HTTPError
from h3lab.methods import ALLOW_ALL
from h3lab.response import JSON_TYPE, Response, json_encode
from h3lab.routing import routing_path
from h3lab.server import framing, http11
from h3lab.server.access_log import log_access, request_started
from h3lab.server.app_refusal import body_too_large
from h3lab.server.flow import FlowControl
from h3lab.server.framing import (
    BODY_DISCARDED,
    FORBIDDEN_TRAILERS,
    METHODS,
    Refusal,
)
from h3lab.server.tasks import start_request_task

if TYPE_CHECKING:
    from h3lab.event import H3Event
    from h3lab.server.core import Server

logger = logging.getLogger("h3lab.server")

# Connection states, for the server's deadline sweep.
IDLE = 0  # keep-alive, waiting for the next request
HEADERS = 1  # receiving a request line and headers
BODY = 2  # receiving a body
ACTIVE = 3  # requests are being handled or their responses written
LINGER = 4  # final answer sent (FIN), discarding input until the client closes
CLOSING = 5  # close() called, waiting for the transport to flush and go

# Reads larger than this are parsed in slices (see the module docstring).
FEED_SLICE = 16 * 1024
# A request line may exceed the target limit by its method, spaces and version.
REQUEST_LINE_SLACK = 64

# Unusual facts about the request being parsed, looked at once (``_flags``).
_F_TRAILERS = 1  # chunked: on_header now feeds the trailer sink, headers are in _req_headers
_F_STAR = 2  # OPTIONS *: answered by the server, not routed
_F_CLOSE = 4  # an Upgrade attempt: served as plain HTTP, then the connection ends
_F_WEBSOCKET = 8  # a GET asking for Upgrade while the app has WebSocket routes

# Header names looked at besides Host and Content-Length, found by length,
# then by (length, lowered first byte), before lowering the name: expect (6),
# upgrade (7), connection (10), proxy-connection (16), transfer-encoding (17).
_RARE_NAMES = frozenset({b"expect", b"upgrade", b"transfer-encoding"})
_CONNECTION_NAMES = frozenset({b"connection", b"proxy-connection"})
_RARE_NAME_SIZES = frozenset(len(n) for n in _RARE_NAMES | _CONNECTION_NAMES)
_RARE_NAME_KEYS = frozenset(len(n) << 8 | n[0] for n in _RARE_NAMES | _CONNECTION_NAMES)

_SAFE_PATH = "/%:@!$&'()*+,;=-._~"


class _Held:
    """Bytes that arrived while reading was paused, parsed when it resumes."""

    __slots__ = ("data", "eof")

    def __init__(self) -> None:
        self.data = bytearray()
        self.eof = False

    def feed_data(self, data: bytes) -> None:
        self.data += data


class _Discard:
    """The parser of a connection that will never interpret another byte."""

    __slots__ = ()

    def feed_data(self, data: bytes) -> None:
        pass


_DISCARD = _Discard()


class _Trailers(list):  # type: ignore[type-arg]
    """Where ``on_header`` appends once the head is complete: trailer fields.

    They are checked (framing and Host are refused) and dropped, never merged
    into the request's headers: a trailer must not change what was routed or
    authorized. Their bytes count against ``limits.max_chunked_overhead``.
    """

    __slots__ = ()

    def append(self, field: tuple[bytes, bytes]) -> None:
        if field[0].lower() in FORBIDDEN_TRAILERS:
            raise Refusal(400, f"{field[0].decode('latin-1')} is not allowed in trailers")


_TRAILERS = _Trailers()


class _WritePaused:
    """Stands in for ``running`` while the write buffer is full and no Task runs.

    Requests parsed meanwhile queue instead of being answered at once, so a
    read full of pipelined requests cannot pile responses into the buffer of
    a client that does not read them; ``resume_writing`` serves the queue.
    """

    __slots__ = ()

    def done(self) -> bool:
        return False

    def cancel(self) -> bool:
        return False


_WRITE_PAUSED = _WritePaused()


class _Stop(Exception):
    """Raised after the connection's last request is delivered: llhttp stops there,
    so the bytes after it are never parsed (see ``_last_request``)."""


class HttpProtocol(asyncio.Protocol):
    __slots__ = (
        "_access_starts",
        "_body",
        "_body_buf",
        "_body_size",
        "_body_wire",
        "_chunk",
        "_continue_pending",
        "_eof_seen",
        "_flags",
        "_hdr_first",
        "_hdr_line",
        "_hdr_total",
        "_headers",
        "_host_ok",
        "_keep_alive",
        "_llhttp",
        "_method",
        "_pending_error",
        "_req_headers",
        "_send_mark",
        "_send_since",
        "_task_pending",
        "_upgrade",
        "_url",
        "_version",
        "app",
        "closing",
        "flow",
        "keep_alive_next",
        "limits",
        "loop",
        "parser",
        "peer",
        "pool",
        "queue",
        "requests_served",
        "running",
        "server",
        "since",
        "state",
        "transport",
    )

    def __init__(self, server: Server) -> None:
        # Per-server state.
        self.server = server
        self.app = server.app
        self.pool = server.app.pool
        self.limits = server.config.limits
        self.loop = server.loop
        # Per-connection state.
        self.transport: asyncio.Transport | None = None
        self._llhttp = httptools.HttpRequestParser(self)
        self.parser: Any = self._llhttp  # what bytes are fed to (see module docstring)
        self.flow: FlowControl | None = None
        self.peer: Any = None
        self.queue: deque[H3Event] = deque()
        self.running: asyncio.Task[Any] | _WritePaused | None = None
        self.closing = False
        self.requests_served = 0
        self.state = IDLE
        self.since = server.now
        # False once the connection must end after what is in flight: the
        # request that ends it was parsed (nothing after that one is ever
        # parsed), or a refusal, a shutdown, the client's EOF.
        self.keep_alive_next = True
        self._chunk: bytes | None = None
        # The last Host value validated on this connection (NUL: none yet, as
        # llhttp never lets a NUL into a header value).
        self._host_ok = b"\0"
        self._pending_error: bytes | None = None
        self._continue_pending: list[tuple[bytes, bytes]] | None = None
        self._eof_seen = False
        # The event of a request task created but not started yet (_dispatch).
        self._task_pending: H3Event | None = None
        self._upgrade: Any = None  # the WebSocketProtocol taking over (h3lab.server.websocket)
        self._send_mark = -1
        self._send_since = 0.0
        # Per-request parse state.
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._req_headers: list[tuple[bytes, bytes]] = []
        self._method = "GET"
        self._version = "1.1"
        self._keep_alive = True  # llhttp's keep-alive verdict for the request's head
        self._flags = 0  # _F_* bits of the request being parsed (0: nothing unusual)
        self._hdr_total = -1
        self._hdr_line = 0
        self._hdr_first = True
        self._body: bytes = b""
        self._body_buf: bytearray | None = None
        self._body_size = 0
        self._body_wire = 0
        self._access_starts: deque[float] | None = None  # see access_log.py

    # -- connection lifecycle ------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        server = self.server
        if len(server.connections) >= self.limits.max_connections:
            # Refused fast, before reading anything: existing connections are
            # not affected, and this one never costs a parse.
            server.refused += 1
            self.parser = _DISCARD
            self.closing = True
            transport.write(  # type: ignore[attr-defined]
                http11.error_bytes(503, "Too many connections", server=server.server_bytes)
            )
            transport.close()
            return
        server.connections.add(self)
        server.accepted += 1
        self.flow = FlowControl(transport, self.limits.write_buffer_high)  # type: ignore[arg-type]
        self.peer = transport.get_extra_info("peername")
        self.since = server.now

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.parser = _DISCARD
        self.server.connections.discard(self)
        if self.flow is not None:
            self.flow.connection_lost()
        self._release_body()
        task = self.running
        if task is not None and not task.done():
            # The handler sees the disconnect as a cancellation at its next
            # await (a task cancelled before its first step: _request_done).
            task.cancel()
        self._drop_queue()

    def _drop_queue(self) -> None:
        pool = self.pool
        while self.queue:
            pool.release(self.queue.popleft())

    def _release_body(self) -> None:
        buf = self._body_buf
        if buf is not None:
            self._body_buf = None
            arena = self.app.memory.arena
            if arena is not None:
                arena.release(buf)

    def is_closing(self) -> bool:
        return self.closing or self.transport is None or self.transport.is_closing()

    def in_flight(self) -> bool:
        """A request is being received (body), handled, queued or answered."""
        return self.running is not None or bool(self.queue) or self.state in (BODY, ACTIVE)

    def close(self) -> None:
        if not self.closing:
            self.closing = True
            self.parser = _DISCARD
            self.state = CLOSING
            self.since = self.server.now
            if self.transport is not None:
                self.transport.close()

    def abort(self) -> None:
        """Drop the connection now, unsent data included (RST)."""
        self.closing = True
        self.parser = _DISCARD
        if self.transport is not None:
            try:
                self.transport.abort()
            except NotImplementedError:  # a minimal transport (test doubles)
                self.transport.close()

    def pause_writing(self) -> None:
        # Called from inside transport.write when the buffer passes its
        # high-water mark: stop reading, and hold what is already read.
        if self.flow is not None:
            self.flow.pause_writing()
            self._hold_input()
            if self.running is None:
                self.running = _WRITE_PAUSED

    def resume_writing(self) -> None:
        if self.flow is not None:
            self.flow.resume_writing()
            if self.running is _WRITE_PAUSED:
                self.running = None
                self._next_in_queue()  # resumes the input too
            else:
                self._input_resumed()

    def eof_received(self) -> bool | None:
        # Half-close from the client: finish what is in flight, then close.
        self._eof_seen = True
        parser = self.parser
        if type(parser) is _Held:
            parser.eof = True  # the held requests are still served first
            return True
        if self.state == LINGER or (self.running is None and not self.queue):
            return None  # returning falsy closes the transport
        self.keep_alive_next = False
        return True

    # -- input flow ----------------------------------------------------------

    def _hold_input(self) -> None:
        if self.parser is self._llhttp:
            self.parser = _Held()

    def _pause_input(self, reason: str) -> None:
        if self.flow is not None:
            self.flow.pause_reading(reason)
            self._hold_input()

    def _input_resumed(self) -> None:
        """Reading resumed: parse what arrived while it was paused."""
        held = self.parser
        if type(held) is not _Held or (self.flow is not None and self.flow.reading_paused):
            return
        self.parser = self._llhttp
        if held.data:
            self.data_received(bytes(held.data))
        if held.eof:
            if type(self.parser) is _Held:
                self.parser.eof = True
            elif self.eof_received() is None:
                self._close_when_done()

    # -- parsing -------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if len(data) > FEED_SLICE:
            self._feed_slices(data)
            return
        parser = self.parser
        self._chunk = data
        try:
            parser.feed_data(data)
            state = self.state
            if state in (HEADERS, BODY) and parser is self._llhttp:
                # Rare: the read ended inside a request (see the module docstring).
                if state == HEADERS:
                    self._headers_arriving(data)
                else:
                    self._body_arriving(data)
        except Exception as exc:
            self._parse_failed(exc, data)
        self._chunk = None

    def _feed_slices(self, data: bytes) -> None:
        for at in range(0, len(data), FEED_SLICE):
            if self.parser is not self._llhttp:
                self.parser.feed_data(data[at:])  # held (paused) or discarded
                return
            self.data_received(data[at : at + FEED_SLICE])

    def _headers_arriving(self, data: bytes) -> None:
        """The read ended inside a request head: bound what is buffered so far.

        ``_hdr_total`` counts the head's bytes (-1: the request began in this
        read, so its start must be found first), ``_hdr_line`` the unfinished
        line's, ``_hdr_first`` says whether that is still the request line.
        """
        limits = self.limits
        total = self._hdr_total
        newline = data.rfind(b"\n")
        if total < 0:
            url = self._url
            if not url:  # still in the method token: a few bytes at most
                self._hdr_total, self._hdr_line, self._hdr_first = 0, 0, True
                return
            # Earlier requests may share this read: the head starts at its
            # request line, found from the method and target llhttp reported.
            start = data.rfind(self._llhttp.get_method() + b" " + url)
            if start < 0:
                at = data.rfind(url)
                start = data.rfind(b"\n", 0, max(at, 0)) + 1
            total = len(data) - start
            first = newline < start
            line = total if first else len(data) - newline - 1
        else:
            total += len(data)
            if newline < 0:
                line = self._hdr_line + len(data)
                first = self._hdr_first
            else:
                line = len(data) - newline - 1
                first = False
        self._hdr_total, self._hdr_line, self._hdr_first = total, line, first
        if first:
            if line > limits.max_request_target + REQUEST_LINE_SLACK:
                raise Refusal(414, "Request line too long")
        elif line > limits.max_header_line:
            raise Refusal(431, "Request header line too large")
        if total > limits.max_request_target + limits.max_headers_size + REQUEST_LINE_SLACK:
            raise Refusal(431, "Request header section too large")
        if len(self._headers) > limits.max_header_count:
            raise Refusal(431, "Too many request headers")

    def _body_arriving(self, data: bytes) -> None:
        # The read ended inside a body: count its wire bytes, so chunk-size
        # lines, extensions and trailers are bounded as well as the data.
        # _hdr_total is free once the head is parsed: -2 marks "counting this body".
        wire = len(data)
        if self._hdr_total == -2:
            wire += self._body_wire
        else:
            self._hdr_total = -2
        self._body_wire = wire
        limits = self.limits
        if wire > limits.max_body_size + limits.max_chunked_overhead:
            raise Refusal(413, "Request body too large (with its chunked framing)")

    def _parse_failed(self, exc: Exception, data: bytes) -> None:
        if isinstance(exc, httptools.HttpParserUpgrade):
            if self._upgrade is not None:
                # llhttp stopped right after the upgrade request: the rest is frames.
                self._switch_to_websocket(data[exc.args[0] :] if exc.args else b"")
                return
            # llhttp stops after a request that asks to switch protocols (its
            # response says close, see _special_headers): the bytes after it
            # are never interpreted, as HTTP or as a tunnel.
            self.keep_alive_next = False
            self.parser = _DISCARD
            if not self.in_flight():
                self._close_when_done()
            return
        cause: BaseException | None = None
        if isinstance(exc, Refusal):
            cause = exc
        elif isinstance(exc, httptools.HttpParserCallbackError):
            cause = exc.__context__  # what our callback raised
        if isinstance(cause, _Stop) or (
            not self.keep_alive_next and self.state != HEADERS and self.state != BODY
        ):
            # Bytes after the connection's last request (llhttp reports them as
            # "Data after Connection: close"): dropped, never answered.
            self.parser = _DISCARD
            if not self.in_flight():
                self._close_when_done()
            return
        answer = None
        if isinstance(cause, Refusal):
            status, reason = cause.status, cause.reason
            if status == 413 and self.state == BODY:
                # h3 (and the ASGI adapter) answer it through the app's on_error hook.
                answer = body_too_large(
                    self.app,
                    self.server,
                    reason,
                    method=self._method,
                    http_version=self._version,
                    url=self._url,
                    raw_headers=self._headers,
                    peer=self.peer,
                    conn=self,
                    head_only=self._refusing_head(),
                )
        elif cause is not None or not isinstance(exc, httptools.HttpParserError):
            # Our own code failed on this input: a bug, so say it loudly.
            logger.error("failed to process request bytes", exc_info=cause or exc)
            status, reason = 500, "Internal Server Error"
        else:
            status, reason = framing.parser_error(exc, data)
        self._protocol_error(status, reason, answer)

    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = []
        self._hdr_total = -1
        self._body = b""
        self._body_size = 0
        self.state = HEADERS
        self.since = self.server.now
        if self.server.access_log:
            request_started(self)

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > self.limits.max_request_target:
            raise Refusal(414, "Request target too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        # PERF: called once per header; only collect here. The limits are
        # checked in one pass at on_headers_complete (and while a head
        # arrives, by _headers_arriving). After the head, _headers is the
        # trailer sink.
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        parser = self._llhttp
        self.state = BODY
        self.since = self.server.now
        try:
            method = METHODS[parser.get_method()]
        except KeyError:
            raw_method = parser.get_method().decode("latin-1")
            if raw_method == "CONNECT":
                raise Refusal(501, "CONNECT is not supported (this server never tunnels)") from None
            raise Refusal(501, f"Method {raw_method} is not implemented") from None
        headers = self._headers
        self._method = method
        limits = self.limits
        if len(headers) > limits.max_header_count:
            raise Refusal(431, "Too many request headers")
        # One pass over the headers: sizes, and the few that matter here,
        # picked by name length (and first byte) before any name is lowered.
        total = 0
        line_max = limits.max_header_line
        length = -1
        hosts = 0
        host = b""
        connection = False
        special: list[tuple[bytes, bytes]] | None = None
        for name, value in headers:
            size = len(name)
            line = size + len(value) + 4
            if line > line_max:
                raise Refusal(431, "Request header line too large")
            total += line
            if size == 4:
                if name == b"Host" or name.lower() == b"host":
                    hosts += 1
                    host = value
            elif size == 14:
                if name.lower() == b"content-length":
                    # llhttp validated the digits (and refused duplicates);
                    # int() still refuses a run of >4300 leading zeros.
                    try:
                        length = int(value)
                    except ValueError:
                        raise Refusal(400, "Invalid Content-Length") from None
            elif size in _RARE_NAME_SIZES and (size << 8 | name[0] | 0x20) in _RARE_NAME_KEYS:
                lower = name.lower()
                if lower in _CONNECTION_NAMES:
                    connection = True
                elif lower in _RARE_NAMES:
                    if special is None:
                        special = []
                    special.append((lower, value))
        if total > limits.max_headers_size:
            raise Refusal(431, "Request header section too large")
        # PERF: get_http_version() formats a new string (the dearest call in a
        # request). Without a Connection header, llhttp keeps a request alive
        # exactly when it is HTTP/1.1 (its versions are 0.9, 1.0, 1.1, 2.0).
        keep_alive = self._keep_alive = parser.should_keep_alive()
        if keep_alive and not connection:
            version = "1.1"
        else:
            version = parser.get_http_version()
            if version != "1.1" and (
                version != "1.0" or framing.rtsp_request_line(self._chunk, self._url)
            ):
                raise Refusal(505, "HTTP version not supported (only HTTP/1.0 and HTTP/1.1)")
        self._version = version
        if hosts != 1 or host != self._host_ok:
            self._check_host(hosts, host, version)
        url = self._url
        if not url or url[0] != 0x2F:  # not origin-form ("/..."): rare
            # Asterisk-form (OPTIONS *) or absolute-form, which routes by its path.
            self._url = framing.target_path(url, method)
            if url == b"*":
                self._flags |= _F_STAR
        if length > limits.max_body_size:
            # Refused from the header alone: no 100 Continue, the body is never read.
            raise Refusal(413, "Request body too large")
        if special is not None:
            self._special_headers(special, version, length)

    def _check_host(self, hosts: int, host: bytes, version: str) -> None:
        if hosts > 1:
            raise Refusal(400, "Duplicate Host header")
        if not hosts:
            if version == "1.1":
                raise Refusal(400, "Missing Host header")
            return
        if not framing.valid_host(host):
            raise Refusal(400, "Invalid Host header")
        self._host_ok = host  # the next request on this connection likely repeats it

    def _special_headers(
        self, fields: list[tuple[bytes, bytes]], version: str, length: int
    ) -> None:
        codings = [value for name, value in fields if name == b"transfer-encoding"]
        if codings:
            framing.check_transfer_encoding(codings, version)
            # A chunked body may end with trailers, which llhttp reports
            # through on_header: from now on they go to the sink.
            self._req_headers = self._headers
            self._headers = _TRAILERS
            self._flags |= _F_TRAILERS
        expects = [value.strip(b" \t").lower() for name, value in fields if name == b"expect"]
        if expects:
            if any(e != b"100-continue" for e in expects):
                raise Refusal(417, "Unsupported Expect value")
            # 100 Continue only for HTTP/1.1 and only when a body will follow.
            if version == "1.1" and (length > 0 or codings):
                if self.running is None and not self.queue:
                    if self.transport is not None:
                        self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                else:
                    # A response in flight must not be split by an interim
                    # one: sent once the responses before this request are
                    # (the request is identified by its header list).
                    self._continue_pending = self._req_headers
        if any(name == b"upgrade" for name, _ in fields) and self._llhttp.should_upgrade():
            # Served as plain HTTP (RFC 9110 7.8 lets a server ignore Upgrade),
            # and the connection ends with it: llhttp stops parsing there.
            self._flags |= _F_CLOSE
            if self._method == "GET" and self.app.has_ws_routes:
                self._flags |= _F_WEBSOCKET  # maybe a WebSocket route: see _unusual_complete

    def on_body(self, body: bytes) -> None:
        size = self._body_size = self._body_size + len(body)
        if size > self.limits.max_body_size:
            raise Refusal(413, "Request body too large")
        if self._method in BODY_DISCARDED:
            return  # read so it cannot pass for a request, then dropped
        if not self._body:
            self._body = body
            return
        buf = self._body_buf
        if buf is None:
            arena = self.app.memory.arena
            buf = self._body_buf = arena.acquire() if arena is not None else bytearray()
            buf += self._body
        buf += body

    def on_message_complete(self) -> None:
        event = self.pool.acquire()
        event.conn = self
        event.remote = self.peer
        event.method = self._method
        event.http_version = self._version
        if self._body_buf is not None:
            buf = self._body_buf
            event._body = bytes(buf)
            self._release_body()
        else:
            event._body = self._body
        flags = self._flags
        if flags:
            self._unusual_complete(event, flags)
            return
        event._raw_headers = self._headers
        # PERF: _set_target inlined.
        path, _, query = self._url.partition(b"?")
        if b"#" in path:
            path = path.partition(b"#")[0]
        raw = path.decode("ascii") if path.isascii() else quote_from_bytes(path, _SAFE_PATH)
        event.raw_path = raw
        event.route_path = routing_path(raw)
        event.path = unquote(raw) if "%" in raw else raw
        event.query_string = query.decode("latin-1") if query else ""
        # llhttp's verdict from the head (nothing after it changes it, trailers
        # aside, and chunked requests take _unusual_complete).
        llhttp_keep_alive = self._keep_alive
        keep_alive = llhttp_keep_alive and self.keep_alive_next
        max_requests = self.limits.max_requests_per_connection
        if max_requests and self.requests_served + len(self.queue) + 1 >= max_requests:
            keep_alive = False
        event.keep_alive = keep_alive
        self.state = ACTIVE
        if not keep_alive:
            self._last_request(event, llhttp_keep_alive)
        elif self.running is not None or self.queue:
            self._deliver(event)  # behind the requests in flight
        else:
            self._dispatch(event)

    def _unusual_complete(self, event: H3Event, flags: int) -> None:
        """on_message_complete for a request with ``_F_*`` flags (chunked, ``*``, Upgrade)."""
        self._flags = 0
        event._raw_headers = self._req_headers if flags & _F_TRAILERS else self._headers
        if flags & _F_STAR:
            event.raw_path = event.route_path = event.path = "*"
            event.query_string = ""
        else:
            _set_target(event, self._url)
        # (An upgrade behind pipelined requests is served as plain HTTP.)
        if (
            flags & _F_WEBSOCKET
            and self.running is None
            and not self.queue
            and self._websocket_upgrade(event)
        ):
            return
        llhttp_keep_alive = self._llhttp.should_keep_alive()
        keep_alive = llhttp_keep_alive and self.keep_alive_next and not flags & _F_CLOSE
        max_requests = self.limits.max_requests_per_connection
        if max_requests and self.requests_served + len(self.queue) + 1 >= max_requests:
            keep_alive = False
        event.keep_alive = keep_alive
        self.state = ACTIVE
        if not keep_alive:
            self._last_request(event, llhttp_keep_alive)
        else:
            self._deliver(event)

    def _websocket_upgrade(self, event: H3Event) -> bool:
        """A WebSocket route's upgrade: refused, or started once llhttp stops."""
        from h3lab.server.websocket import upgrade

        outcome = upgrade(self, event)
        if outcome is None:
            return False  # not a WebSocket route: plain HTTP
        self.pool.release(event)
        self.state = ACTIVE
        self.keep_alive_next = False
        if type(outcome) is bytes:
            # A bad handshake: answered, closed, and the handler never runs.
            self.server.protocol_errors += 1
            self._pending_error = outcome
            self._close_when_done()
        else:
            self._upgrade = outcome
        return True

    def _switch_to_websocket(self, trailing: bytes) -> None:
        ws, self._upgrade = self._upgrade, None
        self.parser = ws  # what is left of a sliced read goes to it too
        self.closing = True
        self.state = CLOSING
        self.server.connections.discard(self)
        self.transport = None
        ws.start(trailing)

    def _last_request(self, event: H3Event, llhttp_keep_alive: bool) -> None:
        """Deliver the request that ends the connection; nothing after it is parsed."""
        self.keep_alive_next = False
        self._deliver(event)
        if llhttp_keep_alive:
            # llhttp would go on parsing what follows (it stops by itself after
            # Connection: close and HTTP/1.0): stop it here.
            raise _Stop

    def _deliver(self, event: H3Event) -> None:
        """Queue ``event`` behind the requests in flight, or serve it now."""
        if self.running is not None or self.queue:
            self.queue.append(event)
            if len(self.queue) >= self.limits.max_pipeline:
                self._pause_input("pipeline")
        elif event.raw_path == "*":
            self._answer_star(event)
        else:
            self._dispatch(event)

    # -- dispatch ------------------------------------------------------------

    def _dispatch(self, event: H3Event) -> None:
        """Run the request isolated: the kind of isolation is the route's (``app.resolve``).

        A chain that cannot await (synchronous before-middleware and handler)
        runs in its own copy of the ``contextvars`` context, with no Task:
        nothing in it can suspend. Any other chain runs in its own Task,
        started eagerly (``tasks``): one that does not suspend is answered
        before this returns; one that does keeps the connection's ``running``
        slot until its task ends, and later pipelined requests queue meanwhile.
        """
        try:
            chain, sync = self.app.resolve(event)
        except Exception as exc:  # routing failed: answered like a failing handler
            chain, sync = _Raise(exc), True
        if sync:
            copy_context().run(self._serve_sync, event, chain)
        else:
            self._start_task(event, self._serve(event, chain))

    def _start_task(self, event: H3Event, coro: Coroutine[Any, Any, None]) -> None:
        self._task_pending = event  # until the task's first step (see _request_done)
        task = start_request_task(self.loop, coro)
        if not task.done():
            self.running = task
            task.add_done_callback(self._request_done)

    def _answer_star(self, event: H3Event) -> None:
        """``OPTIONS *``: answered by the server itself, no handler, no task."""
        self._respond(event, _options_star(), event.keep_alive)
        self._release(event)

    def _request_done(self, task: asyncio.Task[Any]) -> None:
        """A request task that suspended has ended (runs outside any task)."""
        if self.running is task:
            self.running = None
        event = self._task_pending
        if event is not None:
            # Cancelled before its first step (the client left at once): the
            # task's own cleanup never ran, so the event is released here.
            self._task_pending = None
            self._release(event)
        if self.running is None:
            self._next_in_queue()

    def _serve_sync(self, event: H3Event, chain: Any) -> None:
        """One request whose chain cannot await, in its own context: no Task.

        Should it give an awaitable after all (a synchronous callable returning
        a coroutine) or a streaming response, the rest goes to a Task started
        from this context, so it sees what the chain set.
        """
        app = self.app
        keep_alive = event.keep_alive
        try:
            try:
                result = chain(event)
            except Exception as exc:
                response = app.error_response(event, exc)
            except asyncio.CancelledError as exc:  # the handler's own: there is no task
                response = app.error_response(event, exc)
            else:
                if self._respond_fast(event, result, keep_alive):  # never an awaitable
                    self._release(event)
                    return
                if inspect.isawaitable(result):
                    self._start_task(event, self._serve(event, _Given(result)))
                    return
                response = app.response_for(event, result)
            if response.streaming:
                self._start_task(event, self._serve_stream(event, response, keep_alive))
                return
            self._respond(event, response, keep_alive)
        except Exception:
            # A bug of ours while answering: never a hang, never a leak.
            logger.exception("failed to answer %s %s", event.method, event.path)
            self.close()
        self._release(event)

    async def _serve(self, event: H3Event, chain: Any) -> None:
        """One request, in its own task: chain, response, finish, release."""
        self._task_pending = None  # started: from here on the cleanup is ours
        app = self.app
        keep_alive = event.keep_alive
        try:
            try:
                result = chain(event)
                if type(result) is CoroutineType or inspect.isawaitable(result):
                    result = await result
                    # keep_alive_next may have turned False meanwhile (shutdown,
                    # EOF): then the last response before the close says so.
                    keep_alive = keep_alive and self._more_follows()
            except Exception as exc:
                response = app.error_response(event, exc)
            except asyncio.CancelledError as exc:
                if _cancel_requested():
                    raise  # the client left, or the server is stopping
                response = app.error_response(event, exc)  # the handler's own
            else:
                if self._respond_fast(event, result, keep_alive):
                    return
                response = app.response_for(event, result)
            if response.streaming:
                await self._stream(event, response, keep_alive)
            else:
                self._respond(event, response, keep_alive)
        except asyncio.CancelledError:
            raise  # the client went away (connection_lost cancelled us)
        except Exception:
            # A bug of ours while answering: never a hang, never a leak.
            logger.exception("failed to answer %s %s", event.method, event.path)
            self.close()
        finally:
            self._release(event)

    async def _serve_stream(self, event: H3Event, response: Response, keep_alive: bool) -> None:
        """A streaming response from a synchronous chain, sent in its own task."""
        self._task_pending = None
        try:
            await self._stream(event, response, keep_alive)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("failed to answer %s %s", event.method, event.path)
            self.close()
        finally:
            self._release(event)

    def _respond_fast(self, event: H3Event, result: Any, keep_alive: bool) -> bool:
        """PERF: str, dict/list and bytes with no status or header changes,
        pre-encoded: one join, one write. False when the general path must answer."""
        if event._resp_headers is not None or event.status != 200:
            return False
        server = self.server
        kind = type(result)
        if kind is str:
            body = result.encode()
            prefix = server.prefix_text
        elif kind is dict or kind is list:
            try:
                body = self.app.json_encode(result)
            except Exception:  # unencodable (a cycle...): the general path answers 500
                return False
            prefix = server.prefix_json
        elif kind is bytes:
            body = result
            prefix = server.prefix_bytes
        else:
            return False
        if self.app.on_response_hook is not None:
            return False
        transport = self.transport
        if transport is None or self.closing:
            return True
        if keep_alive and event.http_version != "1.0":
            tail = server.date_end  # Date line + the blank line
        elif keep_alive:
            tail = server.date_bytes + http11.CONNECTION_KEEP_ALIVE + b"\r\n"
        else:
            tail = server.date_bytes + http11.CONNECTION_CLOSE + b"\r\n"
        transport.write(
            b"".join((prefix, b"%d\r\n" % len(body), tail, b"" if event.method == "HEAD" else body))
        )
        # PERF: _finish inlined for the fast path.
        self.requests_served += 1
        server.requests += 1
        if server.access_log:
            log_access(event, 200, len(body))
        if not keep_alive:
            self._close_when_done()
        elif self.running is None and not self.queue:
            if self.keep_alive_next:
                self.state = IDLE
                self.since = server.now
            else:
                self._close_when_done()
        return True

    def _respond(self, event: H3Event, response: Response, keep_alive: bool) -> None:
        """Write a final response (complete, or the head of a streamed one for HEAD), then finish."""
        transport = self.transport
        if transport is None or self.closing:
            return
        head, body, status = self._encode(event, response, keep_alive, event.method == "HEAD")
        transport.write(head + body if body else head)
        self._finish(event, keep_alive, status, len(body))

    def _encode(
        self, event: H3Event, response: Response, keep_alive: bool, head_only: bool
    ) -> tuple[bytes, bytes, int]:
        """Head and body of a complete response; a header that cannot be sent
        (CR/LF/NUL, or not Latin-1 where RFC 8187 does not apply) turns it into
        a 500 and is never sent."""
        try:
            return self._encode_unchecked(event, response, keep_alive, head_only)
        except http11.UnsafeHeader as exc:
            error = self.app.error_response(event, exc)
        try:
            return self._encode_unchecked(event, error, keep_alive, head_only)
        except (http11.UnsafeHeader, TypeError):
            # The error response cannot be sent either (an on_error hook): the plain one.
            return self._encode_unchecked(event, plain_500(), keep_alive, head_only)

    def _encode_unchecked(
        self, event: H3Event, response: Response, keep_alive: bool, head_only: bool
    ) -> tuple[bytes, bytes, int]:
        streaming = response.streaming
        if streaming and not head_only:
            raise TypeError("a streaming response where a complete one is needed")
        body = b"" if streaming else response.body
        length = None if streaming else len(body)  # type: ignore[arg-type]
        head = self._head(event, response, keep_alive, length, head_only)
        if head_only or response.status in http11.NO_BODY_STATUSES:
            body = b""
        return head, body, response.status  # type: ignore[return-value]

    def _head(
        self,
        event: H3Event,
        response: Response,
        keep_alive: bool,
        length: int | None,
        head_only: bool = False,
    ) -> bytes:
        return http11.response_head(
            response,
            server=self.server.server_bytes,
            date=self.server.date_bytes,
            keep_alive=keep_alive,
            http10=event.http_version == "1.0",
            content_length=length,
            head_only=head_only,
        )

    async def _stream(self, event: H3Event, response: Response, keep_alive: bool) -> None:
        """Send a streaming body: chunked on HTTP/1.1, until close on HTTP/1.0.

        The first chunk is pulled before the status line is committed, so a
        body that fails before producing anything is still answered with a
        complete 500. Whatever happens -- HEAD (no body is sent), a failure, the
        client leaving -- the body is closed (``aclose``): its ``finally``
        blocks run and a producer behind it (``EventStream``) stops.
        """
        body: Any = response.body
        source = body
        completed = False
        try:
            if event.method == "HEAD":
                self._respond(event, response, keep_alive)  # the head only
                return
            http10 = event.http_version == "1.0"
            keep_alive = keep_alive and not http10  # an HTTP/1.0 body ends at the close
            source = aiter(body)
            try:
                first = await anext(source, None)
            except Exception as exc:
                error = self.app.error_response(event, exc)
                self._respond(event, plain_500() if error.streaming else error, keep_alive)
                return
            try:
                head = self._head(event, response, keep_alive, None)
            except http11.UnsafeHeader as exc:
                # Never a byte of the unsafe head: a complete 500 instead.
                self._respond(event, self.app.error_response(event, exc), keep_alive)
                return
            transport = self.transport
            if transport is None or self.closing:
                return
            if first is None:  # an empty body
                transport.write(head if http10 else head + http11.CHUNKED_END)
                completed = True
            else:
                transport.write(head + _frame(first, http10))
                completed = await self._send_body(source, transport, http10)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("streaming response failed for %s %s", event.method, event.path)
        finally:
            aclose = getattr(source, "aclose", None)
            if aclose is not None:
                try:
                    await aclose()
                except Exception:
                    logger.debug("closing a streaming body failed", exc_info=True)
        if completed and not self.closing:
            self._finish(event, keep_alive, response.status)
        else:
            self.close()  # the response is cut short: the client must see it end

    async def _send_body(self, body: Any, transport: asyncio.Transport, http10: bool) -> bool:
        """Write the rest of a streaming body, waiting while the client reads
        slowly (before pulling the next chunk); True if complete."""
        flow = self.flow
        while True:
            if flow is not None and flow.write_paused:
                await flow.drain()
            if self.closing or transport.is_closing():
                # Gone (a transport that failed drops writes silently, and a
                # body that never awaits would otherwise spin here forever).
                return False
            try:
                chunk = await anext(body)
            except StopAsyncIteration:
                break
            data = _frame(chunk, http10)
            if data:
                transport.write(data)
        if self.closing:
            return False
        if not http10:
            transport.write(http11.CHUNKED_END)
        return True

    def _finish(
        self, event: H3Event, keep_alive: bool, status: int = 200, size: int | None = None
    ) -> None:
        self.requests_served += 1
        server = self.server
        server.requests += 1
        if server.access_log:
            log_access(event, status, size)
        if not keep_alive:
            self._close_when_done()
        elif self.running is None and not self.queue:
            if self.keep_alive_next:
                if self.state == ACTIVE:
                    self.state = IDLE
                    self.since = server.now
            else:
                self._close_when_done()

    def _more_follows(self) -> bool:
        """Will anything follow the response being written (another response, a refusal)?"""
        return self.keep_alive_next or bool(self.queue) or self._pending_error is not None

    def _release(self, event: H3Event) -> None:
        self.pool.release(event)

    def _next_in_queue(self) -> None:
        if self.running is None and self.flow is not None and self.flow.write_paused:
            self.running = _WRITE_PAUSED  # the queue waits for resume_writing
            return
        # A request may be arriving meanwhile: its deadline must survive the
        # fast path below marking the connection idle.
        state, since = self.state, self.since
        while self.queue and self.running is None and not self.closing:
            event = self.queue.popleft()
            if not self._more_follows():
                event.keep_alive = False  # the last one before a close says so
            if event.raw_path == "*":  # only OPTIONS * has this target
                self._answer_star(event)
            else:
                self._dispatch(event)
        if self.closing or self.state == LINGER:
            return
        if self.running is None and not self.queue:
            if state in (HEADERS, BODY):
                self.state, self.since = state, since
                if (
                    state == BODY
                    and self._continue_pending is self._req_headers
                    and self.transport is not None
                ):
                    self._continue_pending = None
                    self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            elif not self.keep_alive_next:
                self._close_when_done()
                return
            elif self.state == ACTIVE:
                self.state = IDLE
                self.since = self.server.now
        if self.flow is not None and len(self.queue) < self.limits.max_pipeline:
            self.flow.resume_reading("pipeline")
            self._input_resumed()

    def _close_when_done(self) -> None:
        """The connection's last response is written: send a pending refusal, then linger."""
        self._drop_queue()
        self.keep_alive_next = False
        self.parser = _DISCARD
        transport = self.transport
        if transport is None or self.closing or self.state == LINGER:
            return
        if self._pending_error is not None:
            transport.write(self._pending_error)
            self._pending_error = None
        if self._eof_seen or transport.is_closing() or not transport.can_write_eof():
            self.close()
            return
        # FIN after the answer, then keep reading (and dropping) until the
        # client closes or linger_timeout: closing a socket with unread input
        # makes the kernel send RST, which can destroy the answer in flight.
        transport.write_eof()
        self.state = LINGER
        self.since = self.server.now
        if self.flow is not None:
            self.flow.resume_all()

    def _protocol_error(self, status: int, reason: str, answer: bytes | None = None) -> None:
        """Refuse the request being received: answer, then close gracefully.

        Nothing after the error is interpreted (the parser becomes a sink).
        Responses already in flight on this connection go first, in order:
        the refusal is written after them.
        """
        self.server.protocol_errors += 1
        self.parser = _DISCARD
        self.keep_alive_next = False
        self._release_body()
        if (
            self.transport is None
            or self.closing
            or self.state == LINGER
            or self._pending_error is not None
        ):
            return
        self._pending_error = answer or http11.error_bytes(
            status,
            reason,
            server=self.server.server_bytes,
            date=self.server.date_bytes,
            head_only=self._refusing_head(),
        )
        if self.running is not None or self.queue:
            self.state = ACTIVE  # nothing is being received any more
            return
        self._close_when_done()

    def _refusing_head(self) -> bool:
        """Is the request being refused a HEAD (its answer then has no body)?

        llhttp knows the method once the target began (the head parsed, or
        ``on_url`` called): never guessed from the previous request.
        """
        state = self.state
        if state != BODY and not (state == HEADERS and self._url):
            return False
        try:
            return self._llhttp.get_method() == b"HEAD"
        except Exception:  # llhttp in an error state: no method to trust
            return False

    # -- deadlines (called by the server's ticker) ----------------------------

    def check_deadlines(self, now: float) -> None:
        state = self.state
        limits = self.limits
        if state == IDLE:
            if self._still_sending(now):
                self.since = now  # idle counts from the end of the last response
            elif now - self.since > limits.keepalive_timeout:
                self.close()
        elif state in (HEADERS, BODY):
            if self.flow is not None and self.flow.reading_paused:
                # We are the ones not reading (pipeline cap, or the client is
                # not reading our responses): not the client's time.
                self.since = now
                self._still_sending(now)
            elif now - self.since > (
                limits.header_timeout if state == HEADERS else limits.body_timeout
            ):
                self._protocol_error(
                    408, "Request header timeout" if state == HEADERS else "Request body timeout"
                )
        elif state == ACTIVE:
            if self.flow is not None and self.flow.write_paused:
                self._still_sending(now)
            elif self.running is not None or self.queue:
                self.since = now  # a handler runs (as long as it likes) or requests wait
            elif not self._still_sending(now) and now - self.since > limits.keepalive_timeout:
                # Nothing runs, nothing is sent, yet the connection never went
                # idle: a request whose answer was lost. Never left hanging.
                logger.warning("closing a connection stuck after a request (%s)", self.peer)
                self.close()
        elif state == LINGER:
            if not self._still_sending(now) and now - self.since > limits.linger_timeout:
                self.close()
        elif (
            state == CLOSING
            and not self._still_sending(now)
            and now - self.since > limits.linger_timeout
        ):
            self.abort()  # close() did not finish: the transport is stuck

    def _still_sending(self, now: float) -> bool:
        """Is a response still buffered? Abort when it made no progress for send_timeout."""
        try:
            size = self.transport.get_write_buffer_size()  # type: ignore[union-attr]
        except (AttributeError, NotImplementedError):  # gone, or a minimal transport
            size = 0
        if size == 0:
            self._send_mark = -1
            return False
        if size != self._send_mark:
            self._send_mark = size
            self._send_since = now
        elif now - self._send_since > self.limits.send_timeout:
            self.abort()  # the client stopped reading; its handler is cancelled
        return True


def _set_target(event: H3Event, url: bytes) -> None:
    """Fill the event's paths and query from an origin-form target."""
    path, _, query = url.partition(b"?")
    if b"#" in path:
        path = path.partition(b"#")[0]
    raw = path.decode("ascii") if path.isascii() else quote_from_bytes(path, _SAFE_PATH)
    event.raw_path = raw
    event.route_path = routing_path(raw)
    event.path = unquote(raw) if "%" in raw else raw
    event.query_string = query.decode("latin-1") if query else ""


class _Given:
    """A chain that gives a value already produced (or raises an exception already caught)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __call__(self, event: H3Event) -> Any:
        return self.value


class _Raise(_Given):
    def __call__(self, event: H3Event) -> Any:
        raise self.value


def _options_star() -> Response:
    """``OPTIONS *``: what the server as a whole supports."""
    return Response(None, 200, [("allow", ALLOW_ALL)])


def _cancel_requested() -> bool:
    """Is the current task being cancelled (as opposed to a CancelledError that
    a handler's own await raised, which is the handler's failure)?"""
    task = asyncio.current_task()
    return task is None or task.cancelling() > 0


def _frame(chunk: Any, http10: bool) -> bytes:
    """One chunk of a streamed body as written: chunked framing on HTTP/1.1."""
    if type(chunk) is str:
        chunk = chunk.encode()
    if not chunk:
        return b""  # an empty chunk would be the end marker
    if http10:
        return bytes(chunk)
    return b"%x\r\n%s\r\n" % (len(chunk), chunk)


def error_json(status: int, message: str) -> bytes:
    return json_encode({"status": status, "message": message, "data": None}).encode()


__all__ = ["JSON_TYPE", "HTTPError", "HttpProtocol"]
