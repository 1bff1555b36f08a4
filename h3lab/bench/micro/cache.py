"""The ``cache`` target: ns per route-cache access per policy and capacity.

A workload's ``(method, routing path)`` keys are replayed through each policy
the way ``CachedRouter`` uses it (``get``, and ``put`` on a miss); the hit
ratio and ``approx_bytes`` of each sample come with the timing. Hit ratios
worth quoting come from ``h3lab.bench.cachesim``, which replays long traces
without a timer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from h3lab.bench.micro.harness import (
    BenchmarkError,
    Case,
    Observer,
    Op,
    Stream,
    null_stream,
    run_cases,
    workload_for,
)
from h3lab.bench.workloads import route_table
from h3lab.registry import family


def hit_ratio_observer(cache: Any) -> Observer:
    """The hit ratio of the accesses made during one sample (from the cache's own counters)."""

    def observe() -> Callable[[], list[tuple[str, float, str]]]:
        s = cache.stats()
        hits, misses = s["hits"], s["misses"]

        def done() -> list[tuple[str, float, str]]:
            after = cache.stats()
            dh, dm = after["hits"] - hits, after["misses"] - misses
            return [("hit_ratio", dh / (dh + dm) if dh + dm else 0.0, "ratio")]

        return done

    return observe


def _cache_loop(cache: Any, keys: list[tuple[str, str]]) -> Op:
    stream = Stream(keys)
    get = cache.get
    put = cache.put

    def run(loops: int) -> int:
        # The route-cache access pattern: get, and on a miss put the answer.
        for chunk in stream.chunks(loops):
            for key in chunk:
                if get(key) is None:
                    put(key, key)
        return loops

    return run


def bench_cache(
    policies: Sequence[str] | None = None,
    sizes: Sequence[int] = (64, 256, 1024, 4096),
    workload: str = "zipf",
    *,
    routes: int = 1000,
    n_requests: int = 20_000,
    seed: int = 0,
    **timing: Any,
) -> list[dict[str, Any]]:
    """ns per get (+ put on a miss) replaying a workload's keys; hit ratio and approx_bytes."""
    from h3lab.cache import CACHES

    policies = tuple(family("cache.policy").names() if policies is None else policies)
    table = route_table(routes, seed=seed)
    keys = workload_for(workload, table, seed).keys(n_requests)
    cases = []
    for size in sizes:
        for policy in policies:
            cache = CACHES.get(policy)(size)
            hit_ratio = hit_ratio_observer(cache)

            def observe(cache: Any = cache, hit_ratio: Observer = hit_ratio) -> Any:
                done_ratio = hit_ratio()

                def done() -> list[tuple[str, float, str]]:
                    if len(cache) > cache.capacity:
                        raise BenchmarkError(
                            f"cache {cache.name} holds {len(cache)} > {cache.capacity}"
                        )
                    return [*done_ratio(), ("approx_bytes", float(cache.approx_bytes()), "bytes")]

                return done

            cases.append(
                Case(
                    "cache",
                    policy,
                    size,
                    workload,
                    _cache_loop(cache, keys),
                    {"cache_policy": policy, "cache_size": size},
                    observe=observe,
                    null=null_stream(keys),
                )
            )
    return run_cases(cases, **timing)
