"""The linear router: every route variant is one regex, tried in rou3's order.

This is the readable oracle the property tests compare the fast strategies
against, so it favours being obviously right over being fast.

The depth-first walk of rou3 (static, then the one-segment kinds, then the
wildcards at each segment, backtracking on a dead end) visits the tree's
nodes in the lexicographic order of their *classes* per segment
(``ParsedPattern.rank``, a pattern that ends before one that continues). All
variants ending at one node form a *group*. So: sort the groups by rank, and
for each group the path can reach (static texts equal, segment count fits),
select as rou3 selects at a node:

* the entries of the request's method if the node has any, else its
  any-method (``"*"``) entries, never a mix (a failing method entry does not
  fall back to ``"*"``, rou3's rule);
* among those, the ones whose full regex matches the path; the highest
  ``weight`` wins, ties go to the first registered.

The first group that selects something gives the answer.
"""

from __future__ import annotations

import bisect
import re
from typing import Any, ClassVar

from h3lab.routing.base import ANY_METHOD, Match, Params, Route, rebuilt_without
from h3lab.routing.pattern import (
    COMPLEX,
    NAMED_REST,
    PARAM,
    REST,
    REST_PARAM,
    STATIC,
    ParsedPattern,
    Segment,
    decode_param,
    parse_pattern,
)

# (segment kind, param name or None for a COMPLEX segment, regex group of the
# value, the segment's regex and its names for a COMPLEX segment)
_Capture = tuple[int, str | None, int, "re.Pattern[str] | None", tuple[tuple[str, str], ...]]


def _segment_regex(segment: Segment, reach: bool) -> str:
    """The regex of one segment, with its leading '/'. ``reach`` gives the
    structural form (any text for every one-segment kind)."""
    kind = segment.kind
    if kind == STATIC:
        return "/" + re.escape(segment.text)
    if kind == NAMED_REST and not reach:
        return "/(.+)"  # one or more segments: some text after the '/'
    if kind >= NAMED_REST:
        return "/(.*)"  # REST, or the wildcards' structure
    if kind == PARAM and not reach:
        return "/([^/]+)"
    # STAR, and COMPLEX (checked against its own regex afterwards)
    return "/([^/]*)"


def pattern_regex(parsed: ParsedPattern, reach: bool = False) -> re.Pattern[str]:
    """A regex that fullmatches the routing paths of this variant (``/`` given
    as ``""``), with one group per segment that is not static. A last ``*`` or
    ``**`` (and with ``reach`` any last dynamic segment) may be missing."""
    pieces = [_segment_regex(segment, reach) for segment in parsed.segments]
    if pieces and (parsed.optional_last or (reach and parsed.rank[-1] != 0)):
        pieces[-1] = f"(?:{pieces[-1]})?"
    # DOTALL: a decoded %0A is a newline, and it is an ordinary character here.
    return re.compile("".join(pieces), re.DOTALL)


class _Entry:
    __slots__ = ("captures", "regex", "route", "weight")

    def __init__(self, route: Route, parsed: ParsedPattern) -> None:
        self.route = route
        self.regex = pattern_regex(parsed)
        self.weight = parsed.weight
        captures: list[_Capture] = []
        group = 0
        for segment in parsed.segments:
            if segment.kind == STATIC:
                continue
            group += 1
            if segment.kind == COMPLEX:
                captures.append((COMPLEX, None, group, segment.regex, segment.names))
            else:
                captures.append((segment.kind, segment.text, group, None, ()))
        self.captures = tuple(captures)

    def params(self, path: str) -> Params | None:
        """The params if this variant matches ``path``, else None."""
        found = self.regex.fullmatch(path)
        if found is None:
            return None
        params: Params = {}
        for kind, name, group, regex, names in self.captures:
            value = found.group(group)
            if value is None:  # a missing last '*' (no param) or '**' ("")
                if kind == REST:
                    params[REST_PARAM] = ""
                continue
            if regex is None:
                params[name] = decode_param(value)  # type: ignore[index]  # a plain capture always has a name
                continue
            parts = regex.fullmatch(value)
            if parts is None:
                return None
            for regex_group, param in names:
                piece = parts.group(regex_group)
                if piece is not None:
                    params[param] = decode_param(piece)
        return params


class _Group:
    __slots__ = ("by_method", "rank", "reach")

    def __init__(self, parsed: ParsedPattern) -> None:
        self.rank = parsed.rank
        self.reach = pattern_regex(parsed, reach=True)
        self.by_method: dict[str, list[_Entry]] = {}


class LinearRouter:
    """Scan of variant regexes grouped by tree node, in walk order (the oracle)."""

    name: ClassVar[str] = "linear"
    requires_cache: ClassVar[bool] = False

    def __init__(self) -> None:
        self._routes: list[Route] = []
        self._groups: dict[tuple[tuple[int, str], ...], _Group] = {}
        self._ordered: list[_Group] = []
        self._signatures: set[tuple[str, tuple[tuple[object, ...], ...]]] = set()

    def add(self, route: Route) -> None:
        variants = parse_pattern(route.pattern)
        keys = [(route.method, variant.signature) for variant in variants]
        if all(key in self._signatures for key in keys):
            raise ValueError(f"duplicate route: {route.method} {route.pattern}")
        self._signatures.update(keys)
        self._routes.append(route)
        for variant in variants:
            group = self._groups.get(variant.node_key)
            if group is None:
                group = self._groups[variant.node_key] = _Group(variant)
                bisect.insort(self._ordered, group, key=_rank)
            group.by_method.setdefault(route.method, []).append(_Entry(route, variant))

    def remove(self, method: str, pattern: str) -> Route:
        route, fresh = rebuilt_without(self, method, pattern)
        self._routes, self._groups = fresh._routes, fresh._groups
        self._ordered, self._signatures = fresh._ordered, fresh._signatures
        return route

    def match(self, method: str, path: str) -> Match | None:
        if path[:1] != "/":
            return None
        text = "" if path == "/" else path
        for group in self._ordered:
            if group.reach.fullmatch(text) is None:
                continue
            entries = group.by_method.get(method) or group.by_method.get(ANY_METHOD)
            if entries is None:
                continue
            best: Match | None = None
            best_weight = -1
            for entry in entries:
                if entry.weight > best_weight:
                    params = entry.params(text)
                    if params is not None:
                        best, best_weight = (entry.route, params), entry.weight
            if best is not None:
                return best
        return None

    # Every route is one regex here, static ones included: there is no
    # separate static lookup for a caller to skip.
    match_dynamic = match

    def allowed_methods(self, path: str) -> set[str]:
        """Every method with a route that matches ``path`` on its own."""
        if path[:1] != "/":
            return set()
        text = "" if path == "/" else path
        return {
            method
            for group in self._ordered
            for method, entries in group.by_method.items()
            if any(entry.params(text) is not None for entry in entries)
        }

    def routes(self) -> list[Route]:
        return list(self._routes)

    def stats(self) -> dict[str, Any]:
        # Not counted, like every bare strategy (see TrieRouter.stats).
        return {"strategy": self.name, "routes": len(self._routes), "lookups": None}

    def tick(self, now: float) -> None:
        """Nothing periodic: the table changes only on ``add``/``remove``."""


def _rank(group: _Group) -> tuple[int, ...]:
    return group.rank
