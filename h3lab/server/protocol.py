"""The HTTP/1.1 connection: asyncio glue and httptools parser callbacks.

httptools calls back as it parses: ``on_message_begin``, ``on_url``,
``on_header`` (once per complete header), ``on_headers_complete``,
``on_body`` (zero or more), ``on_message_complete``. A request is dispatched
at ``on_message_complete``, when its body is complete: handlers always see a
whole body.

``HttpProtocol`` is one class assembled from one module per concept (the
split of uvicorn's ``httptools_impl``/``flow_control`` and h11's
``_connection``), each a slot-less mixin so the hot path pays no extra
attribute hop:

* ``head``: the request head scanned with no I/O (``Head.scan`` raises
  ``Refusal``), and the target splitter shared with the ASGI adapter;
* ``reading``: bytes as they arrive -- sliced, held while reading is paused,
  bounded while a head or body is unfinished, parse failures answered;
* ``cycle``: dispatch, per-request isolation, the pipeline queue;
* ``writer``: responses, and the one finish path;
* ``deadlines``: refusal, lingering close, the deadline table by state;
* ``state``: what the connections of one server share (``ServerState``).

This module keeps what is left: the connection's lifecycle as asyncio sees
it, and what each parser callback does.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING, Any

import httptools

from h3lab.server import http11
from h3lab.server.access_log import request_started
from h3lab.server.cycle import CONTINUE, WRITE_PAUSED, Cycle, _WritePaused
from h3lab.server.deadlines import (
    ACTIVE,
    BODY,
    CLOSING,
    HEADERS,
    IDLE,
    LINGER,
    Ending,
)
from h3lab.server.flow import DISCARD, FlowControl, Held
from h3lab.server.framing import BODY_DISCARDED, Refusal
from h3lab.server.head import (
    F_CLOSE,
    F_CONTINUE,
    F_STAR,
    F_TRAILERS,
    F_WEBSOCKET,
    TRAILERS,
    Head,
    fill_target,
)
from h3lab.server.reading import Reading
from h3lab.server.writer import Writer

if TYPE_CHECKING:
    from h3lab.event import H3Event
    from h3lab.server.state import ServerState

# Head flags the connection acts on as soon as the head is complete.
_ASKS = F_TRAILERS | F_CONTINUE


class HttpProtocol(Reading, Cycle, Writer, Ending, asyncio.Protocol):
    __slots__ = (
        "_access_starts",
        "_acquire",
        "_body",
        "_body_buf",
        "_body_size",
        "_body_wire",
        "_chunk",
        "_continue_pending",
        "_eof_seen",
        "_hdr_first",
        "_hdr_line",
        "_hdr_total",
        "_headers",
        "_llhttp",
        "_pending_error",
        "_release",
        "_req_headers",
        "_send_mark",
        "_send_since",
        "_task_pending",
        "_upgrade",
        "_url",
        "app",
        "closing",
        "flow",
        "head",
        "keep_alive_next",
        "limits",
        "loop",
        "max_requests",
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

    def __init__(self, server: ServerState) -> None:
        # Per-server state.
        self.server = server
        self.app = server.app
        self.pool = pool = server.app.pool
        self._acquire = pool.acquire  # PERF: bound once per connection, not per request
        self._release = pool.release
        self.limits = limits = server.limits
        self.loop = server.loop
        self.max_requests = limits.max_requests_per_connection
        # Per-connection state.
        self.transport: asyncio.Transport | None = None
        self._llhttp = httptools.HttpRequestParser(self)
        self.parser: Any = self._llhttp  # what bytes are fed to (see reading.py)
        self.head = Head(limits, server.app)
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
        self._pending_error: bytes | None = None
        self._continue_pending: list[tuple[bytes, bytes]] | None = None
        self._eof_seen = False
        # The event of a request task created but not started yet (_dispatch).
        self._task_pending: H3Event | None = None
        self._upgrade: Any = None  # the WebSocketProtocol taking over (h3lab.server.ws_protocol)
        self._send_mark = -1
        self._send_since = 0.0
        # Per-request parse state.
        self._url = b""  # the target as received (head.target: as routed)
        self._headers: list[tuple[bytes, bytes]] = []
        self._req_headers: list[tuple[bytes, bytes]] = []
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
        self.transport = transport  # type: ignore[assignment]  # a Transport (asyncio types the base)
        server = self.server
        if len(server.connections) >= self.limits.max_connections:
            # Refused fast, before reading anything: existing connections are
            # not affected, and this one never costs a parse.
            server.refused += 1
            self.parser = DISCARD
            self.closing = True
            transport.write(  # type: ignore[attr-defined]  # a Transport; no isinstance on the hot path
                http11.error_bytes(503, "Too many connections", server=server.server_bytes)
            )
            transport.close()
            return
        server.connections.add(self)
        server.accepted += 1
        self.flow = FlowControl(transport, self.limits.write_buffer_high)  # type: ignore[arg-type]  # a Transport, as above
        self.peer = transport.get_extra_info("peername")
        self.since = server.now

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.parser = DISCARD
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

    def is_closing(self) -> bool:
        return self.closing or self.transport is None or self.transport.is_closing()

    def in_flight(self) -> bool:
        """A request is being received (body), handled, queued or answered."""
        return self.running is not None or bool(self.queue) or self.state in (BODY, ACTIVE)

    def pause_writing(self) -> None:
        # Called from inside transport.write when the buffer passes its
        # high-water mark: stop reading, and hold what is already read.
        if self.flow is not None:
            self.flow.pause_writing()
            self._hold_input()
            if self.running is None:
                self.running = WRITE_PAUSED

    def resume_writing(self) -> None:
        if self.flow is not None:
            self.flow.resume_writing()
            if self.running is WRITE_PAUSED:
                self.running = None
                self._next_in_queue()  # resumes the input too
            else:
                self._input_resumed()

    def eof_received(self) -> bool | None:
        # Half-close from the client: finish what is in flight, then close.
        self._eof_seen = True
        parser = self.parser
        if type(parser) is Held:
            parser.eof = True  # the held requests are still served first
            return True
        if self.state == LINGER or (self.running is None and not self.queue):
            return None  # returning falsy closes the transport
        self.keep_alive_next = False
        return True

    # -- parser callbacks ----------------------------------------------------

    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = []
        self._hdr_total = -1
        self._body = b""
        self._body_size = 0
        self.state = HEADERS
        server = self.server
        self.since = server.now
        if server.access_log:
            request_started(self)

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > self.limits.max_request_target:
            raise Refusal(414, "Request target too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        # PERF: called once per header; only collect here. The limits are
        # checked in one pass by Head.scan (and while a head arrives, by
        # _headers_arriving). After a chunked head, _headers is the trailer sink.
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.state = BODY
        self.since = self.server.now
        head = self.head  # whole: no read ended inside this head (_hdr_total, reading.py)
        head.scan(self._llhttp, self._headers, self._url, self._chunk, self._hdr_total == -1)
        if head.flags & _ASKS:
            self._head_asks(head.flags)

    def _head_asks(self, flags: int) -> None:
        """What a head's Transfer-Encoding or Expect asks of the connection."""
        if flags & F_TRAILERS:
            # llhttp reports trailers through on_header: from now on they go to the sink.
            self._req_headers = self._headers
            self._headers = TRAILERS
        if flags & F_CONTINUE:
            if self.running is None and not self.queue:
                if self.transport is not None:
                    self.transport.write(CONTINUE)
            else:
                # A response in flight must not be split by an interim
                # one: sent once the responses before this request are
                # (the request is identified by its header list).
                self._continue_pending = self._req_headers

    def on_body(self, body: bytes) -> None:
        size = self._body_size = self._body_size + len(body)
        if size > self.limits.max_body_size:
            raise Refusal(413, "Request body too large")
        if self.head.method in BODY_DISCARDED:
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
        event = self._acquire()
        event.conn = self
        event.remote = self.peer
        head = self.head
        event.method = head.method
        event.http_version = head.version
        if self._body_buf is not None:
            buf = self._body_buf
            event._body = bytes(buf)
            self._release_body()
        else:
            event._body = self._body
        flags = head.flags
        if flags:
            self._unusual_complete(event, flags)
            return
        event._raw_headers = self._headers
        fill_target(event, head.target)
        # llhttp's verdict from the head (nothing after it changes it, trailers
        # aside, and chunked requests take _unusual_complete).
        llhttp_keep_alive = head.keep_alive
        keep_alive = llhttp_keep_alive and self.keep_alive_next
        max_requests = self.max_requests
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
        """on_message_complete for a request with ``F_*`` flags (chunked, ``*``, Upgrade)."""
        event._raw_headers = self._req_headers if flags & F_TRAILERS else self._headers
        if flags & F_STAR:
            event.raw_path = event.route_path = event.path = "*"
            event.query_string = ""
        else:
            fill_target(event, self.head.target)
        # (An upgrade behind pipelined requests is served as plain HTTP.)
        if (
            flags & F_WEBSOCKET
            and self.running is None
            and not self.queue
            and self._websocket_upgrade(event)
        ):
            return
        llhttp_keep_alive = self._llhttp.should_keep_alive()
        keep_alive = llhttp_keep_alive and self.keep_alive_next and not flags & F_CLOSE
        max_requests = self.max_requests
        if max_requests and self.requests_served + len(self.queue) + 1 >= max_requests:
            keep_alive = False
        event.keep_alive = keep_alive
        self.state = ACTIVE
        if not keep_alive:
            self._last_request(event, llhttp_keep_alive)
        else:
            self._deliver(event)

    def _release_body(self) -> None:
        buf = self._body_buf
        if buf is not None:
            self._body_buf = None
            arena = self.app.memory.arena
            if arena is not None:
                arena.release(buf)

    # -- the WebSocket hand-off ------------------------------------------------

    def _websocket_upgrade(self, event: H3Event) -> bool:
        """A WebSocket route's upgrade: refused, or started once llhttp stops."""
        from h3lab.server.websocket import upgrade

        outcome = upgrade(self, event)
        if outcome is None:
            return False  # not a WebSocket route: plain HTTP
        self._release(event)
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


__all__ = ["HttpProtocol"]
