"""00 results at a glance: the origin's headline claims, measured fairly, from named runs.

Every row is a ratio oriented so that > 1 means "the optimized side is better"
(more throughput, or less time: "N.N x faster"), with its interval, computed
from the source study's data:

* throughput: ``performance`` against ``baseline`` *and* against an h3-like
  "before" (trie router, no route cache, legacy middleware), paired by round;
* attribution: each optimization switched on alone from ``baseline`` and off
  alone from ``performance`` (06's ablation arms);
* route lookup where the cache hits and where it misses, hit ratio beside
  each figure (02);
* the event pool where events overlap (03): high-water mark, creations,
  reuse, and allocation timed at the concurrency the server reached;
* degradation from one continuous sustained run, "no degradation" only from
  an equivalence test (06);
* middleware (05) and memory with request bodies (04).

Inputs must be full, valid runs of one commit (``notebook.select_sources`` on
``provenance.select_runs``); ``allow_mixed`` accepts others and the conclusion
says so.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from h3lab.studies import event_pool, load_degradation, memory, middleware, router_scaling
from h3lab.studies.common import fmt_num, fmt_pct, markdown_table, missing

if TYPE_CHECKING:
    import pandas as pd

STUDY = "results_at_a_glance"
SOURCES = ["router_scaling", "event_pool", "memory_strategies", "middleware", "load_degradation"]

# The origin project's published figures, for reference only (another language and machine).
SEED_FIGURES: dict[str, str] = {
    "throughput": "1200 -> 1585 req/s (+32.1%)",
    "route_lookup_miss": "30.09 us",
    "route_lookup_hit": "30.09 us",
    "degradation": "21.3% -> 2.5%",
    "pool": "~60% -> 97.6% reuse",
    "alloc": "67.7% faster",
    "middleware": "+32% throughput",
}

COLUMNS = ["key", "measure", "before", "after", "ratio", "lo", "hi", "significant", "result",
           "source", "note", "seed"]  # fmt: skip


def _fragmented(share: float) -> str:
    """ ", heap N% fragmented" (nothing where the allocator had no statistics)."""
    return "" if missing(share) else f", heap {fmt_pct(share)} fragmented"


def _row(key: str, measure: str, before: Any, after: Any, c: Any, source: str, note: str) -> dict:
    if c is None:
        return {"key": key, "measure": measure, "before": before, "after": after,
                "ratio": math.nan, "lo": math.nan, "hi": math.nan, "significant": False,
                "result": "not measured", "source": source, "note": note,
                "seed": SEED_FIGURES.get(key.split(":")[0], "")}  # fmt: skip
    return {"key": key, "measure": measure, "before": before, "after": after,
            "ratio": float(c["ratio"]), "lo": float(c["lo"]), "hi": float(c["hi"]),
            "significant": bool(c["significant"]), "result": str(c["text"]),
            "source": source, "note": note, "seed": SEED_FIGURES.get(key.split(":")[0], "")}  # fmt: skip


def _median(frame: pd.DataFrame, arm: str, name: str = "throughput_rps") -> float:
    rows = frame[(frame["metric"] == name) & (frame["arm"] == arm)]
    return float(rows["value"].median()) if not rows.empty else math.nan


def headline_table(frames: Mapping[str, pd.DataFrame], lookup_routes: int = 1000,
                   window: int | None = None, margin_pct: float = 2.0) -> pd.DataFrame:  # fmt: skip
    """The headline rows from the source studies' frames (a missing study: "not measured")."""
    import pandas as pd

    rows: list[dict[str, Any]] = []
    load = frames.get("load_degradation")
    if load is not None and not load.empty and "part" in load.columns:
        rounds = load_degradation.rounds_part(load)
        att = load_degradation.attribution(load)
        for r in att.itertuples():
            if r.optimization.startswith("all"):
                key = "throughput" if r.base == "baseline" else "throughput:h3"
                label = f"Throughput (saturating), performance vs {r.base}"
            else:
                key = f"ablation:{r.optimization}:{r.direction}"
                label = f"{r.optimization}, {r.direction}"
            rows.append(_row(key, label, f"{fmt_num(_median(rounds, r.base))} req/s",
                             f"{fmt_num(_median(rounds, r.arm))} req/s", r._asdict(),
                             "load_degradation", f"served req/s, {r.n} rounds paired"))  # fmt: skip
        deg = load_degradation.degradation(load, window or _window(load), margin_pct)
        for r in deg.itertuples():
            rows.append({"key": f"degradation:{r.preset}", "measure": f"Degradation ({r.preset})",
                         "before": "first window", "after": "last window", "ratio": math.nan,
                         "lo": math.nan, "hi": math.nan, "significant": r.verdict == "different",
                         "result": r.text, "source": "load_degradation",
                         "note": f"one continuous run of {r.seconds} s, server counters, TOST",
                         "seed": SEED_FIGURES["degradation"]})  # fmt: skip
    else:
        rows.append(
            _row(
                "throughput", "Throughput (saturating)", "", "", None, "load_degradation", "no run"
            )
        )
    router = frames.get("router_scaling")
    if router is not None and not router.empty and "regime" in router.columns:
        comp = router_scaling.lookup_comparison(router, lookup_routes)
        bare = comp[comp["regime"] == "bare"].set_index("router")
        for regime in ("hit", "miss"):
            part = comp[(comp["regime"] == regime) & (comp["router"] == "hybrid")]
            if part.empty or "trie" not in bare.index:
                continue
            r = part.iloc[0]
            c = {"ratio": r.vs_bare_trie, "lo": r.lo, "hi": r.hi,
                 "significant": not missing(r.lo) and (r.lo > 1 or r.hi < 1), "text": r.text}  # fmt: skip
            rows.append(_row(f"route_lookup_{regime}",
                             f"Route lookup, cache {'hits' if regime == 'hit' else 'misses'} "
                             f"({int(r.routes):,} routes)",
                             f"trie, no cache {fmt_num(bare.loc['trie', 'ns'])} ns",
                             f"hybrid + cache {fmt_num(r.ns)} ns (hit ratio {fmt_pct(r.hit_ratio)})",
                             c, "router_scaling", "ratio of times, micro-benchmark"))  # fmt: skip
    pool = frames.get("event_pool")
    if pool is not None and not pool.empty:
        counters = event_pool.counters(pool)
        pooled = counters[~counters["arm"].astype(str).str.startswith("none")]
        for r in pooled.itertuples():
            rows.append({"key": f"pool:{r.arm}", "measure": f"Event pool {r.arm} under overlap",
                         "before": "", "after": f"high-water {fmt_num(r.high_water)}",
                         "ratio": math.nan, "lo": math.nan, "hi": math.nan, "significant": False,
                         "result": f"created {fmt_num(r.created)}, reused {fmt_num(r.reused)} of "
                                   f"{fmt_num(r.acquired)} ({fmt_pct(r.reuse_ratio)})",
                         "source": "event_pool", "note": "server counters, handler that awaits",
                         "seed": SEED_FIGURES["pool"]})  # fmt: skip
        reached = event_pool.reached_concurrency(pool)
        sp = event_pool.allocation_speedups(pool)
        at = sp[sp["concurrency"] == reached] if reached else sp.iloc[0:0]
        if not at.empty:
            r = at.sort_values("pool_size").iloc[-1]
            rows.append(_row("alloc", f"Event acquire+release at {reached} events at once",
                             "plain allocation", f"bounded pool of {int(r.pool_size)}",
                             {"ratio": r.speedup, "lo": r.lo, "hi": r.hi,
                              "significant": r.significant, "text": r.text},
                             "event_pool", "ratio of times, at the concurrency the server reached"))  # fmt: skip
        e2e = event_pool.e2e_comparison(pool)
        for r in e2e.itertuples():
            rows.append(_row(f"pool_e2e:{r.arm}", f"Served req/s with pool {r.arm} vs none",
                             f"{fmt_num(_median(pool, r.base))} req/s",
                             f"{fmt_num(_median(pool, r.arm))} req/s", r._asdict(), "event_pool",
                             f"{r.n} rounds paired"))  # fmt: skip
    mw = frames.get("middleware")
    if mw is not None and not mw.empty and "round" in mw.columns:
        comp = middleware.e2e_comparison(mw)
        for r in comp.itertuples():
            rows.append(_row(f"middleware:{r.middlewares}",
                             f"Middleware fast vs legacy ({r.middlewares} middlewares)",
                             f"{fmt_num(_median(mw, r.base))} req/s",
                             f"{fmt_num(_median(mw, r.arm))} req/s", r._asdict(), "middleware",
                             f"{r.n} rounds paired"))  # fmt: skip
    mem = frames.get("memory_strategies")
    if mem is not None and not mem.empty and "round" in mem.columns:
        summary = memory.table(mem)
        for r in summary.itertuples():
            rows.append({"key": f"memory:{r.strategy}", "measure": f"Memory {r.strategy}, request bodies",
                         "before": f"RSS {fmt_num(r.rss_before_body_mb)} MiB"
                                   + _fragmented(r.fragmentation_before),
                         "after": f"RSS {fmt_num(r.rss_after_body_mb)} MiB"
                                  + _fragmented(r.fragmentation_after),
                         "ratio": math.nan, "lo": math.nan, "hi": math.nan, "significant": False,
                         "result": "arena reuse " + ("n/a (no arena)" if missing(r.arena_reuse)
                                                     else fmt_pct(r.arena_reuse)),
                         "source": "memory_strategies",
                         "note": "RSS and C-heap fragmentation around the body phase",
                         "seed": ""})  # fmt: skip
    aborts = load_degradation.aborts_table(load) if load is not None and not load.empty else None
    if aborts is not None and not aborts.empty:
        for r in aborts.to_dict("records"):
            rows.append({"key": f"aborts:{r['preset']}",
                         "measure": f"Clients aborting mid-response ({r['preset']})",
                         "before": f"RSS {fmt_num(r.get('rss_first_mb'))} MiB, fds {fmt_num(r.get('fds_first'))}",
                         "after": f"RSS {fmt_num(r.get('rss_last_mb'))} MiB, fds {fmt_num(r.get('fds_tail'))}",
                         "ratio": math.nan, "lo": math.nan, "hi": math.nan, "significant": False,
                         "result": f"served {fmt_num(r.get('served'))}, aborted {fmt_num(r.get('aborted'))}, "
                                   f"{fmt_num(r.get('unexpected'))} unexpected answers or errors",
                         "source": "load_degradation", "note": "soak traffic: valid, hostile, resets",
                         "seed": "BrokenPipe fix"})  # fmt: skip
    else:
        rows.append({"key": "aborts", "measure": "Clients aborting mid-response", "before": "",
                     "after": "", "ratio": math.nan, "lo": math.nan, "hi": math.nan,
                     "significant": False, "result": "not measured", "source": "load_degradation",
                     "note": "", "seed": "BrokenPipe fix"})  # fmt: skip
    return pd.DataFrame(rows, columns=COLUMNS)


def _window(load: pd.DataFrame) -> int:
    part = load_degradation.sustained_part(load)
    n = len(part[part["metric"] == "served_rps"]) // max(1, part["arm"].nunique() or 1)
    return max(2, n // 6)


def display(table: pd.DataFrame) -> pd.DataFrame:
    return table[["measure", "before", "after", "result", "seed"]].rename(
        columns={"seed": "origin (published)"}
    )


def ratio_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The rows that are ratios (for the log-axis chart)."""
    return table[table["ratio"].notna()].copy()


def rows_for_results(table: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    for r in table.itertuples():
        if not missing(r.ratio):
            out.append({"metric": "headline_ratio", "value": float(r.ratio), "unit": "ratio",
                        "measure": r.measure, "key": r.key, "lo": r.lo, "hi": r.hi,
                        "significant": bool(r.significant), "source_study": r.source})  # fmt: skip
    return out


def conclude(
    table: pd.DataFrame, sources: Mapping[str, str], selection: str = "", machine: str = ""
) -> str:
    """The 00 conclusion; ``selection``: how the inputs were chosen (``Selection.describe()``:
    one commit, or "**Mixed inputs (allow_mixed):** ..." naming what was mixed)."""
    lines = [markdown_table(display(table))]
    lines.append(
        "Sources: " + ", ".join(f"{study} run `{run}`" for study, run in sources.items())
        + (f", on {machine}" if machine else "") + "."
    )  # fmt: skip
    if selection:
        lines.append(selection)
    ratios = ratio_rows(table)
    better = ratios[ratios["significant"] & (ratios["ratio"] > 1)]
    worse = ratios[ratios["significant"] & (ratios["ratio"] < 1)]
    flat = ratios[~ratios["significant"]]
    if not ratios.empty:
        lines.append(
            f"Of {len(ratios)} measured ratios, {len(better)} show a significant gain"
            + (": " + "; ".join(f"{r.measure} {r.result}" for r in better.itertuples()) if len(better) else "")
            + "."
        )  # fmt: skip
        if len(worse):
            lines.append(
                "Significantly worse: "
                + "; ".join(f"{r.measure} {r.result}" for r in worse.itertuples())
                + "."
            )
        if len(flat):
            lines.append(
                "No significant difference: "
                + "; ".join(r.measure for r in flat.itertuples())
                + "."
            )
    deg = table[table["key"].astype(str).str.startswith("degradation:")]
    if not deg.empty:
        lines.append("Degradation: " + "; ".join(f"{r.measure.split('(')[1].rstrip(')')} {r.result}"
                                                 for r in deg.itertuples()) + ".")  # fmt: skip
    lines.append(
        "Ratios are oriented so that above 1 is better for the optimized side (more throughput, "
        "or less time); load ratios are paired by round and Holm-corrected within their study. "
        "The origin column is the seed project's published figures, "
        "for reference only: another language, machine and workload."
    )
    return "\n\n".join(lines)
