"""WebSockets: the ``ws`` object a ``@app.ws(...)`` handler receives.

::

    @app.ws("/chat/:room")
    async def chat(ws):
        await ws.accept()
        async for message in ws:          # str or bytes; ends when the peer closes
            await ws.send(f"{ws.params['room']}: {message}")

The same ``WebSocket`` runs on both transports: the built-in server's
``h3lab.server.websocket`` (the upgrade; wsproto frames on the raw connection
in ``h3lab.server.ws_protocol``) and the ASGI adapter's
``h3lab.asgi_websocket`` (ASGI ``websocket.*`` messages).
Each transport supplies a *channel* with five coroutines -- ``accept``,
``receive``, ``send``, ``close``, ``reject`` -- and this module keeps the
state machine (connecting -> open -> closed) and the rules both share:

* the app's ``on_request`` hook runs on the upgrade request before the
  WebSocket route is matched (``h3lab serve --root-path`` and
  ``--proxy-headers`` are such a hook; an async one is awaited); then the
  app's ``app.use`` middleware runs (``admit``), as h3 v2 runs a route's
  middleware before its WebSocket handler upgrades. An ``HTTPError`` either
  raises, or a value a middleware returns instead of calling ``next()``, is
  the answer to the upgrade (a 401 from ``basic_auth``, say), and the handler
  is never called. A mounted H3 sub-app's hook and middleware run after the
  parent's, as for its HTTP routes;
* a handler that returns without accepting refuses the upgrade (HTTP 403);
* a handler that raises before accepting gets a 500, after accepting the
  connection is closed with 1011 (the error is logged);
* a handler that returns with the connection open closes it with 1000;
* ``receive`` raises ``WebSocketDisconnect(code, reason)`` once the peer
  closed (or the server did: 1009 for an oversized message, 1001 at
  shutdown), and so does ``send`` on a connection that is gone, so a handler
  blocked in either ends cleanly.
"""

from __future__ import annotations

import inspect
import json
import logging
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from h3lab.app import H3
    from h3lab.datastructures import Headers, QueryParams
    from h3lab.event import H3Event
    from h3lab.response import Response

__all__ = ["WebSocket", "WebSocketDisconnect", "WebSocketHandler"]

logger = logging.getLogger("h3lab.error")

CONNECTING = "connecting"
OPEN = "open"
CLOSED = "closed"

# Close codes an endpoint may send (RFC 6455 7.4: 1004-1006 and 1015 are reserved
# for reporting, never for a Close frame; 1016-2999 are unassigned).
_SENDABLE = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014})

# What a refused upgrade's 4xx/5xx says when the app gave no response of its
# own; both transports answer with these (anything else: "Internal Server Error").
REFUSAL_MESSAGES = {
    403: "WebSocket connection refused",
    404: "No WebSocket route for this path",
    503: "Server shutting down",
}

WebSocketHandler = Callable[["WebSocket"], Awaitable[None]]


class WebSocketDisconnect(Exception):
    """The connection is closed: ``code`` (1000 normal, 1001 going away,
    1006 dropped without a Close frame, 1009 message too big...) and ``reason``."""

    def __init__(self, code: int = 1000, reason: str = "") -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason

    def __str__(self) -> str:
        return f"WebSocket closed with code {self.code}" + (
            f": {self.reason}" if self.reason else ""
        )


class Channel(Protocol):
    """What a transport provides (see the module docstring)."""

    async def accept(self, subprotocol: str | None, headers: list[tuple[str, str]]) -> None: ...

    async def receive(self) -> str | bytes: ...

    async def send(self, data: str | bytes) -> None: ...

    async def close(self, code: int, reason: str) -> None: ...

    async def reject(self, status: int, response: Response | None = None) -> None: ...


def check_close_code(code: int) -> int:
    if (
        isinstance(code, bool)
        or not isinstance(code, int)
        or not (code in _SENDABLE or 3000 <= code <= 4999)
    ):
        raise ValueError(
            f"WebSocket close code must be 1000-1003, 1007-1014 or 3000-4999, got {code!r}"
        )
    return code


class WebSocket:
    """One WebSocket connection, handed to a ``@app.ws`` handler."""

    __slots__ = (
        "_channel",
        "close_code",
        "close_reason",
        "event",
        "params",
        "state",
        "subprotocols",
    )

    def __init__(
        self,
        event: H3Event,
        params: dict[str, str],
        channel: Channel,
        subprotocols: list[str],
    ) -> None:
        self.event = event
        """The upgrade request (headers, query, cookies, context...)."""
        self.params = params
        """The route's params (``/chat/:room`` -> ``{"room": ...}``)."""
        self.subprotocols = subprotocols
        """What the client offered in ``Sec-WebSocket-Protocol``, in its order."""
        self.state = CONNECTING
        """``"connecting"``, ``"open"`` or ``"closed"``."""
        self.close_code: int | None = None
        self.close_reason = ""
        self._channel = channel

    # -- the upgrade request -------------------------------------------------

    @property
    def path(self) -> str:
        return self.event.path

    @property
    def headers(self) -> Headers:
        return self.event.headers

    @property
    def query(self) -> QueryParams:
        return self.event.query

    @property
    def app(self) -> Any:
        return self.event.app

    # -- the conversation ----------------------------------------------------

    async def accept(
        self, subprotocol: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        """Complete the upgrade (101), choosing one of ``self.subprotocols`` or none."""
        if self.state != CONNECTING:
            raise RuntimeError(f"WebSocket.accept() on a connection that is already {self.state}")
        if subprotocol is not None and subprotocol not in self.subprotocols:
            raise ValueError(
                f"subprotocol {subprotocol!r} was not offered by the client "
                f"(offered: {self.subprotocols})"
            )
        await self._channel.accept(subprotocol, list((headers or {}).items()))
        self.state = OPEN

    async def receive(self) -> str | bytes:
        """The next message: ``str`` for a text message, ``bytes`` for a binary one.

        Raises ``WebSocketDisconnect`` when the connection is closed.
        """
        if self.state == CONNECTING:
            raise RuntimeError("WebSocket.receive() before accept()")
        if self.state == CLOSED and self.close_code is not None:
            raise WebSocketDisconnect(self.close_code, self.close_reason)
        try:
            return await self._channel.receive()
        except WebSocketDisconnect as exc:
            self._closed(exc)
            raise

    async def receive_text(self) -> str:
        message = await self.receive()
        if not isinstance(message, str):
            raise TypeError("expected a text message, got a binary one")
        return message

    async def receive_bytes(self) -> bytes:
        message = await self.receive()
        if not isinstance(message, bytes):
            raise TypeError("expected a binary message, got a text one")
        return message

    async def receive_json(self) -> Any:
        return json.loads(await self.receive())

    async def send(self, data: str | bytes) -> None:
        """Send a text (``str``) or binary (``bytes``) message.

        Waits while the client reads slowly (the server buffers at most
        ``limits.write_buffer_high`` bytes); raises ``WebSocketDisconnect``
        when the connection is closed.
        """
        if isinstance(data, bytearray | memoryview):
            data = bytes(data)
        elif not isinstance(data, str | bytes):
            raise TypeError(f"WebSocket.send() takes str or bytes, got {type(data).__name__}")
        if self.state == CONNECTING:
            raise RuntimeError("WebSocket.send() before accept()")
        if self.state == CLOSED:
            raise WebSocketDisconnect(self.close_code or 1006, self.close_reason)
        try:
            await self._channel.send(data)
        except WebSocketDisconnect as exc:
            self._closed(exc)
            raise

    async def send_json(self, value: Any) -> None:
        await self.send(json.dumps(value, separators=(",", ":"), ensure_ascii=False))

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake (the server then waits for the client's
        Close, at most ``limits.linger_timeout``). Before ``accept`` it refuses
        the upgrade with 403. Closing twice does nothing."""
        check_close_code(code)
        if self.state == CONNECTING:
            self.state = CLOSED
            self.close_code = code
            await self._channel.reject(403)
            return
        if self.state == CLOSED:
            return
        self.state = CLOSED
        self.close_code, self.close_reason = code, reason
        await self._channel.close(code, reason)

    def __aiter__(self) -> AsyncIterator[str | bytes]:
        return self._messages()

    async def _messages(self) -> AsyncIterator[str | bytes]:
        """Every message until the connection closes (``close_code`` says how)."""
        while True:
            try:
                yield await self.receive()
            except WebSocketDisconnect:
                return

    def _closed(self, exc: WebSocketDisconnect) -> None:
        if self.state != CLOSED:
            self.state = CLOSED
            self.close_code, self.close_reason = exc.code, exc.reason

    def __repr__(self) -> str:
        return f"<WebSocket {self.path} {self.state}>"


# What the end of the upgrade's middleware chain returns: "go on and upgrade".
_UPGRADE = object()
# Each app's compiled upgrade chain, with the layers it was compiled from
# (recompiled when ``app.use`` changed them; apps are never kept alive by it).
_chains: weakref.WeakKeyDictionary[H3, tuple[tuple[Any, ...], Any]] = weakref.WeakKeyDictionary()


async def _upgrade_endpoint(event: H3Event) -> object:
    return _UPGRADE


def _upgrade_chain(app: H3) -> Any:
    """The app's ``app.use`` layers around ``_upgrade_endpoint``; None without layers.

    Compiled with no route pattern, so prefix scopes are tested against the
    upgrade's path at each request (both executions do that for 404 chains).
    """
    layers = tuple(app._layers)
    if not layers:
        return None
    cached = _chains.get(app)
    if cached is not None and cached[0] == layers:
        return cached[1]
    chain = app.execution.compile(layers, _upgrade_endpoint, True, None, "GET")
    _chains[app] = (layers, chain)
    return chain


async def admit(app: H3, ws: WebSocket, *, run_hook: bool = False) -> bool:
    """Run ``app``'s middleware (and its ``on_request`` hook with ``run_hook``)
    on the upgrade request: True to go on, False once the upgrade was refused
    with the answer they gave (an error, or a value returned instead of
    calling ``next()``), sent as the HTTP response to the upgrade."""
    event = ws.event
    try:
        if run_hook and app.on_request_hook is not None:
            result = app.on_request_hook(event)
            if inspect.isawaitable(result):
                await result
        chain = _upgrade_chain(app)
        if chain is None:
            return True
        result = chain(event)
        if inspect.isawaitable(result):
            result = await result
    except Exception as exc:
        await refuse(ws, app.error_response(event, exc))
        return False
    if result is _UPGRADE:
        return True
    await refuse(ws, app.response_for(event, result))
    return False


async def refuse(ws: WebSocket, response: Response) -> None:
    """Answer the upgrade with ``response`` instead of a 101."""
    if ws.state == CONNECTING:
        ws.state = CLOSED
        await ws._channel.reject(response.status, response)


async def run_handler(ws: WebSocket, handler: WebSocketHandler) -> None:
    """Run ``handler(ws)`` with the shared rules (see the module docstring)."""
    try:
        await handler(ws)
    except WebSocketDisconnect:
        pass  # the peer went away: how a conversation usually ends
    except Exception:
        logger.exception("unhandled error in WebSocket handler for %s", ws.path)
        if ws.state == CONNECTING:
            ws.state = CLOSED
            await ws._channel.reject(500)
        elif ws.state == OPEN:
            ws.state = CLOSED
            ws.close_code = 1011
            await ws._channel.close(1011, "Internal Error")
        return
    if ws.state == CONNECTING:
        ws.state = CLOSED
        await ws._channel.reject(403)
    elif ws.state == OPEN:
        await ws.close(1000)
