"""Behavioural table for every route matching strategy (and cached variants)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from h3lab.cache import CACHES
from h3lab.config import CacheConfig, RouterConfig
from h3lab.routing import (
    ANY_METHOD,
    ROUTERS,
    CachedRouter,
    CompiledRouter,
    LinearRouter,
    Route,
    Router,
    TrieRouter,
    make_router,
    parse_pattern,
    routing_path,
)
from h3lab.routing import compiled as compiled_module
from tests.conftest import build_router, router_variants

# (matching, cache policy): every registered strategy as configured by default
# (hybrid requires the route cache), plus other strategies behind a cache.
PLAIN_VARIANTS = router_variants()
CACHED_VARIANTS = [("linear", "lru"), ("trie", "lru"), ("compiled", "lru"), ("trie", "lfu")]
ALL_VARIANTS = PLAIN_VARIANTS + CACHED_VARIANTS


def variant_id(variant: tuple[str, str]) -> str:
    matching, policy = variant
    return matching if (matching, policy) in PLAIN_VARIANTS else f"{matching}+{policy}"


def handler() -> None:
    """Routes need a handler; matching never calls it."""


class Table:
    """A router plus the routes added to it, looked up by "METHOD /pattern"."""

    def __init__(self, router: Router) -> None:
        self.router = router
        self.by_spec: dict[str, Route] = {}

    def add(self, *specs: str) -> Table:
        for spec in specs:
            method, pattern = spec.split(" ", 1)
            route = Route(method, pattern, handler)
            self.router.add(route)
            self.by_spec[spec] = route
        return self

    def find(self, method: str, raw_path: str) -> tuple[str, dict[str, str]] | None:
        """The matched route's spec and params, for a raw request path."""
        found = self.router.match(method, routing_path(raw_path))
        if found is None:
            return None
        route, params = found
        assert self.by_spec[f"{route.method} {route.pattern}"] is route
        return f"{route.method} {route.pattern}", params


@pytest.fixture(params=ALL_VARIANTS, ids=variant_id)
def router(request: pytest.FixtureRequest) -> Router:
    matching, policy = request.param
    return build_router(matching, policy, 256)


@pytest.fixture
def table(router: Router) -> Table:
    return Table(router)


@pytest.fixture(params=[v for v in ALL_VARIANTS if v[1] != "none"], ids=variant_id)
def cached_router(request: pytest.FixtureRequest) -> CachedRouter:
    matching, policy = request.param
    router = build_router(matching, policy, 64)
    assert isinstance(router, CachedRouter)
    return router


def test_fixture_covers_every_registered_strategy() -> None:
    assert [matching for matching, _ in PLAIN_VARIANTS] == list(ROUTERS.names())
    assert set(ROUTERS.names()) == {"linear", "trie", "compiled", "hybrid"}
    assert list(ROUTERS.names()) == ["linear", "trie", "compiled", "hybrid"]


def test_every_variant_is_a_router(router: Router) -> None:
    assert isinstance(router, Router)


# --- the examples of the spec and rou3's table -----------------------------

SPEC_ROUTES = (
    "GET /test",
    "GET /test/:id",
    "GET /test/foo",
    "GET /test/foo/*",
    "GET /test/foo/**",
    "GET /wildcard/**",
    "GET /**",
)


@pytest.mark.parametrize(
    ("path", "expected", "params"),
    [
        ("/test", "GET /test", {}),
        ("/test/foo", "GET /test/foo", {}),  # rou3 case 1: static beats :id
        ("/test/123", "GET /test/:id", {"id": "123"}),  # 2
        ("/test/foo/123", "GET /test/foo/*", {"0": "123"}),  # 3
        ("/test/foo/123/456", "GET /test/foo/**", {"_": "123/456"}),  # 4
        ("/test/foo/1/2", "GET /test/foo/**", {"_": "1/2"}),
        ("/wildcard", "GET /wildcard/**", {"_": ""}),  # 5: zero segments
        ("/wildcard/a/b", "GET /wildcard/**", {"_": "a/b"}),
        ("/any/deep/path", "GET /**", {"_": "any/deep/path"}),  # 6
        ("/", "GET /**", {"_": ""}),
        ("/test/123/456", "GET /**", {"_": "test/123/456"}),  # backtracks up to /**
    ],
)
def test_spec_examples(table: Table, path: str, expected: str, params: dict[str, str]) -> None:
    table.add(*SPEC_ROUTES)
    assert table.find("GET", path) == (expected, params)


def test_param_names_belong_to_each_route(table: Table) -> None:  # rou3 case 7
    table.add("GET /test/:id", "GET /test/:idY/y", "GET /test/:idYZ/y/z")
    assert table.find("GET", "/test/123") == ("GET /test/:id", {"id": "123"})
    assert table.find("GET", "/test/123/y") == ("GET /test/:idY/y", {"idY": "123"})
    assert table.find("GET", "/test/123/y/z") == ("GET /test/:idYZ/y/z", {"idYZ": "123"})


def test_same_shape_different_methods_keep_their_names(table: Table) -> None:
    table.add("GET /u/:id", "DELETE /u/:uid", "* /u/:anything")
    assert table.find("GET", "/u/7") == ("GET /u/:id", {"id": "7"})
    assert table.find("DELETE", "/u/7") == ("DELETE /u/:uid", {"uid": "7"})
    assert table.find("PUT", "/u/7") == ("* /u/:anything", {"anything": "7"})


def test_param_needs_a_segment(table: Table) -> None:  # rou3 case 8
    table.add("GET /carbon/:element")
    assert table.find("GET", "/carbon") is None
    assert table.find("GET", "/carbon/") is None
    assert table.find("GET", "/carbon/c") == ("GET /carbon/:element", {"element": "c"})


def test_star_matches_one_segment_or_a_missing_last_one(table: Table) -> None:  # rou3 case 9
    table.add("GET /blog/*", "GET /path/*/foo")
    assert table.find("GET", "/blog") == ("GET /blog/*", {})
    assert table.find("GET", "/blog/") == ("GET /blog/*", {})
    assert table.find("GET", "/blog/123") == ("GET /blog/*", {"0": "123"})
    assert table.find("GET", "/blog/123/4") is None
    assert table.find("GET", "/path//foo") == ("GET /path/*/foo", {"0": ""})
    assert table.find("GET", "/path/foo") is None


def test_stars_are_numbered_in_order(table: Table) -> None:
    table.add("GET /*/x/*/**")
    assert table.find("GET", "/a/x/b/c/d") == ("GET /*/x/*/**", {"0": "a", "1": "b", "_": "c/d"})


@pytest.mark.parametrize("raw", ["", "/"])
def test_trailing_slash_is_ignored_both_ways(table: Table, raw: str) -> None:  # rou3 case 10
    table.add("GET /route/without/trailing/slash", "GET /route/with/trailing/slash/")
    assert table.find("GET", "/route/without/trailing/slash" + raw) == (
        "GET /route/without/trailing/slash",
        {},
    )
    assert table.find("GET", "/route/with/trailing/slash" + raw) == (
        "GET /route/with/trailing/slash/",
        {},
    )


def test_named_rest_needs_one_segment(table: Table) -> None:  # rou3 case 11
    table.add("GET /polymer/**:id", "GET /polymer/another/route")
    assert table.find("GET", "/polymer/another/route") == ("GET /polymer/another/route", {})
    assert table.find("GET", "/polymer/foo/bar/baz") == (
        "GET /polymer/**:id",
        {"id": "foo/bar/baz"},
    )
    assert table.find("GET", "/polymer/another") == ("GET /polymer/**:id", {"id": "another"})
    assert table.find("GET", "/polymer") is None


def test_param_then_named_rest(table: Table) -> None:  # rou3 case 12
    table.add("GET /route/:p1/something/**:rest")
    assert table.find("GET", "/route/param1/something/c/d") == (
        "GET /route/:p1/something/**:rest",
        {"p1": "param1", "rest": "c/d"},
    )
    assert table.find("GET", "/route/param1/something") is None


def test_priority_between_wildcards(table: Table) -> None:
    table.add("GET /w/**", "GET /w/**:name", "GET /w/*", "GET /w/:p")
    assert table.find("GET", "/w/a") == ("GET /w/:p", {"p": "a"})
    assert table.find("GET", "/w/a/b") == ("GET /w/**:name", {"name": "a/b"})
    # A missing last segment: the trailing '*' comes before '**' (rou3).
    assert table.find("GET", "/w") == ("GET /w/*", {})


def test_priority_never_depends_on_registration_order(router: Router) -> None:
    specs = ["GET /a/**", "GET /a/:x", "GET /a/b", "GET /a/*/c", "GET /a/:y/d", "* /a/b/e"]
    reference = Table(build_router("linear")).add(*specs)
    table = Table(router).add(*reversed(specs))
    for path in ["/a/b", "/a/z", "/a/b/c", "/a/b/d", "/a/b/e", "/a/b/f", "/a", "/a/q/c"]:
        assert table.find("GET", path) == reference.find("GET", path), path


# --- backtracking and methods --------------------------------------------------


def test_backtracks_from_a_static_dead_end(table: Table) -> None:
    table.add("GET /a/b/c", "GET /a/:x/d")
    assert table.find("GET", "/a/b/d") == ("GET /a/:x/d", {"x": "b"})
    assert table.find("GET", "/a/b/c") == ("GET /a/b/c", {})


def test_backtracks_from_a_param_to_a_wildcard(table: Table) -> None:
    table.add("GET /a/:x/c", "GET /a/**")
    assert table.find("GET", "/a/b/d") == ("GET /a/**", {"_": "b/d"})


def test_exact_method_beats_any_method_of_the_same_shape(table: Table) -> None:
    table.add("* /m/:id", "GET /m/:id", "* /s", "GET /s")
    assert table.find("GET", "/m/1") == ("GET /m/:id", {"id": "1"})
    assert table.find("POST", "/m/1") == ("* /m/:id", {"id": "1"})
    assert table.find("GET", "/s") == ("GET /s", {})
    assert table.find("POST", "/s") == ("* /s", {})


def test_node_without_the_method_backtracks(table: Table) -> None:
    table.add("GET /a/b", "POST /a/:x")
    assert table.find("POST", "/a/b") == ("POST /a/:x", {"x": "b"})
    assert table.find("GET", "/a/b") == ("GET /a/b", {})
    assert table.find("PUT", "/a/b") is None


def test_any_method_on_a_more_specific_route_wins(table: Table) -> None:
    table.add("GET /a/:x", "* /a/b")
    assert table.find("GET", "/a/b") == ("* /a/b", {})


def test_wrong_method_is_no_match(table: Table) -> None:
    table.add("POST /p/:id", "POST /static")
    assert table.find("GET", "/p/1") is None
    assert table.find("GET", "/static") is None


# --- paths ------------------------------------------------------------------------


def test_empty_segment_is_a_real_segment(table: Table) -> None:
    table.add("GET /a/:x/b", "GET /e/**", "GET /s//t")
    assert table.find("GET", "/a//b") is None  # ':x' does not match ""
    assert table.find("GET", "/e//b") == ("GET /e/**", {"_": "/b"})
    assert table.find("GET", "/s//t") == ("GET /s//t", {})
    assert table.find("GET", "/s/t") is None


def test_case_sensitive(table: Table) -> None:
    table.add("GET /Users/:id")
    assert table.find("GET", "/users/1") is None
    assert table.find("GET", "/Users/1") == ("GET /Users/:id", {"id": "1"})


def test_escaped_colon_and_star_are_static(table: Table) -> None:
    table.add("GET /a\\:b/c\\:", "GET /x/\\*", "GET /p:q")
    assert table.find("GET", "/a:b/c:") == ("GET /a\\:b/c\\:", {})
    assert table.find("GET", "/x/*") == ("GET /x/\\*", {})
    assert table.find("GET", "/x/y") is None
    # Unescaped, a colon inside a segment starts a param mixed with text.
    assert table.find("GET", "/pxyz") == ("GET /p:q", {"q": "xyz"})
    assert table.find("GET", "/p") is None


def test_root_route(table: Table) -> None:
    table.add("GET /", "GET /:x")
    assert table.find("GET", "/") == ("GET /", {})
    assert table.find("GET", "/y") == ("GET /:x", {"x": "y"})


def test_not_absolute_paths_match_nothing(router: Router) -> None:
    Table(router).add("GET /**", "GET /:x", "GET /")
    assert router.match("GET", "") is None
    assert router.match("GET", "x") is None
    assert router.match("GET", "*") is None


# --- percent-decoding -----------------------------------------------------


def test_encoded_slash_stays_inside_a_param(table: Table) -> None:
    table.add("GET /files/:name", "GET /files/:dir/:name")
    # Decoded once, but an encoded separator stays encoded (h3 v2).
    assert table.find("GET", "/files/a%2Fb") == ("GET /files/:name", {"name": "a%2Fb"})
    assert table.find("GET", "/files/a%2fb") == ("GET /files/:name", {"name": "a%2Fb"})
    assert table.find("GET", "/files/a%5cb") == ("GET /files/:name", {"name": "a%5Cb"})
    assert table.find("GET", "/files/%2E%2E%2Fetc") == ("GET /files/:name", {"name": "..%2Fetc"})
    assert table.find("GET", "/files/a/b") == ("GET /files/:dir/:name", {"dir": "a", "name": "b"})


def test_params_are_decoded_exactly_once(table: Table) -> None:
    table.add("GET /q/:v", "GET /r/**")
    assert table.find("GET", "/q/%252F") == ("GET /q/:v", {"v": "%252F"})  # nested: kept
    assert table.find("GET", "/q/%255c") == ("GET /q/:v", {"v": "%255c"})  # as sent
    assert table.find("GET", "/q/100%25") == ("GET /q/:v", {"v": "100%"})
    assert table.find("GET", "/q/%2541") == ("GET /q/:v", {"v": "%41"})
    assert table.find("GET", "/q/caf%C3%A9") == ("GET /q/:v", {"v": "café"})
    assert table.find("GET", "/q/%zz") == ("GET /q/:v", {"v": "%zz"})
    assert table.find("GET", "/q/a%0Ab") == ("GET /q/:v", {"v": "a\nb"})
    assert table.find("GET", "/r/a%2Fb/c%252F") == ("GET /r/**", {"_": "a%2Fb/c%252F"})


def test_static_segments_compare_decoded(table: Table) -> None:
    table.add("GET /caf%C3%A9/:x", "GET /100%25", "GET /a%2fb", "GET /%61pi")
    assert table.find("GET", "/café/1") == ("GET /caf%C3%A9/:x", {"x": "1"})
    assert table.find("GET", "/caf%c3%a9/1") == ("GET /caf%C3%A9/:x", {"x": "1"})
    assert table.find("GET", "/100%25") == ("GET /100%25", {})
    assert table.find("GET", "/a%2Fb") == ("GET /a%2fb", {})
    assert table.find("GET", "/a/b") is None
    assert table.find("GET", "/api") == ("GET /%61pi", {})


def test_encoded_colon_in_a_pattern_is_static(table: Table) -> None:
    table.add("GET /%3Aid")
    assert table.find("GET", "/:id") == ("GET /%3Aid", {})
    assert table.find("GET", "/7") is None


# --- registration errors --------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("GET /a/:x", "GET /a/:y"),
        ("GET /a", "GET /a/"),
        ("GET /a/**", "GET /a/**"),
        ("GET /a/**:x", "GET /a/**:y"),
        ("* /s", "* /s"),
        ("GET /caf%C3%A9", "GET /café"),
    ],
)
def test_duplicate_method_and_shape_is_an_error(table: Table, first: str, second: str) -> None:
    table.add(first)
    with pytest.raises(ValueError, match="duplicate"):
        table.add(second)
    assert len(table.router.routes()) == 1


def test_same_shape_other_method_or_other_kind_is_fine(table: Table) -> None:
    table.add("GET /a/:x", "POST /a/:y", "* /a/:z", "GET /a/*", "GET /a/**", "GET /a/**:r")
    assert len(table.router.routes()) == 6


@pytest.mark.parametrize(
    "pattern",
    [
        "/***",
        "/a/**x",
        "/a:",
        "/a/:",
        "/x?",
        "/a/:p+/b",
        "/a/@:p+",
        "/a/:id(\\d+)+",
        "/a/:id(\\d+)*",
        "/a/(b",
        "/a/b)",
        "/a{b",
        "/a}b",
        "/a/{b}+",
        "/a/()",
        "/a/(?<x>b",
        "/a/([)",
        "/a\\",
        "/a/(x/y)",
        "/:0/*",
        "/a" + "{b}?" * 9,
        "/a/**/b",
        "/a/**:x/b",
        "/:",
        "/**:",
        "/**:a*",
        "/:x/:x",
        "/:_/**",
        "a/b",
        "",
    ],
)
def test_bad_pattern_is_an_error_naming_it(router: Router, pattern: str) -> None:
    with pytest.raises(ValueError) as raised:
        router.add(Route("GET", pattern, handler))
    assert repr(pattern) in str(raised.value)
    assert router.routes() == []


# --- results ----------------------------------------------------------------------


def test_params_dict_is_fresh_every_call(router: Router) -> None:
    Table(router).add("GET /u/:id", "GET /static", "GET /f/**")
    for path in ["/u/1", "/static", "/f/a/b"]:
        for _ in range(3):  # the second and third come from a cache, if any
            found = router.match("GET", path)
            assert found is not None
            params = found[1]
            before = dict(params)
            params["injected"] = "x"
            params.pop("id", None)
            again = router.match("GET", path)
            assert again is not None
            assert again[1] == before
            assert again[1] is not params


def test_allowed_methods(router: Router) -> None:
    Table(router).add("GET /a/:x", "POST /a/b", "* /a/**", "DELETE /z", "PUT /a/:y/c")
    assert router.allowed_methods("/a/b") == {"GET", "POST", ANY_METHOD}
    assert router.allowed_methods("/a/q") == {"GET", ANY_METHOD}
    assert router.allowed_methods("/a/q/c") == {"PUT", ANY_METHOD}
    assert router.allowed_methods("/a") == {ANY_METHOD}
    assert router.allowed_methods("/z") == {"DELETE"}
    assert router.allowed_methods("/nothing") == set()


def test_routes_in_registration_order(table: Table) -> None:
    specs = ["GET /b/:x", "GET /a", "POST /a", "GET /**"]
    table.add(*specs)
    assert table.router.routes() == [table.by_spec[spec] for spec in specs]
    table.router.routes().clear()  # a copy: the router is unaffected
    assert len(table.router.routes()) == 4


def test_stats_count_routes_and_lookups(router: Router) -> None:
    Table(router).add("GET /a", "GET /b/:x")
    for path in ["/a", "/b/1", "/b/1", "/nope"]:
        router.match("GET", path)
    stats = router.stats()
    assert stats["routes"] == 2
    assert stats["strategy"] in ROUTERS.names()
    if isinstance(router, CachedRouter):
        assert stats["lookups"] == 4
        assert stats["cache"]["policy"] == router.cache.name
        # static hits skip the cache; "/b/1" misses then hits; the 404 misses
        assert stats["cache"]["hits"] + stats["cache"]["misses"] == 3
    else:
        assert stats["lookups"] is None  # not counted by bare strategies (hot path cost)
        assert "cache" not in stats


def test_adding_a_route_changes_later_answers(router: Router) -> None:
    table = Table(router).add("GET /**")
    assert table.find("GET", "/u/1") == ("GET /**", {"_": "u/1"})
    assert table.find("GET", "/u/1") == ("GET /**", {"_": "u/1"})  # now cached, if any
    table.add("GET /u/:id")
    assert table.find("GET", "/u/1") == ("GET /u/:id", {"id": "1"})


def test_removing_a_route_changes_later_answers(router: Router) -> None:
    table = Table(router).add("GET /**", "GET /u/:id", "POST /u/:id", "GET /a{b}?", "GET /a{c}?")
    assert table.find("GET", "/u/1") == ("GET /u/:id", {"id": "1"})
    assert table.find("GET", "/u/1") == ("GET /u/:id", {"id": "1"})  # now cached, if any
    assert table.find("GET", "/a") == ("GET /a{b}?", {})
    removed = router.remove("GET", "/u/:other")  # same shape, other name: rou3's rule
    assert removed is table.by_spec["GET /u/:id"]
    assert table.find("GET", "/u/1") == ("GET /**", {"_": "u/1"})
    assert table.find("POST", "/u/1") == ("POST /u/:id", {"id": "1"})
    assert router.allowed_methods("/u/1") == {"GET", "POST"}  # GET from /**
    router.remove("GET", "/a{b}?")
    assert table.find("GET", "/a") == ("GET /a{c}?", {})  # the shadowed variant is back
    assert table.find("GET", "/ab") == ("GET /**", {"_": "ab"})
    assert [r.pattern for r in router.routes()] == ["/**", "/u/:id", "/a{c}?"]
    with pytest.raises(ValueError, match=r"no route GET /u/:id to remove"):
        router.remove("GET", "/u/:id")
    with pytest.raises(ValueError, match=r"no route DELETE /\*\* to remove"):
        router.remove("DELETE", "/**")
    table.add("GET /u/:id")  # registering it again is fine
    assert table.find("GET", "/u/2") == ("GET /u/:id", {"id": "2"})


REMOVAL_TABLE = [
    "GET /users",
    "GET /users/:id",
    "GET /users/:id(\\d+)",
    "* /users/:id/posts",
    "GET /files/**:path",
    "GET /files/*.png",
    "GET /book{s}?",
    "POST /users",
]
REMOVAL_PATHS = [
    "/users",
    "/users/7",
    "/users/x",
    "/users/7/posts",
    "/files/a/b",
    "/files/a.png",
    "/book",
    "/books",
    "/nope",
]


@pytest.mark.parametrize("gone", REMOVAL_TABLE)
def test_removal_equals_never_registering(router: Router, gone: str) -> None:
    """Differential: a table minus one route answers as a linear router that
    never had it, for every method and path (cache warmed before removal)."""
    Table(router).add(*REMOVAL_TABLE)
    for path in REMOVAL_PATHS:
        router.match("GET", path)
    method, pattern = gone.split(" ", 1)
    router.remove(method, pattern)
    oracle = Table(build_router("linear")).add(*(spec for spec in REMOVAL_TABLE if spec != gone))
    for path in REMOVAL_PATHS:
        for verb in ("GET", "POST", "PUT"):
            found = router.match(verb, path)
            expected = oracle.router.match(verb, path)
            got = None if found is None else (found[0].method, found[0].pattern, found[1])
            want = (
                None
                if expected is None
                else (
                    expected[0].method,
                    expected[0].pattern,
                    expected[1],
                )
            )
            assert got == want, (gone, verb, path)
        assert router.allowed_methods(path) == oracle.router.allowed_methods(path)


# --- caches -----------------------------------------------------------------------


def test_cached_hit_is_served_from_the_cache(cached_router: CachedRouter) -> None:
    Table(cached_router).add("GET /u/:id")
    first = cached_router.match("GET", "/u/1")
    hits_before = cached_router.cache.stats()["hits"]
    second = cached_router.match("GET", "/u/1")
    assert first == second
    assert ("GET", "/u/1") in cached_router.cache
    assert cached_router.cache.stats()["hits"] == hits_before + 1
    assert cached_router.stats()["cache"]["hits"] == hits_before + 1


def test_add_clears_the_cache(cached_router: CachedRouter) -> None:
    Table(cached_router).add("GET /u/:id")
    cached_router.match("GET", "/u/1")
    assert len(cached_router.cache) == 1
    Table(cached_router).add("GET /v/:id")
    assert len(cached_router.cache) == 0


def test_misses_and_static_routes_are_never_cached(cached_router: CachedRouter) -> None:
    Table(cached_router).add("GET /static/page", "GET /u/:id")
    for i in range(50):
        assert cached_router.match("GET", f"/missing/{i}") is None
        assert cached_router.match("GET", "/static/page") is not None
        assert cached_router.match("POST", "/u/1") is None
    assert len(cached_router.cache) == 0
    assert ("GET", "/static/page") not in cached_router.cache


def test_cache_stays_bounded_under_unique_paths(cached_router: CachedRouter) -> None:
    Table(cached_router).add("GET /u/:id", "GET /f/**")
    for i in range(10_000):
        assert cached_router.match("GET", f"/u/{i}") is not None
        assert len(cached_router.cache) <= cached_router.cache.capacity
    assert len(cached_router.cache) <= 64
    assert cached_router.match("GET", "/u/9999") == (cached_router.routes()[0], {"id": "9999"})


class RecordingCache:
    """A real cache that also remembers every key it was given."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name
        self.capacity = inner.capacity
        self.put_keys: list[Any] = []

    def get(self, key: Any) -> Any:
        return self.inner.get(key)

    def put(self, key: Any, value: Any) -> None:
        self.put_keys.append(key)
        self.inner.put(key, value)

    def clear(self) -> None:
        self.inner.clear()

    def __len__(self) -> int:
        return len(self.inner)

    def __contains__(self, key: object) -> bool:
        return key in self.inner

    def stats(self) -> dict[str, Any]:
        return self.inner.stats()


@pytest.mark.parametrize("matcher", [LinearRouter, TrieRouter, CompiledRouter])
def test_cache_keys_are_owned_str_not_views_of_a_buffer(
    matcher: Callable[[], Router],
) -> None:
    cache = RecordingCache(CACHES.get("lru")(16))
    router = CachedRouter(matcher(), cache)
    route = Route("GET", "/users/:id", handler)
    router.add(route)

    buffer = bytearray(b"GET /users/42 HTTP/1.1\r\n")
    view = memoryview(buffer)
    method = bytes(view[0:3]).decode("ascii")
    path = buffer[4:13].decode("ascii")
    assert router.match(method, path) == (route, {"id": "42"})

    class TaggedStr(str):
        """A str subclass: equal and hashable like a str, but not an exact str."""

    assert router.match(TaggedStr("GET"), TaggedStr("/users/7")) == (route, {"id": "7"})

    # Scribble over the request buffer, as a reused connection buffer would be.
    buffer[:] = b"X" * len(buffer)
    view.release()

    assert [type(part) for key in cache.put_keys for part in key] == [str] * 4
    assert cache.put_keys == [("GET", "/users/42"), ("GET", "/users/7")]
    assert ("GET", "/users/42") in cache
    hits = cache.stats()["hits"]
    assert router.match("GET", "/users/42") == (route, {"id": "42"})
    assert cache.stats()["hits"] == hits + 1


def test_cache_refuses_non_str_paths() -> None:
    router = CachedRouter(TrieRouter(), CACHES.get("lru")(4))
    router.add(Route("GET", "/**", handler))
    with pytest.raises(TypeError):
        router.match("GET", b"/x")  # type: ignore[arg-type]


# --- construction -------------------------------------------------------------


def test_make_router_builds_each_strategy() -> None:
    assert type(build_router("linear")).name == "linear"
    assert isinstance(build_router("trie"), TrieRouter)
    assert isinstance(build_router("compiled"), CompiledRouter)
    assert isinstance(make_router(RouterConfig("trie")), TrieRouter)  # no cache section
    # hybrid is the trie behind the route cache: CachedRouter over it, nothing else.
    hybrid = build_router("hybrid", "lfu", 10)
    assert type(hybrid) is CachedRouter and isinstance(hybrid.router, TrieRouter)
    assert hybrid.stats()["strategy"] == "hybrid"
    assert hybrid.cache.name == "lfu" and hybrid.cache.capacity == 10
    wrapped = build_router("trie", "fifo", 5)
    assert isinstance(wrapped, CachedRouter) and isinstance(wrapped.router, TrieRouter)
    assert wrapped.cache.name == "fifo" and wrapped.cache.capacity == 5


def test_cached_router_asks_the_matcher_only_for_the_tree_walk() -> None:
    # The static dict in front has answered static paths already.
    for matching in ("trie", "compiled", "hybrid"):
        router = build_router(matching, "lru", 8)
        assert isinstance(router, CachedRouter)
        assert router._match_uncached == router.router.match_dynamic
        assert router._match_uncached != router.router.match


def test_make_router_rejects_bad_names_and_hybrid_without_cache() -> None:
    allowed = r"\['lru', 'lfu', 'fifo', 'wtinylfu'\]"
    with pytest.raises(ValueError, match=rf"cache\.policy must be one of {allowed}.*'hybrid'"):
        build_router("hybrid", "none")
    with pytest.raises(ValueError, match=r"cache\.policy must be one of .*'hybrid'"):
        make_router(RouterConfig("hybrid"))
    with pytest.raises(ValueError, match=r"router\.matching must be one of \['linear'"):
        build_router("radix")
    with pytest.raises(ValueError, match=r"cache\.policy must be one of \['none'"):
        build_router("trie", "arc")
    assert make_router(RouterConfig("trie"), CacheConfig("none")).name == "trie"


def test_parse_pattern_canonical_form() -> None:
    (parsed,) = parse_pattern("/a/%41/:id/*/**")
    assert [s.text for s in parsed.segments] == ["a", "A", "id", "0", "_"]
    assert parsed.static_path is None
    assert [v.static_path for v in parse_pattern("/x/y//")] == ["/x/y"]
    assert [v.static_path for v in parse_pattern("/")] == ["/"]
    assert parse_pattern("/a/:x")[0].signature == parse_pattern("/a/:y")[0].signature
    assert parse_pattern("/a/:x(\\d+)")[0].signature == parse_pattern("/a/:y(\\d+)")[0].signature
    assert parse_pattern("/a/:x")[0].signature != parse_pattern("/a/*")[0].signature
    # Optional parts expand to plain variants, as in rou3.
    assert [v.static_path for v in parse_pattern("/u/:id?")] == [None, "/u"]
    assert [len(v.segments) for v in parse_pattern("/a{/b}?/:p*")] == [3, 2, 2, 1]


# --- compiled router specifics -----------------------------------------------


def test_compiled_exposes_source_and_recompiles_after_add() -> None:
    router = CompiledRouter()
    router.add(Route("GET", "/u/:id", handler))
    assert router.match("GET", "/u/1") is not None
    source = router.finder_src
    assert source.startswith("def find(method, path):")
    assert "'id'" in source
    assert router.stats()["compilations"] == 1
    router.add(Route("GET", "/p/:slug", handler))
    assert router.match("GET", "/p/x") == (router.routes()[1], {"slug": "x"})
    assert "'slug'" in router.finder_src
    assert router.stats()["compilations"] == 2


def test_compiled_compiles_once_under_concurrent_first_requests() -> None:
    router = CompiledRouter()
    for i in range(200):
        router.add(Route("GET", f"/r{i}/:id", handler))
    start = threading.Barrier(8)
    results: list[Any] = []

    def first_request() -> None:
        start.wait()
        results.append(router.match("GET", "/r7/x"))

    threads = [threading.Thread(target=first_request) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert router.stats()["compilations"] == 1
    assert results == [(router.routes()[7], {"id": "x"})] * 8


def test_compiled_handles_wide_and_deep_tables() -> None:
    router = CompiledRouter()
    reference = TrieRouter()
    wide = compiled_module.INLINE_STATIC_MAX * 5
    deep = compiled_module.MAX_NESTING  # deeper than one function may nest
    patterns = [f"/w{i}/:id" for i in range(wide)]
    patterns += ["/d/" + "/".join(f":p{i}" for i in range(deep))]
    patterns += ["/d/" + "/".join(f"s{i}" for i in range(deep)) + "/:last"]
    for pattern in patterns:
        for target in (router, reference):
            target.add(Route("GET", pattern, handler))
    assert "_subtree" in router.finder_src
    paths = [f"/w{i}/x" for i in range(wide + 1)]
    paths += ["/d/" + "/".join(str(i) for i in range(deep))]
    paths += ["/d/" + "/".join(f"s{i}" for i in range(deep)) + "/end"]
    for path in paths:
        expected = reference.match("GET", path)
        found = router.match("GET", path)
        if expected is None:
            assert found is None, path
        else:
            assert found is not None, path
            assert (found[0].pattern, found[1]) == (expected[0].pattern, expected[1]), path
    assert router.match("GET", "/w3/x") == (router.routes()[3], {"id": "x"})
    assert router.match("GET", paths[-1]) == (router.routes()[-1], {"last": "end"})


# --- routing_path ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("/", "/"),
        ("/a", "/a"),
        ("/a/", "/a"),
        ("/a//", "/a"),  # up to two trailing slashes go (rou3)
        ("/a///", "/a/"),  # a third leaves a real empty segment
        ("/%5C", "/%5C"),
        ("/%5c", "/%5C"),
        ("//", "/"),
        ("/a//b", "/a//b"),
        ("/%61pi", "/api"),
        ("/caf%C3%A9", "/café"),
        ("/caf%c3%a9", "/café"),
        ("/a%2fb", "/a%2Fb"),
        ("/a%2Fb", "/a%2Fb"),
        ("/100%25", "/100%25"),
        ("/%252F", "/%252F"),
        ("/%2541", "/%2541"),
        ("/%zz", "/%zz"),
        ("/%", "/%"),
        ("/%4", "/%4"),
        ("/%ff", "/%FF"),  # not UTF-8: kept escaped, canonical case
        ("/%C3%A9%ff", "/é%FF"),
        ("/%3Fq%23f", "/?q#f"),
        ("/%41%2F%42/", "/A%2FB"),
        ("/a%20b", "/a b"),
    ],
)
def test_routing_path(raw: str, expected: str) -> None:
    assert routing_path(raw) == expected
    if not expected.endswith("/"):  # (one trailing slash goes each time, by design)
        assert routing_path(expected) == expected  # canonical: decoding again is a no-op


def test_routing_path_fast_path_returns_its_argument() -> None:
    path = "/users/42/posts"
    assert routing_path(path) is path
