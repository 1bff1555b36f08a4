"""The ``router`` target: ns per ``router.match`` per strategy and table size.

Each strategy matches a workload's keys replayed from a seeded route table,
bare and behind the route cache; every case checks its answers (route and
params) before timing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from h3lab.bench.micro.cache import hit_ratio_observer
from h3lab.bench.micro.harness import (
    BenchmarkError,
    Case,
    Op,
    Stream,
    null_stream,
    run_cases,
    workload_for,
)
from h3lab.bench.workloads import BenchRequest, RouteSpec, route_table
from h3lab.registry import family


def _router_extra_routes(
    requests: Sequence[BenchRequest], table: Sequence[RouteSpec]
) -> list[tuple[str, str]]:
    """Routes the workload targets outside the table (adversarial's /users/:id, mixed's /echo)."""
    from h3lab.bench.workloads import ADVERSARIAL_PREFIX, ECHO_PATH

    known = {spec.pattern for spec in table}
    extra: list[tuple[str, str]] = []
    for request in requests:
        if request.route is None or request.route in known:
            continue
        if request.route == f"{ADVERSARIAL_PREFIX}/:id":
            extra.append(("GET", request.route))
        elif request.route == ECHO_PATH:
            extra.append(("POST", request.route))
        else:
            raise BenchmarkError(
                f"workload targets {request.route!r}, which the router bench lacks"
            )
        known.add(request.route)
    return extra


def _verify_router(
    router: Any, requests: Sequence[BenchRequest], label: str, limit: int | None = None
) -> None:
    """Each distinct key (the first ``limit`` of them) matches the expected route and params."""
    seen: set[tuple[str, str]] = set()
    for request in requests:
        key = request.key
        if key in seen:
            continue
        if limit is not None and len(seen) >= limit:
            break
        seen.add(key)
        found = router.match(*key)
        if request.expect_status == 404:
            if found is not None:
                raise BenchmarkError(f"{label}: {key} should not match, got {found[0]!r}")
        elif request.route is not None and (
            found is None or found[0].pattern != request.route or found[1] != dict(request.params)
        ):
            got = None if found is None else (found[0].pattern, found[1])
            raise BenchmarkError(
                f"{label}: {key} should match {request.route} {dict(request.params)}, got {got}"
            )


def _router_loop(router: Any, keys: list[tuple[str, str]]) -> Op:
    stream = Stream(keys)
    match = router.match

    def run(loops: int) -> int:
        for chunk in stream.chunks(loops):
            for method, path in chunk:
                match(method, path)
        return loops

    return run


def bench_router(
    strategies: Sequence[str] | None = None,
    sizes: Sequence[int] = (10, 100, 1000, 10000),
    cached: Sequence[bool] = (False, True),
    workload: str = "zipf",
    *,
    cache_policy: str = "lru",
    cache_size: int = 1024,
    n_requests: int = 20_000,
    seed: int = 0,
    verify_limit: int | None = 1000,
    **timing: Any,
) -> list[dict[str, Any]]:
    """ns per ``router.match`` per strategy x table size, bare and behind the route cache.

    A name that requires the cache (``hybrid``) only runs in the ``cached=True`` rows.
    The samples replay the first ``n_requests`` requests of the workload in a
    loop: keep it long enough that its distinct keys outnumber ``cache_size``,
    or the cache holds the whole replayed trace and hits every time. Before
    timing, the first ``verify_limit`` distinct keys (None: all) are checked
    on every case (a capped check: a bare ``linear`` router at 10,000 routes
    takes milliseconds per lookup). ``hit_ratio`` is the route cache's own:
    static paths are answered from the exact dict in front of the cache and
    never reach it.
    """
    from h3lab.config import CacheConfig, RouterConfig
    from h3lab.routing import ROUTERS, Route, make_router

    strategies = tuple(family("router.matching").names() if strategies is None else strategies)
    cases: list[Case] = []
    for size in sizes:
        table = route_table(size, seed=seed)
        requests = list(workload_for(workload, table, seed).requests(n_requests))
        extra = _router_extra_routes(requests, table)
        keys = [request.key for request in requests]
        for strategy in strategies:
            for with_cache in cached:
                if ROUTERS.get(strategy).requires_cache and not with_cache:
                    continue
                policy = cache_policy if with_cache else "none"
                router = make_router(RouterConfig(strategy), CacheConfig(policy, cache_size))
                for i, spec in enumerate(table):
                    router.add(Route(spec.method, spec.pattern, spec.handler(), index=i))
                for j, (method, pattern) in enumerate(extra):
                    router.add(Route(method, pattern, lambda event: None, index=len(table) + j))
                label = f"router {strategy} cache={policy} size={size}"
                _verify_router(router, requests, label, verify_limit)
                cache = getattr(router, "cache", None)
                cases.append(
                    Case(
                        "router",
                        strategy,
                        size,
                        workload,
                        _router_loop(router, keys),
                        {
                            "router": strategy,
                            "cache_policy": policy,
                            "cache_size": cache_size if with_cache else None,
                            "cached": bool(with_cache),
                        },
                        observe=hit_ratio_observer(cache) if cache is not None else None,
                        null=null_stream(keys),
                    )
                )
    return run_cases(cases, **timing)
