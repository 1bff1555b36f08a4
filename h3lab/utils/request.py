"""Who asked, and where: the request's URL, host, scheme and client address.

h3's ``getRequestURL`` / ``getRequestHost`` / ``getRequestProtocol`` /
``getRequestIP``. By default every answer comes from the connection itself:
the peer address, the transport's scheme and the ``Host`` header.

``X-Forwarded-For/Host/Proto`` are read only with ``trust_proxy``, because
any client can send them. ``trust_proxy=True`` trusts one proxy in front of
the app; ``trust_proxy=N`` trusts a chain of N proxies. Each proxy *appends*
what it saw to ``X-Forwarded-For``, so the client address is the N-th entry
from the right -- not the first, which the client wrote itself and which is
therefore a spoofing vector (h3's ``xForwardedFor`` takes the first entry and
warns about exactly that). A header with fewer entries than trusted hops was
overwritten by the outermost proxy: its first entry is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from h3lab.event import H3Event

__all__ = [
    "get_request_host",
    "get_request_ip",
    "get_request_path",
    "get_request_protocol",
    "get_request_url",
]


def _hops(trust_proxy: bool | int) -> int:
    if isinstance(trust_proxy, bool):
        return 1 if trust_proxy else 0
    if isinstance(trust_proxy, int) and trust_proxy >= 0:
        return trust_proxy
    raise ValueError(
        f"trust_proxy must be True, False or a number of proxies >= 0, got {trust_proxy!r}"
    )


def _forwarded(event: H3Event, name: str, trust_proxy: bool | int) -> str | None:
    """The value a trusted proxy put in ``name`` (None when not trusted or absent)."""
    hops = _hops(trust_proxy)
    if not hops:
        return None
    entries = [item.strip() for line in event.headers.getall(name) for item in line.split(",")]
    entries = [item for item in entries if item]
    if not entries:
        return None
    return entries[-hops] if len(entries) >= hops else entries[0]


def get_request_protocol(event: H3Event, trust_proxy: bool | int = False) -> str:
    """``"http"`` or ``"https"``: the transport's, or ``X-Forwarded-Proto`` when trusted."""
    forwarded = _forwarded(event, "x-forwarded-proto", trust_proxy)
    if forwarded is not None and forwarded.lower() in ("http", "https"):
        return forwarded.lower()
    scheme = event.scheme
    if scheme:
        return scheme
    transport = getattr(event.conn, "transport", None)
    if transport is not None and transport.get_extra_info("sslcontext") is not None:
        return "https"
    return "http"


def get_request_host(event: H3Event, trust_proxy: bool | int = False) -> str:
    """The host (with its port, as sent) the client asked for.

    ``X-Forwarded-Host`` when trusted, else ``Host``, else the address the
    server accepted the connection on (an HTTP/1.0 request may omit ``Host``).
    """
    forwarded = _forwarded(event, "x-forwarded-host", trust_proxy)
    if forwarded:
        return forwarded
    host = event.headers.get("host")
    if host:
        return host
    transport = getattr(event.conn, "transport", None)
    sockname: Any = transport.get_extra_info("sockname") if transport is not None else None
    if isinstance(sockname, tuple) and len(sockname) >= 2:
        address = sockname[0]
        return f"[{address}]:{sockname[1]}" if ":" in address else f"{address}:{sockname[1]}"
    return "localhost"


def get_request_ip(event: H3Event, trust_proxy: bool | int = False) -> str | None:
    """The client's IP address: the peer's, or from ``X-Forwarded-For`` when trusted.

    None when the transport has no address (a Unix socket, an ASGI server
    that sends no ``client``).
    """
    forwarded = _forwarded(event, "x-forwarded-for", trust_proxy)
    if forwarded:
        return forwarded
    remote = event.remote
    if isinstance(remote, tuple | list) and remote:
        return str(remote[0])
    return remote if isinstance(remote, str) and remote else None


def get_request_path(event: H3Event) -> str:
    """The request target as sent: raw (still percent-encoded) path plus ``?query``."""
    query = event.query_string
    return f"{event.raw_path}?{query}" if query else event.raw_path


def get_request_url(event: H3Event, trust_proxy: bool | int = False) -> str:
    """``scheme://host/path?query`` (``event.url`` is this with ``trust_proxy=False``)."""
    scheme = get_request_protocol(event, trust_proxy)
    host = get_request_host(event, trust_proxy)
    return f"{scheme}://{host}{get_request_path(event)}"
