"""Differential property test: every strategy answers exactly like ``linear``.

Route tables and paths are drawn from one tiny alphabet so that routes
collide, shadow each other and force backtracking, and methods include the
any-method ``"*"``. Patterns use the whole syntax: params, regex-constrained
and unnamed-group params, optional and repeated params, text mixed with params
and in-segment ``*``, ``{...}?`` groups, escapes and the wildcards.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from h3lab.routing import (
    CompiledRouter,
    LinearRouter,
    Route,
    Router,
    routing_path,
)
from tests.conftest import build_router, router_variants

STATIC_SEGMENTS = ["a", "b", "ab", "%61", "c%2Fd", "\\:a", "1"]
METHODS = ["GET", "POST", "*"]
# Path segments: the static texts (some spelled with escapes), the empty
# segment, texts the regex and mixed segments accept or refuse, and escapes
# that must stay inside one param when decoded.
PATH_SEGMENTS = [
    "a",
    "b",
    "ab",
    "c",
    "",
    "1",
    "12",
    "@a",
    "a.b",
    "1-a",
    ":a",
    "%61",
    "%62",
    "c%2Fd",
    "%2F",
    "%252F",
    "%5C",
    "%0A",
    "x%25y",
]
# One-segment forms; {p} is replaced by a name unique in the pattern.
DYNAMIC_SEGMENTS = [
    ":{p}",
    "*",
    ":{p}(\\d+)",
    ":{p}([ab]+)",
    "(\\d+)",
    "@:{p}",
    ":{p}.:{p}x",
    "*.b",
    "a*",
    ":{p}(\\d+){{-:{p}t}}?",
    ":{p}?",
    "{{a}}?b",
]
LAST_SEGMENTS = ["**", "**:rest", ":{p}+", ":{p}*"]

# hybrid is the trie behind an LRU: ("trie", "lru") would repeat it.
VARIANTS = router_variants()
VARIANTS += [("compiled", "lru"), ("trie", "fifo"), ("compiled-tiny", "none")]


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
        kind = draw(st.sampled_from(["static", "static", "dynamic", "dynamic", "last"]))
        if kind == "last" and position != length - 1:
            kind = "static"
        # Names vary between routes of one shape, but never repeat in one pattern.
        name = f"{draw(st.sampled_from(['id', 'x']))}{position}"
        if kind == "static":
            segments.append(draw(st.sampled_from(STATIC_SEGMENTS)))
        elif kind == "dynamic":
            segments.append(draw(st.sampled_from(DYNAMIC_SEGMENTS)).format(p=name))
        else:
            segments.append(draw(st.sampled_from(LAST_SEGMENTS)).format(p=name))
    trailing = draw(st.sampled_from(["", "", "/", "//"])) if segments else ""
    return "/" + "/".join(segments) + trailing


@st.composite
def raw_paths(draw: st.DrawFn) -> str:
    segments = draw(st.lists(st.sampled_from(PATH_SEGMENTS), max_size=5))
    trailing = draw(st.sampled_from(["", "", "/", "//", "///"]))
    return "/" + "/".join(segments) + trailing


def build(variant: tuple[str, str], routes: list[Route]) -> Router:
    router: Router
    if variant[0] == "compiled-tiny":
        router = TinyThresholdsCompiledRouter()
    else:
        router = build_router(variant[0], variant[1], 8)  # small: evictions happen
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
            # A duplicate, or a pattern the syntax refuses: every strategy
            # must refuse it too.
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
    stripped = raw_path
    for _ in range(2):  # up to two trailing slashes go, never the root
        if stripped.endswith("/") and stripped != "/":
            stripped = stripped[:-1]
    # Decoding never creates or removes a separator, '/' or '\\'.
    assert path.count("/") == stripped.count("/")
    assert path.count("\\") == stripped.count("\\")
    # Idempotent once no trailing slash is left to strip.
    if not path.endswith("/"):
        assert routing_path(path) == path


@settings(max_examples=300, deadline=None)
@given(raw_path=raw_paths())
def test_params_never_gain_a_separator(raw_path: str) -> None:
    router = LinearRouter()
    router.add(Route("GET", "/**:rest", handler))
    router.add(Route("GET", "/:one", handler))
    path = routing_path(raw_path)
    found = router.match("GET", path)
    if found is None:
        return
    for value in found[1].values():
        # A param holds exactly the separators the routing path had there.
        assert value.count("/") == (path.count("/") - 1)
        assert "\\" not in value


def test_generated_tables_are_mostly_valid() -> None:
    """The generators exercise the syntax, not just the error path."""
    accepted = 0
    patterns_seen = 0

    @settings(max_examples=300, deadline=None, database=None)
    @given(pattern=patterns())
    def count(pattern: str) -> None:
        nonlocal accepted, patterns_seen
        patterns_seen += 1
        try:
            LinearRouter().add(Route("GET", pattern, handler))
            accepted += 1
        except ValueError:
            pass

    count()
    assert accepted >= patterns_seen * 0.8, (accepted, patterns_seen)
