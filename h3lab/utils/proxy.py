"""Reverse proxy: h3's ``proxyRequest``, over aiohttp's client.

::

    UPSTREAM = "http://127.0.0.1:9000"

    @app.all("/api/**")
    async def api(event):
        return await proxy_request(event, UPSTREAM + get_request_path(event), timeout=10)

``target_url`` is requested as given (as in h3): the caller decides which
path and query go upstream (``get_request_path(event)`` is the incoming
one, still percent-encoded). What is forwarded:

* the method and the body (none for GET and HEAD);
* the request headers, minus the hop-by-hop ones (``Connection`` and every
  field it names, ``Keep-Alive``, ``TE``, ``Trailer``, ``Transfer-Encoding``,
  ``Upgrade``, ``Proxy-Authorization``, ``Proxy-Connection``), ``Host``
  (aiohttp sends the target's), ``Expect`` and ``Content-Length`` (aiohttp
  frames the body it sends), and minus ``filter_headers``. ``Cookie`` and
  ``Authorization`` *are* forwarded: a reverse proxy shares the upstream's
  trust; filter them for an upstream you do not fully trust;
* ``X-Forwarded-For`` (this client appended to the chain), and
  ``X-Forwarded-Proto/Host/Port`` describing this hop (``xfwd=False`` to
  send none); ``headers`` are applied last and win.

The answer keeps its status, headers (hop-by-hop ones stripped, ``Set-Cookie``
domains and paths optionally rewritten) and its body, which is **streamed**
to the client chunk by chunk as it arrives (never buffered whole; the
server's write backpressure pauses the upstream read). Compression passes
through untouched (aiohttp's decompression is off, ``Accept-Encoding`` and
``Content-Encoding`` are forwarded as they are). Redirects are passed to the
client, not followed.

``Location`` and ``Refresh`` (h3's ``locationRewrite``, nginx's
``proxy_redirect``): by default (``location_rewrite=True``) a URL pointing at
the target's origin (``http://upstream:9000/login?next=/``, or the
protocol-relative ``//upstream:9000/login``) is rewritten to this proxy's own
origin, path, query and fragment kept, so the client's next request comes back
through the proxy instead of going to (or learning about) the upstream.
Relative URLs and other origins are left alone. A mapping of URL prefixes to
replacements (``{"http://upstream:9000/app/": "/"}``) applies those instead
(the first matching prefix); ``False`` forwards the headers as they are.

Failures: an upstream that cannot be reached or breaks the exchange is a
``502``; no response headers within ``timeout`` seconds is a ``504`` (the
deadline covers connecting and waiting for the headers, never a long
streamed body). The 502/504 bodies never name the upstream.

Connections: by default each call opens its own ``aiohttp.ClientSession``
and closes it when the body has been sent. Pass ``session=`` (one shared
``ClientSession`` created at startup, closed at shutdown) to reuse
upstream connections across requests.

**Never** build ``target_url`` from unchecked user input (an open proxy).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from h3lab.errors import HTTPError
from h3lab.response import Response
from h3lab.utils.request import get_request_host, get_request_ip, get_request_protocol

if TYPE_CHECKING:
    import aiohttp

    from h3lab.event import H3Event

__all__ = ["get_proxy_request_headers", "proxy_request"]

logger = logging.getLogger("h3lab.proxy")

# RFC 9110 §7.6.1 hop-by-hop fields: never relayed, in either direction.
HOP_BY_HOP = frozenset(
    (
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    )
)
# Request fields this proxy sets itself (aiohttp frames the body and sends the
# target's Host; Expect was answered by our server already).
_REQUEST_DROPPED = HOP_BY_HOP | {"host", "content-length", "expect"}
_NO_BODY_STATUSES = frozenset((204, 304))
_CONTROL_RE = re.compile(r"[\r\n\0]")
# Refresh: "5; url=https://target/path" (the delay optional, the URL maybe quoted).
_REFRESH_RE = re.compile(r"""^(\s*(?:[\d.]+\s*[;,]\s*)?url\s*=\s*)(['"]?)(.*?)\2(\s*)$""", re.I)
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(url: str) -> str | None:
    """``scheme://host[:port]`` of an absolute http(s) URL (default port left
    out, host lowercased); None for anything else."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        host = f"{host}:{port}"
    return f"{scheme}://{host}"


def rewrite_location(
    value: str, rule: bool | Mapping[str, str], target_origin: str, request_origin: str
) -> str | None:
    """The rewritten ``Location`` value, or None to leave it as it is."""
    if rule is True:
        if target_origin == request_origin:
            return None
        # A protocol-relative URL resolves against the target (it would leak it too).
        absolute = target_origin.split("//", 1)[0] + value if value.startswith("//") else value
        if _origin(absolute) != target_origin:
            return None  # relative, or another origin: not ours to rewrite
        parts = urlsplit(absolute)
        rest = parts.path or "/"
        if parts.query:
            rest += "?" + parts.query
        if parts.fragment:
            rest += "#" + parts.fragment
        return request_origin + rest
    for prefix, replacement in rule.items():  # type: ignore[union-attr]  # True returned above; False is never passed
        if value.startswith(prefix):
            return replacement + value[len(prefix) :]
    return None


def _rewrite_redirects(
    headers: list[tuple[str, str]],
    rule: bool | Mapping[str, str],
    target_origin: str,
    request_origin: str,
) -> list[tuple[str, str]]:
    out = []
    for name, value in headers:
        if name == "location":
            value = rewrite_location(value, rule, target_origin, request_origin) or value
        elif name == "refresh":
            match = _REFRESH_RE.match(value)
            if match is not None:
                new = rewrite_location(match[3], rule, target_origin, request_origin)
                if new is not None:
                    value = match[1] + match[2] + new + match[2] + match[4]
        out.append((name, value))
    return out


def _nominated(connection_values: Iterable[str]) -> set[str]:
    return {token.strip().lower() for value in connection_values for token in value.split(",")} - {
        ""
    }


def get_proxy_request_headers(
    event: H3Event, *, filter_headers: Iterable[str] = (), xfwd: bool = True
) -> list[tuple[str, str]]:
    """The request headers ``proxy_request`` sends upstream (before ``headers=``)."""
    request_headers = event.headers
    dropped = _REQUEST_DROPPED | _nominated(request_headers.getall("connection"))
    dropped |= {name.lower() for name in filter_headers}
    forwarded = [(k, v) for k, v in request_headers.items_all() if k not in dropped]
    if not xfwd:
        return forwarded
    forwarded = [(k, v) for k, v in forwarded if not k.startswith("x-forwarded-")]
    chain = ", ".join(request_headers.getall("x-forwarded-for"))
    ip = get_request_ip(event)
    if ip:
        chain = f"{chain}, {ip}" if chain else ip
    if chain:
        forwarded.append(("x-forwarded-for", chain))
    proto = get_request_protocol(event)
    host = get_request_host(event)
    forwarded.append(("x-forwarded-proto", proto))
    forwarded.append(("x-forwarded-host", host))
    port = _port_of(host) or ("443" if proto == "https" else "80")
    forwarded.append(("x-forwarded-port", port))
    return forwarded


def _port_of(host: str) -> str | None:
    # "example.com:8080", "[::1]:8080" -> the port; none when absent.
    tail = host.rsplit("]", 1)[-1]
    if ":" in tail:
        port = tail.rsplit(":", 1)[1]
        return port if port.isdigit() else None
    return None


def _rewrite_cookie(cookie: str, attribute: str, rule: str | Mapping[str, str]) -> str:
    """Rewrite (or drop, when mapped to "") one attribute of a Set-Cookie value."""
    mapping = {"*": rule} if isinstance(rule, str) else dict(rule)
    parts = cookie.split(";")
    out = [parts[0]]
    for part in parts[1:]:
        key, eq, value = part.strip().partition("=")
        if eq and key.lower() == attribute:
            new = mapping.get(value.strip(), mapping.get("*"))
            if new is None:
                out.append(part)
            elif new:
                out.append(f" {key}={new}")
            # "" drops the attribute: a host-only cookie for the proxy's host
        else:
            out.append(part)
    return ";".join(out)


class _UpstreamBody:
    """The upstream body as an async iterable that releases its connection when done.

    The server calls ``aclose`` when it stops sending (finished, client gone,
    error). If the response is dropped before sending ever started (the
    client left while the upstream was answering), ``__del__`` still closes
    the connection.
    """

    __slots__ = ("_closed", "_response", "_session")

    def __init__(self, response: aiohttp.ClientResponse, session: aiohttp.ClientSession | None):
        self._response = response
        self._session = session  # ours to close, or None (the caller's)
        self._closed = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._response.close()
        if self._session is not None:
            await self._session.close()

    def __del__(self) -> None:
        if not self._closed:
            self._closed = True
            self._response.close()
            if self._session is not None:
                self._session.detach()  # its only connection was just closed


async def _no_body() -> AsyncIterator[bytes]:
    return
    yield b""  # pragma: no cover - makes this an (empty) async generator


async def proxy_request(
    event: H3Event,
    target_url: str,
    *,
    headers: Mapping[str, str] | None = None,
    timeout: float | None = 30.0,
    method: str | None = None,
    filter_headers: Iterable[str] = (),
    xfwd: bool = True,
    cookie_domain_rewrite: str | Mapping[str, str] | None = None,
    cookie_path_rewrite: str | Mapping[str, str] | None = None,
    location_rewrite: bool | Mapping[str, str] = True,
    session: aiohttp.ClientSession | None = None,
) -> Response:
    """Forward this request to ``target_url``; the upstream's answer, streamed."""
    try:
        import aiohttp
        import yarl
    except ModuleNotFoundError as exc:  # pragma: no cover - depends on the install
        raise RuntimeError("proxy_request needs aiohttp: pip install 'h3lab[proxy]'") from exc
    if not isinstance(target_url, str) or not target_url.startswith(("http://", "https://")):
        raise ValueError(f"target_url must be an http:// or https:// URL, got {target_url!r}")
    if timeout is not None and (isinstance(timeout, bool) or timeout <= 0):
        raise ValueError(f"timeout must be None or a number of seconds > 0, got {timeout!r}")
    if not isinstance(location_rewrite, bool | Mapping):
        raise ValueError(
            "location_rewrite must be True, False or a mapping of URL prefixes, "
            f"got {location_rewrite!r}"
        )
    outgoing = get_proxy_request_headers(event, filter_headers=filter_headers, xfwd=xfwd)
    if headers:
        override = {name.lower() for name in headers}
        outgoing = [(k, v) for k, v in outgoing if k not in override]
        for name, value in headers.items():
            if _CONTROL_RE.search(name) or _CONTROL_RE.search(str(value)):
                raise ValueError(f"proxy header {name!r} contains a control character")
            outgoing.append((name, str(value)))
    method = (method or event.method).upper()
    body = None if method in ("GET", "HEAD") else await event.body()

    own_session = session is None
    client = session or aiohttp.ClientSession(
        # A session per call never reuses a connection: force_close means none
        # is ever parked in its pool, so nothing outlives the response.
        connector=aiohttp.TCPConnector(force_close=True),
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=timeout),
    )
    try:
        async with asyncio.timeout(timeout):
            upstream = await client.request(
                method,
                yarl.URL(target_url, encoded=True),
                headers=outgoing,
                data=body,
                allow_redirects=False,
                auto_decompress=False,
                # Exactly the client's headers: no aiohttp defaults (an
                # Accept-Encoding the client never sent would bring back a
                # compressed body it cannot read).
                skip_auto_headers=("Accept-Encoding", "User-Agent", "Content-Type"),
            )
    except TimeoutError as exc:
        if own_session:
            await client.close()
        raise HTTPError(504, "Gateway Timeout", cause=exc) from exc
    except (aiohttp.ClientError, OSError) as exc:
        if own_session:
            await client.close()
        logger.debug("proxy to %s failed: %r", target_url, exc)
        raise HTTPError(502, "Bad Gateway", cause=exc) from exc
    except BaseException:  # cancelled (client gone): nothing may stay open
        if own_session:
            await client.close()
        raise

    nominated = _nominated(upstream.headers.getall("connection", ()))
    response_headers: list[tuple[str, str]] = []
    for name, value in upstream.headers.items():
        lower = name.lower()
        if lower in HOP_BY_HOP or lower in nominated or lower == "content-length":
            continue
        if lower == "set-cookie":
            if cookie_domain_rewrite is not None:
                value = _rewrite_cookie(value, "domain", cookie_domain_rewrite)
            if cookie_path_rewrite is not None:
                value = _rewrite_cookie(value, "path", cookie_path_rewrite)
        response_headers.append((lower, value))
    if location_rewrite is not False:
        target_origin = _origin(target_url) or ""
        request_origin = f"{get_request_protocol(event)}://{get_request_host(event)}"
        response_headers = _rewrite_redirects(
            response_headers, location_rewrite, target_origin, request_origin
        )

    status = upstream.status
    if method == "HEAD" or status in _NO_BODY_STATUSES or status < 200:
        length = upstream.headers.get("content-length")
        upstream.close()
        if own_session:
            await client.close()
        if method == "HEAD" and length is not None:
            # The server sends this length for a HEAD whose body is a stream.
            response_headers.append(("content-length", length))
            return Response(_no_body(), status, response_headers)
        return Response(b"", status, response_headers)
    return Response(
        _UpstreamBody(upstream, client if own_session else None), status, response_headers
    )
