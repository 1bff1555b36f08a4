"""The trie router: an exact dict for static routes, then rou3's segment tree.

Theory of operation
-------------------
Fully static variants (no param, no wildcard) live only in ``_static``, a
dict ``routing path -> {method: route}``. A static variant that matches is
always the one the tree walk would pick (its classes are all "static", the
smallest possible), so checking the dict first is exact, and keeping those
routes out of the tree keeps the tree small.

Every other variant is a path of nodes, one per segment, as in rou3: a node
has a dict of static children, at most one *dynamic* child shared by every
one-segment kind (``:name``, ``*``, and the regex segments: ``:id(\\d+)``,
``@:p``, ``*.png``...), and one *wildcard* leaf shared by ``**`` and
``**:name``. A leaf is a dict ``method -> entries`` in registration order.
Param names and regexes belong to the entries, not to the nodes, so
``/t/:id`` and ``/t/:idY/y`` share the dynamic node yet each gets its own
names; the walk records nothing and the params are read back from the split
path once an entry is chosen.

Lookup is a depth-first walk that, at each segment, tries the static child,
then the dynamic child, then the wildcard leaf, backtracking when a branch
dead-ends. When the path ends at a node: the routes ending there, then the
dynamic child's routes whose last segment may be missing (a trailing ``*``),
then the wildcard's (``**``). At a leaf (``_select``, rou3's
``_selectMatcher``): the request method's entries if the leaf has any, else
its ``"*"`` entries; of those, the ones whose checks pass (a ``:name`` is
non-empty, a regex segment matches, ``**:name`` has text); the highest weight
wins, ties go to the first registered. A leaf that selects nothing is a dead
end like any other. Along a chain of nodes that only have static children
there is nothing to backtrack to, so the walk loops instead of recursing.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from h3lab.routing.base import ANY_METHOD, Match, Params, Route, rebuilt_without
from h3lab.routing.pattern import (
    COMPLEX,
    KIND_CLASS,
    NAMED_REST,
    PARAM,
    REST,
    REST_PARAM,
    STATIC,
    ParsedPattern,
    parse_pattern,
)
from h3lab.routing.pattern import decode_param as _decode

# A check on one split-path index: None = non-empty segment, a regex = the
# segment fullmatches it, NONEMPTY_REST = the text from there on is non-empty.
NONEMPTY_REST = "rest"
Check = tuple[int, "re.Pattern[str] | str | None"]
# (kind, param name, index into path.split("/"), regex and names if COMPLEX)
Capture = tuple[int, str, int, "re.Pattern[str] | None", tuple[tuple[str, str], ...]]


class Entry:
    """One variant of one route, at the leaf where it ends."""

    __slots__ = (
        "captures",
        "checks",
        "nonempty",
        "optional",
        "plain",
        "rest_nonempty",
        "route",
        "weight",
    )

    def __init__(self, route: Route, parsed: ParsedPattern) -> None:
        self.route = route
        self.weight = parsed.weight
        self.optional = parsed.optional_last
        checks: list[Check] = []
        captures: list[Capture] = []
        for position, segment in enumerate(parsed.segments):
            index = position + 1  # segment k is parts[k + 1] in path.split("/")
            kind = segment.kind
            if kind == STATIC:
                continue
            if kind == PARAM:
                checks.append((index, None))
            elif kind == COMPLEX:
                checks.append((index, segment.regex))
            elif kind == NAMED_REST:
                checks.append((index, NONEMPTY_REST))
            captures.append((kind, segment.text, index, segment.regex, segment.names))
        self.checks = tuple(checks)
        self.captures = tuple(captures)
        # PERF: the common entries (no regex segment) skip the generic code:
        # `nonempty` lists the `:name` indices to test, `rest_nonempty` the
        # index of a `**:name` (0 if none), and `plain` is (name, index, is a
        # rest capture) for each param.
        self.nonempty: tuple[int, ...] | None = None
        self.rest_nonempty = 0
        self.plain: tuple[tuple[str, int, bool], ...] | None = None
        if all(check is None or check is NONEMPTY_REST for _, check in checks):
            self.nonempty = tuple(index for index, check in checks if check is None)
            self.rest_nonempty = next((i for i, c in checks if c is NONEMPTY_REST), 0)
        if all(capture[3] is None for capture in captures):
            self.plain = tuple((c[1], c[2], c[0] >= NAMED_REST) for c in captures)

    def passes(self, parts: list[str], n: int) -> bool:
        for index, check in self.checks:
            if check is None:
                if not parts[index]:
                    return False
            elif check is NONEMPTY_REST:
                if index == n - 1 and not parts[index]:
                    return False
            elif check.fullmatch(parts[index]) is None:  # type: ignore[union-attr]  # a regex: the sentinels are taken above
                return False
        return True

    def params(self, parts: list[str], n: int) -> Params:
        params: Params = {}
        for kind, name, index, regex, names in self.captures:
            if index >= n:  # a missing last '*' (no param) or '**' ("")
                if kind == REST:
                    params[REST_PARAM] = ""
                continue
            if kind >= NAMED_REST:
                value = "/".join(parts[index:])
            elif regex is not None:
                found = regex.fullmatch(parts[index])
                assert found is not None  # checked by `passes`
                for group, param in names:
                    piece = found.group(group)
                    if piece is not None:
                        params[param] = _decode(piece) if "%" in piece else piece
                continue
            else:
                value = parts[index]
            params[name] = _decode(value) if "%" in value else value
        return params


Leaf = dict[str, list[Entry]]


def select(leaf: Leaf, method: str, parts: list[str], n: int, optional_only: bool) -> Entry | None:
    """rou3's choice among the entries of one leaf (see the module doc)."""
    entries = leaf.get(method) or leaf.get(ANY_METHOD)
    if entries is None:
        return None
    if len(entries) == 1 and not optional_only:
        # PERF: one route of this shape and method, the common case.
        entry = entries[0]
        nonempty = entry.nonempty
        if nonempty is None:
            return entry if entry.passes(parts, n) else None
        for index in nonempty:
            if not parts[index]:
                return None
        rest = entry.rest_nonempty
        if rest and rest == n - 1 and not parts[rest]:
            return None
        return entry
    best: Entry | None = None
    best_weight = -1
    for entry in entries:
        if optional_only and not entry.optional:
            continue
        if entry.weight > best_weight and (not entry.checks or entry.passes(parts, n)):
            best, best_weight = entry, entry.weight
    return best


def pick(leaf: Leaf, method: str, parts: list[str], n: int, optional_only: bool) -> Any:
    """``select`` then params, for generated code: a Match or None."""
    entry = select(leaf, method, parts, n, optional_only)
    return None if entry is None else (entry.route, entry.params(parts, n))


class Node:
    __slots__ = ("branches", "dyn", "leaf", "static", "wild")

    def __init__(self) -> None:
        self.static: dict[str, Node] = {}
        self.dyn: Node | None = None  # every one-segment kind
        self.wild: Leaf | None = None  # `**` and `**:name` routes
        self.leaf: Leaf | None = None  # routes that end at this node
        # True when the node has anything besides static children, i.e. when
        # a failed static child leaves something to backtrack to.
        self.branches = False


def _search(node: Node, parts: list[str], i: int, n: int, method: str) -> Entry | None:
    """Depth-first walk from ``node`` at ``parts[i]``; the chosen entry."""
    while i < n:
        child = node.static.get(parts[i])
        i += 1
        if not node.branches:
            if child is None:
                return None
            node = child  # nothing to backtrack to: loop, don't recurse
            continue
        if child is not None:
            hit = _search(child, parts, i, n, method)
            if hit is not None:
                return hit
        if node.dyn is not None:
            hit = _search(node.dyn, parts, i, n, method)
            if hit is not None:
                return hit
        wild = node.wild
        if wild is None:
            return None
        entries = wild.get(method) or wild.get(ANY_METHOD)
        if entries is None:
            return None
        entry = entries[0]
        nonempty = entry.nonempty
        if len(entries) > 1 or nonempty is None:
            return select(wild, method, parts, n, False)
        # PERF: `select` inlined for one plain route, the common case.
        for index in nonempty:
            if not parts[index]:
                return None
        rest = entry.rest_nonempty
        if rest and rest == n - 1 and not parts[rest]:
            return None
        return entry
    # The path ends here: routes ending at this node, then a missing last
    # segment for a trailing `*`, then `**` with zero segments.
    leaf = node.leaf
    if leaf is not None:
        entries = leaf.get(method) or leaf.get(ANY_METHOD)
        if entries is not None:
            # PERF: `select` inlined for one plain route, the common case.
            entry = entries[0]
            nonempty = entry.nonempty
            if len(entries) == 1 and nonempty is not None and not entry.rest_nonempty:
                for index in nonempty:
                    if not parts[index]:
                        break
                else:
                    return entry
            else:
                hit = select(leaf, method, parts, n, False)
                if hit is not None:
                    return hit
    dyn = node.dyn
    if dyn is not None and dyn.leaf is not None:
        hit = select(dyn.leaf, method, parts, n, True)
        if hit is not None:
            return hit
    if node.wild is not None:
        return select(node.wild, method, parts, n, True)
    return None


def _collect_leaf(
    leaf: Leaf | None, parts: list[str], n: int, optional: bool, out: set[str]
) -> None:
    if leaf is None:
        return
    for method, entries in leaf.items():
        if method not in out and any(
            (entry.optional or not optional) and entry.passes(parts, n) for entry in entries
        ):
            out.add(method)


def _collect(node: Node, parts: list[str], i: int, n: int, out: set[str]) -> None:
    """Every method of every route under ``node`` that matches (slow path)."""
    if i == n:
        _collect_leaf(node.leaf, parts, n, False, out)
        if node.dyn is not None:
            _collect_leaf(node.dyn.leaf, parts, n, True, out)
        _collect_leaf(node.wild, parts, n, True, out)
        return
    child = node.static.get(parts[i])
    if child is not None:
        _collect(child, parts, i + 1, n, out)
    if node.dyn is not None:
        _collect(node.dyn, parts, i + 1, n, out)
    _collect_leaf(node.wild, parts, n, False, out)


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
    requires_cache: ClassVar[bool] = False

    def __init__(self) -> None:
        self._routes: list[Route] = []
        self._signatures: set[tuple[str, tuple[tuple[object, ...], ...]]] = set()
        self._static: dict[str, dict[str, Route]] = {}
        self._root = Node()

    # -- registration ------------------------------------------------------

    def add(self, route: Route) -> None:
        variants = parse_pattern(route.pattern)
        keys = [(route.method, variant.signature) for variant in variants]
        if all(key in self._signatures for key in keys):
            raise ValueError(f"duplicate route: {route.method} {route.pattern}")
        self._signatures.update(keys)
        for variant in variants:
            if variant.static_path is not None:
                # setdefault: an earlier route keeps an overlapping variant.
                self._static.setdefault(variant.static_path, {}).setdefault(route.method, route)
            else:
                self._insert(route, variant)
        self._routes.append(route)

    def _insert(self, route: Route, parsed: ParsedPattern) -> None:
        node = self._root
        leaf: Leaf | None = None
        for segment in parsed.segments:
            klass = KIND_CLASS[segment.kind]
            if klass == 0:
                node = node.static.setdefault(segment.text, Node())
                continue
            node.branches = True
            if klass == 1:
                node.dyn = node.dyn or Node()
                node = node.dyn
            else:
                node.wild = leaf = node.wild or {}
        if leaf is None:
            node.leaf = leaf = node.leaf or {}
        leaf.setdefault(route.method, []).append(Entry(route, parsed))

    def remove(self, method: str, pattern: str) -> Route:
        route, fresh = rebuilt_without(self, method, pattern)
        self._routes, self._signatures = fresh._routes, fresh._signatures
        self._static, self._root = fresh._static, fresh._root
        return route

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
        plain = entry.plain
        if plain is None:
            return entry.route, entry.params(parts, n)
        # PERF: built inline (a helper call costs as much as the loop); params
        # are read back from `parts` only now that the route is chosen.
        params: Params = {}
        for name, index, rest in plain:
            if index >= n:  # a missing last '*' (no param) or '**' ("")
                if rest:
                    params[name] = ""
                continue
            value = "/".join(parts[index:]) if rest else parts[index]
            params[name] = _decode(value) if "%" in value else value
        return entry.route, params

    def allowed_methods(self, path: str) -> set[str]:
        methods = set(self._static.get(path, ()))
        split = split_for_search(path)
        if split is not None:
            _collect(self._root, split[0], 1, split[1], methods)
        return methods

    def routes(self) -> list[Route]:
        return list(self._routes)

    def stats(self) -> dict[str, Any]:
        # PERF: lookups are not counted by the bare strategies: an increment
        # measured 15-20 ns, about 15% of a static hit. CachedRouter (whatever
        # the matcher behind it) counts them; None here means "not counted", not zero.
        return {"strategy": self.name, "routes": len(self._routes), "lookups": None}

    def tick(self, now: float) -> None:
        """Nothing periodic: the tree changes only on ``add``/``remove``."""
