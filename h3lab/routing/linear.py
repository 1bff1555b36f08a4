"""The linear router: every route is one regex, tried in priority order.

This is the readable oracle the property tests compare the fast strategies
against, so it favours being obviously right over being fast. The depth-first
lookup of the tree routers (static, then ``:param``, then ``*``, then
``**:name``, then ``**`` at each segment, with backtracking) picks, among the
routes that match, the one whose per-segment kinds are lexicographically
smallest, a pattern that ends beating one that continues with ``**``: that is
exactly tuple order on ``ParsedPattern.rank``. Two matching routes with equal
ranks have the same shape, and there the exact method beats ``"*"``. So
sorting by ``(rank, method is "*")`` and taking the first route that fits
reproduces the tree walk.
"""

from __future__ import annotations

import bisect
import re
from typing import Any, ClassVar

from h3lab.routing.base import ANY_METHOD, Match, Route
from h3lab.routing.pattern import (
    NAMED_REST,
    PARAM,
    REST,
    STAR,
    STATIC,
    ParsedPattern,
    decode_param,
    parse_pattern,
)


def pattern_regex(parsed: ParsedPattern) -> re.Pattern[str]:
    """A regex that fullmatches exactly the routing paths of this pattern,
    with one group per capture, in capture order."""
    pieces: list[str] = []
    for segment in parsed.segments:
        if segment.kind == STATIC:
            pieces.append("/" + re.escape(segment.text))
        elif segment.kind in (PARAM, STAR):
            pieces.append("/([^/]+)")
        elif segment.kind == NAMED_REST:
            pieces.append("/(.+)")  # one or more segments: some text after the '/'
        elif segment.kind == REST:
            # zero or more segments: the '/' itself is optional, except at the
            # root where '/' is the zero-segment path
            pieces.append("(?:/(.*))?" if pieces else "/(.*)")
    # DOTALL: a decoded %0A is a newline, and it is an ordinary character here.
    return re.compile("".join(pieces) or "/", re.DOTALL)


class _Entry:
    __slots__ = ("names", "regex", "route", "sort_key")

    def __init__(self, route: Route, parsed: ParsedPattern, serial: int) -> None:
        self.route = route
        self.regex = pattern_regex(parsed)
        self.names = tuple(capture.name for capture in parsed.captures)
        self.sort_key = (parsed.rank, route.method == ANY_METHOD, serial)


def _sort_key(entry: _Entry) -> tuple:  # type: ignore[type-arg]
    return entry.sort_key


class LinearRouter:
    """Scan of regexes sorted by specificity (the oracle)."""

    name: ClassVar[str] = "linear"

    def __init__(self) -> None:
        self._routes: list[Route] = []
        self._ordered: list[_Entry] = []
        self._shapes: set[tuple[str, tuple[tuple[int, str], ...]]] = set()

    def add(self, route: Route) -> None:
        parsed = parse_pattern(route.pattern)
        key = (route.method, parsed.shape)
        if key in self._shapes:
            raise ValueError(f"duplicate route: {route.method} {route.pattern}")
        self._shapes.add(key)
        self._routes.append(route)
        # Insert in place (O(n) shift, O(log n) search) rather than re-sorting
        # the whole table on every add, which made registration quadratic.
        bisect.insort(self._ordered, _Entry(route, parsed, len(self._routes)), key=_sort_key)

    def match(self, method: str, path: str) -> Match | None:
        for entry in self._ordered:
            if entry.route.method != method and entry.route.method != ANY_METHOD:
                continue
            found = entry.regex.fullmatch(path)
            if found is not None:
                values = (decode_param(value or "") for value in found.groups())
                return entry.route, dict(zip(entry.names, values, strict=True))
        return None

    def allowed_methods(self, path: str) -> set[str]:
        return {e.route.method for e in self._ordered if e.regex.fullmatch(path) is not None}

    def routes(self) -> list[Route]:
        return list(self._routes)

    def stats(self) -> dict[str, Any]:
        # Not counted, like every bare strategy (see TrieRouter.stats).
        return {"strategy": self.name, "routes": len(self._routes), "lookups": None}
