"""CORS (Fetch standard §3.2) as middleware: ``app.use(cors(origin=[...]))``.

* A *preflight* (``OPTIONS`` carrying ``Origin`` and
  ``Access-Control-Request-Method``) is answered right here with a 204 and
  never reaches the route; a disallowed origin gets the same 204 without any
  ``Access-Control-Allow-*`` header, which is all a browser needs to block
  the real request.
* Any other request gets ``Access-Control-Allow-Origin`` (``*`` for the
  ``"*"`` policy, even without an ``Origin``; the request's Origin when it is
  allowed), plus credentials / expose headers, and continues down the chain;
  a disallowed origin continues without CORS headers, so the browser hides
  the response from the calling page.
* ``Vary: Origin`` is added whenever the answer depends on the request's
  Origin (any policy but a plain ``"*"``) -- also on requests without an
  Origin -- so a shared cache never serves one origin's answer to another.
  A preflight whose answer echoes the requested headers (or method) also
  varies on ``Access-Control-Request-Headers`` (``-Method``).

The defaults are h3 v2's (``handleCors``): every origin (``*``), methods
``*``, the requested headers allowed, ``Access-Control-Expose-Headers: *``,
no credentials, no ``Access-Control-Max-Age``, a 204 preflight.

``credentials=True`` with ``origin="*"`` sends a literal ``*``, which browsers
refuse for credentialed requests (h3 v2 does the same and warns): list the
origins when cookies or auth are involved. The same goes for the opaque
origin ``"null"`` in a list (any sandboxed iframe or ``file:`` page sends
it), and for ``expose_headers="*"``, which is not sent with credentials
(browsers would read it literally). Each of these logs one warning per
process. ``"*"`` for methods is literal only without credentials; with
credentials the requested method is echoed. Requested headers are echoed for
``allow_headers="*"`` because the wildcard does not cover ``Authorization``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from h3lab.response import Response

if TYPE_CHECKING:
    from h3lab.event import H3Event

__all__ = ["CorsOptions", "append_cors_headers", "cors", "is_preflight"]

logger = logging.getLogger("h3lab.cors")
_warned: set[str] = set()

OriginPolicy = str | Sequence[str | re.Pattern[str]] | Callable[[str], bool]
Next = Callable[[], Awaitable[Any]]
Middleware = Callable[["H3Event", Next], Awaitable[Any]]


def _header_list(value: str | Sequence[str] | None, what: str) -> str | None:
    """A configured list as one header value, refusing CR/LF (configuration is
    often read from env vars; a stray newline must not become a header)."""
    if value is None:
        return None
    items = [value] if isinstance(value, str) else list(value)
    for item in items:
        if not isinstance(item, str) or any(c in item for c in "\r\n\0"):
            raise ValueError(f"cors {what}: invalid entry {item!r}")
    return ", ".join(items)


@dataclass(frozen=True, slots=True)
class CorsOptions:
    """Validated CORS policy; build it with ``CorsOptions.build(...)`` or ``cors(...)``."""

    origin: OriginPolicy = "*"
    methods: str | None = "*"
    allow_headers: str | None = "*"
    expose_headers: str | None = "*"
    credentials: bool = False
    max_age: int | None = None

    @classmethod
    def build(
        cls,
        origin: OriginPolicy = "*",
        methods: str | Sequence[str] = "*",
        allow_headers: str | Sequence[str] = "*",
        expose_headers: str | Sequence[str] | None = "*",
        credentials: bool = False,
        max_age: int | None = None,
    ) -> CorsOptions:
        if not (isinstance(origin, str) or callable(origin) or isinstance(origin, Sequence)):
            raise TypeError(f"cors origin must be '*', a list or a callable, got {origin!r}")
        if isinstance(origin, str):
            origin = origin if origin == "*" else (origin,)
        elif not callable(origin):
            origin = tuple(origin)  # a private copy: later edits to the list don't leak in
        if max_age is not None and (isinstance(max_age, bool) or not isinstance(max_age, int)):
            raise TypeError(f"cors max_age must be an int, got {max_age!r}")
        method_list = [methods] if isinstance(methods, str) else [m.upper() for m in methods]
        if credentials:
            _warn_credentials(origin, expose_headers)
        return cls(
            origin=origin,
            methods=_header_list(method_list, "methods"),
            allow_headers=_header_list(allow_headers, "allow_headers"),
            expose_headers=_header_list(expose_headers, "expose_headers"),
            credentials=bool(credentials),
            max_age=max_age,
        )

    @property
    def varies(self) -> bool:
        """Does the Allow-Origin answer depend on the request's Origin?"""
        return self.origin != "*"

    def allowed_origin(self, origin: str | None) -> str | None:
        """The Access-Control-Allow-Origin value for this request, or None."""
        policy = self.origin
        if policy == "*":
            return "*"  # with credentials too: browsers then refuse it (h3 v2)
        if not origin:
            return None
        if callable(policy):
            return origin if policy(origin) else None
        for allowed in policy:
            if isinstance(allowed, re.Pattern):
                if allowed.fullmatch(origin):
                    return origin
            elif allowed == origin:
                return origin
        return None


def cors(
    origin: OriginPolicy = "*",
    methods: str | Sequence[str] = "*",
    allow_headers: str | Sequence[str] = "*",
    expose_headers: str | Sequence[str] | None = "*",
    credentials: bool = False,
    max_age: int | None = None,
) -> Middleware:
    """CORS middleware; ``origin`` is ``"*"``, a list of origins (str or compiled
    regex, matched whole) or ``callable(origin) -> bool``."""
    options = CorsOptions.build(
        origin, methods, allow_headers, expose_headers, credentials, max_age
    )

    async def cors_middleware(event: H3Event, next: Next) -> Any:
        if is_preflight(event):
            return preflight_response(event, options)
        append_cors_headers(event, options)
        return await next()

    return cors_middleware


def is_preflight(event: H3Event) -> bool:
    headers = event.headers
    return (
        event.method == "OPTIONS"
        and "origin" in headers
        and "access-control-request-method" in headers
    )


def append_cors_headers(event: H3Event, options: CorsOptions) -> None:
    """Headers for an actual (non-preflight) request, set on ``event``."""
    if options.varies:
        _add_vary(event)
    allow = options.allowed_origin(event.headers.get("origin"))
    if allow is None:
        return
    event.set_header("access-control-allow-origin", allow)
    if options.credentials:
        event.set_header("access-control-allow-credentials", "true")
    if options.expose_headers and not (options.credentials and options.expose_headers == "*"):
        event.set_header("access-control-expose-headers", options.expose_headers)


def preflight_response(event: H3Event, options: CorsOptions) -> Response:
    """The 204 answering a preflight (without Allow-* when the origin is refused)."""
    headers: list[tuple[str, str]] = []
    allow = options.allowed_origin(event.headers.get("origin"))
    vary = _preflight_vary(options, allowed=allow is not None)
    if vary:
        headers.append(("vary", vary))
    if allow is not None:
        headers.append(("access-control-allow-origin", allow))
        if options.credentials:
            headers.append(("access-control-allow-credentials", "true"))
        methods = _allow_methods(event, options)
        if methods:
            headers.append(("access-control-allow-methods", methods))
        allow_headers = _allow_headers(event, options)
        if allow_headers:
            headers.append(("access-control-allow-headers", allow_headers))
        if options.max_age is not None:
            headers.append(("access-control-max-age", str(options.max_age)))
    return Response(None, 204, headers)


def _preflight_vary(options: CorsOptions, *, allowed: bool) -> str:
    """The request headers a preflight's answer depends on: a shared cache
    must not replay one preflight's answer for another."""
    names = []
    if options.varies:
        names.append("Origin")
    if allowed:  # a refusal carries no Allow-* header to vary
        if options.methods == "*" and options.credentials:  # the method is echoed
            names.append("Access-Control-Request-Method")
        if options.allow_headers == "*":  # the requested headers are echoed (or "*")
            names.append("Access-Control-Request-Headers")
    return ", ".join(names)


def _allow_methods(event: H3Event, options: CorsOptions) -> str | None:
    if options.methods == "*" and options.credentials:
        return event.headers.get("access-control-request-method")
    return options.methods


def _allow_headers(event: H3Event, options: CorsOptions) -> str | None:
    if options.allow_headers == "*":
        requested = event.headers.get("access-control-request-headers")
        return requested or None
    return options.allow_headers


def _add_vary(event: H3Event) -> None:
    # Append rather than set: another middleware may already vary on e.g.
    # Accept-Encoding, and that must survive.
    for name, value in event.response_headers:
        if name.lower() == "vary" and any(
            token.strip().lower() in ("origin", "*") for token in value.split(",")
        ):
            return
    event.append_header("vary", "Origin")


def _warn_credentials(origin: OriginPolicy, expose_headers: str | Sequence[str] | None) -> None:
    """h3 v2's configuration warnings, once per process each."""
    messages = []
    if origin == "*":
        messages.append(
            "cors: credentials=True with origin='*' sends a literal '*', which browsers "
            "refuse for credentialed requests; list the allowed origins"
        )
    elif not callable(origin) and "null" in list(origin):
        messages.append(
            "cors: credentials=True with the 'null' origin shares credentials with every "
            "sandboxed iframe and file: page"
        )
    if expose_headers == "*":
        messages.append(
            "cors: credentials=True with expose_headers='*' exposes nothing (browsers read "
            "'*' literally with credentials); list the headers"
        )
    for message in messages:
        if message not in _warned:
            _warned.add(message)
            logger.warning(message)
