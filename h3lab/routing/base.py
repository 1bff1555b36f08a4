"""The router contract shared by every matching strategy.

Theory of operation
-------------------
A *route* is a method (or ``"*"`` for any method) plus a pattern in rou3's
syntax (h3 v2's router), parsed once by ``h3lab.routing.pattern``:

===========================  ====================================  =========================
pattern                      matches                               params
===========================  ====================================  =========================
``/users``                   exactly that text                     -
``/users/:id``               one non-empty segment                 ``{"id": ...}``
``/files/*``                 one segment (may be empty); a         ``{"0": ...}``, ``"1"``...
                             trailing ``*`` also a missing one     (none when missing)
``/users/:id(\\d+)``          one segment the regex fullmatches     ``{"id": "123"}``
``/path/(\\d+)``              same, unnamed                         ``{"0": "123"}``
``/npm/@:p1``, ``/:a.:b``    text mixed with params in a segment   ``{"p1": ...}``
``/assets/*.png``            ``*`` inside a segment: any text      ``{"0": "logo"}``
``/users/:id?``              with or without that segment          ``{"id": ...}`` or ``{}``
``/files/:path+``            one or more segments (last only)      ``{"path": "a/b"}``
``/files/:path*``            zero or more segments (last only)     ``{"path": "a/b"}`` or ``{}``
``/book{s}?``, ``{-:t}?``    a non-capturing optional group        its params when present
``/static\\:x/\\*``            a literal ``:`` or ``*`` (``\\``)      -
``/a/**:rest``               one or more segments (last only)      ``{"rest": "a/b"}``
``/a/**``                    zero or more segments (last only)     ``{"_": "a/b"}`` (``""``)
===========================  ====================================  =========================

Optional parts expand into plain *variants* at registration (``/u/:id?`` is
``/u/:id`` and ``/u``), exactly as rou3 does. Anything else (a stray ``?``, a
``:`` that names nothing, an unbalanced ``(`` or ``{``, a bad regex, ``**``
before the end, a repeat modifier on a regex param or group) is a
``ValueError`` naming the pattern and the part.

Priority is rou3's: a depth-first walk that at each segment tries the static
child, then the one-segment kinds (``:name``, ``*``, regex and mixed segments
share one node), then the wildcards, backtracking when a branch dead-ends;
when the path ends, routes ending there, then a missing trailing ``*``, then
``**``. Among the routes ending at one node: the request method's if it has
any there, else the any-method ones (a failing method route does not fall
back to ``"*"``); of those that fully match, the most specific (one point per
regex or mixed segment, one more for a required last param) wins, ties go to
the first registered. Registering a route whose every variant duplicates an
earlier one of the same method (names aside) is an error: it could never win.

Paths handed to ``Router.match`` are *routing paths* (see ``routing_path``):
up to two trailing slashes removed, and every percent-escape decoded except
``%2F``, ``%5C`` and ``%25``. Params are decoded once more, keeping an encoded
``/`` or ``\\`` encoded, so a param never gains a separator from decoding.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, ClassVar, Protocol, runtime_checkable

from h3lab.routing.pattern import parse_pattern

Params = dict[str, str]
Handler = Callable[..., Any]

ANY_METHOD = "*"


class Route:
    """One registered (method, pattern) -> handler."""

    __slots__ = ("chain", "handler", "index", "meta", "method", "middleware", "pattern", "sync")

    def __init__(
        self,
        method: str,
        pattern: str,
        handler: Handler,
        *,
        index: int = 0,
        middleware: tuple[Any, ...] = (),
        meta: dict[str, Any] | None = None,
    ) -> None:
        self.method = method
        self.pattern = pattern
        self.handler = handler
        self.index = index
        self.middleware = middleware
        self.meta = meta or {}
        # Filled by the app's middleware execution strategy: the compiled
        # callable that runs this route's middleware and handler.
        self.chain: Any = None
        # Whether nothing in the chain can await (``middleware.chain_is_sync``):
        # the built-in server then runs it without a Task (see server.protocol).
        self.sync = False

    def __repr__(self) -> str:
        return f"Route({self.method} {self.pattern})"


Match = tuple[Route, Params]


@runtime_checkable
class Router(Protocol):
    """A matching strategy. Registered in ``h3lab.routing.ROUTERS``."""

    name: ClassVar[str]
    requires_cache: ClassVar[bool]
    """True for a name that promises the route cache in front of the matcher
    (``hybrid``): ``cache.policy`` must then not be ``"none"``."""

    def add(self, route: Route) -> None:
        """Register a route; ``ValueError`` on a duplicate method+shape or a bad pattern."""

    def match(self, method: str, path: str) -> Match | None:
        """The best route for this method and routing path, with fresh params."""

    def match_dynamic(self, method: str, path: str) -> Match | None:
        """``match`` for a caller that has already looked the path up among the
        fully static routes (``CachedRouter``): a matcher that keeps those in a
        dict of its own skips that lookup; the others answer as ``match``."""

    def allowed_methods(self, path: str) -> set[str]:
        """Methods of every route whose pattern matches ``path`` (for 405 Allow)."""

    def remove(self, method: str, pattern: str) -> Route:
        """Unregister the route (see ``find_route``) and return it; ``ValueError``
        naming it when there is none. Clears any cache in front."""

    def routes(self) -> list[Route]:
        """All registered routes, in registration order."""

    def stats(self) -> dict[str, Any]:
        """Counters of this strategy (lookups, and the cache's when it has one)."""

    def tick(self, now: float) -> None:
        """Periodic upkeep (the server's ticker); nothing is periodic in a router."""


def rebuilt_without(router: Any, method: str, pattern: str) -> tuple[Route, Any]:
    """The route ``remove`` takes away, and a fresh router of the same class
    holding the others. Removal is rare, and a rebuild is exactly the table the
    remaining routes would have made (a variant another route shadowed comes
    back); the caller swaps the new state in at once, never seen half-built."""
    route = find_route(router._routes, method, pattern)
    fresh = type(router)()
    for kept in router._routes:
        if kept is not route:
            fresh.add(kept)
    return route, fresh


def find_route(routes: Iterable[Route], method: str, pattern: str) -> Route:
    """The route ``remove`` takes away: registered with exactly ``pattern``, else
    the one whose every variant has the same shape (param names aside), as
    rou3's ``removeRoute`` finds it by its place in the tree."""
    routes = list(routes)
    for route in routes:
        if route.method == method and route.pattern == pattern:
            return route
    try:
        shape = {variant.signature for variant in parse_pattern(pattern)}
    except ValueError:
        shape = None
    if shape is not None:
        for route in routes:
            if (
                route.method == method
                and {variant.signature for variant in parse_pattern(route.pattern)} == shape
            ):
                return route
    raise ValueError(f"no route {method} {pattern} to remove")
