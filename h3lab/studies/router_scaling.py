"""02 router scaling: lookup cost per matching strategy and table size, cache hit and miss.

The route cache changes the picture only where it hits. So every strategy is
timed twice with the cache in front: on a replay whose distinct paths fit the
cache (the *hit* regime: a short skewed replay) and on one whose distinct
paths far outnumber it (the *miss* regime: uniform paths over many keys), and
bare (no cache: the miss-path cost of the strategy itself). The cache's own
hit ratio is recorded beside every cached figure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from h3lab.studies.common import (
    Rows,
    fmt_num,
    fmt_pct,
    loglog_slope,
    make_plan,
    metric,
    missing,
    nearest,
    speedup,
    stability_paragraph,
    summarize,
    timing,
)

if TYPE_CHECKING:
    import pandas as pd

STUDY = "router_scaling"

FULL: dict[str, Any] = {
    "strategies": None,
    "sizes": [10, 100, 1000, 10000],
    "cache_policy": "lru",
    "cache_size": 1024,
    # regime -> (workload, replayed requests): the hit replay's distinct paths fit the
    # cache, the miss replay's far exceed it (hit ratios are measured, not assumed).
    "regimes": {"hit": ["zipf", 2000], "miss": ["uniform", 40000]},
    "repetitions": 7,
    "min_time": 0.01,
    "lookup_routes": 1000,
}
QUICK: dict[str, Any] = {
    "sizes": [100, 1000],
    "cache_size": 256,
    "regimes": {"hit": ["zipf", 200], "miss": ["uniform", 3000]},
    "repetitions": 3,
    "min_time": 0.002,
}
ESTIMATE_FULL_S = 150


def plan(quick: bool = False, **given: Any) -> dict[str, Any]:
    return make_plan(STUDY, FULL, QUICK, quick, given)


def measure(p: Mapping[str, Any], seed: int = 0) -> Rows:
    """ns per lookup, bare and cached, in both regimes; the cache's hit ratio per cached cell."""
    from h3lab.bench.micro import run_micro

    rows: Rows = []
    for regime, (workload, n_requests) in dict(p["regimes"]).items():
        # bare lookups do not depend on the cache: timed once, in the miss regime
        cached = (True,) if regime == "hit" else (False, True)
        got = run_micro(
            "router",
            strategies=p["strategies"],
            sizes=list(p["sizes"]),
            cached=cached,
            workload=workload,
            cache_policy=p["cache_policy"],
            cache_size=int(p["cache_size"]),
            n_requests=int(n_requests),
            seed=seed,
            **timing(p),
        )
        for row in got:
            row["regime"] = regime if row.get("cached") else "bare"
        rows += got
    return rows


def summary(frame: pd.DataFrame) -> pd.DataFrame:
    """ns per lookup: median + CI per router x table size x regime, with the mean hit ratio."""
    rows = metric(frame, "ns_per_op")
    rows["routes"] = rows["param"].astype(int)
    out = summarize(rows, ["router", "routes", "regime"])
    hits = metric(frame, "hit_ratio")
    if not hits.empty:
        hits["routes"] = hits["param"].astype(int)
        mean = hits.groupby(["router", "routes", "regime"])["value"].mean().rename("hit_ratio")
        out = out.merge(mean.reset_index(), on=["router", "routes", "regime"], how="left")
    else:
        out["hit_ratio"] = float("nan")
    return out


def scaling_exponents(table: pd.DataFrame) -> pd.DataFrame:
    import pandas as pd

    out = []
    for (router, regime), group in table.groupby(["router", "regime"], sort=True):
        group = group.sort_values("routes")
        out.append(
            {
                "router": router,
                "regime": regime,
                "exponent": loglog_slope(list(group["routes"]), list(group["median"])),
                "largest_routes": int(group["routes"].max()),
                "ns_at_largest": float(group["median"].iloc[-1]),
            }
        )
    return pd.DataFrame(out)


def lookup_comparison(frame: pd.DataFrame, routes: int) -> pd.DataFrame:
    """At the table size nearest ``routes``: every (strategy, regime) against the bare trie.

    Columns: router, regime, ns (median), hit_ratio, and the ratio of times
    against the bare trie (the h3-like "before") with its interval.
    """
    import pandas as pd

    ns = metric(frame, "ns_per_op")
    if ns.empty:
        return pd.DataFrame()
    ns["routes"] = ns["param"].astype(int)
    size = nearest(ns["routes"].unique(), routes)
    at = ns[ns["routes"] == size]
    hits = metric(frame, "hit_ratio")
    if not hits.empty:
        hits = hits[hits["param"].astype(int) == size]
    base = at[(at["router"] == "trie") & (at["regime"] == "bare")]["value"].tolist()
    out = []
    for (router, regime), g in at.groupby(["router", "regime"], sort=True):
        hr = (
            hits[(hits["router"] == router) & (hits["regime"] == regime)]["value"]
            if not hits.empty
            else []
        )
        s = speedup(base, g["value"].tolist())
        out.append(
            {
                "routes": int(size),
                "router": router,
                "regime": regime,
                "ns": float(g["value"].median()),
                "hit_ratio": float(sum(hr) / len(hr)) if len(hr) else float("nan"),
                "vs_bare_trie": s["ratio"],
                "lo": s["lo"],
                "hi": s["hi"],
                "text": s["text"] if not (router == "trie" and regime == "bare") else "reference",
            }
        )
    return pd.DataFrame(out)


def _hit(r: Any) -> str:
    return "" if missing(r.hit_ratio) else f", hit ratio {fmt_pct(r.hit_ratio)}"


def conclude(
    table: pd.DataFrame, comparison: pd.DataFrame, frame: pd.DataFrame | None = None
) -> str:
    exps = scaling_exponents(table)
    if exps.empty:
        return "No data."
    lines = []
    bare = exps[exps["regime"] == "bare"].sort_values("ns_at_largest")
    if not bare.empty:
        n = int(bare["largest_routes"].max())
        parts = [
            f"{r.router} {r.exponent:.2f}" if not missing(r.exponent) else f"{r.router} n/a"
            for r in bare.itertuples()
        ]
        lines.append(
            "Bare lookup time (no cache: the miss-path cost) grows with the table as routes^k with k = "
            + ", ".join(parts)
            + " (1 = linear in the number of routes, 0 = independent of it)."
        )
        best, worst = bare.iloc[0], bare.iloc[-1]
        lines.append(
            f"At {n:,} routes the fastest bare strategy is **{best.router}** ({fmt_num(best.ns_at_largest)} ns "
            f"per lookup) and the slowest {worst.router} ({fmt_num(worst.ns_at_largest)} ns)."
        )
    if not comparison.empty:
        size = int(comparison["routes"].iloc[0])
        for regime, label in (("hit", "where the cache hits"), ("miss", "where the cache misses")):
            part = comparison[comparison["regime"] == regime].sort_values("ns")
            if part.empty:
                continue
            items = "; ".join(
                f"{r.router} {fmt_num(r.ns)} ns{_hit(r)}, {r.text}" for r in part.itertuples()
            )
            lines.append(
                f"At {size:,} routes {label}, against the bare trie (an h3-like router without cache): "
                + items
                + "."
            )
    if frame is not None:
        note = stability_paragraph(frame)
        if note:
            lines.append(note)
    return "\n\n".join(lines)
