"""The router contract shared by every matching strategy.

Theory of operation
-------------------
A *route* is a method (or ``"*"`` for any method) plus a pattern of
``/``-separated segments, each one of:

=========  ==========================================  ==========================
segment    matches                                      params
=========  ==========================================  ==========================
``users``  exactly that text                            -
``:id``    exactly one non-empty segment                ``{"id": ...}``
``*``      exactly one non-empty segment                ``{"_0": ...}``, ``_1``...
``**:n``   one or more segments (last segment only)     ``{"n": "a/b"}``
``**``     zero or more segments (last segment only)    ``{"_": "a/b"}`` (``""`` for 0)
=========  ==========================================  ==========================

Priority is that of rou3 (unjs/h3 v2): at each segment try static, then
``:param``, then ``*``, then ``**:name``, then ``**``, and backtrack when a
branch dead-ends, so it never depends on registration order. At the end of a
branch a route for the exact method wins over an any-method (``"*"``) route of
the same shape. Two routes with the same method and the same *shape*
(``/a/:x`` and ``/a/:y``) are a registration error, so no tie is ever left to
chance and all strategies give identical answers.

Paths handed to ``Router.match`` are *routing paths* (see ``routing_path``):
one trailing slash removed, and every percent-escape decoded except ``%2F``
and ``%25``, so an encoded slash inside a param stays a character of that
param. Params are returned fully decoded (``unquote`` once).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Protocol, runtime_checkable

Params = dict[str, str]
Handler = Callable[..., Any]

ANY_METHOD = "*"


class Route:
    """One registered (method, pattern) -> handler."""

    __slots__ = ("chain", "handler", "index", "meta", "method", "middleware", "pattern")

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

    def __repr__(self) -> str:
        return f"Route({self.method} {self.pattern})"


Match = tuple[Route, Params]


@runtime_checkable
class Router(Protocol):
    """A matching strategy. Registered in ``h3lab.routing.ROUTERS``."""

    name: ClassVar[str]

    def add(self, route: Route) -> None:
        """Register a route; ``ValueError`` on a duplicate method+shape or a bad pattern."""

    def match(self, method: str, path: str) -> Match | None:
        """The best route for this method and routing path, with fresh params."""

    def allowed_methods(self, path: str) -> set[str]:
        """Methods of every route whose pattern matches ``path`` (for 405 Allow)."""

    def routes(self) -> list[Route]:
        """All registered routes, in registration order."""

    def stats(self) -> dict[str, Any]:
        """Counters of this strategy (lookups, and the cache's when it has one)."""
