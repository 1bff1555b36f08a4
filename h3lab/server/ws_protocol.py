"""A WebSocket connection on the built-in server, over wsproto.

``WebSocketProtocol`` takes the transport over from ``HttpProtocol`` once
the upgrade was checked (``h3lab.server.websocket.upgrade``) and serves the
connection until it closes. Every frame -- masking, fragmentation, UTF-8
validation (1007), control frames, the close handshake -- is wsproto's
sans-IO ``Connection``. What this module adds around it:

* a message size limit, ``limits.max_websocket_message_size``, counted as
  fragments arrive (wsproto hands payload over as it comes, never a whole
  frame at once): past it the connection is closed with 1009;
* input backpressure: complete messages queue for ``ws.receive()``; past a
  message's worth of bytes (or 64 messages) reading pauses until the
  handler catches up;
* output backpressure: ``ws.send`` waits while the transport's buffer is
  over ``limits.write_buffer_high`` (``pause_writing``/``resume_writing``),
  and a client that reads nothing for ``limits.send_timeout`` is dropped;
* the close handshake: a Close from the client is answered and the server
  ends the TCP connection (RFC 6455 7.1.1); a Close from the server waits
  for the client's at most ``limits.linger_timeout``, then aborts;
* shutdown: ``going_away`` closes with 1001 (``Server.shutdown``);
* keepalive: every ``limits.websocket_ping_interval`` seconds a Ping; when
  nothing comes back (its Pong or any other frame) within
  ``limits.websocket_ping_timeout``, the connection is closed with 1011
  (and aborted ``linger_timeout`` later if the peer stays silent);
* permessage-deflate (RFC 7692): wsproto's ``PerMessageDeflate``, accepted
  when the client offers it and ``server.websocket_per_message_deflate`` is
  on (the default). Compressed input is parsed in ``INFLATE_SLICE`` slices,
  so the message limit stops a deflate bomb before it is inflated whole.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections import deque
from typing import TYPE_CHECKING, Any

from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import (
    BytesMessage,
    CloseConnection,
    Message,
    Ping,
    TextMessage,
)
from wsproto.utilities import LocalProtocolError

from h3lab.server.ws_handshake import accept_answer, encode_refusal, refusal_bytes
from h3lab.websocket import (
    CLOSED,
    WebSocket,
    WebSocketDisconnect,
    admit,
    refuse,
    run_handler,
)

if TYPE_CHECKING:
    from h3lab.event import H3Event
    from h3lab.response import Response
    from h3lab.server.state import ServerState

logger = logging.getLogger("h3lab.server")

# Bytes held before the handler accepts (a client should send nothing yet).
MAX_EARLY_BYTES = 64 * 1024
# Complete messages queued for ws.receive() before reading pauses.
MAX_QUEUED_MESSAGES = 64
# Bytes of compressed input parsed at a time (see data_received).
INFLATE_SLICE = 4096


class _Channel:
    """The ``h3lab.websocket.Channel`` of a ``WebSocketProtocol`` (whose own
    ``close`` is the server's: end the connection now)."""

    __slots__ = ("accept", "close", "receive", "reject", "send")

    def __init__(self, protocol: WebSocketProtocol) -> None:
        self.accept = protocol.ws_accept
        self.receive = protocol.ws_receive
        self.send = protocol.ws_send
        self.close = protocol.ws_close
        self.reject = protocol.ws_reject


class WebSocketProtocol(asyncio.Protocol):
    """One upgraded connection (a member of ``server.connections``)."""

    def __init__(
        self,
        server: ServerState,
        transport: asyncio.Transport,
        event: H3Event,
        handler: Any,
        params: dict[str, str],
        key: bytes,
        subprotocols: list[str],
    ) -> None:
        self.server = server
        self.loop = server.loop
        self.limits = server.config.limits
        self.max_message = self.limits.max_websocket_message_size
        self.transport = transport
        self.key = key
        self.handler = handler
        self.ws = WebSocket(event, params, _Channel(self), subprotocols)
        event.conn = self
        self.conn: Connection | None = None  # wsproto's, from accept on
        self.task: asyncio.Task[None] | None = None
        self.early = bytearray()  # bytes that came before accept
        self.messages: deque[str | bytes] = deque()
        self.queued = 0
        self.parts: list[Any] = []
        self.size = 0
        self.disconnect: WebSocketDisconnect | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.drained: asyncio.Future[None] | None = None
        self.write_paused = False
        self.reading_paused = False
        self.rejected = False
        self.lost = False
        self.closing_since: float | None = None  # our Close sent, the client's awaited
        self._send_mark = -1
        self._send_since = 0.0
        self.pending_hook: Any = None  # an async on_request hook's awaitable (upgrade)
        self.extension_offers: list[str] = []
        self.deflate = False  # permessage-deflate negotiated
        # Keepalive: when bytes last came in, and the ping awaiting an answer.
        self.ping_interval = self.limits.websocket_ping_interval
        self.ping_timeout = self.limits.websocket_ping_timeout
        self.last_received = 0.0
        self.ping_sent_at: float | None = None
        self._keepalive: asyncio.TimerHandle | None = None

    # -- start and the connection's end ---------------------------------------

    def start(self, trailing: bytes) -> None:
        self.server.connections.add(self)
        self.transport.set_protocol(self)
        if trailing:
            self.data_received(trailing)
        if not self.reading_paused:
            self.transport.resume_reading()  # the HTTP side may have paused it
        context = contextvars.copy_context()
        self.task = self.loop.create_task(self._serve(), context=context)
        self.task.add_done_callback(self._handler_done)

    async def _serve(self) -> None:
        """The connection's task: the rest of the hook, the middleware, the handler."""
        ws = self.ws
        event = ws.event
        app = event.app
        pending, self.pending_hook = self.pending_hook, None
        if pending is not None:
            try:
                await pending
            except Exception as exc:
                await refuse(ws, app.error_response(event, exc))
                return
            # The hook may have rewritten the path (a root path): route again.
            match = app.match_ws(event.route_path)
            if match is None:
                ws.state = CLOSED
                self._reject_now(404)
                return
            route, params = match
            event.route, event.params = route, params
            ws.params = params
            self.handler = route.handler
        if await admit(app, ws):
            await run_handler(ws, self.handler)

    def _handler_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            logger.error("WebSocket handler task failed", exc_info=task.exception())
            self.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self._keepalive is not None:
            self._keepalive.cancel()
            self._keepalive = None
        self.server.connections.discard(self)
        self._disconnected(1006, "")
        self._wake_writer()

    def eof_received(self) -> bool | None:
        self._disconnected(1006, "")
        return None  # close our side too

    def is_closing(self) -> bool:
        return self.lost or self.transport.is_closing()

    def in_flight(self) -> bool:
        return not self.lost

    def close(self) -> None:
        self.transport.close()

    def abort(self) -> None:
        self.transport.abort()

    def going_away(self) -> None:
        """Server shutdown: close with 1001 (a handler not yet accepted gets 503)."""
        if self.lost:
            return
        if self.conn is None:
            self._reject_now(503)
        elif self.conn.state is ConnectionState.OPEN:
            self._send_close(1001, "Server shutting down")

    def check_deadlines(self, now: float) -> None:
        if self.closing_since is not None and now - self.closing_since > self.limits.linger_timeout:
            self.abort()  # no Close came back
            return
        size = self.transport.get_write_buffer_size()
        if size == 0:
            self._send_mark = -1
        elif size != self._send_mark:
            self._send_mark, self._send_since = size, now
        elif now - self._send_since > self.limits.send_timeout:
            self.abort()  # the client stopped reading

    # -- keepalive -----------------------------------------------------------

    def _schedule_ping(self, delay: float) -> None:
        self._keepalive = self.loop.call_later(delay, self._keepalive_tick)

    def _keepalive_tick(self) -> None:
        """Every ``websocket_ping_interval``: a Ping; then, ``websocket_ping_timeout``
        later, close with 1011 unless something (the Pong, or any frame) came in."""
        self._keepalive = None
        conn = self.conn
        if self.lost or conn is None or conn.state is not ConnectionState.OPEN:
            return
        now = self.loop.time()
        sent_at = self.ping_sent_at
        if sent_at is not None:
            if self.last_received < sent_at:
                # No answer: the peer (or the path to it) is gone. The Close
                # waits limits.linger_timeout for a reply, then the abort.
                self._send_close(1011, "keepalive ping timeout")
                return
            self.ping_sent_at = None
            self._schedule_ping(max(0.0, self.ping_interval - self.ping_timeout))
            return
        self.ping_sent_at = now
        self.transport.write(conn.send(Ping(payload=b"h3lab")))
        self._schedule_ping(self.ping_timeout)

    # -- flow control --------------------------------------------------------

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self._wake_writer()

    def _wake_writer(self) -> None:
        drained, self.drained = self.drained, None
        if drained is not None and not drained.done():
            drained.set_result(None)

    def _pause_reading(self) -> None:
        if not self.reading_paused:
            self.reading_paused = True
            self.transport.pause_reading()

    def _resume_reading(self) -> None:
        if self.reading_paused and not self.lost:
            self.reading_paused = False
            self.transport.resume_reading()

    # -- input ---------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self.conn is None:
            if not self.rejected:
                self.early += data
                if len(self.early) > MAX_EARLY_BYTES:
                    self._pause_reading()
            return
        self.last_received = self.loop.time()
        if self.deflate and len(data) > INFLATE_SLICE:
            # A compressed frame inflates as it is parsed, up to ~1000 times
            # its size: fed in slices, the message limit (checked between
            # them) bounds what one read can make us allocate.
            view = memoryview(data)
            for start in range(0, len(data), INFLATE_SLICE):
                if self.disconnect is not None or self.lost:
                    return
                self._frames(bytes(view[start : start + INFLATE_SLICE]))
            return
        self._frames(data)

    def _frames(self, data: bytes) -> None:
        assert self.conn is not None
        try:
            self.conn.receive_data(data)
        except LocalProtocolError:
            return  # closed already: what follows is dropped
        for event in self.conn.events():
            kind = type(event)
            if kind is TextMessage or kind is BytesMessage:
                # Narrowed by exact type (not isinstance: a hot loop), which mypy cannot see.
                if self.disconnect is None and not self._message_part(event):  # type: ignore[arg-type]  # kind checked above
                    break
            elif kind is Ping:
                if self.conn.state is ConnectionState.OPEN:
                    self.transport.write(self.conn.send(event.response()))  # type: ignore[attr-defined]  # a Ping (kind checked above)
            elif kind is CloseConnection:
                self._close_received(event)  # type: ignore[arg-type]  # a CloseConnection (kind checked above)
                break

    feed_data = data_received  # what HttpProtocol feeds the rest of its last read to

    def _message_part(self, event: TextMessage | BytesMessage) -> bool:
        data = event.data
        size = self.size
        if type(data) is str:
            # 4 bytes per character at most: encode only near the limit.
            size += len(data) * 4
            if size > self.max_message:
                size = self.size + len(data.encode())
        else:
            size += len(data)
        if size > self.max_message:
            self.parts = []
            self._send_close(1009, "Message too big")
            return False
        self.size = size
        self.parts.append(data)
        if event.message_finished:
            parts, self.parts = self.parts, []
            message = (
                parts[0] if len(parts) == 1 else ("" if type(data) is str else b"").join(parts)
            )
            self.size = 0
            self.messages.append(message)
            self.queued += len(message)
            if self.queued > self.max_message or len(self.messages) >= MAX_QUEUED_MESSAGES:
                self._pause_reading()  # the handler is behind: let TCP push back
            self._wake_reader()
        return True

    def _close_received(self, event: CloseConnection) -> None:
        assert self.conn is not None
        state = self.conn.state
        if state is ConnectionState.REMOTE_CLOSING:
            # The client closes: answer, then end the TCP connection (the server does).
            self.transport.write(self.conn.send(event.response()))
            self._disconnected(event.code, event.reason or "")
            self.transport.close()
        elif state is ConnectionState.CLOSED:
            # The client's answer to our Close: the handshake is complete.
            self.closing_since = None
            self.transport.close()
        else:
            # wsproto could not parse the input (1002 protocol error, 1007 bad
            # UTF-8): fail the connection -- our Close, then the TCP close.
            self._send_close(event.code, event.reason or "")
            self.closing_since = None
            self.transport.close()

    def _disconnected(self, code: int, reason: str) -> None:
        if self.disconnect is None:
            self.disconnect = WebSocketDisconnect(code, reason)
            self._wake_reader()

    def _wake_reader(self) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _send_close(self, code: int, reason: str) -> None:
        """Our Close frame; the handler's receive() reports it."""
        conn = self.conn
        if conn is not None and conn.state is ConnectionState.OPEN and not self.lost:
            self.transport.write(conn.send(CloseConnection(code=code, reason=reason)))
            self.closing_since = self.server.now
        self._disconnected(code, reason)

    # -- the Channel the WebSocket object talks to (through _Channel) ---------

    async def ws_accept(self, subprotocol: str | None, headers: list[tuple[str, str]]) -> None:
        if self.lost or self.rejected or self.transport.is_closing():
            raise WebSocketDisconnect(1006, "")
        head, extensions = accept_answer(
            self.server, self.key, subprotocol, headers, self.extension_offers
        )
        self.deflate = bool(extensions)
        self.conn = Connection(ConnectionType.SERVER, extensions=extensions)
        self.transport.write(head)
        self.last_received = self.loop.time()
        if self.ping_interval > 0:
            self._schedule_ping(self.ping_interval)
        if self.early:
            early, self.early = bytes(self.early), bytearray()
            self.data_received(early)
        if not self.messages:
            self._resume_reading()

    async def ws_receive(self) -> str | bytes:
        while True:
            if self.messages:
                message = self.messages.popleft()
                self.queued -= len(message)
                if self.reading_paused and self.queued <= self.max_message // 2:
                    self._resume_reading()
                return message
            disconnect = self.disconnect
            if disconnect is not None:
                raise WebSocketDisconnect(disconnect.code, disconnect.reason)
            waiter = self.waiter = self.loop.create_future()
            await waiter

    async def ws_send(self, data: str | bytes) -> None:
        while self.write_paused and not self.lost:
            drained = self.drained
            if drained is None:
                drained = self.drained = self.loop.create_future()
            await drained
        conn = self.conn
        if self.lost or conn is None or conn.state is not ConnectionState.OPEN:
            disconnect = self.disconnect or WebSocketDisconnect(1006, "")
            raise WebSocketDisconnect(disconnect.code, disconnect.reason)
        self.transport.write(conn.send(Message(data=data)))  # type: ignore[type-var]  # wsproto picks the opcode from the data's type

    async def ws_close(self, code: int, reason: str) -> None:
        self._send_close(code, reason)

    async def ws_reject(self, status: int, response: Response | None = None) -> None:
        self._reject_now(status, response)

    def _reject_now(self, status: int, response: Response | None = None) -> None:
        if self.rejected or self.conn is not None or self.lost:
            return
        self.rejected = True
        self.early = bytearray()
        if response is not None:
            answer = encode_refusal(self.server, response)
        else:
            answer = refusal_bytes(self.server, status)
        self.transport.write(answer)
        self._disconnected(1006, "")
        self.transport.close()
