"""The HTTP/1.1 connection: httptools parser callbacks, dispatch, responses.

Theory of operation
-------------------
httptools calls back as it parses: ``on_message_begin``, ``on_url``,
``on_header`` (once per complete header), ``on_headers_complete``,
``on_body`` (zero or more), ``on_message_complete``. A request is dispatched
at ``on_message_complete``, when its body is complete: handlers always see a
whole body, and the body limit (413) is enforced from Content-Length at
``on_headers_complete`` and again while the body arrives.

Dispatch runs the app's chain *inline* in the parser callback. When the chain
returns a coroutine it is stepped once with ``send(None)``: if it finishes
without suspending (the common case: no real I/O in the handler), the
response is written right there and no asyncio Task is ever created. Only a
coroutine that really suspends is handed to a Task (``_continue``), and while
it runs, later pipelined requests wait in ``self.queue`` so responses leave
in request order.

Timeouts are not per-request timers (a ``call_later`` per request is one of
the most expensive things a server can do per request): the server's ticker
walks the connections a few times a second and closes those past a deadline
(``Server._tick``). Each connection only records its state and since when.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from types import CoroutineType
from typing import TYPE_CHECKING, Any
from urllib.parse import quote_from_bytes, unquote

import httptools

from h3lab.errors import HTTPError
from h3lab.response import JSON_TYPE, Response, json_encode
from h3lab.routing import routing_path
from h3lab.server import http11
from h3lab.server.flow import FlowControl

if TYPE_CHECKING:
    from h3lab.event import H3Event
    from h3lab.server.core import Server

logger = logging.getLogger("h3lab.server")
access_logger = logging.getLogger("h3lab.access")

# Connection states, for the server's deadline sweep.
IDLE = 0  # keep-alive, waiting for the next request
HEADERS = 1  # receiving a request line and headers
BODY = 2  # receiving a body
ACTIVE = 3  # a request is being handled or its response written
LINGER = 4  # refused: answer sent, discarding input until the client closes

# How long a refused connection keeps reading (and discarding) after its 4xx,
# so the client reads the answer instead of a reset (a close with unread input
# makes the kernel send RST, which can destroy the response in flight).
LINGER_SECONDS = 2.0

_SAFE_PATH = "/%:@!$&'()*+,;=-._~"


class HttpProtocol(asyncio.Protocol):
    __slots__ = (
        "_body",
        "_body_buf",
        "_body_size",
        "_header_bytes",
        "_headers",
        "_url",
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
        self.parser = httptools.HttpRequestParser(self)
        self.flow: FlowControl | None = None
        self.peer: Any = None
        self.queue: deque[H3Event] = deque()
        self.running: asyncio.Task[Any] | None = None
        self.closing = False
        self.requests_served = 0
        self.state = IDLE
        self.since = server.now
        # Per-request parse state.
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._header_bytes = 0
        self._body: bytes = b""
        self._body_buf: bytearray | None = None
        self._body_size = 0
        self.keep_alive_next = True

    # -- connection lifecycle ------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        server = self.server
        if len(server.connections) >= self.limits.max_connections:
            server.refused += 1
            transport.write(  # type: ignore[attr-defined]
                http11.error_bytes(503, "Too many connections", server=server.server_bytes)
            )
            transport.close()
            self.closing = True
            return
        server.connections.add(self)
        server.accepted += 1
        self.flow = FlowControl(transport, self.limits.write_buffer_high)  # type: ignore[arg-type]
        self.peer = transport.get_extra_info("peername")
        self.since = server.now

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.server.connections.discard(self)
        if self.flow is not None:
            self.flow.connection_lost()
        task = self.running
        if task is not None and not task.done():
            # The handler sees the disconnect as a cancellation at its next await.
            task.cancel()
        self._drop_queue()

    def _drop_queue(self) -> None:
        pool = self.pool
        while self.queue:
            pool.release(self.queue.popleft())

    def is_closing(self) -> bool:
        return self.closing or self.transport is None or self.transport.is_closing()

    def close(self) -> None:
        if not self.closing:
            self.closing = True
            if self.transport is not None:
                self.transport.close()

    def pause_writing(self) -> None:
        if self.flow is not None:
            self.flow.pause_writing()

    def resume_writing(self) -> None:
        if self.flow is not None:
            self.flow.resume_writing()

    def eof_received(self) -> bool | None:
        # Half-close from the client: finish what is in flight, then close.
        if self.state == LINGER or (self.running is None and not self.queue):
            return None  # returning falsy closes the transport
        self.keep_alive_next = False
        return True

    # -- parsing -------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        state = self.state
        if self.closing or state == LINGER:
            return  # after a refusal nothing more is ever interpreted
        try:
            self.parser.feed_data(data)
            if self.state == HEADERS and state != BODY and state != ACTIVE:
                # The whole chunk belongs to an unfinished header section.
                # httptools buffers a header until its end without telling us,
                # so the header-size limit is enforced here, as bytes arrive:
                # a megabyte header trickled in small pieces is refused as soon
                # as the cap is crossed, and memory stays bounded by it.
                self._header_bytes += len(data)
                limits = self.limits
                if self._header_bytes > limits.max_headers_size + limits.max_request_target:
                    self._protocol_error(431, "Request header section too large")
        except httptools.HttpParserUpgrade:
            # Upgrades (WebSocket, h2c) are not supported: the request was
            # answered as plain HTTP; never interpret what follows as a tunnel.
            self.keep_alive_next = False
            self._close_when_done()
        except httptools.HttpParserError as exc:
            # httptools wraps an exception raised in a callback (our limits)
            # in HttpParserCallbackError; the original is its __context__.
            refusal = exc.__context__
            if isinstance(refusal, _Refuse):
                self._protocol_error(refusal.status, refusal.reason)
            else:
                self._protocol_error(400, f"Malformed request: {exc}")

    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = []
        self._header_bytes = 0
        self._body = b""
        self._body_buf = None
        self._body_size = 0
        self.state = HEADERS
        self.since = self.server.now

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > self.limits.max_request_target:
            raise _Refuse(414, "Request target too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        # PERF: called once per header; only collect here. The limits are
        # checked in one pass at on_headers_complete, and the section size is
        # also bounded while it arrives (data_received).
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.state = BODY
        self.since = self.server.now
        # httptools exposes no Content-Length getter: one pass over the headers
        # finds the two framing-relevant ones (the length is already validated
        # by the parser; we only compare it with our limit).
        length = -1
        expect: bytes | None = None
        headers = self._headers
        limits = self.limits
        if len(headers) > limits.max_header_count:
            raise _Refuse(431, "Too many request headers")
        total = 0
        line_max = limits.max_header_line
        for name, value in headers:
            size = len(name)
            line = size + len(value) + 4
            if line > line_max:
                raise _Refuse(431, "Request header line too large")
            total += line
            if size == 14 and name.lower() == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    raise _Refuse(400, "Invalid Content-Length") from None
            elif size == 6 and name.lower() == b"expect":
                expect = value.strip().lower()
        if total > limits.max_headers_size:
            raise _Refuse(431, "Request header section too large")
        if length > limits.max_body_size:
            # Refused from the header alone: no 100 Continue, the body is never read.
            raise _Refuse(413, "Request body too large")
        if expect is not None:
            if expect != b"100-continue":
                raise _Refuse(417, "Unsupported Expect value")
            if self.transport is not None and self.parser.get_http_version() == "1.1":
                self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        size = self._body_size = self._body_size + len(body)
        if size > self.limits.max_body_size:
            raise _Refuse(413, "Request body too large")
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
        parser = self.parser
        event = self.pool.acquire()
        event.conn = self
        event.remote = self.peer
        event.method = parser.get_method().decode("ascii")
        event.http_version = parser.get_http_version()
        event._raw_headers = self._headers
        if self._body_buf is not None:
            buf = self._body_buf
            event._body = bytes(buf)
            arena = self.app.memory.arena
            if arena is not None:
                arena.release(buf)
            self._body_buf = None
        else:
            event._body = self._body
        url = self._url
        if url[:1] != b"/":
            url = _origin_form(url)
        path, _, query = url.partition(b"?")
        if b"#" in path:
            path = path.partition(b"#")[0]
        raw = path.decode("ascii") if path.isascii() else quote_from_bytes(path, _SAFE_PATH)
        event.raw_path = raw
        event.route_path = routing_path(raw)
        event.path = unquote(raw) if "%" in raw else raw
        event.query_string = query.decode("latin-1") if query else ""
        keep_alive = parser.should_keep_alive() and self.keep_alive_next
        max_requests = self.limits.max_requests_per_connection
        if max_requests and self.requests_served + len(self.queue) + 1 >= max_requests:
            keep_alive = False
        event.keep_alive = keep_alive
        self.state = ACTIVE
        if self.running is not None or self.queue:
            self.queue.append(event)
            if len(self.queue) >= self.limits.max_pipeline and self.flow is not None:
                self.flow.pause_reading("pipeline")
            return
        self._dispatch(event)

    # -- dispatch ------------------------------------------------------------

    def _dispatch(self, event: H3Event) -> None:
        keep_alive = event.keep_alive
        try:
            result = self.app.handle(event)
            if type(result) is CoroutineType:
                try:
                    yielded = result.send(None)
                except StopIteration as stop:
                    result = stop.value
                else:
                    self.running = self.loop.create_task(
                        self._continue(event, result, yielded, keep_alive)
                    )
                    return
        except Exception as exc:
            result = self.app.error_response(event, exc)
        self._respond(event, result, keep_alive)

    async def _continue(self, event: H3Event, coro: Any, yielded: Any, keep_alive: bool) -> None:
        """Drive a chain that suspended, the way a Task would have."""
        try:
            try:
                result = await _drive(coro, yielded)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                result = self.app.error_response(event, exc)
            self._respond(event, result, keep_alive)
        except asyncio.CancelledError:
            # The client went away (connection_lost cancelled us).
            self._release(event)
            return
        finally:
            if self.running is asyncio.current_task():
                self.running = None
        if self.running is None:
            self._next_in_queue()

    def _respond(self, event: H3Event, result: Any, keep_alive: bool) -> None:
        """Write the response for ``result`` (fast paths first), then finish."""
        transport = self.transport
        if transport is None or self.closing:
            self._release(event)
            return
        server = self.server
        head_only = event.method == "HEAD"
        if (
            event._resp_headers is None
            and event.status == 200
            and self.app.on_response_hook is None
        ):
            # PERF: the common cases, pre-encoded: one join, one write.
            kind = type(result)
            prefix = None
            if kind is str:
                body = result.encode()
                prefix = server.prefix_text
            elif kind is dict or kind is list:
                try:
                    body = json_encode(result).encode()
                except (TypeError, ValueError) as exc:
                    result = self.app.error_response(event, exc)
                else:
                    prefix = server.prefix_json
            elif kind is bytes:
                body = result
                prefix = server.prefix_bytes
            if prefix is not None:
                if keep_alive and event.http_version != "1.0":
                    tail = server.date_end  # Date line + the blank line
                elif keep_alive:
                    tail = server.date_bytes + http11.CONNECTION_KEEP_ALIVE + b"\r\n"
                else:
                    tail = server.date_bytes + http11.CONNECTION_CLOSE + b"\r\n"
                transport.write(
                    b"".join((prefix, b"%d\r\n" % len(body), tail, b"" if head_only else body))
                )
                # PERF: _finish inlined for the fast path.
                self.requests_served += 1
                server.requests += 1
                if server.access_log:
                    _log_access(event, 200)
                self.pool.release(event)
                if not keep_alive or not self.keep_alive_next:
                    self._close_when_done()
                elif self.running is None and not self.queue:
                    self.state = IDLE
                    self.since = server.now
                return
        try:
            response = self.app.response_for(event, result)
        except Exception as exc:
            response = self.app.error_response(event, exc)
        if response.streaming and not head_only:
            self.running = self.loop.create_task(self._stream(event, response, keep_alive))
            return
        body = b"" if response.streaming else response.body
        length = None if response.streaming else len(body)  # type: ignore[arg-type]
        try:
            head = self._head(event, response, keep_alive, length, head_only)
        except http11.UnsafeHeader as exc:
            response = self.app.error_response(event, exc)
            body = response.body  # type: ignore[assignment]
            head = self._head(event, response, keep_alive, len(body))  # type: ignore[arg-type]
        if head_only or response.status in http11.NO_BODY_STATUSES:
            transport.write(head)
        else:
            transport.write(head + body)  # type: ignore[operator]
        self._finish(event, keep_alive, response.status)

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
        """Send a streaming body: chunked on HTTP/1.1, until close on HTTP/1.0."""
        http10 = event.http_version == "1.0"
        if http10:
            keep_alive = False
        transport = self.transport
        body = response.body
        completed = False
        try:
            try:
                head = self._head(event, response, keep_alive, None)
            except http11.UnsafeHeader as exc:
                error = self.app.error_response(event, exc)
                transport.write(self._head(event, error, keep_alive, len(error.body)) + error.body)  # type: ignore[union-attr, operator, arg-type]
                completed = True
                return
            transport.write(head)  # type: ignore[union-attr]
            flow = self.flow
            async for chunk in body:  # type: ignore[union-attr]
                if self.closing:
                    break
                if type(chunk) is str:
                    chunk = chunk.encode()
                if not chunk:
                    continue
                if http10:
                    transport.write(chunk)  # type: ignore[union-attr]
                else:
                    transport.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))  # type: ignore[union-attr]
                if flow is not None and flow.write_paused:
                    await flow.drain()
            else:
                if not http10 and not self.closing:
                    transport.write(http11.CHUNKED_END)  # type: ignore[union-attr]
                completed = True
        except asyncio.CancelledError:
            pass
        except Exception:
            logger.exception("streaming response failed for %s %s", event.method, event.path)
        finally:
            aclose = getattr(body, "aclose", None)
            if aclose is not None:
                try:
                    await aclose()
                except Exception:
                    logger.debug("closing a streaming body failed", exc_info=True)
            if self.running is asyncio.current_task():
                self.running = None
        if completed and not self.closing:
            self._finish(event, keep_alive, response.status)
            if self.running is None:
                self._next_in_queue()
        else:
            self._release(event)
            self.close()

    def _finish(self, event: H3Event, keep_alive: bool, status: int = 200) -> None:
        self.requests_served += 1
        server = self.server
        server.requests += 1
        if server.access_log:
            _log_access(event, status)
        self._release(event)
        if not keep_alive or not self.keep_alive_next:
            self._close_when_done()
            return
        if self.running is None and not self.queue:
            self.state = IDLE
            self.since = server.now

    def _release(self, event: H3Event) -> None:
        self.pool.release(event)

    def _next_in_queue(self) -> None:
        while self.queue and self.running is None and not self.closing:
            event = self.queue.popleft()
            if self.flow is not None and len(self.queue) < self.limits.max_pipeline:
                self.flow.resume_reading("pipeline")
            self._dispatch(event)

    def _close_when_done(self) -> None:
        self._drop_queue()
        self.close()

    def _protocol_error(self, status: int, reason: str) -> None:
        """Answer a request that cannot be served, then close the connection.

        Nothing after the error is interpreted: the parser state is poisoned and
        the transport is closed once the answer is written.
        """
        self.server.protocol_errors += 1
        transport = self.transport
        self._drop_queue()
        if transport is None or self.closing:
            return
        if self.running is not None:
            # A response is being produced on this connection: its bytes and
            # ours must not interleave. Drop the connection.
            self.close()
            return
        transport.write(
            http11.error_bytes(
                status, reason, server=self.server.server_bytes, date=self.server.date_bytes
            )
        )
        self.keep_alive_next = False
        if transport.can_write_eof():
            transport.write_eof()  # FIN after the answer; keep reading until the client closes
            self.state = LINGER
            self.since = self.server.now
            if self.flow is not None:
                self.flow.resume_reading("pipeline")
        else:
            self.close()

    # -- deadlines (called by the server's ticker) ----------------------------

    def check_deadlines(self, now: float) -> None:
        state = self.state
        limits = self.limits
        if state == IDLE:
            if now - self.since > limits.keepalive_timeout:
                self.close()
        elif state == HEADERS:
            if now - self.since > limits.header_timeout:
                self._protocol_error(408, "Request header timeout")
        elif state == BODY:
            if now - self.since > limits.body_timeout:
                self._protocol_error(408, "Request body timeout")
        elif state == LINGER and now - self.since > LINGER_SECONDS:
            self.close()


class _Refuse(Exception):
    """Raised from a parser callback to refuse the request with a status."""

    def __init__(self, status: int, reason: str) -> None:
        self.status = status
        self.reason = reason


def _origin_form(url: bytes) -> bytes:
    """Absolute-form (``http://host/path?q``) routes by its path; ``*`` stays ``*``."""
    if url == b"*":
        return b"*"
    parsed = httptools.parse_url(url)
    path = parsed.path or b"/"
    return path + (b"?" + parsed.query if parsed.query else b"")


async def _drive(coro: Any, yielded: Any) -> Any:
    """Finish a coroutine that already yielded once, as ``asyncio.Task`` would.

    The coroutine suspended on ``yielded`` (a future, or None for a bare
    yield). Wait for it without consuming its outcome -- the coroutine reads
    the result itself when resumed -- and forward our own cancellation into the
    coroutine, exactly like a Task forwards ``Task.cancel()``.
    """
    task = asyncio.current_task()
    while True:
        try:
            if yielded is None:
                await asyncio.sleep(0)
            else:
                # The coroutine's own await marked the future "blocking"; a Task
                # clears that flag before waiting on it, and so must we, or the
                # future refuses a second waiter ("await wasn't used with future").
                yielded._asyncio_future_blocking = False
                await yielded
        except asyncio.CancelledError as exc:
            if task is not None and task.cancelling():
                try:
                    yielded = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
                continue
        except BaseException:
            pass
        try:
            yielded = coro.send(None)
        except StopIteration as stop:
            return stop.value


def _log_access(event: H3Event, status: int) -> None:
    peer = event.remote[0] if isinstance(event.remote, tuple) else event.remote
    target = event.raw_path + ("?" + event.query_string if event.query_string else "")
    # unicode_escape turns control bytes (and log-forging newlines) into
    # visible escapes: a log line is always exactly one line.
    access_logger.info(
        "%s %s %s HTTP/%s %d",
        peer,
        event.method.encode("unicode_escape").decode("ascii"),
        target.encode("unicode_escape").decode("ascii"),
        event.http_version,
        status,
    )


def error_json(status: int, message: str) -> bytes:
    return json_encode({"status": status, "message": message, "data": None}).encode()


__all__ = ["JSON_TYPE", "HTTPError", "HttpProtocol"]
