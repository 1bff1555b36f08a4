"""The per-request event object handed to handlers and middleware.

Lifetime: an event is taken from the app's event pool when a request's headers
and body have arrived, lives while its handler (and any streaming response)
runs, and goes back to the pool afterwards. ``reset`` must clear *every*
per-request field: a pooled event that leaked one request's params, headers,
cookies, context, status or body into the next would be a data leak between
clients (tests/test_pool.py proves it does not).

A released event is unusable: the pool turns it into a ``ReleasedEvent``
(same object, same memory layout, another class: one pointer store), on which
every attribute access raises ``RuntimeError``. Work that must outlive the
response (an audit write, a cache fill) says so with ``event.wait_until(aw)``,
as in h3 v2: the event stays out of the pool until ``aw`` is done, and the
server waits for it at graceful shutdown. So a background task holding the
event reads its own request, or fails loudly -- never another client's data.

Everything derived from the raw request (headers mapping, query mapping,
cookies, parsed JSON/form) is built lazily on first access: the plaintext
benchmark's handler touches none of it and pays for none of it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable
from types import MappingProxyType
from typing import Any

from h3lab.datastructures import Headers, QueryParams
from h3lab.errors import HTTPError

logger = logging.getLogger("h3lab")

_UNSET: Any = object()
_NO_HEADERS: Any = ()  # immutable: the server assigns a fresh list per request
# What ``params`` is before routing: empty and read-only, shared by every idle
# event, so a reset allocates no dict. Routing assigns the route's own dict
# (``app.resolve``), and a request that matches no route gets a fresh ``{}``.
NO_PARAMS: Any = MappingProxyType({})


class H3Event:
    __slots__ = (
        "_body",
        "_built",
        "_context",
        "_cookies",
        "_form",
        "_headers",
        "_json",
        "_mount",
        "_query",
        "_raw_headers",
        "_release_to",
        "_resp_headers",
        "_waiting",
        "app",
        "asgi_scope",
        "conn",
        "http_version",
        "keep_alive",
        "method",
        "params",
        "path",
        "query_string",
        "raw_path",
        "remote",
        "route",
        "route_path",
        "scheme",
        "status",
    )

    def __init__(self, app: Any = None) -> None:
        self.app = app
        # "http"/"https" when the transport says (ASGI's scope); None: ask the
        # connection. Not reset: the built-in server never sets it, and the
        # ASGI adapter clears it itself, so plain requests pay nothing.
        self.scheme: str | None = None
        # The ASGI scope under the ASGI adapter (which sets and clears it), so
        # a mounted ASGI app gets the outer scope forwarded; None elsewhere.
        self.asgi_scope: dict[str, Any] | None = None
        self._built = True  # so that reset sets the lazily built fields too
        self.reset()

    def reset(self) -> None:
        """Forget the request entirely (called before the event is pooled).

        PERF: one frame, no allocation, and the fields only a few requests
        ever build (``_built``: headers mapping, query, context, cookies,
        parsed body, staged response headers, ``wait_until`` work) are
        cleared only when one of them was built. Every other field is stored
        on every reset: the transports fill them all, but a field forgotten
        here would carry one client's request into the next.
        """
        self.method = "GET"
        self.path = "/"
        self.raw_path = "/"
        self.route_path = "/"
        self.query_string = ""
        self.http_version = "1.1"
        self.keep_alive = True
        self.params: dict[str, str] = NO_PARAMS
        self.status = 200
        self.route: Any = None
        self._raw_headers = _NO_HEADERS
        self._body = b""
        self.conn: Any = None
        self.remote: Any = None
        # Inside a mounted H3 sub-app: (whole path, whole raw path, the raw
        # prefix stripped), set and restored by h3lab.mount; None elsewhere
        # (restored by the mount itself; this is the safety net).
        self._mount: tuple[str, str, str] | None = None
        if self._built:
            # Every writer of these sets _built (the accessors below, and
            # wait_until); tests/test_pool.py touches each one alone.
            self._built = False
            self._headers: Headers | None = None
            self._query: QueryParams | None = None
            self._context: dict[str, Any] | None = None
            self._json: Any = _UNSET
            self._form: Any = None
            self._cookies: dict[str, str] | None = None
            self._resp_headers: list[tuple[str, str]] | None = None
            self._waiting: set[asyncio.Future[Any]] | None = None
            self._release_to: Any = None

    # -- lifetime ----------------------------------------------------------

    def wait_until(self, awaitable: Awaitable[Any]) -> asyncio.Future[Any]:
        """Keep this event (and the server) alive until ``awaitable`` is done (h3 v2).

        A coroutine is scheduled as a task (in this request's context). The
        response does not wait for it; the event is not recycled before it is
        done, and graceful shutdown waits for it (within ``limits.shutdown_grace``).
        Returns the task or future, whose failure is logged.
        """
        future = asyncio.ensure_future(awaitable)
        waiting = self._waiting
        if waiting is None:
            waiting = self._waiting = set()
            self._built = True
        waiting.add(future)
        future.add_done_callback(self._wait_done)
        app = self.app
        if app is not None:
            app.keep_alive_until(future)
        return future

    def _wait_done(self, future: asyncio.Future[Any]) -> None:
        if not future.cancelled() and future.exception() is not None:
            logger.error("event.wait_until task failed", exc_info=future.exception())
        waiting = self._waiting
        if waiting is not None:
            waiting.discard(future)
            if not waiting and self._release_to is not None:
                # The request ended while this was pending: release now.
                pool, self._release_to = self._release_to, None
                pool.release(self)

    # -- request -----------------------------------------------------------

    @property
    def headers(self) -> Headers:
        """Request headers, case-insensitive."""
        headers = self._headers
        if headers is None:
            headers = self._headers = Headers(self._raw_headers)
            self._built = True
        return headers

    @property
    def full_path(self) -> str:
        """The whole decoded path; ``path`` is relative inside a mounted sub-app."""
        mount = self._mount
        return self.path if mount is None else mount[0]

    @property
    def url(self) -> str:
        """The full request URL, ``scheme://host/path?query`` (built on each access).

        The host is the ``Host`` header (else the server's own address), the
        scheme the transport's; ``X-Forwarded-*`` are not trusted here (see
        ``h3lab.utils.get_request_url(event, trust_proxy=True)``).
        """
        from h3lab.utils.request import get_request_url

        return get_request_url(self)

    @property
    def query(self) -> QueryParams:
        query = self._query
        if query is None:
            query = self._query = QueryParams(self.query_string)
            self._built = True
        return query

    @property
    def context(self) -> dict[str, Any]:
        """Free-form per-request storage for middleware and handlers."""
        context = self._context
        if context is None:
            context = self._context = {}
            self._built = True
        return context

    @property
    def cookies(self) -> dict[str, str]:
        cookies = self._cookies
        if cookies is None:
            from h3lab.utils.cookies import parse_cookie_header

            cookies = self._cookies = {}
            self._built = True
            # The first occurrence of a name wins, across Cookie headers as within one.
            for header in self.headers.getall("cookie"):
                for name, value in parse_cookie_header(header).items():
                    cookies.setdefault(name, value)
        return cookies

    async def body(self) -> bytes:
        """The whole request body (read once by the server, cached for every reader)."""
        return self._body

    async def text(self) -> str:
        """The body decoded with its declared charset (UTF-8 by default); 400
        for a charset Python does not know or that is not a text encoding."""
        charset = self._charset()
        try:
            return self._body.decode(charset, errors="replace")
        except (LookupError, ValueError):  # unknown ("x-nope") or not text ("rot13")
            reason = f"unsupported charset {charset!r}"
            raise HTTPError(400, "Invalid text body", {"reason": reason}) from None

    async def json(self) -> Any:
        """The body parsed as JSON; 400 when it is not valid JSON."""
        if self._json is _UNSET:
            if not self._body:
                raise HTTPError(400, "Invalid JSON body", {"reason": "empty body"})
            try:
                self._json = json.loads(self._body)
                self._built = True
            except (ValueError, UnicodeDecodeError) as exc:
                raise HTTPError(400, "Invalid JSON body", {"reason": str(exc)}) from None
            except RecursionError:
                # A client's input, not a server fault: ``[[[[...`` 100,000 deep.
                reason = "nested too deeply"
                raise HTTPError(400, "Invalid JSON body", {"reason": reason}) from None
        return self._json

    async def form(self) -> Any:
        """urlencoded or multipart/form-data body as a ``FormData`` mapping."""
        if self._form is None:
            from h3lab.utils.form import parse_form

            self._form = parse_form(self.headers.get("content-type", ""), self._body)
            self._built = True
        return self._form

    def _charset(self) -> str:
        content_type = self.headers.get("content-type", "")
        for part in content_type.split(";")[1:]:
            key, _, value = part.strip().partition("=")
            if key.lower() == "charset" and value:
                return value.strip('"')
        return "utf-8"

    @property
    def disconnected(self) -> bool:
        """True once the client has gone away (streaming handlers should stop)."""
        conn = self.conn
        return conn is not None and conn.is_closing()

    # -- response ----------------------------------------------------------

    def set_header(self, name: str, value: str) -> None:
        """Set a response header, replacing any earlier value of that name."""
        headers = self._resp_headers
        if headers is None:
            self._resp_headers = [(name, str(value))]
            self._built = True
            return
        lower = name.lower()
        headers[:] = [(k, v) for k, v in headers if k.lower() != lower]
        headers.append((name, str(value)))

    def append_header(self, name: str, value: str) -> None:
        """Add a response header, keeping earlier values of that name."""
        if self._resp_headers is None:
            self._resp_headers = []
            self._built = True
        self._resp_headers.append((name, str(value)))

    @property
    def response_headers(self) -> list[tuple[str, str]]:
        if self._resp_headers is None:
            self._resp_headers = []
            self._built = True
        return self._resp_headers

    def set_cookie(self, name: str, value: str, **options: Any) -> None:
        """Add a Set-Cookie header (options: max_age, expires, path, domain,
        secure, httponly, samesite, partitioned)."""
        from h3lab.utils.cookies import serialize_cookie, stage_set_cookie

        # Replaces an earlier Set-Cookie of the same name, domain and path.
        stage_set_cookie(self.response_headers, serialize_cookie(name, value, **options))

    def delete_cookie(self, name: str, *, path: str = "/", domain: str | None = None) -> None:
        from h3lab.utils.cookies import serialize_cookie, stage_set_cookie

        stage_set_cookie(
            self.response_headers, serialize_cookie(name, "", max_age=0, path=path, domain=domain)
        )

    def __repr__(self) -> str:
        return f"<H3Event {self.method} {self.path}>"


_RELEASED_MESSAGE = (
    "this H3Event was released: its request has ended and the event may already "
    "serve another request. Work that outlives the response must be registered "
    "with event.wait_until(awaitable), which keeps the event until it is done"
)


class ReleasedEvent(H3Event):
    """What a released ``H3Event`` becomes (``pool.release``): any use raises.

    Same slots, so switching ``__class__`` back and forth costs one store and
    works under every pool policy; ``acquire`` switches it back.
    """

    __slots__ = ()

    def __getattribute__(self, name: str) -> Any:
        raise RuntimeError(f"{_RELEASED_MESSAGE} (while reading {name!r})")

    def __setattr__(self, name: str, value: Any) -> None:
        raise RuntimeError(f"{_RELEASED_MESSAGE} (while setting {name!r})")

    def __repr__(self) -> str:
        return "<H3Event (released)>"
