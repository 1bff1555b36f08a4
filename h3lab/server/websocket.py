"""WebSocket connections on the built-in server: the upgrade.

Theory of operation
-------------------
``HttpProtocol`` flags a GET whose head asks for ``Upgrade: websocket``
(``_F_WEBSOCKET``; nothing is looked at for other requests). When that
request is complete, ``upgrade`` matches the app's WebSocket routes: no route
means the request is served as plain HTTP (and the connection closed after
it), as before. For a route, ``check_handshake`` applies the hostile-input
rules (``h3lab.server.ws_handshake``), and a refusal is answered like any
other (``connection: close``, then linger), the handler never called.
Otherwise the HTTP protocol hands the transport to a ``WebSocketProtocol``
(``h3lab.server.ws_protocol``; ``transport.set_protocol``) with the bytes
that followed the request, and the connection's Task starts (in its own copy
of the context): it awaits the ``on_request`` hook when it is async (a
synchronous one ran in the parser callback, before the route was matched;
with an async one the route is matched again after it, and an upgrade is
taken over even if the path had no WebSocket route before the hook, which
may rewrite it: a 404 then, as under ASGI), runs the app's middleware
(``h3lab.websocket.admit``), and only then the handler. A refusal from
either is sent as the HTTP answer to the upgrade.

Module map: ``ws_handshake`` holds the upgrade request's rules and answers
(sans-IO), ``ws_protocol`` the connection over wsproto (framing, limits,
backpressure, keepalive, the close handshake), this module the hand-over
between them and ``HttpProtocol``.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from h3lab.event import H3Event
from h3lab.server.ws_handshake import (
    HandshakeRefused,
    check_handshake,
    encode_refusal,
    extension_offers,
    wants_websocket,
)
from h3lab.server.ws_protocol import WebSocketProtocol

if TYPE_CHECKING:
    from h3lab.server.protocol import HttpProtocol


def upgrade(http: HttpProtocol, event: H3Event) -> WebSocketProtocol | bytes | None:
    """What to do with a complete upgrade request (see the module docstring).

    None: no WebSocket route (serve it as plain HTTP); bytes: the refusal to
    send; a protocol: to be started with ``start`` once llhttp stopped.
    """
    app = http.app
    if not wants_websocket(event._raw_headers):
        return None
    # An event of its own (not from the pool): it lives as long as the connection.
    ws_event = H3Event(app)
    ws_event.method = event.method
    ws_event.http_version = event.http_version
    ws_event.raw_path = event.raw_path
    ws_event.route_path = event.route_path
    ws_event.path = event.path
    ws_event.query_string = event.query_string
    ws_event._raw_headers = event._raw_headers
    ws_event.remote = http.peer
    ws_event.conn = http
    server = http.server
    hook = app.on_request_hook
    pending: Any = None
    if hook is not None:
        # This runs in a parser callback: a synchronous hook (the proxy and
        # root-path hooks) runs now, before the route is matched; an async
        # one is awaited in the connection's task, before the middleware.
        try:
            result = hook(ws_event)
        except Exception as exc:
            return encode_refusal(server, app.error_response(ws_event, exc))
        if inspect.isawaitable(result):
            pending = result
    match = app.match_ws(ws_event.route_path)
    if match is None and pending is None:
        return None  # no WebSocket route: plain HTTP
    # With an async hook the route is known only once it ran (it may rewrite
    # the path: a root path), so the upgrade is taken over and routed again
    # in the task; no route then is a 404, as under ASGI.
    route, params = match if match is not None else (None, {})
    try:
        key, subprotocols = check_handshake(event.method, event.http_version, event._raw_headers)
    except HandshakeRefused as exc:
        if inspect.iscoroutine(pending):
            pending.close()
        return exc.answer(server)
    ws_event.params = params
    ws_event.route = route
    protocol = WebSocketProtocol(
        server,
        http.transport,  # type: ignore[arg-type]  # set: the upgrade came in on it
        ws_event,
        route.handler if route is not None else None,
        params,
        key,
        subprotocols,
    )
    protocol.pending_hook = pending
    protocol.extension_offers = extension_offers(event._raw_headers)
    return protocol
