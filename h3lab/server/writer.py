"""Writing responses, and the one way a response finishes (``Writer._finish``).

Three ways out, one finish:

* ``_respond_fast``: a ``str``, ``dict``/``list`` or ``bytes`` result with no
  status or header change, written from pre-encoded bytes in one join and
  one write (the common case, PERF-critical);
* ``_respond``: any complete ``Response`` (``http11.response_head``);
* ``_stream``: a streaming body, chunked on HTTP/1.1, until close on HTTP/1.0.

Each ends in ``_finish``, the only place a response is counted, logged and
decides what the connection does next: close after it (``keep_alive``
false), linger when it was the last one, or go idle -- only from ``ACTIVE``,
so a request already arriving behind it keeps its state and its deadline.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from h3lab.app import plain_500
from h3lab.response import Response
from h3lab.server import http11
from h3lab.server.access_log import log_access
from h3lab.server.deadlines import ACTIVE, IDLE

if TYPE_CHECKING:
    from h3lab.event import H3Event
    from h3lab.server.conn import Connection

logger = logging.getLogger("h3lab.server")

# b"0\r\n", b"1\r\n", ...: the end of a fast response's Content-Length line.
_LENGTH_TABLE = 4096
_LENGTH_LINES = tuple(b"%d\r\n" % size for size in range(_LENGTH_TABLE))


class Writer:
    """The ``HttpProtocol`` methods that write responses."""

    __slots__ = ()

    def _respond_fast(self: Connection, event: H3Event, result: Any, keep_alive: bool) -> bool:
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
        size = len(body)
        # PERF: the Content-Length value and its CRLF from a table (formatting
        # bytes costs ~0.35 us on 3.11); larger bodies are formatted.
        length = _LENGTH_LINES[size] if size < _LENGTH_TABLE else b"%d\r\n" % size
        transport.write(b"".join((prefix, length, tail, b"" if event.method == "HEAD" else body)))
        self._finish(event, keep_alive, 200, size)
        return True

    def _respond(self: Connection, event: H3Event, response: Response, keep_alive: bool) -> None:
        """Write a final response (complete, or the head of a streamed one for HEAD), then finish."""
        transport = self.transport
        if transport is None or self.closing:
            return
        head, body, status = self._encode(event, response, keep_alive, event.method == "HEAD")
        transport.write(head + body if body else head)
        self._finish(event, keep_alive, status, len(body))

    def _finish(
        self: Connection,
        event: H3Event,
        keep_alive: bool,
        status: int = 200,
        size: int | None = None,
    ) -> None:
        """A response is written: count and log it, then close, linger or go idle."""
        self.requests_served += 1
        server = self.server
        server.requests += 1
        if server.access_log:
            log_access(event, status, size)
        if not keep_alive:
            self._close_when_done()
        elif self.running is None and not self.queue:
            if not self.keep_alive_next:
                self._close_when_done()
            elif self.state == ACTIVE:
                self.state = IDLE
                self.since = server.now

    def _more_follows(self: Connection) -> bool:
        """Will anything follow the response being written (another response, a refusal)?"""
        return self.keep_alive_next or bool(self.queue) or self._pending_error is not None

    def _encode(
        self: Connection, event: H3Event, response: Response, keep_alive: bool, head_only: bool
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
        self: Connection, event: H3Event, response: Response, keep_alive: bool, head_only: bool
    ) -> tuple[bytes, bytes, int]:
        streaming = response.streaming
        if streaming and not head_only:
            raise TypeError("a streaming response where a complete one is needed")
        body = b"" if streaming else response.body
        length = None if streaming else len(body)  # type: ignore[arg-type]  # bytes when not streaming (hot path: no isinstance)
        head = self._response_head(event, response, keep_alive, length, head_only)
        if head_only or response.status in http11.NO_BODY_STATUSES:
            body = b""
        return head, body, response.status  # type: ignore[return-value]  # bytes, as above

    def _response_head(
        self: Connection,
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

    async def _stream(
        self: Connection, event: H3Event, response: Response, keep_alive: bool
    ) -> None:
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
                head = self._response_head(event, response, keep_alive, None)
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

    async def _send_body(
        self: Connection, body: Any, transport: asyncio.Transport, http10: bool
    ) -> bool:
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


def _frame(chunk: Any, http10: bool) -> bytes:
    """One chunk of a streamed body as written: chunked framing on HTTP/1.1."""
    if type(chunk) is str:
        chunk = chunk.encode()
    if not chunk:
        return b""  # an empty chunk would be the end marker
    if http10:
        return bytes(chunk)
    return b"%x\r\n%s\r\n" % (len(chunk), chunk)


__all__ = ["Writer"]
