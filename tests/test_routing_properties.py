"""Differential property test: every strategy answers exactly like ``linear``.

Route tables and paths are drawn from one tiny alphabet so that routes
collide, shadow each other and force backtracking, and methods include the
any-method ``"*"``.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from h3lab.routing import (
    ROUTERS,
    CompiledRouter,
    LinearRouter,
    Route,
    Router,
    make_router,
    routing_path,
)

STATIC_SEGMENTS = ["a", "b", "ab", "%61", "c%2Fd"]
METHODS = ["GET", "POST", "*"]
# Path segments: the static texts (some spelled with escapes), the empty
# segment, and escapes that must stay inside one param when decoded.
PATH_SEGMENTS = ["a", "b", "ab", "c", "", "%61", "%62", "c%2Fd", "%2F", "%252F", "%0A", "x%25y"]

VARIANTS = [(name, "lru" if name == "hybrid" else "none") for name in ROUTERS.names()]
VARIANTS += [("trie", "lru"), ("compiled", "lru"), ("trie", "fifo"), ("compiled-tiny", "none")]


class TinyThresholdsCompiledRouter(CompiledRouter):
    """Forces the generated code's dict+bisect dispatch and subtree functions,
    which real tables only reach when they are wide or deep."""

    inline_static_max = 1
    max_nesting = 4


def handler() -> None:
    """Never called: only matching is under test."""


@st.composite
def patterns(draw: st.DrawFn) -> str:
    length = draw(st.integers(min_value=0, max_value=4))
    segments = []
    for position in range(length):
        kind = draw(st.sampled_from(["static", "static", "param", "star", "rest", "named_rest"]))
        is_last = position == length - 1
        if kind in ("rest", "named_rest") and not is_last:
            kind = "static"
        if kind == "static":
            segments.append(draw(st.sampled_from(STATIC_SEGMENTS)))
        elif kind == "param":
            # Names vary between routes of one shape, but never repeat in one pattern.
            segments.append(f":{draw(st.sampled_from(['id', 'x', 'slug']))}{position}")
        elif kind == "star":
            segments.append("*")
        elif kind == "rest":
            segments.append("**")
        else:
            segments.append(f"**:{draw(st.sampled_from(['rest', 'tail']))}")
    trailing = "/" if segments and draw(st.booleans()) else ""
    return "/" + "/".join(segments) + trailing


@st.composite
def raw_paths(draw: st.DrawFn) -> str:
    segments = draw(st.lists(st.sampled_from(PATH_SEGMENTS), max_size=5))
    trailing = "/" if draw(st.booleans()) else ""
    return "/" + "/".join(segments) + trailing


def build(variant: tuple[str, str], routes: list[Route]) -> Router:
    router: Router
    if variant[0] == "compiled-tiny":
        router = TinyThresholdsCompiledRouter()
    else:
        router = make_router(variant[0], variant[1], 8)  # small: evictions happen
    for route in routes:
        router.add(route)
    return router


def answer(router: Router, method: str, path: str) -> tuple[int, dict[str, str]] | None:
    found = router.match(method, path)
    return None if found is None else (id(found[0]), found[1])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    table=st.lists(st.tuples(st.sampled_from(METHODS), patterns()), max_size=12),
    requests=st.lists(st.tuples(st.sampled_from(["GET", "POST", "PUT"]), raw_paths()), max_size=12),
)
def test_every_strategy_agrees_with_linear(
    table: list[tuple[str, str]], requests: list[tuple[str, str]]
) -> None:
    oracle = LinearRouter()
    accepted: list[Route] = []
    for method, pattern in table:
        route = Route(method, pattern, handler)
        try:
            oracle.add(route)
        except ValueError:
            # A duplicate (method, shape): every strategy must refuse it too.
            for variant in VARIANTS:
                try:
                    build(variant, [*accepted, route])
                except ValueError:
                    continue
                raise AssertionError(f"{variant} accepted duplicate {route}") from None
            continue
        accepted.append(route)

    routers = {variant: build(variant, accepted) for variant in VARIANTS}
    # Twice over: the second round answers from the caches.
    for method, raw_path in requests * 2:
        path = routing_path(raw_path)
        expected = answer(oracle, method, path)
        allowed = oracle.allowed_methods(path)
        for variant, router in routers.items():
            assert answer(router, method, path) == expected, (variant, method, raw_path)
            assert router.allowed_methods(path) == allowed, (variant, raw_path)
        if expected is not None:
            # The oracle's own answer is consistent with its allowed methods.
            assert ({method, "*"} & allowed) != set()


@settings(max_examples=200, deadline=None)
@given(raw_path=raw_paths())
def test_routing_path_decodes_once_and_keeps_separators(raw_path: str) -> None:
    path = routing_path(raw_path)
    stripped = raw_path[:-1] if raw_path.endswith("/") and raw_path != "/" else raw_path
    # Decoding never creates or removes a separator.
    assert path.count("/") == stripped.count("/")
    # Applying it again only strips another trailing slash.
    assert routing_path(path) == (path[:-1] if path.endswith("/") and path != "/" else path)
