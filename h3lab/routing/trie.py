"""The trie router: an exact dict for static routes, then a segment tree.

Theory of operation
-------------------
Fully static routes (no param, no wildcard) live only in ``_static``, a dict
``routing path -> {method: route}``. A static route that matches is always the
one the tree walk would pick (its per-segment kinds are all "static", the
smallest possible), so checking the dict first is exact, and keeping those
routes out of the tree keeps the tree small.

Every other route is a path of nodes, one per segment. A node has a dict of
static children, at most one ``:param`` child and one ``*`` child (the name is
not part of the node: param names belong to the route), and the leaves of the
``**:name`` and ``**`` wildcards hanging off it. A leaf is a dict
``method -> (route, captures)``; ``captures`` says which split-path indices
hold each of *that route's* params, so ``/t/:id`` and ``/t/:idY/y`` share the
``:param`` node yet each gets its own names, and the walk itself never records
anything: the params are read back from the split path once a leaf is chosen.

Lookup is a depth-first walk that, at each segment, tries the static child,
then ``:param``, then ``*`` (both need a non-empty segment), then ``**:name``
(needs some text left), then ``**``, backtracking when a branch dead-ends. At
a leaf the exact method wins over ``"*"``, and a leaf with neither is a dead
end like any other. Along a chain of nodes that only have static children
there is nothing to backtrack to, so the walk loops instead of recursing.
"""

from __future__ import annotations

from typing import Any, ClassVar

from h3lab.routing.base import ANY_METHOD, Match, Params, Route
from h3lab.routing.pattern import (
    NAMED_REST,
    PARAM,
    REST,
    STAR,
    STATIC,
    ParsedPattern,
    parse_pattern,
)
from h3lab.routing.pattern import decode_param as _decode

# (name, index into path.split("/"), is a rest capture)
Captures = tuple[tuple[str, int, bool], ...]
LeafEntry = tuple[Route, Captures]
Leaf = dict[str, LeafEntry]


class Node:
    __slots__ = ("branches", "leaf", "named_rest", "param", "rest", "star", "static")

    def __init__(self) -> None:
        self.static: dict[str, Node] = {}
        self.param: Node | None = None
        self.star: Node | None = None
        self.named_rest: Leaf | None = None  # leaf of a `**:name` child
        self.rest: Leaf | None = None  # leaf of a `**` child
        self.leaf: Leaf | None = None  # routes that end at this node
        # True when the node has anything besides static children, i.e. when
        # a failed static child leaves something to backtrack to.
        self.branches = False


def _search(node: Node, parts: list[str], i: int, n: int, method: str) -> LeafEntry | None:
    """Depth-first walk from ``node`` at ``parts[i]``; the chosen leaf entry."""
    while i < n:
        segment = parts[i]
        i += 1
        child = node.static.get(segment)
        if not node.branches:
            if child is None:
                return None
            node = child  # nothing to backtrack to: loop, don't recurse
            continue
        if child is not None:
            hit = _search(child, parts, i, n, method)
            if hit is not None:
                return hit
        if segment:
            if node.param is not None:
                hit = _search(node.param, parts, i, n, method)
                if hit is not None:
                    return hit
            if node.star is not None:
                hit = _search(node.star, parts, i, n, method)
                if hit is not None:
                    return hit
        # `**:name` needs non-empty text: this segment, or a '/' to a next one.
        leaf = node.named_rest
        if leaf is not None and (segment or i < n):
            hit = leaf.get(method) or leaf.get(ANY_METHOD)
            if hit is not None:
                return hit
        leaf = node.rest
        if leaf is not None:
            return leaf.get(method) or leaf.get(ANY_METHOD)
        return None
    # The path ends here: routes ending at this node, then `**` with zero segments.
    leaf = node.leaf
    if leaf is not None:
        hit = leaf.get(method) or leaf.get(ANY_METHOD)
        if hit is not None:
            return hit
    leaf = node.rest
    if leaf is not None:
        return leaf.get(method) or leaf.get(ANY_METHOD)
    return None


def _collect(node: Node, parts: list[str], i: int, n: int, out: set[str]) -> None:
    """Every method of every route under ``node`` that matches (slow path)."""
    if i == n:
        for leaf in (node.leaf, node.rest):
            if leaf is not None:
                out.update(leaf)
        return
    segment = parts[i]
    child = node.static.get(segment)
    if child is not None:
        _collect(child, parts, i + 1, n, out)
    if segment:
        for child in (node.param, node.star):
            if child is not None:
                _collect(child, parts, i + 1, n, out)
    if node.named_rest is not None and (segment or i + 1 < n):
        out.update(node.named_rest)
    if node.rest is not None:
        out.update(node.rest)


def split_for_search(path: str) -> tuple[list[str], int] | None:
    """``path.split("/")`` and the index one past its last segment.

    Segment ``k`` is at index ``k + 1`` (index 0 is the empty text before the
    leading '/'); ``/`` has no segments. None for a path that is not absolute.
    """
    parts = path.split("/")
    n = len(parts)
    if n < 2 or parts[0]:
        return None
    if n == 2 and not parts[1]:
        n = 1
    return parts, n


class TrieRouter:
    """Static dict + segment tree with backtracking depth-first lookup."""

    name: ClassVar[str] = "trie"

    def __init__(self) -> None:
        self._routes: list[Route] = []
        self._shapes: set[tuple[str, tuple[tuple[int, str], ...]]] = set()
        self._static: dict[str, dict[str, Route]] = {}
        self._root = Node()

    # -- registration ------------------------------------------------------

    def add(self, route: Route) -> None:
        parsed = parse_pattern(route.pattern)
        key = (route.method, parsed.shape)
        if key in self._shapes:
            raise ValueError(f"duplicate route: {route.method} {route.pattern}")
        if parsed.static_path is not None:
            self._static.setdefault(parsed.static_path, {})[route.method] = route
        else:
            self._insert(route, parsed)
        self._shapes.add(key)
        self._routes.append(route)

    def _insert(self, route: Route, parsed: ParsedPattern) -> None:
        node = self._root
        leaf: Leaf | None = None
        for segment in parsed.segments:
            kind = segment.kind
            if kind == STATIC:
                node = node.static.setdefault(segment.text, Node())
                continue
            node.branches = True
            if kind == PARAM:
                node.param = node.param or Node()
                node = node.param
            elif kind == STAR:
                node.star = node.star or Node()
                node = node.star
            elif kind == NAMED_REST:
                node.named_rest = leaf = node.named_rest or {}
            elif kind == REST:
                node.rest = leaf = node.rest or {}
        if leaf is None:
            node.leaf = leaf = node.leaf or {}
        # +1: segment k is parts[k + 1] in path.split("/")
        captures = tuple((c.name, c.index + 1, c.rest) for c in parsed.captures)
        leaf[route.method] = (route, captures)

    # -- lookup ------------------------------------------------------------

    def match(self, method: str, path: str) -> Match | None:
        methods = self._static.get(path)
        if methods is not None:
            route = methods.get(method) or methods.get(ANY_METHOD)
            if route is not None:
                return route, {}
        return self.match_dynamic(method, path)

    def match_dynamic(self, method: str, path: str) -> Match | None:
        """The tree part of ``match``, for callers that checked the static dict."""
        parts = path.split("/")
        n = len(parts)
        if n < 2 or parts[0]:
            return None
        if n == 2 and not parts[1]:
            n = 1  # "/" has no segments
        entry = _search(self._root, parts, 1, n, method)
        if entry is None:
            return None
        route, captures = entry
        # PERF: built inline (a helper call costs as much as the loop); params
        # are read back from `parts` only now that the route is chosen.
        params: Params = {}
        for name, index, rest in captures:
            value = "/".join(parts[index:]) if rest else parts[index]
            params[name] = _decode(value) if "%" in value else value
        return route, params

    def allowed_methods(self, path: str) -> set[str]:
        methods = set(self._static.get(path, ()))
        split = split_for_search(path)
        if split is not None:
            _collect(self._root, split[0], 1, split[1], methods)
        return methods

    def routes(self) -> list[Route]:
        return list(self._routes)

    def static_methods(self, path: str) -> dict[str, Route] | None:
        """The fully static routes of exactly this path, by method."""
        return self._static.get(path)

    def stats(self) -> dict[str, Any]:
        # PERF: lookups are not counted by the bare strategies: an increment
        # measured 15-20 ns, about 15% of a static hit. CachedRouter (and so
        # hybrid) counts them; None here means "not counted", not zero.
        return {"strategy": self.name, "routes": len(self._routes), "lookups": None}
