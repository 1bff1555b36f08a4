"""``app.mount(prefix, sub)``: an H3 sub-app or any ASGI application under a prefix.

A mount is one any-method route, ``prefix/**`` (which also matches ``prefix``
itself), whose handler hands the request on. So the parent's global
middleware runs first, and the parent's own routes under the prefix take
precedence over the mount (rou3's order: a static or ``:param`` route beats
``**``), as with h3 v2's fetch-handler mounts.

H3 sub-app (``H3Mount``)
    The request is routed by the sub-app's own router, through its own
    middleware, ``on_request`` hook and 404/405, so it answers as if it were
    served alone. While it runs, ``event.path``, ``raw_path`` and
    ``route_path`` are relative to the prefix (``/api/users/7`` is
    ``/users/7``; ``/api`` is ``/``; a run of slashes after the prefix collapses
    to one, as h3's ``stripBase``, so ``/api//evil.com`` is never the
    protocol-relative ``//evil.com``); ``event.full_path`` keeps the whole path.
    Both are restored before the parent's middleware sees the result. The
    sub-app's ``on_error`` / ``on_response`` hooks (when it has them) turn its
    errors and values into its response; otherwise they travel to the parent
    as raised/returned. Its startup and shutdown hooks run with the parent's
    (``h3lab.lifespan``), and its WebSocket routes answer upgrades under the
    prefix (the connection's event sees the relative path too). Limits are the parent's (the parent's transport read
    the request).

ASGI application (``ASGIMount``)
    Starlette's ``Mount`` semantics: the scope's ``path`` stays whole and
    ``root_path`` grows by the prefix. Under the ASGI adapter the outer scope
    is forwarded (its ``state``, ``extensions``, ``server``... kept); on the
    built-in server the scope is built from the event. Either way the body the
    transport read is fed through ``receive``, the app's ``send`` messages
    become the response (one body message: a plain response; more: streamed
    as they come, with backpressure), and ``http.disconnect`` is delivered
    when the response is over or the client leaves (a ``send`` after that
    raises ``OSError``, ASGI 2.4). Work the app does after its last body
    message (Starlette's background tasks) keeps running after the response.
    The request body is the one the transport read (bounded by
    ``limits.max_body_size``), handed over in one ``http.request`` message.
    Upgrades under the prefix become the app's ``websocket`` scope, bridged
    over h3lab's ``WebSocket`` (``_WebSocketBridge``: the parent's hook and
    middleware run first; ``websocket.http.response.*`` refusals are
    supported). The app's ASGI lifespan runs with its parent's hooks
    (``h3lab.lifespan``).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from h3lab.response import Response
from h3lab.routing import routing_path

if TYPE_CHECKING:
    from h3lab.app import H3

logger = logging.getLogger("h3lab")

_FRAMING = frozenset(("content-length", "transfer-encoding"))


def normalize_prefix(prefix: str) -> str:
    """``"/api/"`` -> ``"/api"``; ``""`` and ``"/"`` -> ``""`` (the root)."""
    if not isinstance(prefix, str):
        raise TypeError(f"mount prefix must be a str, got {type(prefix).__name__}")
    if prefix and not prefix.startswith("/"):
        raise ValueError(f"mount prefix must start with '/', got {prefix!r}")
    if any(ch in prefix for ch in ":*(){}?\\"):
        raise ValueError(f"mount prefix must be a plain path (no pattern syntax), got {prefix!r}")
    return prefix.rstrip("/")


def _strip(path: str, segments: int) -> tuple[str, str]:
    """(the first ``segments`` segments of ``path``, the rest as a path with
    one leading '/')."""
    parts = path.split("/", segments + 1)
    head = "/".join(parts[: segments + 1])
    rest = parts[segments + 1] if len(parts) > segments + 1 else ""
    return head, "/" + rest.lstrip("/")


class _Mount:
    __slots__ = ("app", "prefix", "segments")

    def __init__(self, prefix: str, app: Any) -> None:
        self.prefix = prefix
        self.app = app
        self.segments = prefix.count("/")

    @property
    def pattern(self) -> str:
        return f"{self.prefix}/**"


class H3Mount(_Mount):
    """The route handler of an H3 sub-app mount."""

    __slots__ = ()
    app: H3

    def __call__(self, event: Any) -> Any:
        saved = (event.path, event.raw_path, event.route_path, event._mount)
        head, raw = _strip(event.raw_path, self.segments)
        outer = event._mount
        # (whole path, whole raw path, the raw prefix stripped so far)
        if outer is None:
            event._mount = (event.path, event.raw_path, head)
        else:
            event._mount = (outer[0], outer[1], outer[2] + head)
        event.raw_path = raw
        event.route_path = routing_path(raw)
        event.path = unquote(raw) if "%" in raw else raw
        sub = self.app
        try:
            result = sub.handle(event)
        except Exception as exc:
            return self._error(event, exc, saved)
        if inspect.isawaitable(result):
            return self._finish(event, result, saved)
        return self._value(event, result, saved)

    async def _finish(self, event: Any, result: Any, saved: tuple[Any, ...]) -> Any:
        try:
            value = await result
        except Exception as exc:
            return self._error(event, exc, saved)
        except BaseException:
            _restore(event, saved)
            raise
        return self._value(event, value, saved)

    def _value(self, event: Any, value: Any, saved: tuple[Any, ...]) -> Any:
        sub = self.app
        try:
            if sub.on_response_hook is None:
                return value
            response = sub.response_for(event, value)
            event._resp_headers = None  # merged into the response already
            return response
        finally:
            _restore(event, saved)

    def _error(self, event: Any, exc: Exception, saved: tuple[Any, ...]) -> Any:
        sub = self.app
        try:
            if sub.on_error_hook is None:
                raise exc
            response = sub.error_response(event, exc)
            event._resp_headers = None
            return response
        finally:
            _restore(event, saved)

    def match_ws(self, route_path: str) -> Any:
        """The sub-app's WebSocket route for an upgrade under the prefix, as a
        route whose handler sees the relative path; None if it has none."""
        from h3lab.routing import Route
        from h3lab.websocket import admit

        _, relative = _strip(route_path, self.segments)
        sub = self.app
        match = self.app.match_ws(relative)
        if match is None:
            return None
        route, params = match
        segments = self.segments
        inner = route.handler

        async def relative_paths(ws: Any) -> Any:
            # The connection's own event (never pooled): relative for good.
            event = ws.event
            head, raw = _strip(event.raw_path, segments)
            outer = event._mount
            event._mount = (
                (event.path, event.raw_path, head)
                if outer is None
                else (outer[0], outer[1], outer[2] + head)
            )
            event.raw_path = raw
            event.route_path = routing_path(raw)
            event.path = unquote(raw) if "%" in raw else raw
            # The sub-app's own hook and middleware, as for its HTTP routes.
            if not await admit(sub, ws, run_hook=True):
                return None
            return await inner(ws)

        wrapped = Route(route.method, route.pattern, relative_paths, meta=route.meta)
        return wrapped, params


def _restore(event: Any, saved: tuple[Any, ...]) -> None:
    event.path, event.raw_path, event.route_path, event._mount = saved


class ASGIMount(_Mount):
    """The route handler of an ASGI application mount (see the module doc)."""

    __slots__ = ("lifespan",)

    def __init__(self, prefix: str, app: Any) -> None:
        super().__init__(prefix, app)
        self.lifespan: Any = None  # h3lab.lifespan.ASGILifespan while the app runs

    def __call__(self, event: Any) -> Any:
        return self._serve(event)

    def match_ws(self, route_path: str) -> Any:
        """A route whose handler bridges the upgrade to the app's websocket scope."""
        from h3lab.routing import Route

        return Route("GET", self.pattern, self._websocket, meta={"mount": self}), {}

    async def _websocket(self, ws: Any) -> None:
        event = ws.event
        scope = self.scope(event)
        scope.pop("method", None)
        scope["type"] = "websocket"
        scheme = scope.get("scheme", "http")
        scope["scheme"] = "wss" if scheme in ("https", "wss") else "ws"
        scope["subprotocols"] = list(ws.subprotocols)
        # Refusals with a body (websocket.http.response.*) are ours to send.
        scope["extensions"] = {**(scope.get("extensions") or {}), "websocket.http.response": {}}
        bridge = _WebSocketBridge(ws)
        await self.app(scope, bridge.receive, bridge.send)

    def scope(self, event: Any) -> dict[str, Any]:
        # The prefix as the client spelled it (``/%61pi`` for ``/api``), after
        # the prefixes of the H3 sub-apps this mount sits in.
        head, rest = _strip(event.raw_path, self.segments)
        if event._mount is not None:
            head = event._mount[2] + head
        root = unquote(head)
        outer_scope = event.asgi_scope
        if outer_scope is not None:
            scope = dict(outer_scope)
            base = scope.get("root_path", "")
        else:
            base = event._context.get("root_path", "") if event._context else ""
            scope = {
                "type": "http",
                "asgi": {"version": "3.0", "spec_version": "2.4"},
                "http_version": event.http_version,
                "scheme": _scheme(event),
                "query_string": event.query_string.encode("latin-1"),
                "headers": [(bytes(k).lower(), bytes(v)) for k, v in event._raw_headers],
                "client": list(event.remote) if isinstance(event.remote, tuple) else None,
                "server": _server(event),
                "state": {},
                "extensions": {},
            }
        scope["method"] = event.method
        lifespan = self.lifespan
        if lifespan is not None and lifespan.state:
            # What its lifespan put in "state", a shallow copy per request (ASGI).
            scope["state"] = {**(scope.get("state") or {}), **lifespan.state}
        scope["root_path"] = base + root
        scope["path"] = base + root + (unquote(rest) if "%" in rest else rest)
        scope["raw_path"] = (head + rest).encode("latin-1", "replace")
        return scope

    async def _serve(self, event: Any) -> Response:
        exchange = _Exchange(event.method == "HEAD")
        body = await event.body()
        scope = self.scope(event)
        task = asyncio.ensure_future(self.app(scope, exchange.receiver(body), exchange.send))
        exchange.task = task
        try:
            start = await exchange.next_message()
        except BaseException:  # cancelled: the client left before the answer began
            exchange.close()
            task.cancel()
            raise
        if start is None or start["type"] != "http.response.start":
            exchange.close()
            if task.done() and not task.cancelled():
                error = task.exception()
                if error is not None:
                    raise error  # the app's own error: a 500
            task.cancel()
            raise RuntimeError("the mounted ASGI app returned without sending a response")
        status = int(start["status"])
        headers = [
            (k.decode("latin-1"), v.decode("latin-1"))
            for k, v in start.get("headers", ())
            if k.decode("latin-1").lower() not in _FRAMING or exchange.head
        ]
        first = await exchange.next_message()
        if first is not None and not first.get("more_body", False) and not exchange.head:
            exchange.complete = True
            exchange.close()  # the whole body in one message: a plain response
            response = Response(bytes(first.get("body", b"")), status)
        else:
            exchange.pending = first
            response = Response(exchange, status)
        response.headers = headers  # the app's own, without a default content-type
        # h3's event.waitUntil: the event (and graceful shutdown) waits for it.
        event.wait_until(_outlive(task, exchange))
        return response


class _Exchange:
    """The ASGI side of one mounted request: ``receive``/``send`` for the app,
    and the response body as an async iterator for the transport."""

    def __init__(self, head: bool) -> None:
        self.head = head
        self.messages: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=1)  # backpressure
        self.gone = asyncio.Event()  # the response is over, or the client left
        self.task: asyncio.Future[Any] = None  # type: ignore[assignment]  # set before the body is read
        self.pending: dict[str, Any] | None = None
        self.complete = False  # the app sent its last body message

    def receiver(self, body: bytes) -> Any:
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await self.gone.wait()
            return {"type": "http.disconnect"}

        return receive

    async def send(self, message: dict[str, Any]) -> None:
        if self.gone.is_set():
            raise OSError("the client has disconnected")
        await self.messages.put(message)

    async def next_message(self) -> dict[str, Any] | None:
        """The app's next message, or None once it has returned (or raised)."""
        if not self.messages.empty():
            return self.messages.get_nowait()
        if self.task.done():
            return None
        getter = asyncio.ensure_future(self.messages.get())
        try:
            await asyncio.wait((getter, self.task), return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not getter.done():
                getter.cancel()
        if getter.done() and not getter.cancelled():
            return getter.result()
        return self.messages.get_nowait() if not self.messages.empty() else None

    def close(self) -> None:
        """The response is over: the app's ``receive`` says disconnect, and a
        ``send`` blocked on a full queue is released (its next one raises)."""
        self.gone.set()
        while not self.messages.empty():
            self.messages.get_nowait()

    # -- the response body ---------------------------------------------------

    def __aiter__(self) -> _Exchange:
        return self

    async def __anext__(self) -> bytes:
        while not self.gone.is_set():
            message = self.pending
            self.pending = None
            if message is None:
                message = await self.next_message()
            if message is None:
                self.close()
                if self.task.done() and not self.task.cancelled():
                    error = self.task.exception()
                    if error is not None:
                        raise error
                break
            if message["type"] != "http.response.body":
                continue  # trailers, debug...: not carried
            more = message.get("more_body", False)
            chunk = bytes(message.get("body", b""))
            if not more:
                self.complete = True
                self.close()
                if chunk and not self.head:
                    return chunk
                break
            if chunk and not self.head:
                return chunk
        raise StopAsyncIteration

    async def aclose(self) -> None:
        self.close()


class _WebSocketBridge:
    """ASGI ``websocket.*`` messages for a mounted app, over h3lab's ``WebSocket``
    (so the same bridge serves the built-in server and the ASGI adapter)."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.connected = False
        self.refusal: Response | None = None
        self.refusal_body: list[bytes] = []

    async def receive(self) -> dict[str, Any]:
        from h3lab.websocket import WebSocketDisconnect

        if not self.connected:
            self.connected = True
            return {"type": "websocket.connect"}
        try:
            message = await self.ws.receive()
        except WebSocketDisconnect as exc:
            return {"type": "websocket.disconnect", "code": exc.code, "reason": exc.reason}
        if type(message) is str:
            return {"type": "websocket.receive", "text": message}
        return {"type": "websocket.receive", "bytes": message}

    async def send(self, message: dict[str, Any]) -> None:
        from h3lab.websocket import CONNECTING, WebSocketDisconnect, refuse

        ws = self.ws
        kind = message["type"]
        try:
            if kind == "websocket.accept":
                headers = {
                    bytes(k).decode("latin-1"): bytes(v).decode("latin-1")
                    for k, v in message.get("headers") or ()
                }
                await ws.accept(message.get("subprotocol"), headers)
            elif kind == "websocket.send":
                text = message.get("text")
                await ws.send(text if text is not None else bytes(message.get("bytes") or b""))
            elif kind == "websocket.close":
                if ws.state == CONNECTING:
                    await ws.close()  # before accept: a 403, as ASGI servers answer
                else:
                    await ws.close(message.get("code", 1000), message.get("reason") or "")
            elif kind == "websocket.http.response.start":
                headers_list = [
                    (bytes(k).decode("latin-1"), bytes(v).decode("latin-1"))
                    for k, v in message.get("headers") or ()
                ]
                self.refusal = Response(b"", int(message["status"]))
                self.refusal.headers = headers_list  # the app's own, no default type
            elif kind == "websocket.http.response.body":
                if self.refusal is None:
                    raise RuntimeError("websocket.http.response.body before its start")
                self.refusal_body.append(bytes(message.get("body", b"")))
                if not message.get("more_body", False):
                    self.refusal.body = b"".join(self.refusal_body)
                    await refuse(ws, self.refusal)
            else:
                raise RuntimeError(f"unexpected ASGI message {kind!r} in a WebSocket")
        except WebSocketDisconnect:
            raise OSError("the client has disconnected") from None  # ASGI 2.4


async def _outlive(task: asyncio.Future[Any], exchange: _Exchange) -> None:
    """Wait for the app to return (it may run background work after its
    response); log its failure, unless it is how it learnt the client left."""
    try:
        await task
    except Exception as exc:
        if exchange.complete or not exchange.gone.is_set():
            logger.error("mounted ASGI app failed", exc_info=exc)
        else:
            logger.debug("mounted ASGI app stopped after its client left", exc_info=exc)


def _scheme(event: Any) -> str:
    from h3lab.utils.request import get_request_protocol

    return get_request_protocol(event)


def _server(event: Any) -> list[Any] | None:
    conn = event.conn
    transport = getattr(conn, "transport", None)
    if transport is None:
        return None
    address = transport.get_extra_info("sockname")
    return list(address[:2]) if isinstance(address, tuple) else None


__all__ = ["ASGIMount", "H3Mount", "normalize_prefix"]
