"""Running behind a reverse proxy: ``--proxy-headers`` and ``--root-path``.

Both are installed as the app's ``on_request`` hook, which runs before
routing, so they cost nothing unless asked for.

* Proxy headers: when the connection comes from a trusted address
  (``--forwarded-allow-ips``, default ``127.0.0.1``; ``*`` trusts every peer),
  ``X-Forwarded-For`` gives the client address (``event.remote`` becomes
  ``(address, 0)``: the client's port is not forwarded) and
  ``X-Forwarded-Proto`` the scheme (``event.context["scheme"]``, ``http`` or
  ``https``). From any other peer both headers are ignored: a client could
  otherwise claim any address.
* Root path: the app is mounted under a prefix (``/api``) by a proxy that
  forwards the full path; the prefix is taken off before routing and kept in
  ``event.context["root_path"]``.
"""

from __future__ import annotations

import inspect
import ipaddress
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from h3lab.app import H3
    from h3lab.event import H3Event


class TrustedHosts:
    """Addresses and networks allowed to set forwarding headers (``*``: all)."""

    def __init__(self, spec: str | Iterable[str]) -> None:
        items = spec.split(",") if isinstance(spec, str) else list(spec)
        items = [item.strip() for item in items if item.strip()]
        self.everyone = "*" in items
        self.networks = []
        for item in items:
            if item == "*":
                continue
            try:
                self.networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                raise ValueError(
                    f"forwarded-allow-ips must be IP addresses or networks (or *), got {item!r}"
                ) from None

    def __contains__(self, host: Any) -> bool:
        if self.everyone:
            return True
        try:
            address = ipaddress.ip_address(str(host))
        except ValueError:
            return False
        return any(address in net for net in self.networks)


def forwarded_client(header: str, trusted: TrustedHosts) -> str | None:
    """The client in ``X-Forwarded-For``: the nearest hop that is not a trusted proxy."""
    hops = [hop.strip() for hop in header.split(",") if hop.strip()]
    for hop in reversed(hops):
        if hop not in trusted:
            return hop
    return hops[0] if hops else None


def proxy_hook(
    *, trusted: TrustedHosts | None = None, root_path: str = ""
) -> Callable[[H3Event], None]:
    """The ``on_request`` hook applying proxy headers (``trusted``) and ``root_path``."""
    root = root_path.rstrip("/")
    if root_path and not root_path.startswith("/"):
        raise ValueError(f"root-path must start with '/', got {root_path!r}")

    def hook(event: H3Event) -> None:
        if trusted is not None:
            peer = event.remote[0] if isinstance(event.remote, tuple) else event.remote
            if peer in trusted or (peer is None and trusted.everyone):
                headers = event.headers
                forwarded_for = headers.get("x-forwarded-for")
                if forwarded_for:
                    client = forwarded_client(forwarded_for, trusted)
                    if client is not None:
                        event.remote = (client, 0)
                proto = headers.get("x-forwarded-proto")
                if proto:
                    scheme = proto.split(",")[0].strip().lower()
                    if scheme in ("http", "https", "ws", "wss"):
                        event.context["scheme"] = scheme
        if root:
            routed = event.route_path
            if routed == root or routed.startswith(root + "/"):
                event.route_path = routed[len(root) :] or "/"
                path = event.path
                if path == root or path.startswith(root + "/"):
                    event.path = path[len(root) :] or "/"
                event.context["root_path"] = root

    return hook


def install(app: H3, hook: Callable[[H3Event], Any]) -> None:
    """Run ``hook`` before the app's own ``on_request`` hook (if any)."""
    previous = app.on_request_hook
    if previous is None:
        app.on_request_hook = hook
        return

    async def both(event: H3Event) -> None:
        hook(event)
        result = previous(event)
        if inspect.isawaitable(result):
            await result

    app.on_request_hook = both


__all__ = ["TrustedHosts", "forwarded_client", "install", "proxy_hook"]
