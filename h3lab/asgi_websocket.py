"""WebSockets through ASGI: ``websocket.*`` messages behind the same ``WebSocket``.

The ASGI server (uvicorn, hypercorn...) owns the handshake and the frames;
this channel maps the ``WebSocket`` calls onto messages:

=====================  ==============================================
``ws.accept(p)``        ``websocket.accept`` (``subprotocol``, headers)
``ws.receive()``        ``websocket.receive`` -> str / bytes;
                        ``websocket.disconnect`` -> WebSocketDisconnect
``ws.send(x)``          ``websocket.send`` (``text`` or ``bytes``)
``ws.close(c, r)``      ``websocket.close`` (code, reason)
refusal before accept   ``websocket.http.response.*`` when the server
                        offers it (403, 500), else ``websocket.close``
                        (servers answer that with 403)
=====================  ==============================================

``limits.max_websocket_message_size`` is applied here too (1009), on the
message the server assembled (servers have their own frame limits, which
come first: uvicorn's ``--ws-max-size`` defaults to 16 MiB). A request for a
path without a WebSocket route is refused with 404 (or a close where the
server has no HTTP responses for WebSockets), and so is an upgrade refused
by the ``on_request`` hook or ``app.use`` middleware, with their answer.

Keepalive pings and permessage-deflate are the ASGI server's (uvicorn:
``--ws-ping-interval``, ``--ws-ping-timeout``, ``--ws-per-message-deflate``);
``limits.websocket_ping_*`` and ``server.websocket_per_message_deflate`` are
the built-in server's.
"""

from __future__ import annotations

import contextlib
import inspect
from typing import TYPE_CHECKING, Any

from h3lab.response import Response, json_bytes
from h3lab.websocket import (
    REFUSAL_MESSAGES,
    WebSocket,
    WebSocketDisconnect,
    admit,
    run_handler,
)

if TYPE_CHECKING:
    from h3lab.app import H3

_HTTP_RESPONSE = "websocket.http.response"


class ASGIChannel:
    def __init__(self, scope: dict[str, Any], receive: Any, send: Any, max_message: int) -> None:
        self.scope = scope
        self._receive = receive
        self._send = send
        self.max_message = max_message
        self.closed = False

    async def accept(self, subprotocol: str | None, headers: list[tuple[str, str]]) -> None:
        message: dict[str, Any] = {"type": "websocket.accept", "subprotocol": subprotocol}
        if headers:
            message["headers"] = [
                (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers
            ]
        await self._send(message)

    async def receive(self) -> str | bytes:
        message = await self._receive()
        kind = message["type"]
        if kind == "websocket.receive":
            text = message.get("text")
            data: str | bytes = text if text is not None else message.get("bytes") or b""
            size = len(data)
            if type(data) is str and size * 4 > self.max_message:
                size = len(data.encode())  # 4 bytes per character at most: encode only near it
            if size > self.max_message:
                await self.close(1009, "Message too big")
                raise WebSocketDisconnect(1009, "Message too big")
            return data
        if kind == "websocket.disconnect":
            self.closed = True
            raise WebSocketDisconnect(message.get("code", 1005), message.get("reason") or "")
        raise RuntimeError(f"unexpected ASGI message {kind!r} in a WebSocket")

    async def send(self, data: str | bytes) -> None:
        if self.closed:
            raise WebSocketDisconnect(1006, "")
        key = "text" if type(data) is str else "bytes"
        try:
            await self._send({"type": "websocket.send", key: data})
        except OSError:  # the server's way to say the client is gone (uvicorn's ClientDisconnected)
            self.closed = True
            raise WebSocketDisconnect(1006, "") from None

    async def close(self, code: int, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(OSError):
            await self._send({"type": "websocket.close", "code": code, "reason": reason})

    async def reject(self, status: int, response: Response | None = None) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            if _HTTP_RESPONSE not in self.scope.get("extensions", {}):
                code = 1008 if status < 500 else 1011  # the server answers 403
                await self._send({"type": "websocket.close", "code": code})
                return
            if response is None:
                message = REFUSAL_MESSAGES.get(status, "Internal Server Error")
                data = json_bytes({"status": status, "message": message, "data": None})
                response = Response(data, status, None, "application/json")
            body: bytes = response.body  # type: ignore[assignment]  # a refusal is never streamed
            headers = [
                (k.lower().encode("latin-1"), v.encode("latin-1"))
                for k, v in response.headers
                if k.lower() not in ("content-length", "transfer-encoding")
            ]
            headers.append((b"content-length", b"%d" % len(body)))
            await self._send(
                {
                    "type": "websocket.http.response.start",
                    "status": response.status,
                    "headers": headers,
                }
            )
            await self._send({"type": "websocket.http.response.body", "body": body})
        except OSError:
            pass


async def serve_websocket(
    app: H3, scope: dict[str, Any], receive: Any, send: Any, event: Any
) -> None:
    """One ASGI ``websocket`` scope; ``event`` is already filled from the scope."""
    channel = ASGIChannel(scope, receive, send, app.config.limits.max_websocket_message_size)
    first = await receive()
    if first["type"] != "websocket.connect":
        return  # websocket.disconnect before anything: nothing to do
    hook = app.on_request_hook
    if hook is not None:
        try:
            result = hook(event)
            if inspect.isawaitable(result):
                await result
        except Exception as exc:
            response = app.error_response(event, exc)
            await channel.reject(response.status, response)
            return
    match = app.match_ws(event.route_path)
    if match is None:
        await channel.reject(404)
        return
    route, params = match
    event.params = params
    event.route = route
    ws = WebSocket(event, params, channel, list(scope.get("subprotocols") or ()))
    if await admit(app, ws):
        await run_handler(ws, route.handler)
