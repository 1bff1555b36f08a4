"""The access log: one line per answered request, on the ``h3lab.access`` logger.

The message is::

    127.0.0.1:52344 - "GET /items?limit=5 HTTP/1.1" 200 27 0.41ms

client address and port (``-`` for the port when a proxy header named the
client, or on a Unix socket), the request line, the status, the body size in
bytes (``-`` for a streamed body, whose size is not known when it starts) and
the latency from the request's first byte to its response being handed to the
transport. ``h3lab serve --access-log`` puts the time in front (``%(asctime)s``).

It is off by default: formatting a line costs more than serving a small
request. When it is on, the connection notes each request's start
(``request_started``); requests on one connection are answered in order, so
the oldest start belongs to the response being logged.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from h3lab.event import H3Event

access_logger = logging.getLogger("h3lab.access")

FORMAT = '%s - "%s %s HTTP/%s" %d %s %s'


def request_started(conn: Any) -> None:
    """Note when a request's first byte arrived on ``conn`` (an ``HttpProtocol``)."""
    starts = conn._access_starts
    if starts is None:
        starts = conn._access_starts = deque()
    starts.append(time.perf_counter())


def client(remote: Any) -> str:
    """``host:port`` of a socket peer, the bare address a proxy header gave, ``-`` if none."""
    if isinstance(remote, tuple) and len(remote) >= 2:
        host, port = remote[0], remote[1]
        if ":" in str(host):
            return f"[{host}]:{port}" if port else f"[{host}]"
        return f"{host}:{port}" if port else str(host)
    return str(remote) if remote else "-"


def _escaped(text: str) -> str:
    # unicode_escape turns control bytes (and log-forging newlines) into
    # visible escapes: a log line is always exactly one line.
    return text.encode("unicode_escape").decode("ascii").replace('"', '\\"')


def log_access(event: H3Event, status: int, size: int | None) -> None:
    """Log one answered request (``size`` None: a streamed body)."""
    starts = getattr(event.conn, "_access_starts", None)
    latency = "-"
    if starts:
        latency = f"{(time.perf_counter() - starts.popleft()) * 1000:.2f}ms"
    target = event.raw_path + ("?" + event.query_string if event.query_string else "")
    access_logger.info(
        FORMAT,
        client(event.remote),
        _escaped(event.method),
        _escaped(target),
        event.http_version,
        status,
        "-" if size is None else size,
        latency,
    )


__all__ = ["FORMAT", "access_logger", "client", "log_access", "request_started"]
