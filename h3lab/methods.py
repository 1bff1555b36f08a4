"""The HTTP methods h3lab serves: one list for the app, the server and the ASGI adapter.

A route can be registered for any of them (or ``"*"`` for all), the 405
``Allow`` header of a ``"*"`` route and ``OPTIONS *`` list them, and a request
with any other method is answered 501 by both transports before routing.

CONNECT is left out on purpose: it asks for a tunnel, which h3lab never
opens. ``QUERY`` (draft-ietf-httpbis-safe-method-w-body: safe and idempotent,
with a body; h3 v2 routes it) is served: llhttp, in httptools 0.9, parses it.
To serve a new method, add it here.
"""

from __future__ import annotations

METHODS: tuple[str, ...] = (
    "GET",
    "HEAD",
    "POST",
    "PUT",
    "PATCH",
    "DELETE",
    "OPTIONS",
    "TRACE",
    "QUERY",
)

ALLOW_ALL = ", ".join(METHODS)
"""The ``Allow`` value for "every method" (``OPTIONS *``, a ``"*"`` route's 405)."""

__all__ = ["ALLOW_ALL", "METHODS"]
