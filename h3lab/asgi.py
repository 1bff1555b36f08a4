"""Run an ``H3`` app under any ASGI 3 server (uvicorn, granian, gunicorn workers).

The adapter reads the body (enforcing ``limits.max_body_size``), fills a pooled
event exactly as the built-in server does, runs ``app.handle`` and sends the
converted response, streaming async-iterator bodies with ``more_body``. The
built-in server is faster (no ASGI message dicts per request); the adapter
exists so the same app can be deployed and compared under other servers.
"""

from __future__ import annotations

import inspect
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import quote_from_bytes, unquote

from h3lab.errors import HTTPError
from h3lab.response import Response
from h3lab.routing import routing_path
from h3lab.server.http11 import NO_BODY_STATUSES, UnsafeHeader, encode_headers

if TYPE_CHECKING:
    from h3lab.app import H3

logger = logging.getLogger("h3lab.asgi")

Scope = dict[str, Any]


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
        else:  # websocket: not supported by h3lab
            await send({"type": "websocket.close", "code": 1003})

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
            try:
                event._body = await _read_body(receive, app.config.limits.max_body_size)
            except HTTPError as exc:
                await _send_response(send, app.error_response(event, exc), head_only=False)
                return
            _fill_event(event, scope)
            try:
                result = app.handle(event)
                if inspect.isawaitable(result):
                    result = await result
                response = app.response_for(event, result)
            except Exception as exc:
                response = app.error_response(event, exc)
            try:
                await _send_response(send, response, head_only=event.method == "HEAD")
            except UnsafeHeader as exc:
                await _send_response(send, app.error_response(event, exc), head_only=False)
        finally:
            event.scheme = None  # see H3Event.__init__
            event.asgi_scope = None
            app.pool.release(event)


def _fill_event(event: Any, scope: Scope) -> None:
    event.method = scope["method"]
    raw_bytes = scope.get("raw_path") or scope["path"].encode()
    raw_bytes = raw_bytes.partition(b"?")[0]
    raw = (
        raw_bytes.decode("ascii")
        if raw_bytes.isascii()
        else quote_from_bytes(raw_bytes, "/%:@!$&'()*+,;=-._~")
    )
    event.raw_path = raw
    event.route_path = routing_path(raw)
    event.path = unquote(raw) if "%" in raw else raw
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
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise HTTPError(413, "Request body too large")
        if chunk:
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _send_response(send: Any, response: Response, *, head_only: bool) -> None:
    encode_headers(response.headers)  # raises UnsafeHeader before anything is sent
    headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]
    no_body = head_only or response.status in NO_BODY_STATUSES
    if not response.streaming:
        body: bytes = response.body  # type: ignore[assignment]
        if response.status not in NO_BODY_STATUSES:
            headers.append((b"content-length", b"%d" % len(body)))
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if no_body else body})
        return
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    if not no_body:
        async for chunk in response.body:  # type: ignore[union-attr]
            if isinstance(chunk, str):
                chunk = chunk.encode()
            if chunk:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b""})
