"""Run an ``H3`` app under any ASGI 3 server (uvicorn, granian, gunicorn workers).

The adapter follows the built-in server's request lifecycle step for step,
so that one app answers the same on both (tests/test_app.py and
tests/test_correctness.py run on both transports):

1. a pooled event is filled from the scope *before* the body is read (a 413
   and its ``on_error`` hook see the real method and path); a method h3lab
   does not serve (CONNECT, PROPFIND...) is a 501, never routed;
2. the body is read up to ``limits.max_body_size`` (413 beyond); a client
   that disconnects mid-body never reaches the handler;
3. ``app.handle`` runs; the value goes through ``app.response_for`` and an
   exception through ``app.error_response``, both final and shared with the
   built-in server (hooks run, staged headers such as CORS kept, a failure
   while building an error response is the plain 500);
4. framing is the transport's: a handler's Content-Length/Transfer-Encoding
   is dropped and the length derived from the body (kept only for a HEAD of
   a streamed body); a header that would split the response is a 500;
5. a streamed body's first chunk is pulled before the status is sent (a body
   failing at once is still a 500), then chunks are sent while
   ``http.disconnect`` is listened for beside them (Starlette's
   ``StreamingResponse``): a client that leaves stops the stream, and the
   body is always closed (its ``finally`` runs), HEAD included.

The built-in server is faster (no ASGI message dicts per request); the
adapter exists so the same app can be deployed and compared under other
servers.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncIterable
from typing import TYPE_CHECKING, Any

from h3lab.app import plain_500
from h3lab.errors import HTTPError
from h3lab.methods import METHODS
from h3lab.response import JSON_TYPE as JSON
from h3lab.response import Response, json_bytes
from h3lab.server.head import fill_target
from h3lab.server.http11 import NO_BODY_STATUSES, UnsafeHeader, header_fields

if TYPE_CHECKING:
    from h3lab.app import H3


logger = logging.getLogger("h3lab.asgi")

Scope = dict[str, Any]

_FRAMING = frozenset((b"content-length", b"transfer-encoding"))


class ASGIAdapter:
    def __init__(self, app: H3) -> None:
        self.app = app
        self._started = False

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        elif kind == "websocket":
            await self._websocket(scope, receive, send)

    async def _websocket(self, scope: Scope, receive: Any, send: Any) -> None:
        from h3lab.asgi_websocket import serve_websocket
        from h3lab.event import H3Event

        if not self._started:
            self._startup()
        # An event of its own (not from the pool): it lives as long as the connection.
        event = H3Event(self.app)
        _fill_event(event, {**scope, "method": "GET"})
        await serve_websocket(self.app, scope, receive, send, event)

    async def _lifespan(self, receive: Any, send: Any) -> None:
        from h3lab.lifespan import run_shutdown, run_startup

        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._startup()
                try:
                    await run_startup(self.app)
                except Exception as exc:  # StartupFailed: one line naming the hook
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                # event.wait_until work gets the grace period, as on the built-in server.
                await self.app.wait_background(self.app.config.limits.shutdown_grace)
                # Then the hooks (they may close what that work uses).
                failures = await run_shutdown(self.app)
                self.app.memory.close()
                if failures:
                    await send({"type": "lifespan.shutdown.failed", "message": failures[0]})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                return

    def _startup(self) -> None:
        if not self._started:
            self._started = True
            self.app.memory.install()
            self.app.prepare()

    async def _http(self, scope: Scope, receive: Any, send: Any) -> None:
        app = self.app
        if not self._started:
            self._startup()
        event = app.pool.acquire()
        event.asgi_scope = scope  # forwarded to a mounted ASGI app; cleared below
        try:
            # The event is filled before the body is read, so that a 413 (and
            # the on_error hook that sees it) knows the real method and path.
            _fill_event(event, scope)
            head_only = event.method == "HEAD"
            if event.method not in METHODS:
                # As the built-in server: never routed (CONNECT would ask for a tunnel).
                await self._send(send, receive, event, _not_implemented(event.method), head_only)
                return
            try:
                event._body = await _read_body(receive, app.config.limits.max_body_size)
            except ClientDisconnected:
                return  # the client left mid-body: the handler never sees a partial body
            except HTTPError as exc:
                await self._send(send, receive, event, self._error(event, exc), head_only)
                return
            try:
                result = app.handle(event)
                if inspect.isawaitable(result):
                    result = await result
            except Exception as exc:
                response = self._error(event, exc)
            else:
                response = app.response_for(event, result)  # final; never raises
            await self._send(send, receive, event, response, head_only)
        finally:
            event.scheme = None  # see H3Event.__init__
            event.asgi_scope = None
            app.pool.release(event)

    def _error(self, event: Any, exc: BaseException) -> Response:
        """The final error response (``app.error_response``: on_error, staged
        headers such as CORS, on_response), as the built-in server sends it."""
        try:
            return self.app.error_response(event, exc)
        except Exception:  # it is not meant to raise; if it ever does, still an answer
            logger.exception("building the error response failed for %s", event.path)
            return plain_500()

    async def _send(
        self, send: Any, receive: Any, event: Any, response: Response, head_only: bool
    ) -> None:
        try:
            start = _response_start(response, head_only)
        except UnsafeHeader as exc:
            # Never a byte of an unsafe head: the error response instead.
            response = self._error(event, exc)
            try:
                start = _response_start(response, head_only)
            except UnsafeHeader:
                response = plain_500()
                start = _response_start(response, head_only)
        try:
            await _send_response(send, receive, response, start, head_only)
        except StreamFailedEarly as exc:
            error = self._error(event, exc.__cause__ or exc)
            if error.streaming:  # an on_error hook that streams: not twice
                error = plain_500()
            await _send_response(send, receive, error, _response_start(error, False), False)


class ClientDisconnected(Exception):
    """``http.disconnect`` arrived before the whole request body."""


def _not_implemented(method: str) -> Response:
    message = f"Method {method} is not implemented"
    body = json_bytes({"status": 501, "message": message, "data": None})
    return Response(body, 501, None, JSON)


def _fill_event(event: Any, scope: Scope) -> None:
    event.method = scope["method"]
    # The built-in server's own splitter: a target routes the same under either.
    fill_target(event, scope.get("raw_path") or scope["path"].encode())
    event.query_string = scope.get("query_string", b"").decode("latin-1")
    event._raw_headers = [(bytes(k), bytes(v)) for k, v in scope.get("headers", ())]
    event.remote = tuple(scope["client"]) if scope.get("client") else None
    event.http_version = scope.get("http_version", "1.1")
    event.scheme = scope.get("scheme", "http")


async def _read_body(receive: Any, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise HTTPError(413, "Request body too large")
        if chunk:
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _response_start(response: Response, head_only: bool) -> dict[str, Any]:
    """The ``http.response.start`` message; raises ``UnsafeHeader`` before
    anything is sent if a header would split the response or cannot be sent.

    Framing is the transport's job, as on the built-in server (``http11.response_head``):
    a handler's Content-Length / Transfer-Encoding is dropped, the length is
    derived from the body. The one use kept: a HEAD answered from a streamed
    body, where only the handler knows the length (static files).
    """
    user_length: bytes | None = None
    headers: list[tuple[bytes, bytes]] = []
    # The built-in server's encoding: CR/LF/NUL refused, non-Latin-1 values in
    # RFC 8187 form where the header has one (Content-Disposition), else refused.
    for name, value in header_fields(response.headers):
        lower = name.lower()
        if lower in _FRAMING:
            if lower == b"content-length":
                user_length = value.strip()
            continue
        headers.append((lower, value))
    status = response.status
    if status not in NO_BODY_STATUSES:
        if isinstance(response.body, bytes):  # not streaming
            headers.append((b"content-length", b"%d" % len(response.body)))
        elif head_only and user_length is not None:
            headers.append((b"content-length", user_length))
    return {"type": "http.response.start", "status": status, "headers": headers}


async def _send_response(
    send: Any, receive: Any, response: Response, start: dict[str, Any], head_only: bool
) -> None:
    no_body = head_only or response.status in NO_BODY_STATUSES
    if not response.streaming:
        await send(start)
        await send({"type": "http.response.body", "body": b"" if no_body else response.body})
        return
    body: Any = response.body
    try:
        if no_body:
            await send(start)
            await send({"type": "http.response.body", "body": b""})
        else:
            await _stream_until_disconnect(send, receive, start, body)
    finally:
        # A dropped body (HEAD, 204/304) or one cut short is closed, so that its
        # generator's cleanup runs now rather than whenever it is collected.
        aclose = getattr(body, "aclose", None)
        if aclose is not None:
            try:
                await aclose()
            except Exception:
                logger.debug("closing a streaming body failed", exc_info=True)


class StreamFailedEarly(Exception):
    """The streamed body failed before its first chunk: nothing was sent yet,
    so the answer can still be a 500 (``__cause__`` is the body's error)."""


async def _stream_until_disconnect(
    send: Any, receive: Any, start: dict[str, Any], body: AsyncIterable[Any]
) -> None:
    """Send ``body`` while listening for ``http.disconnect`` (Starlette's
    ``StreamingResponse``): a client that leaves stops the stream, instead of
    a generator (an SSE feed) running on forever and holding up shutdown.

    The first chunk is pulled before the status is committed, so a body that
    fails at once still becomes a 500 (``StreamFailedEarly``).
    """

    async def pump() -> None:
        chunks = aiter(body)
        try:
            chunk = await anext(chunks, None)
        except Exception as exc:
            raise StreamFailedEarly() from exc
        await send(start)
        while chunk is not None:
            if isinstance(chunk, str):
                chunk = chunk.encode()
            if chunk:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            chunk = await anext(chunks, None)
        await send({"type": "http.response.body", "body": b""})

    async def watch() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    pumping = asyncio.ensure_future(pump())
    watching = asyncio.ensure_future(watch())
    try:
        await asyncio.wait((pumping, watching), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (pumping, watching):
            if not task.done():
                task.cancel()
        await asyncio.gather(pumping, watching, return_exceptions=True)
    error = None if pumping.cancelled() else pumping.exception()
    if error is not None and not isinstance(error, OSError):
        # OSError: a server whose send() raises once the client has gone
        # (ASGI 2.4); that is the disconnect, not a failure.
        raise error
