"""Aggregation, headline table, conclusions computed from data; plans; chart helpers."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from h3lab.studies import analysis, charts, experiments


def frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(rows)


# -- generic ------------------------------------------------------------------------------------


def test_summarize_medians_intervals_and_counts() -> None:
    rows = [{"k": "a", "metric": "m", "value": v} for v in (1, 2, 3, 4, 100)] + [
        {"k": "b", "metric": "m", "value": 5}
    ]
    s = analysis.summarize(frame(rows), ["k"]).set_index("k")
    assert s.loc["a", "median"] == 3 and s.loc["a", "n"] == 5
    assert s.loc["a", "lo"] <= 3 <= s.loc["a", "hi"]
    assert s.loc["b", "lo"] == s.loc["b", "hi"] == 5
    assert analysis.summarize(frame(rows).iloc[0:0], ["k"]).empty


def test_slopes() -> None:
    xs = [10, 100, 1000]
    assert analysis.loglog_slope(xs, [x * 3 for x in xs]) == pytest.approx(1.0)
    assert analysis.loglog_slope(xs, [7, 7, 7]) == pytest.approx(0.0)
    assert analysis.loglog_slope([10], [1]) is None
    assert analysis.linear_slope([0, 1, 2], [5, 7, 9]) == pytest.approx(2.0)


def test_relative_change_and_verdict_are_honest() -> None:
    change, lo, hi = analysis.relative_change([110, 111, 109, 110], [100, 101, 99, 100])
    assert change == pytest.approx(0.10) and lo > 0
    assert analysis.verdict(change, lo, hi, higher_is_better=True) == "better"
    assert analysis.verdict(change, lo, hi, higher_is_better=False) == "worse"
    noisy = analysis.relative_change([90, 130, 100, 120], [100, 95, 125, 105])
    assert analysis.verdict(*noisy, higher_is_better=True) == "no measurable difference"
    # one value each: only a change beyond the noise band counts
    assert analysis.verdict(0.02, None, None, True) == "no measurable difference"
    assert analysis.verdict(0.2, None, None, True) == "better"
    assert analysis.verdict(math.nan, None, None, True) == "not measured"


def test_degradation_of_a_series() -> None:
    flat = [100.0, 101, 99, 100, 100, 101, 99, 100]
    point, lo, hi = analysis.degradation_of(flat, 3)
    assert abs(point) < 0.02 and lo <= 0 <= hi
    falling = [100.0, 100, 100, 80, 80, 80]
    assert analysis.degradation_of(falling, 3)[0] == pytest.approx(0.2)
    assert math.isnan(analysis.degradation_of([1.0, 2.0], 3)[0])


def test_formatting() -> None:
    assert analysis.fmt_pct(0.213) == "21.3%"
    assert analysis.fmt_pct(0.05, signed=True) == "+5.0%"
    assert analysis.fmt_num(1234567) == "1,234,567"
    assert analysis.fmt_num(0.00123) == "0.00123"
    assert analysis.fmt_num(None) == "n/a"
    table = analysis.markdown_table(pd.DataFrame({"a": [1], "b": ["x|y"]}))
    assert table.splitlines() == ["| a | b |", "|---|---|", "| 1 | x/y |"]


# -- 01 route cache --------------------------------------------------------------------------


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
            base = {
                "cache_policy": policy,
                "cache_size": 10,
                "workload": "adversarial",
                "requests_seen": 50 * i,
            }
            rows.append({**base, "metric": "entries", "value": h})
            rows.append({**base, "metric": "approx_bytes", "value": h * 1000})
        rows.append(
            {"cache_policy": policy, "cache_size": 10, "metric": "bound_violations", "value": 0}
        )
    return frame(rows)


def test_route_cache_tables_and_conclusion() -> None:
    f = cache_rows()
    hit = analysis.hit_ratio_summary(f)
    lfu = hit[(hit["workload"] == "zipf-1") & (hit["cache_policy"] == "lfu")].iloc[0]
    assert lfu["belady"] == 0.7 and lfu["gap_to_belady"] == pytest.approx(0.1)
    cross = analysis.crosscheck_table(f)
    assert set(cross["cache_policy"]) == {"lru", "lfu"}
    assert cross.set_index("cache_policy").loc["lfu", "diff"] == pytest.approx(0.02)
    bounded = analysis.boundedness_table(f).set_index("cache_policy")
    assert (
        bounded.loc["lru", "max_entries"] == 10 and bounded.loc["unbounded", "max_entries"] == 150
    )
    lookup = pd.DataFrame({"cache_policy": ["lru", "lfu"], "median": [300.0, 900.0]})
    text = analysis.conclude_route_cache(hit, cross, bounded.reset_index(), lookup)
    assert (
        "**lfu** with a hit ratio of 60.0%" in text
        and "10.0 points below Belady's optimum (70.0%)" in text
    )
    assert "LRU reaches 50.0%" in text
    assert "at most 10 entries" in text and "150 entries" in text
    assert "lfu 2 points" in text and "lru 0 points" in text
    assert "fastest **lru** at 300 ns" in text


def test_route_cache_conclusion_flags_a_bound_violation() -> None:
    f = cache_rows()
    f.loc[(f["metric"] == "entries") & (f["cache_policy"] == "lru"), "value"] = 11
    bounded = analysis.boundedness_table(f)
    text = analysis.conclude_route_cache(
        analysis.hit_ratio_summary(f), analysis.crosscheck_table(f), bounded
    )
    assert "**Bound violated** by lru" in text


# -- 02 router ----------------------------------------------------------------------------------


def router_rows() -> pd.DataFrame:
    rows = []
    for size in (10, 100, 1000):
        for rep in range(3):
            rows.append(
                {
                    "metric": "ns_per_op",
                    "router": "linear",
                    "param": size,
                    "cached": False,
                    "value": size * 10.0 + rep,
                }
            )
            rows.append(
                {
                    "metric": "ns_per_op",
                    "router": "trie",
                    "param": size,
                    "cached": False,
                    "value": 500.0 + rep,
                }
            )
            rows.append(
                {
                    "metric": "ns_per_op",
                    "router": "trie",
                    "param": size,
                    "cached": True,
                    "value": 100.0 + rep,
                }
            )
            rows.append(
                {
                    "metric": "ns_per_op",
                    "router": "hybrid",
                    "param": size,
                    "cached": True,
                    "value": 90.0 + rep,
                }
            )
    return frame(rows)


def test_router_scaling_exponents_and_conclusion() -> None:
    summary = analysis.router_summary(router_rows())
    exps = analysis.scaling_exponents(summary).set_index(["router", "mode"])
    assert exps.loc[("linear", "bare"), "exponent"] == pytest.approx(1.0, abs=0.01)
    assert exps.loc[("trie", "bare"), "exponent"] == pytest.approx(0.0, abs=0.01)
    text = analysis.conclude_router_scaling(summary)
    assert "linear 1.00" in text and "trie 0.00" in text and "(5.0x faster than bare)" in text
    assert "At 1,000 routes the fastest bare strategy is **trie** (501 ns" in text
    assert "slowest linear (10,001 ns)" in text


# -- 03 pool ------------------------------------------------------------------------------------


def pool_rows() -> pd.DataFrame:
    rows = []
    for rep in range(4):
        for c in (1, 16):
            rows.append(
                {
                    "metric": "ns_per_op",
                    "pool_policy": "none",
                    "pool_size": 0,
                    "concurrency": c,
                    "value": 200.0 + rep,
                }
            )
            rows.append(
                {
                    "metric": "ns_per_op",
                    "pool_policy": "bounded",
                    "pool_size": 16,
                    "concurrency": c,
                    "value": 100.0 + rep,
                }
            )
            rows.append(
                {
                    "metric": "reuse_ratio",
                    "pool_policy": "bounded",
                    "pool_size": 16,
                    "concurrency": c,
                    "value": 1.0,
                }
            )
            rows.append(
                {
                    "metric": "reuse_ratio",
                    "pool_policy": "none",
                    "pool_size": 0,
                    "concurrency": c,
                    "value": 0.0,
                }
            )
    return frame(rows)


def test_pool_speedups_and_conclusion() -> None:
    f = pool_rows()
    speed = analysis.allocation_speedups(f)
    assert set(speed["concurrency"]) == {1, 16}
    assert speed["speedup_pct"].iloc[0] == pytest.approx(100 * (1 - 101.5 / 201.5), rel=1e-3)
    assert set(speed["verdict"]) == {"better"}
    micro = analysis.pool_micro_summary(f)
    reuse = analysis.pool_micro_summary(f, "reuse_ratio")
    e2e = pd.DataFrame({"config": ["none (plain allocation)", "bounded 16"], "median": [1000.0, 1010.0],
                        "lo": [950.0, 960.0], "hi": [1050.0, 1060.0], "n": [10, 10]})  # fmt: skip
    text = analysis.conclude_event_pool(micro, speed, reuse, e2e)
    assert "49.6% faster" in text and "reuses 100.0% of events" in text
    assert "no measurable difference" in text
    few = e2e.assign(n=[1, 1], lo=e2e["median"], hi=e2e["median"])
    assert "too few samples" in analysis.conclude_event_pool(micro, speed, reuse, few)


# -- 04/06 load --------------------------------------------------------------------------------


def load_rows(
    presets: dict[str, list[float]], adversarial_errors: int = 0, entries: int = 5
) -> pd.DataFrame:
    rows = []
    for preset, rps in presets.items():
        base = {"preset": preset, "workload": "zipf"}
        for t, v in enumerate(rps):
            rows.append({**base, "metric": "series_rps", "value": v, "t": float(t)})
            rows.append({**base, "metric": "series_p99_ms", "value": 2.0, "t": float(t)})
            rows.append({**base, "metric": "server_rss_mb", "value": 30.0 + t, "t": float(t)})
        rows.append({**base, "metric": "throughput_rps", "value": sum(rps) / len(rps)})
        rows.append({**base, "metric": "errors_total", "value": 0})
        rows.append({**base, "metric": "open_latency_p99_ms", "value": 3.0})
        rows.append(
            {
                **base,
                "metric": "pool_reuse_ratio",
                "value": 0.0 if preset == "baseline" else 0.97,
                "phase": "sustained",
            }
        )
        for q in (0.5, 0.99):
            rows.append({**base, "metric": "latency_quantile_ms", "value": q * 10, "quantile": q})
        for pause in (100.0, 200.0, 300.0):
            rows.append({**base, "metric": "gc_pause_us", "value": pause, "phase": "sustained"})
        adv = {**base, "workload": "adversarial", "phase": "adversarial"}
        rows.append({**adv, "metric": "errors_total", "value": adversarial_errors})
        if preset != "baseline":
            rows.append({**adv, "metric": "cache_entries", "value": entries})
            rows.append({**adv, "metric": "cache_capacity", "value": 10})
    return frame(rows)


def test_load_table_and_conclusion() -> None:
    f = load_rows(
        {
            "baseline": [100.0] * 4 + [80.0] * 4,
            "performance": [150.0, 151, 149, 150, 150, 149, 151, 150],
        }
    )
    table = analysis.load_table(f, "preset", 4).set_index("preset")
    assert table.loc["baseline", "degradation"] == pytest.approx(0.2)
    assert abs(table.loc["performance", "degradation"]) < 0.01
    assert table.loc["performance", "pool_reuse"] == 0.97
    assert table.loc["baseline", "rss_end_mb"] == 37.0 and table.loc["baseline", "gc_pauses"] == 3
    text = analysis.conclude_load(table.reset_index(), "preset", "preset")
    assert "highest **performance**" in text and "baseline 20.0%" in text
    assert "No request failed." in text and "every route cache stayed within its capacity" in text
    pct = analysis.percentile_table(f, "preset")
    assert list(pct.columns) == [
        "preset",
        "quantile",
        "latency_ms",
        "percentile",
        "fraction",
        "nines",
    ]
    assert pct["nines"].iloc[1] == pytest.approx(2.0)


def test_headline_table_measured_and_honest() -> None:
    load = load_rows(
        {"baseline": [100.0, 101, 99, 100, 100, 99], "performance": [100.0, 99, 101, 100, 101, 100]}
    )
    pool = pool_rows()
    router = router_rows()
    table = analysis.headline_table({"load_degradation": load, "event_pool": pool, "router_scaling": router},
                                    lookup_routes=1000, window=2)  # fmt: skip
    by = table.set_index("key")
    assert list(table["key"]) == list(analysis.HEADLINE_MEASURES)
    # same throughput: no gain claimed
    assert by.loc["throughput_rps", "verdict"] == "no measurable difference"
    assert by.loc["degradation_pct", "verdict"] == "no degradation either way"
    assert by.loc["route_cache_errors", "verdict"] == "no errors either way"
    assert by.loc["pool_reuse_pct", "performance"] == pytest.approx(97.0)
    assert by.loc["pool_reuse_pct", "verdict"] == "better"
    assert by.loc["alloc_speedup_pct", "verdict"] == "better"
    assert by.loc["route_lookup_us", "baseline"] == pytest.approx(
        10.001
    )  # linear at 1000 routes, us
    assert by.loc["route_lookup_us", "performance"] == pytest.approx(0.091)  # hybrid cached
    assert by.loc["degradation_pct", "seed"] == "21.3% -> 2.5%"
    text = analysis.conclude_headline(table, "a test CPU")
    assert (
        "| measure | baseline | performance | improvement | verdict | origin (published) |" in text
    )
    assert (
        "No measurable gain in Python on: Throughput degradation, Sustained throughput" not in text
    )
    assert "No measurable gain in Python on:" in text and "Sustained throughput" in text
    rows = analysis.headline_rows(table)
    assert {r["metric"] for r in rows} >= {"throughput_rps", "route_lookup_us_improvement"}
    assert all(isinstance(r["value"], float) for r in rows)


def test_headline_table_with_missing_runs() -> None:
    table = analysis.headline_table({})
    assert set(table["verdict"]) == {"not measured"}
    assert "Not measured (no run)" in analysis.conclude_headline(table)
    shown = analysis.headline_display(table)
    assert set(shown["baseline"]) == {"n/a"}


def test_headline_flags_errors_and_real_degradation() -> None:
    load = load_rows({"baseline": [100.0, 100, 100, 60, 60, 60], "performance": [100.0, 101, 99, 100, 101, 100]},
                     adversarial_errors=2, entries=11)  # fmt: skip
    by = analysis.headline_table({"load_degradation": load}, window=3).set_index("key")
    assert by.loc["degradation_pct", "verdict"] == "better"
    assert by.loc["route_cache_errors", "performance"] == 3  # 2 failed requests + 1 capacity breach
    assert by.loc["route_cache_errors", "verdict"] == "worse"


# -- 05 middleware, 07 peers ----------------------------------------------------------------------


def test_middleware_costs_and_conclusion() -> None:
    rows = []
    for n in (0, 8, 32):
        for rep in range(3):
            rows.append(
                {
                    "metric": "ns_per_op",
                    "middleware": "legacy",
                    "kind": "onion",
                    "param": n,
                    "value": 1000 + 100.0 * n + rep,
                }
            )
            rows.append(
                {
                    "metric": "ns_per_op",
                    "middleware": "fast",
                    "kind": "onion",
                    "param": n,
                    "value": 800 + 50.0 * n + rep,
                }
            )
    overhead = analysis.middleware_overhead(frame(rows))
    costs = analysis.per_middleware_cost(overhead).set_index("middleware")
    assert costs.loc["legacy", "ns_per_middleware"] == pytest.approx(100.0)
    e2e = pd.DataFrame({"middleware": ["fast", "fast", "legacy", "legacy"], "middlewares": [0, 32, 0, 32],
                        "median": [1000.0, 800.0, 1000.0, 500.0]})  # fmt: skip
    text = analysis.conclude_middleware(overhead, e2e)
    assert "fast 50 ns, legacy 100 ns" in text and "50.0% of legacy's" in text
    assert "legacy 500 req/s (-50.0% vs none)" in text


def test_peers_table_and_conclusion() -> None:
    rows = []
    for server, rps in {"h3lab-performance": 900.0, "raw": 1000.0, "aiohttp": 450.0}.items():
        rows.append(
            {"metric": "throughput_rps", "value": rps, "endpoint": "plaintext", "server": server}
        )
    table = analysis.peers_table(frame(rows)).set_index("server")
    assert table.loc["h3lab-performance", "of_ceiling"] == pytest.approx(0.9)
    assert table.loc["aiohttp", "h3lab_ratio"] == pytest.approx(2.0)
    text = analysis.conclude_peers(table.reset_index(), ["skipping peer 'falcon-uvicorn': missing"])
    assert (
        "90% of the raw httptools ceiling" in text
        and "2.00x aiohttp" in text
        and "falcon-uvicorn" in text
    )


def test_ecdf_frame() -> None:
    rows = [{"metric": "gc_pause_us", "s": "a", "value": float(v)} for v in range(1000)]
    ecdf = analysis.ecdf_frame(frame(rows), "gc_pause_us", "s", max_points=100)
    assert len(ecdf) <= 101 and ecdf["fraction"].iloc[-1] == 1.0
    assert ecdf["value"].is_monotonic_increasing


# -- plans -----------------------------------------------------------------------------------------


def test_plans_shrink_in_quick_mode_and_take_overrides() -> None:
    for study in experiments.PLANS:
        full = experiments.plan(study)
        quick = experiments.plan(study, quick=True)
        assert set(full) == set(quick)
    assert experiments.plan("router_scaling", quick=True)["sizes"] == [10, 100, 1000]
    assert experiments.plan("router_scaling", quick=True, sizes=[10], repetitions=None)[
        "sizes"
    ] == [10]
    with pytest.raises(ValueError, match="no parameter"):
        experiments.plan("router_scaling", sizez=[1])
    with pytest.raises(ValueError, match="no plan"):
        experiments.plan("nope")


def test_engine_resolution() -> None:
    assert experiments.resolve_engine("aiohttp") == "aiohttp"
    assert experiments.resolve_engine("auto") in ("wrk", "aiohttp")
    with pytest.raises(ValueError):
        experiments.resolve_engine("ab")


# -- charts ---------------------------------------------------------------------------------------


def test_theme_registered_and_enabled() -> None:
    import altair as alt

    charts.setup()
    assert "h3lab" in alt.theme.names() and alt.theme.active == "h3lab"
    assert charts.theme_config()["config"]["font"] == "Liberation Sans"


def test_more_than_5000_rows_never_break_a_chart(tmp_path: Path) -> None:
    charts.setup()
    big = pd.DataFrame(
        {"t": range(6000), "value": [i % 97 for i in range(6000)], "s": ["a", "b"] * 3000}
    )
    paths = charts.save_chart(
        charts.time_series(big, color="s", title="big"), tmp_path, "big chart!"
    )
    assert paths["png"].name == "big_chart.png"
    assert paths["png"].read_bytes()[:4] == b"\x89PNG" and paths["svg"].read_text().startswith(
        "<svg"
    )


def test_helpers_render(tmp_path: Path) -> None:
    charts.setup()
    summary = pd.DataFrame({"x": [1, 10, 1, 10], "median": [1.0, 2.0, 3.0, 4.0], "lo": [0.5, 1.5, 2.5, 3.5],
                            "hi": [1.5, 2.5, 3.5, 4.5], "s": ["a", "a", "b", "b"], "f": ["p", "p", "p", "p"]})  # fmt: skip
    made = [
        charts.line_with_errorbars(summary, x="x", color="s", facet="f", log_x=True, log_y=True),
        charts.bars(summary, x="s", color="s", facet="f"),
        charts.table_chart(pd.DataFrame({"a": ["1"], "b": ["two"]}), ["a", "b"], title="t"),
    ]
    pct = pd.DataFrame({"s": ["a", "a"], "nines": [0.3, 2.0], "latency_ms": [1.0, 5.0], "percentile": [50, 99],
                        "fraction": [0.5, 0.99]})  # fmt: skip
    made += [charts.percentile_chart(pct, color="s"), charts.ecdf_chart(pct, color="s")]
    for i, chart in enumerate(made):
        paths = charts.save_chart(chart, tmp_path, f"c{i}")
        assert paths["png"].stat().st_size > 1000 and paths["svg"].stat().st_size > 1000
    spec = made[0].to_dict()
    assert "params" in str(spec) and "legend" in str(spec)  # interactive legend selection


def test_show_is_static_under_the_runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import altair as alt

    chart = alt.Chart(pd.DataFrame({"x": [1, 2]})).mark_point().encode(x="x")
    monkeypatch.delenv("H3LAB_STUDY_RUN", raising=False)
    assert charts.show(chart) is chart
    monkeypatch.setenv("H3LAB_STUDY_RUN", "1")
    shown = charts.show(chart, charts.save_chart(chart, tmp_path, "p"), "p")
    bundle = shown._repr_mimebundle_()
    assert set(bundle) == {"image/png", "text/plain"}


def test_e2e_summary_uses_rounds_when_there_are_several() -> None:
    rows = []
    for rep, rps in enumerate((100.0, 200.0, 300.0)):
        rows.append({"metric": "throughput_rps", "config": "a", "repetition": rep, "value": rps})
        rows += [
            {"metric": "series_rps", "config": "a", "repetition": rep, "value": rps, "t": float(t)}
            for t in range(3)
        ]
    many = analysis.e2e_summary(frame(rows), ["config"]).iloc[0]
    assert many["n"] == 3 and many["median"] == 200.0  # one value per round
    one = analysis.e2e_summary(frame([r for r in rows if r["repetition"] == 0]), ["config"]).iloc[0]
    assert one["n"] == 3 and one["median"] == 100.0  # per-second values of the single run


def test_middleware_e2e_separation() -> None:
    overhead = analysis.middleware_overhead(
        frame(
            [
                {
                    "metric": "ns_per_op",
                    "middleware": m,
                    "kind": "onion",
                    "param": n,
                    "value": 100.0 + n,
                }
                for m in ("fast", "legacy")
                for n in (0, 32)
            ]
        )
    )
    e2e = pd.DataFrame({"middleware": ["fast", "fast", "legacy", "legacy"], "middlewares": [0, 32, 0, 32],
                        "median": [1000.0, 900.0, 1000.0, 500.0], "lo": [990.0, 890, 990, 490],
                        "hi": [1010.0, 910, 1010, 510], "n": [3, 3, 3, 3]})  # fmt: skip
    text = analysis.conclude_middleware(overhead, e2e)
    assert "Between fast and legacy: a 80.0% difference beyond the measured noise." in text
    overlapping = e2e.assign(lo=e2e["median"] - 500, hi=e2e["median"] + 500)
    assert "the execution makes no measurable difference" in analysis.conclude_middleware(
        overhead, overlapping
    )
