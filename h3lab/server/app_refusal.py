"""The one parser refusal the app's error hooks see: a body too large (413).

h3 v2 has no server-level body limit: a body too large is an ``HTTPError(413)``
raised while the request is handled, so its ``onError`` hook sees it (and
``onResponse`` the answer). The ASGI adapter does the same: it fills the event,
reads the body, and a 413 goes through ``app.error_response``. The built-in
server refuses the body in the parser, before the request is complete; this
module gives that refusal the same path, with an event filled from the head
(method, target, headers, peer; no body), so both transports call the same
hooks with the same request.

The other parser refusals (bad framing 400, 414, 431, 501...) stay the
server's own: what came was never a request the app could see (uvicorn
answers those itself too). An app without ``on_error`` and ``on_response``
hooks gets the server's own 413, byte for byte as before.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from h3lab.app import plain_500
from h3lab.errors import HTTPError
from h3lab.event import H3Event
from h3lab.server import http11
from h3lab.server.head import Head, fill_target

if TYPE_CHECKING:
    from h3lab.app import H3
    from h3lab.server.state import ServerState


def body_too_large(
    app: H3,
    server: ServerState,
    reason: str,
    *,
    head: Head,
    raw_headers: list[tuple[bytes, bytes]],
    peer: Any,
    conn: Any,
    head_only: bool,
) -> bytes | None:
    """The app's answer to a body over ``limits.max_body_size`` (``connection:
    close``: the rest of the body is never read), or None for the server's own."""
    if app.on_error_hook is None and app.on_response_hook is None:
        return None
    event = H3Event(app)  # not pooled: the refusal is rare and outlives nothing
    event.method = head.method
    event.http_version = head.version
    fill_target(event, head.target)  # the one target splitter (server.head)
    event._raw_headers = list(raw_headers)
    event.remote = peer
    event.conn = conn
    event.keep_alive = False
    response = app.error_response(event, HTTPError(413, reason))
    for candidate in (response, plain_500()):
        if candidate.streaming:
            continue  # a refusal is answered whole
        body: Any = candidate.body
        try:
            response_head = http11.response_head(
                candidate,
                server=server.server_bytes,
                date=server.date_bytes,
                keep_alive=False,
                http10=head.version == "1.0",
                content_length=len(body),
                head_only=head_only,
            )
        except http11.UnsafeHeader:
            continue
        if head_only or candidate.status in http11.NO_BODY_STATUSES:
            body = b""
        return response_head + body
    return None
