"""h3lab: an H3-style HTTP framework whose internals are strategies you can measure.

Public API::

    from h3lab import H3, HTTPError, Config, Response, serve
    from h3lab import WebSocket, WebSocketDisconnect   # @app.ws handlers
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from h3lab.app import H3
from h3lab.config import Config
from h3lab.errors import HTTPError
from h3lab.event import H3Event
from h3lab.response import Response
from h3lab.server import Server, serve
from h3lab.websocket import WebSocket, WebSocketDisconnect

if TYPE_CHECKING:
    from h3lab.asgi import ASGIAdapter

__version__ = "0.1.0"


def asgi(app: H3) -> ASGIAdapter:
    """``h3lab.asgi(app)``: the app as an ASGI 3 callable (same as ``app.asgi``)."""
    return app.asgi


__all__ = [
    "H3",
    "Config",
    "H3Event",
    "HTTPError",
    "Response",
    "Server",
    "WebSocket",
    "WebSocketDisconnect",
    "__version__",
    "asgi",
    "serve",
]
