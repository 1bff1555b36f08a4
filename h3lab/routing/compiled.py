"""The compiled router: the route tree turned into one specialised function.

Theory of operation
-------------------
Registration is the trie's (``TrieRouter.add``): the same static dict, the
same tree, the same duplicate checks. What differs is the lookup. On the first
``match`` after a change, the tree is translated (Falcon-style) into the
Python source of a single ``find(method, path)`` function, which is
``compile()``d and ``exec``'d once; ``finder_src`` shows it. The function is
the tree walk unrolled: one nested ``if`` block per node, in the walk's order
(static child, dynamic child, wildcard leaf; at the end of the path the
routes ending there, a missing last ``*``, then ``**``), and a leaf is a chain
of ``if method == ...: ... elif ...: ... else: <"*" routes>``. Backtracking
needs no code: a branch that fails simply falls out of its ``if`` block into
the next alternative. A leaf holding one plain route per method is inlined; a
leaf with regex segments or several same-shape routes calls the trie's own
selection (``_pick``), so both strategies share one definition of it. The
generated code for a table looks like::

    def find(method, path):
        parts = path.split("/")
        ...
        if n > 1:
            s1 = parts[1]
            if s1 == 'users':
                if n > 2:
                    s2 = parts[2]
                    if n == 3:
                        if method == 'GET':
                            if s2:
                                return R3, {'id': (s2 if "%" not in s2 else _decode(s2))}

Adding a route drops the function; a ``threading.Lock`` makes sure that
concurrent first requests compile it once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, ClassVar

from h3lab.routing.base import ANY_METHOD, Match, Route
from h3lab.routing.pattern import NAMED_REST, REST, REST_PARAM, decode_param
from h3lab.routing.trie import NONEMPTY_REST, Entry, Leaf, Node, TrieRouter, pick

Finder = Callable[[str, str], "Match | None"]

# PERF: up to this many static siblings are tested with an if/elif chain of
# string compares (cheap: lengths differ or a short memcmp). Above it, one dict
# lookup maps the segment to the child's number and a binary tree of int
# compares picks the branch: O(log n) instead of a linear chain. Measured on
# "/resourceN/:id" tables: at 6 siblings the chain's worst case (last sibling)
# costs about what the dict does, at 16 the dict is ~10% faster.
INLINE_STATIC_MAX = 6

# CPython's tokenizer rejects more than 100 indentation levels; a subtree that
# would nest deeper than this moves into a function of its own.
MAX_NESTING = 60


class _FinderBuilder:
    """Generates the source of ``find`` (and helper functions) from a tree.

    Every text taken from a route (static segment, param name, method) enters
    the source through ``repr()``, so it is always a string literal: a pattern
    cannot inject code.
    """

    def __init__(self, inline_static_max: int, max_nesting: int) -> None:
        self.inline_static_max = inline_static_max
        self.max_nesting = max_nesting
        # PERF: routes and tables are globals of the generated module, bound to
        # short names, so the code refers to them as constants, not attributes.
        self.namespace: dict[str, Any] = {"_decode": decode_param, "_pick": pick}
        self.functions: list[list[str]] = []

    def constant(self, prefix: str, value: Any) -> str:
        name = f"{prefix}{len(self.namespace)}"
        self.namespace[name] = value
        return name

    def build(self, root: Node) -> str:
        body = [
            "def find(method, path):",
            '    parts = path.split("/")',
            "    n = len(parts)",
            "    if n < 2 or parts[0]:",
            "        return None",
            "    if n == 2 and not parts[1]:",
            "        n = 1  # '/' has no segments",
        ]
        self.node(root, 1, body, 1, frozenset())
        body.append("    return None")
        return "\n".join(line for function in [*self.functions, body] for line in function)

    # -- nodes -------------------------------------------------------------

    def node(self, node: Node, i: int, out: list[str], depth: int, scope: frozenset[int]) -> None:
        """Code that tries every route under ``node``, which sits at ``parts[i]``.

        ``scope`` holds the ``i`` whose ``s{i} = parts[i]`` local is assigned
        in the function being generated (captures elsewhere read ``parts``).
        """
        if depth > self.max_nesting:
            self.node_function(node, i, out, depth)
            return
        pad = "    " * depth
        dyn_leaf = node.dyn.leaf if node.dyn is not None else None
        if node.leaf is not None or dyn_leaf is not None or node.wild is not None:
            # The path ends here: routes ending at this node, then a missing
            # last `*`, then `**` with zero segments (see TrieRouter).
            out.append(f"{pad}if n == {i}:")
            before = len(out)
            self.leaf(node.leaf, out, depth + 1, scope, i, optional_only=False)
            self.leaf(dyn_leaf, out, depth + 1, scope, i, optional_only=True)
            self.leaf(node.wild, out, depth + 1, scope, i, optional_only=True)
            if len(out) == before:
                out.append(f"{pad}    pass")
        if not node.static and not node.branches:
            return
        out.append(f"{pad}if n > {i}:")
        depth += 1
        pad = "    " * depth
        out.append(f"{pad}s{i} = parts[{i}]")
        scope = scope | {i}
        self.static_children(node, i, out, depth, scope)
        if node.dyn is not None:
            self.node(node.dyn, i + 1, out, depth, scope)
        self.leaf(node.wild, out, depth, scope, None, optional_only=False)

    def static_children(
        self, node: Node, i: int, out: list[str], depth: int, scope: frozenset[int]
    ) -> None:
        pad = "    " * depth
        children = list(node.static.items())
        if not children:
            return
        if len(children) <= self.inline_static_max:
            keyword = "if"
            for text, child in children:
                out.append(f"{pad}{keyword} s{i} == {text!r}:")
                self.node(child, i + 1, out, depth + 1, scope)
                keyword = "elif"  # at most one static sibling can be equal
            return
        table = self.constant("T", {text: number for number, (text, _) in enumerate(children)})
        out.append(f"{pad}k{i} = {table}.get(s{i})")
        out.append(f"{pad}if k{i} is not None:")

        def bisect(lo: int, hi: int, depth: int) -> None:
            if hi - lo == 1:
                self.node(children[lo][1], i + 1, out, depth, scope)
                return
            mid = (lo + hi) // 2
            out.append(f"{'    ' * depth}if k{i} < {mid}:")
            bisect(lo, mid, depth + 1)
            out.append(f"{'    ' * depth}else:")
            bisect(mid, hi, depth + 1)

        bisect(0, len(children), depth + 1)

    def node_function(self, node: Node, i: int, out: list[str], depth: int) -> None:
        name = f"_subtree{len(self.functions)}"
        function = [f"def {name}(method, parts, n):"]
        self.functions.append(function)
        self.node(node, i, function, 1, frozenset())
        function.append("    return None")
        pad = "    " * depth
        out.append(f"{pad}hit = {name}(method, parts, n)")
        out.append(f"{pad}if hit is not None:")
        out.append(f"{pad}    return hit")

    # -- leaves ------------------------------------------------------------

    def leaf(
        self,
        leaf: Leaf | None,
        out: list[str],
        depth: int,
        scope: frozenset[int],
        end: int | None,
        optional_only: bool,
    ) -> None:
        """rou3's choice at a leaf: the method's entries if it has any, else
        its ``"*"`` entries (a failing method entry never falls back to "*")."""
        if leaf is None:
            return
        pad = "    " * depth
        keyword = "if"
        for method, entries in leaf.items():
            if method == ANY_METHOD:
                continue
            out.append(f"{pad}{keyword} method == {method!r}:")
            self.entries(leaf, entries, out, depth + 1, scope, end, optional_only)
            keyword = "elif"
        if ANY_METHOD in leaf:
            if keyword == "elif":
                out.append(f"{pad}else:")
                depth += 1
            self.entries(leaf, leaf[ANY_METHOD], out, depth, scope, end, optional_only)

    def entries(
        self,
        leaf: Leaf,
        entries: list[Entry],
        out: list[str],
        depth: int,
        scope: frozenset[int],
        end: int | None,
        optional_only: bool,
    ) -> None:
        pad = "    " * depth
        candidates = [entry for entry in entries if entry.optional or not optional_only]
        if not candidates:
            out.append(f"{pad}pass  # no route here takes a missing segment")
            return
        entry = candidates[0]
        if len(candidates) > 1 or any(
            check not in (None, NONEMPTY_REST) for _, check in entry.checks
        ):
            # Several candidates or a regex segment: the trie's own selection.
            name = self.constant("L", leaf)
            out.append(f"{pad}hit = _pick({name}, method, parts, n, {optional_only})")
            out.append(f"{pad}if hit is not None:")
            out.append(f"{pad}    return hit")
            return
        conditions = []
        for index, check in entry.checks:
            segment = f"s{index}" if index in scope else f"parts[{index}]"
            if check is None:
                conditions.append(segment)
            else:
                conditions.append(f"(n > {index + 1} or {segment})")
        result = f"return {self.constant('R', entry.route)}, {self.params(entry, scope, end)}"
        if conditions:
            out.append(f"{pad}if {' and '.join(conditions)}:")
            out.append(f"{pad}    {result}")
        else:
            out.append(f"{pad}{result}")

    @staticmethod
    def params(entry: Entry, scope: frozenset[int], end: int | None) -> str:
        # PERF: a dict display with constant keys, built only for the chosen
        # route; a value is decoded only when it holds a '%'.
        items = []
        for kind, name, index, _, _ in entry.captures:
            if end is not None and index >= end:  # a missing last `*` or `**`
                if kind == REST:
                    items.append(f"{REST_PARAM!r}: ''")
                continue
            if kind >= NAMED_REST:
                value = f'_decode("/".join(parts[{index}:]))'
            elif index in scope:
                value = f'(s{index} if "%" not in s{index} else _decode(s{index}))'
            else:
                value = f"_decode(parts[{index}])"
            items.append(f"{name!r}: {value}")
        return "{" + ", ".join(items) + "}"


class CompiledRouter(TrieRouter):
    """The trie, compiled into one generated Python function per table."""

    name: ClassVar[str] = "compiled"
    # Code-generation thresholds (class attributes so a test can force the
    # dict/bisect dispatch and the subtree functions on small tables).
    inline_static_max: ClassVar[int] = INLINE_STATIC_MAX
    max_nesting: ClassVar[int] = MAX_NESTING

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._finder: Finder | None = None
        self._finder_src = ""
        self._compilations = 0

    def add(self, route: Route) -> None:
        with self._lock:
            super().add(route)
            self._finder = None  # recompiled on the next dynamic lookup

    def remove(self, method: str, pattern: str) -> Route:
        with self._lock:
            route = super().remove(method, pattern)
            self._finder = None
        return route

    def _compile(self) -> Finder:
        with self._lock:
            # Double-checked: threads that queued on the lock find it built.
            if self._finder is None:
                builder = _FinderBuilder(self.inline_static_max, self.max_nesting)
                source = builder.build(self._root)
                code = compile(source, "<h3lab.routing.compiled>", "exec")
                exec(code, builder.namespace)
                self._finder_src = source
                self._finder = builder.namespace["find"]
                self._compilations += 1
            return self._finder

    @property
    def finder_src(self) -> str:
        """The generated source of the current matcher (compiling it if needed)."""
        if self._finder is None:
            self._compile()
        return self._finder_src

    def match(self, method: str, path: str) -> Match | None:
        # PERF: static routes never reach the generated code (they are not in
        # the tree): one dict lookup answers them, as in the trie.
        methods = self._static.get(path)
        if methods is not None:
            route = methods.get(method) or methods.get(ANY_METHOD)
            if route is not None:
                return route, {}
        finder = self._finder
        if finder is None:
            finder = self._compile()
        return finder(method, path)

    def match_dynamic(self, method: str, path: str) -> Match | None:
        finder = self._finder
        if finder is None:
            finder = self._compile()
        return finder(method, path)

    def stats(self) -> dict[str, Any]:
        return {**super().stats(), "compilations": self._compilations}
