"""Each study module's summaries and conclusions, on synthetic frames (no measurement)."""

from __future__ import annotations

import random
from typing import Any

import pandas as pd
import pytest

from h3lab.studies import (
    event_pool,
    headline,
    load_degradation,
    memory,
    middleware,
    peers,
    route_cache,
    router_scaling,
)

STUDY_MODULES = [
    route_cache,
    router_scaling,
    event_pool,
    memory,
    middleware,
    load_degradation,
    peers,
]


def frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(rows)


@pytest.mark.parametrize("module", STUDY_MODULES, ids=lambda m: m.STUDY)
def test_plans_shrink_in_quick_mode_and_refuse_unknown_names(module: Any) -> None:
    full, quick = module.plan(), module.plan(quick=True)
    assert set(full) == set(quick) == set(module.FULL)
    if "rounds" in full:
        assert full["rounds"] >= 5 and quick["rounds"] >= 3  # issue 9, part B
    with pytest.raises(ValueError, match="no parameter"):
        module.plan(not_a_parameter=1)


def test_full_plans_fit_the_time_budget() -> None:
    total = (
        event_pool.estimate_s(event_pool.plan()) + memory.estimate_s(memory.plan())
        + middleware.estimate_s(middleware.plan())
        + load_degradation.estimate_s(load_degradation.plan()) + peers.estimate_s(peers.plan())
    )  # fmt: skip
    assert total < 25 * 60
    assert load_degradation.plan()["sustained_s"] >= 120


# -- 01 ---------------------------------------------------------------------------------------------


def cache_rows() -> pd.DataFrame:
    rows = []
    for wl, ratios in {"zipf-1": {"lru": 0.5, "lfu": 0.6, "belady": 0.7, "unbounded": 0.9},
                       "adversarial": {"lru": 0.0, "lfu": 0.0, "belady": 0.0, "unbounded": 0.0}}.items():  # fmt: skip
        for policy, hr in ratios.items():
            rows.append({"metric": "hit_ratio", "value": hr, "cache_policy": policy, "cache_size": 10,
                         "workload": wl, "fraction": 0.1, "engine": "h3lab"})  # fmt: skip
    for policy, hr in {"lru": 0.5, "lfu": 0.58}.items():
        rows.append({"metric": "hit_ratio", "value": hr, "cache_policy": policy, "cache_size": 10,
                     "workload": "zipf-1", "fraction": 0.1, "engine": "libcachesim"})  # fmt: skip
    for policy, held in {"lru": [5, 10, 10], "unbounded": [50, 100, 150]}.items():
        for i, h in enumerate(held, start=1):
            base = {"cache_policy": policy, "cache_size": 10, "workload": "adversarial",
                    "requests_seen": 50 * i}  # fmt: skip
            rows.append({**base, "metric": "entries", "value": h})
            rows.append({**base, "metric": "approx_bytes", "value": h * 1000})
        rows.append(
            {"cache_policy": policy, "cache_size": 10, "metric": "bound_violations", "value": 0}
        )
    return frame(rows)


def test_route_cache_tables_and_conclusion() -> None:
    f = cache_rows()
    hit = route_cache.hit_ratio_summary(f)
    cross = route_cache.crosscheck_table(f)
    bounded = route_cache.boundedness_table(f)
    lookup = pd.DataFrame({"cache_policy": ["lru", "lfu"], "median": [300.0, 900.0]})
    text = route_cache.conclude(hit, cross, bounded, lookup)
    assert "**lfu** with a hit ratio of 60.0%" in text and "LRU reaches 50.0%" in text
    assert "lfu 2 points" in text and "beyond half a point: lfu (2 points)" in text
    assert "by design" not in text and "tie-breaking" not in text  # no pre-written explanations
    f.loc[(f["metric"] == "entries") & (f["cache_policy"] == "lru"), "value"] = 11
    assert "**Bound violated** by lru" in route_cache.conclude(
        hit, cross, route_cache.boundedness_table(f)
    )


# -- 02 ---------------------------------------------------------------------------------------------


def router_rows() -> pd.DataFrame:
    rows = []
    for size in (10, 100, 1000):
        for rep in range(5):

            def add(
                router: str, regime: str, ns: float, hit: float | None = None,
                size: int = size, rep: int = rep,
            ) -> None:  # fmt: skip
                base = {"router": router, "param": size, "regime": regime, "repetition": rep,
                        "cached": regime != "bare"}  # fmt: skip
                rows.append({**base, "metric": "ns_per_op", "value": ns + rep})
                if hit is not None:
                    rows.append({**base, "metric": "hit_ratio", "value": hit})

            add("linear", "bare", size * 10.0)
            add("trie", "bare", 500.0)
            add("trie", "hit", 100.0, 1.0)
            add("trie", "miss", 600.0, 0.05)
            add("hybrid", "hit", 90.0, 1.0)
            add("hybrid", "miss", 520.0, 0.05)
    return frame(rows)


def test_router_hit_and_miss_regimes_with_hit_ratios() -> None:
    f = router_rows()
    summary = router_scaling.summary(f)
    exps = router_scaling.scaling_exponents(summary).set_index(["router", "regime"])
    assert exps.loc[("linear", "bare"), "exponent"] == pytest.approx(1.0, abs=0.01)
    comp = router_scaling.lookup_comparison(f, 1000).set_index(["router", "regime"])
    assert comp.loc[("hybrid", "hit"), "hit_ratio"] == 1.0
    assert comp.loc[("hybrid", "hit"), "vs_bare_trie"] == pytest.approx(502 / 92, rel=0.01)
    assert "x faster [" in comp.loc[("hybrid", "hit"), "text"]
    assert "x slower [" in comp.loc[("trie", "miss"), "text"]
    text = router_scaling.conclude(summary, comp.reset_index())
    assert "where the cache hits" in text and "where the cache misses" in text
    assert "hit ratio 100.0%" in text and "hit ratio 5.0%" in text
    assert "%" not in text.split("where the cache hits")[1].split("hit ratio")[0]
    assert "because" not in text


# -- 03 ---------------------------------------------------------------------------------------------


def pool_frame() -> pd.DataFrame:
    rows = []
    for r in range(3):
        for arm, hw, created, acquired, rps in (
            ("none (plain allocation)", 0, 9000, 9000, 1000.0),
            ("bounded 256", 64, 64, 9000, 1010.0),
        ):
            base = {"arm": arm, "round": r}
            rows += [
                {**base, "metric": "throughput_rps", "value": rps + r * 100},
                {**base, "metric": "pool_high_water", "value": hw},
                {**base, "metric": "pool_created", "value": created},
                {**base, "metric": "pool_acquired", "value": acquired},
                {**base, "metric": "pool_reuse_ratio", "value": 1 - created / acquired},
            ]
    for rep in range(4):
        for c in (1, 64):
            rows.append({"metric": "ns_per_op", "pool_policy": "none", "pool_size": 0,
                         "concurrency": c, "value": 200.0 + rep})  # fmt: skip
            rows.append({"metric": "ns_per_op", "pool_policy": "bounded", "pool_size": 256,
                         "concurrency": c, "value": 100.0 + rep})  # fmt: skip
    return frame(rows)


def test_event_pool_counts_overlap_and_times_the_reached_concurrency() -> None:
    f = pool_frame()
    counters = event_pool.counters(f).set_index("arm")
    assert counters.loc["bounded 256", "high_water"] == 64
    assert counters.loc["bounded 256", "reused"] == 9000 - 64
    reached = event_pool.reached_concurrency(f)
    assert reached == 64
    speed = event_pool.allocation_speedups(f)
    comp = event_pool.e2e_comparison(f)
    text = event_pool.conclude(speed, event_pool.counters(f), comp, reached)
    assert "high-water 64, created 64, reused 8,936 of 9,000 acquires" in text
    assert "at the concurrency the server reached (64 events at once)" in text
    assert "x faster [" in text and "%" not in text.split("Acquire")[1].split(".")[0]
    assert "paired by round" in text


# -- 05 ---------------------------------------------------------------------------------------------


def test_middleware_compares_fast_and_legacy_at_each_count() -> None:
    rows = [{"metric": "ns_per_op", "middleware": m, "kind": "before", "param": n,
             "value": (20.0 if m == "fast" else 480.0) * n + 100}
            for m in ("fast", "legacy") for n in (0, 8, 32)]  # fmt: skip
    drift = [1.0, 1.2, 0.9, 1.1, 1.05]
    for r, d in enumerate(drift):
        for n in (0, 8):
            for ex, rps in (("legacy", 1000.0 - 40 * n), ("fast", 1000.0 - 2 * n)):
                rows.append({"metric": "throughput_rps", "arm": middleware.arm_name(ex, n),
                             "round": r, "middlewares": n, "value": rps * d})  # fmt: skip
    f = frame(rows)
    comp = middleware.e2e_comparison(f).set_index("middlewares")
    assert comp.loc[8, "significant"] and comp.loc[8, "ratio"] > 1.3
    text = middleware.conclude(middleware.overhead(f), comp.reset_index())
    assert "fast 20 ns" in text and "legacy 480 ns" in text and "24.0x faster than legacy" in text
    assert "with 8 middlewares" in text and "more throughput" in text


# -- 06 ---------------------------------------------------------------------------------------------


def degradation_frame(sustained: dict[str, list[float]]) -> pd.DataFrame:
    rng = random.Random(3)
    rows = []
    base_speed = {"baseline": 1000.0, "performance": 3000.0, load_degradation.H3_LIKE: 2000.0}
    for name in load_degradation.OPTIMIZATIONS:
        base_speed[f"baseline + {name}"] = 2500.0 if name == "router+cache" else 1000.0
        base_speed[f"performance - {name}"] = 1200.0 if name == "router+cache" else 3000.0
    for r in range(5):
        d = 1 + 0.2 * rng.random()
        for arm, rps in base_speed.items():
            rows.append({"metric": "throughput_rps", "arm": arm, "round": r, "part": "rounds",
                         "value": rps * d * (1 + 0.003 * rng.random())})  # fmt: skip
    for arm, values in sustained.items():
        base = {"arm": arm, "round": 0, "part": "sustained"}
        rows += [{**base, "metric": "served_rps", "value": v, "t": float(t + 1)}
                 for t, v in enumerate(values)]  # fmt: skip
        rows += [{**base, "metric": "throughput_rps", "value": sum(values) / len(values), "phase": "sustained"},
                 {**base, "metric": "errors_total", "value": 0, "phase": "sustained"},
                 {**base, "metric": "open_latency_p99_ms", "value": 3.0},
                 {**base, "metric": "errors_total", "value": 0, "phase": "adversarial"},
                 {**base, "metric": "cache_entries", "value": 5, "phase": "adversarial"},
                 {**base, "metric": "cache_capacity", "value": 10, "phase": "adversarial"}]  # fmt: skip
    return frame(rows)


def test_load_degradation_attribution_and_tost() -> None:
    rng = random.Random(5)
    flat = [3000.0 * (1 + 0.004 * (rng.random() - 0.5)) for _ in range(120)]
    falling = [1000.0] * 60 + [950.0] * 60
    f = degradation_frame({"performance": flat, "baseline": falling})
    att = load_degradation.attribution(f).set_index(["optimization", "direction"])
    on = att.loc[("router+cache", "switched on from baseline")]
    off = att.loc[("router+cache", "switched off from performance")]
    assert on["ratio"] == pytest.approx(2.5, rel=0.02) and on["significant"]
    assert off["ratio"] == pytest.approx(2.5, rel=0.02) and off["significant"]
    assert not att.loc[("pool", "switched on from baseline"), "significant"]
    assert att.loc[
        ("all (performance preset)", "against the h3-like before"), "ratio"
    ] == pytest.approx(1.5, rel=0.02)
    deg = load_degradation.degradation(f, 20).set_index("preset")
    assert deg.loc["performance", "verdict"] == "equivalent"
    assert deg.loc["baseline", "verdict"] == "different"
    assert deg.loc["baseline", "text"].startswith("degrades 5.0%")
    compared = load_degradation.preset_comparison(f, ["baseline", "performance"])
    text = load_degradation.conclude(compared, att.reset_index(), deg.reset_index(),
                                     load_degradation.sustained_table(f))  # fmt: skip
    assert "**performance** 3" in text and "more throughput" in text
    assert "performance over 120 s: no degradation" in text
    assert "baseline over 120 s: degrades 5.0%" in text
    assert "every route cache stayed within its capacity" in text


def test_ablation_arms_switch_one_optimization() -> None:
    arms = {label: (preset, o) for label, preset, o in load_degradation.ablation_arms(["pool"])}
    assert arms["baseline + pool"] == (
        "baseline",
        ("pool.policy=bounded", "pool.size=1024", "pool.warmup=256"),
    )
    assert arms["performance - pool"][0] == "performance"
    assert "pool.policy=none" in arms["performance - pool"][1]
    assert arms[load_degradation.H3_LIKE] == ("baseline", ("router.matching=trie",))
    with pytest.raises(ValueError, match="unknown optimization"):
        load_degradation.ablation_arms(["turbo"])


# -- 07 ---------------------------------------------------------------------------------------------


def test_peers_ratio_is_about_the_named_preset() -> None:
    rows = []
    for r, d in enumerate([1.0, 1.3, 0.8]):
        for server, rps in (("h3lab-performance", 100.0), ("h3lab-baseline", 150.0),
                            ("aiohttp", 50.0), ("raw", 200.0)):  # fmt: skip
            rows.append({"metric": "throughput_rps", "server": server, "endpoint": "plaintext",
                         "round": r, "value": rps * d})  # fmt: skip
    t = peers.table(frame(rows), "performance").set_index("server")
    # the reference is the named preset, even though another h3lab preset measured higher
    assert set(t["reference"]) == {"h3lab-performance"}
    assert t.loc["aiohttp", "ratio"] == pytest.approx(2.0, rel=0.01)
    assert t.loc["h3lab-performance", "of_ceiling"] == pytest.approx(0.5)
    text = peers.conclude(t.reset_index(), ["granian: not installed"], "performance")
    assert "h3lab-performance serves" in text and "aiohttp 2" in text and "Skipped" in text
    # the summary table: the fastest *other framework*, not the faster h3lab preset
    assert "| plaintext | 100 req/s | aiohttp, 50 req/s | 2" in text
    assert "| 200 req/s | 50% |" in text
    assert "Impossible" not in text
    rows.append(
        {
            "metric": "throughput_rps",
            "server": "aiohttp",
            "endpoint": "json",
            "round": 0,
            "value": 300.0,
        }
    )
    rows.append(
        {
            "metric": "throughput_rps",
            "server": "raw",
            "endpoint": "json",
            "round": 0,
            "value": 200.0,
        }
    )
    rows.append(
        {
            "metric": "throughput_rps",
            "server": "h3lab-performance",
            "endpoint": "json",
            "round": 0,
            "value": 100.0,
        }
    )
    bad = peers.table(frame(rows), "performance")
    assert peers.ceiling_violations(bad) == ["aiohttp on json at 150% of the raw ceiling"]


def test_peers_framework_floor_is_a_reference_point_not_a_peer() -> None:
    rows = []
    for r, d in enumerate([1.0, 1.2, 0.9]):
        for endpoint, floor in (("plaintext", 140.0), ("json", 120.0)):
            for server, rps in (("h3lab-performance", 100.0), ("aiohttp", 50.0),
                                ("framework-floor", floor), ("raw", 200.0)):  # fmt: skip
                rows.append({"metric": "throughput_rps", "server": server, "endpoint": endpoint,
                             "round": r, "value": rps * d})  # fmt: skip
    t = peers.table(frame(rows), "performance")
    floor = peers.floor_table(frame(rows))
    text = peers.conclude(t, [], "performance", floor)
    # the floor outran aiohttp, yet the fastest *peer* is still aiohttp
    assert "| plaintext | 100 req/s | aiohttp, 50 req/s | 2" in text
    # its share of raw, and the preset against it, paired by round
    assert "| 200 req/s | 50% | 70% | 0.714x" in text
    assert "| 200 req/s | 50% | 60% | 0.833x" in text
    # and, paired by round, its share of raw and its lead over the fastest peer
    assert list(floor["fastest_peer"]) == ["aiohttp", "aiohttp"]
    assert floor["of_ceiling"].tolist() == pytest.approx([0.6, 0.7])
    assert "plaintext: 70% of raw [70%, 70%], and against the fastest peer (aiohttp) 2.8x" in text
    # the floor is not the ceiling: it is held to the ceiling like any server
    assert "Impossible" not in text


# -- 04 ---------------------------------------------------------------------------------------------


def test_memory_table_and_conclusion() -> None:
    rows = []
    for r in range(3):
        for arm, rps in (("minimal", 1000.0), ("balanced", 1000.0 + [5, -5, 1][r])):
            base = {"arm": arm, "round": r}
            rows += [{**base, "metric": "throughput_rps", "value": rps * (1 + 0.1 * r)},
                     {**base, "metric": "rss_before_body_mb", "value": 30.0},
                     {**base, "metric": "rss_after_body_mb", "value": 31.0},
                     {**base, "metric": "errors_total", "value": 0},
                     {**base, "metric": "body_errors", "value": 0},
                     {**base, "metric": "heap_fragmentation_before", "value": 0.05},
                     {**base, "metric": "heap_fragmentation_after",
                      "value": 0.02 if arm == "balanced" else 0.25},
                     {**base, "metric": "heap_mb_after", "value": 8.0}]  # fmt: skip
            if arm == "balanced":
                rows.append({**base, "metric": "arena_reuse_ratio", "value": 0.99})
            else:
                rows.append({**base, "metric": "gc_pause_us", "value": 150.0})
    f = frame(rows)
    summary = memory.table(f)
    text = memory.conclude(summary, memory.comparison(f, "minimal"), "minimal")
    assert "balanced: no significant difference" in text
    assert "balanced 30 -> 31 MiB, arena reuse 99.0%" in text and "balanced no collection" in text
    assert "minimal 5.0% -> 25.0% of 8 MiB; balanced 5.0% -> 2.0% of 8 MiB" in text


def test_memory_conclusion_says_when_the_heap_was_not_measured() -> None:
    rows = [{"arm": "minimal", "round": r, "metric": "throughput_rps", "value": 1000.0}
            for r in range(3)]  # fmt: skip
    f = frame(rows)
    text = memory.conclude(memory.table(f), memory.comparison(f, "minimal"), "minimal")
    assert "C heap fragmentation: not measured" in text


@pytest.mark.parametrize("given", [0, -5, [], [1024, 0], ["x"], None])
def test_memory_body_sizes_reject_what_is_not_a_positive_size(given: object) -> None:
    with pytest.raises(ValueError, match="body_bytes"):
        memory.body_sizes({"body_bytes": given})


def test_memory_body_sizes_take_one_size_or_a_mix() -> None:
    assert memory.body_sizes({"body_bytes": 16384}) == [16384]
    assert memory.body_sizes(memory.plan()) == [1024, 16384, 65536]


def test_memory_heap_rows_come_from_the_servers_heap_stats() -> None:
    stats = {"memory": {"heap": {"fragmentation": 0.25, "heap_bytes": 8 * 2**20,
                                 "free_bytes": 2**20}}}  # fmt: skip
    assert memory.heap_rows(stats, "after") == [
        ("heap_fragmentation_after", 0.25, "ratio"),
        ("heap_mb_after", 8.0, "MiB"),
        ("heap_free_mb_after", 1.0, "MiB"),
    ]
    assert memory.heap_rows({"memory": {"heap": None}}, "after") == []


# -- 00 ---------------------------------------------------------------------------------------------


def test_headline_is_built_from_the_studies_with_ratios_and_their_sources() -> None:
    rng = random.Random(5)
    flat = [3000.0 * (1 + 0.004 * (rng.random() - 0.5)) for _ in range(120)]
    frames = {"load_degradation": degradation_frame({"performance": flat}),
              "router_scaling": router_rows(), "event_pool": pool_frame()}  # fmt: skip
    table = headline.headline_table(frames, lookup_routes=1000, window=20).set_index("key")
    assert table.loc["throughput", "significant"] and table.loc[
        "throughput", "ratio"
    ] == pytest.approx(3.0, rel=0.02)
    assert table.loc["throughput:h3", "ratio"] == pytest.approx(1.5, rel=0.02)
    assert "hit ratio 100.0%" in table.loc["route_lookup_hit", "after"]
    assert "hit ratio 5.0%" in table.loc["route_lookup_miss", "after"]
    assert table.loc["degradation:performance", "result"].startswith("no degradation")
    assert "high-water 64" in table.loc["pool:bounded 256", "after"]
    assert table.loc["alloc", "measure"] == "Event acquire+release at 64 events at once"
    text = headline.conclude(
        table.reset_index(), {"load_degradation": "r1"}, "**Mixed inputs (allow_mixed):** x."
    )
    assert (
        "load_degradation run `r1`" in text
        and "%" not in text.split("significant gain")[1].split(".")[0][:40]
    )
    assert "**Mixed inputs (allow_mixed):** x." in text
