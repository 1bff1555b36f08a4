"""Everything a notebook computes from its rows: summaries, tables, and the conclusion.

Conventions
-----------
* Input frames are the tidy rows of ``h3lab.bench.results`` (``metric``,
  ``value``, strategy columns, extras).
* A *summary* is one row per group with ``median``, ``lo``, ``hi`` (a 95%
  percentile-bootstrap interval of the median over the repetitions) and ``n``.
  Charts draw these, never raw samples.
* Conclusions are sentences built from the numbers in the frames; a
  difference is only called a gain when its interval excludes "no change"
  (or, with a single value, when it exceeds ``NOISE``), so a noisy machine
  produces "no measurable difference", not a made-up winner.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from h3lab.bench import stats as bstats

if TYPE_CHECKING:
    import pandas as pd

NOISE = 0.05
"""A relative change smaller than this, without an interval, is not called a difference."""
N_BOOT = 1000

# The origin project's published figures (the "seed" column of the headline table).
SEED_FIGURES: dict[str, str] = {
    "route_cache_errors": "not published",
    "degradation_pct": "21.3% -> 2.5%",
    "pool_reuse_pct": "~60% -> 97.6%",
    "throughput_rps": "1200 -> 1585 req/s (+32.1%)",
    "alloc_speedup_pct": "67.7% faster",
    "route_lookup_us": "30.09 us",
}


# -- formatting -----------------------------------------------------------------------


def _missing(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def fmt_num(x: Any, digits: int = 3) -> str:
    """Significant-digit formatting without scientific notation for everyday magnitudes."""
    if _missing(x):
        return "n/a"
    x = float(x)
    if x == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(x)))
    decimals = max(0, digits - 1 - magnitude)
    text = f"{x:,.{decimals}f}"
    # 50.0 -> 50, 0.00120 -> 0.0012: trailing zeros suggest a precision nobody measured
    return text.rstrip("0").rstrip(".") if "." in text else text


def _range(values: Any, pattern: str) -> str:
    """'5' or '2-7' formatted with ``pattern`` (one number when both ends print alike)."""
    lo, hi = pattern.format(float(min(values))), pattern.format(float(max(values)))
    return lo if lo == hi else f"{lo}-{hi}"


def _span(values: Any) -> str:
    """'25.0%' or '25.0%-100.0%' for a series of ratios."""
    lo, hi = float(min(values)), float(max(values))
    return fmt_pct(lo) if math.isclose(lo, hi, abs_tol=5e-4) else f"{fmt_pct(lo)}-{fmt_pct(hi)}"


def fmt_pct(x: Any, digits: int = 1, signed: bool = False) -> str:
    """0.213 -> '21.3%'."""
    if _missing(x):
        return "n/a"
    return f"{float(x) * 100:{'+' if signed else ''}.{digits}f}%"


# -- generic aggregation --------------------------------------------------------------------


def metric(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    """Rows of one metric (a copy)."""
    return frame[frame["metric"] == name].copy()


def summarize(
    frame: pd.DataFrame,
    by: Sequence[str],
    value: str = "value",
    n_boot: int = N_BOOT,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per group of ``by``: median, lo, hi (bootstrap 95% CI of the median), mean, n."""
    import pandas as pd

    by = list(by)
    records = []
    if frame.empty:
        return pd.DataFrame(columns=[*by, "median", "lo", "hi", "mean", "n"])
    for key, group in frame.groupby(by, dropna=False, sort=True):
        values = [float(v) for v in group[value] if not _missing(v)]
        if not values:
            continue
        key = key if isinstance(key, tuple) else (key,)
        lo, hi = bstats.bootstrap_ci(values, n_boot=n_boot, seed=seed)
        records.append(
            {
                **dict(zip(by, key, strict=True)),
                "median": bstats.median(values),
                "lo": lo,
                "hi": hi,
                "mean": sum(values) / len(values),
                "n": len(values),
            }
        )
    return pd.DataFrame.from_records(records, columns=[*by, "median", "lo", "hi", "mean", "n"])


def loglog_slope(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Least-squares slope of log(y) on log(x): the scaling exponent (1 = linear)."""
    pts = [(math.log(x), math.log(y)) for x, y in zip(xs, ys, strict=True) if x > 0 and y > 0]
    if len(pts) < 2:
        return None
    mx = sum(p[0] for p in pts) / len(pts)
    my = sum(p[1] for p in pts) / len(pts)
    sxx = sum((p[0] - mx) ** 2 for p in pts)
    if sxx == 0:
        return None
    return sum((p[0] - mx) * (p[1] - my) for p in pts) / sxx


def linear_slope(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Least-squares slope of y on x."""
    pts = list(zip(xs, ys, strict=True))
    if len(pts) < 2:
        return None
    mx = sum(p[0] for p in pts) / len(pts)
    my = sum(p[1] for p in pts) / len(pts)
    sxx = sum((p[0] - mx) ** 2 for p in pts)
    if sxx == 0:
        return None
    return sum((p[0] - mx) * (p[1] - my) for p in pts) / sxx


def relative_change(
    new: Sequence[float], old: Sequence[float], n_boot: int = N_BOOT
) -> tuple[float, float | None, float | None]:
    """``median(new)/median(old) - 1`` and its bootstrap interval (None, None with one value each)."""
    new = [float(v) for v in new if not _missing(v)]
    old = [float(v) for v in old if not _missing(v)]
    if not new or not old:
        return math.nan, None, None
    base = bstats.median(old)
    if base == 0:
        return math.nan, None, None
    point = bstats.median(new) / base - 1.0
    if len(new) < 2 or len(old) < 2:
        return point, None, None
    try:
        lo, hi = bstats.ratio_ci(new, old, n_boot=n_boot)
    except ValueError:
        return point, None, None
    return point, lo - 1.0, hi - 1.0


def verdict(change: float, lo: float | None, hi: float | None, higher_is_better: bool) -> str:
    """'better' / 'worse' only when the interval (or, without one, the noise band) excludes 0."""
    if _missing(change):
        return "not measured"
    if lo is not None and hi is not None:
        if lo > 0 or hi < 0:
            good = (lo > 0) == higher_is_better
            return "better" if good else "worse"
        return "no measurable difference"
    if abs(change) < NOISE:
        return "no measurable difference"
    return "better" if (change > 0) == higher_is_better else "worse"


def _nearest(values: Iterable[Any], target: float) -> Any:
    values = [v for v in values if not _missing(v)]
    if not values:
        return None
    return min(
        values,
        key=lambda v: (
            abs(math.log(float(v) / target))
            if float(v) > 0 and target > 0
            else abs(float(v) - target),
            float(v),
        ),
    )


# -- 01 route cache ----------------------------------------------------------------------------


def hit_ratio_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """h3lab-simulated hit ratio per workload x policy x size, with Belady's and the gap to it."""
    sim = metric(frame, "hit_ratio")
    sim = sim[sim["engine"] == "h3lab"]
    cols = ["workload", "cache_policy", "cache_size", "fraction", "value"]
    table = sim[cols].rename(columns={"value": "hit_ratio"}).copy()
    optimum = table[table["cache_policy"] == "belady"][["workload", "cache_size", "hit_ratio"]]
    optimum = optimum.rename(columns={"hit_ratio": "belady"})
    table = table.merge(optimum, on=["workload", "cache_size"], how="left")
    table["gap_to_belady"] = table["belady"] - table["hit_ratio"]
    return table.sort_values(["workload", "cache_size", "cache_policy"]).reset_index(drop=True)


def crosscheck_table(frame: pd.DataFrame) -> pd.DataFrame:
    """h3lab's simulation and libCacheSim side by side on the same trace and sizes."""
    import pandas as pd

    hr = metric(frame, "hit_ratio")
    lcs = hr[hr["engine"] == "libcachesim"]
    if lcs.empty:
        return pd.DataFrame(
            columns=["workload", "cache_policy", "cache_size", "h3lab", "libcachesim", "diff"]
        )
    ours = hr[(hr["engine"] == "h3lab") & hr["cache_policy"].isin(lcs["cache_policy"].unique())]
    key = ["workload", "cache_policy", "cache_size"]
    extra = ["fraction"] if "fraction" in ours.columns else []
    merged = (
        ours[[*key, *extra, "value"]]
        .rename(columns={"value": "h3lab"})
        .merge(lcs[[*key, "value"]].rename(columns={"value": "libcachesim"}), on=key, how="inner")
    )
    merged["diff"] = merged["h3lab"] - merged["libcachesim"]
    return merged.sort_values(key).reset_index(drop=True)


def boundedness_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per policy: capacity, most entries ever held, final bytes, violations (adversarial paths)."""
    import pandas as pd

    entries = metric(frame, "entries")
    if entries.empty:
        return pd.DataFrame(
            columns=[
                "cache_policy",
                "capacity",
                "max_entries",
                "final_bytes",
                "requests",
                "violations",
            ]
        )
    out = []
    for policy, group in entries.groupby("cache_policy", sort=True):
        size_bytes = metric(frame, "approx_bytes")
        size_bytes = size_bytes[size_bytes["cache_policy"] == policy].sort_values("requests_seen")
        viol = metric(frame, "bound_violations")
        viol = viol[viol["cache_policy"] == policy]
        out.append(
            {
                "cache_policy": policy,
                "capacity": int(group["cache_size"].iloc[0]),
                "max_entries": int(group["value"].max()),
                "final_bytes": float(size_bytes["value"].iloc[-1])
                if not size_bytes.empty
                else math.nan,
                "requests": int(group["requests_seen"].max()),
                "violations": int(viol["value"].sum()) if not viol.empty else 0,
            }
        )
    return pd.DataFrame(out)


def conclude_route_cache(
    hit: pd.DataFrame,
    cross: pd.DataFrame,
    bounded: pd.DataFrame,
    lookup: pd.DataFrame | None = None,
    fraction: float = 0.1,
) -> str:
    """The 01 conclusion. ``lookup``: a summary of ns_per_op by cache_policy (any sizes)."""
    lines = []
    policies = hit[~hit["cache_policy"].isin(["belady", "unbounded"])]
    zipf = policies[policies["workload"].astype(str).str.startswith("zipf")]
    if not zipf.empty:
        skews = sorted(
            {w for w in zipf["workload"]}, key=lambda w: abs(float(str(w).split("-", 1)[1]) - 1.0)
        )
        wl = skews[0]
        at = zipf[zipf["workload"] == wl]
        frac = _nearest(at["fraction"].unique(), fraction)
        at = at[at["fraction"] == frac].sort_values("hit_ratio", ascending=False)
        best = at.iloc[0]
        lru = at[at["cache_policy"] == "lru"]
        lines.append(
            f"On {wl} traffic with a cache of {int(best['cache_size'])} entries ({fmt_pct(frac, 0)} of the "
            f"working set), the best policy is **{best['cache_policy']}** with a hit ratio of "
            f"{fmt_pct(best['hit_ratio'])}, {best['gap_to_belady'] * 100:.1f} points below Belady's optimum "
            f"({fmt_pct(best['belady'])})"
            + (f"; LRU reaches {fmt_pct(lru['hit_ratio'].iloc[0])}." if not lru.empty else ".")
        )
    scan = hit[hit["workload"] == "scan"]
    if not scan.empty:
        pol = scan[~scan["cache_policy"].isin(["belady", "unbounded"])]
        worst = pol.groupby("cache_policy")["hit_ratio"].max().sort_values()
        opt = scan[scan["cache_policy"] == "belady"]["hit_ratio"].max()
        lines.append(
            f"A cyclic scan is the classic worst case of recency: at the largest size {worst.index[0]} hits "
            f"{fmt_pct(worst.iloc[0])} while {worst.index[-1]} reaches {fmt_pct(worst.iloc[-1])} "
            f"(optimum {fmt_pct(opt)})."
        )
    adversarial = hit[hit["workload"] == "adversarial"]
    if not adversarial.empty:
        best_adv = adversarial[~adversarial["cache_policy"].isin(["belady", "unbounded"])][
            "hit_ratio"
        ].max()
        opt_adv = adversarial[adversarial["cache_policy"] == "belady"]["hit_ratio"].max()
        lines.append(
            f"On adversarial never-repeated paths no cache can help (best policy {fmt_pct(best_adv)}, optimum "
            f"{fmt_pct(opt_adv)}): what matters there is that the cache stays bounded."
        )
    if not bounded.empty:
        real = bounded[bounded["cache_policy"] != "unbounded"]
        unb = bounded[bounded["cache_policy"] == "unbounded"]
        ok = (
            bool((real["max_entries"] <= real["capacity"]).all())
            and int(real["violations"].sum()) == 0
        )
        if ok:
            text = (
                f"Under {int(real['requests'].max()):,} never-repeated paths every policy held at most "
                f"{int(real['max_entries'].max()):,} entries (capacity {int(real['capacity'].max()):,}, "
                f"at most {fmt_num(real['final_bytes'].max() / 2**20)} MiB)"
            )
        else:
            bad = ", ".join(
                real[real["max_entries"] > real["capacity"]]["cache_policy"].astype(str)
            )
            text = f"**Bound violated** by {bad or 'a policy'}: a cache held more entries than its capacity"
        if not unb.empty:
            text += (
                f"; an unbounded map fed the same paths grew to {int(unb['max_entries'].iloc[0]):,} entries "
                f"({fmt_num(unb['final_bytes'].iloc[0] / 2**20)} MiB)."
            )
        else:
            text += "."
        lines.append(text)
    if not cross.empty:
        worst = cross.assign(absdiff=cross["diff"].abs()).groupby("cache_policy")["absdiff"].max()
        parts = [f"{policy} {fmt_num(d * 100, 2)} points" for policy, d in worst.items()]
        text = (
            "libCacheSim, replaying the same traces, agrees with the h3lab simulation to within "
            + ", ".join(parts)
            + " of hit ratio (largest absolute difference per policy)"
        )
        loose = [str(policy) for policy, d in worst.items() if d > 0.005]
        if loose:
            text += f"; the differences for {', '.join(loose)} come from tie-breaking and eviction details that differ by design"
        lines.append(text + ".")
    if lookup is not None and not lookup.empty:
        per = lookup.groupby("cache_policy")["median"].median().sort_values()
        lines.append(
            f"Lookup cost (median over sizes and workloads): fastest **{per.index[0]}** at "
            f"{fmt_num(per.iloc[0])} ns, slowest {per.index[-1]} at {fmt_num(per.iloc[-1])} ns per lookup."
        )
    return "\n\n".join(lines) or "No data."


# -- 02 router scaling --------------------------------------------------------------------------


def router_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """ns per lookup: median + CI per router x table size x cached."""
    rows = metric(frame, "ns_per_op")
    rows["routes"] = rows["param"].astype(int)
    rows["mode"] = rows["cached"].map(lambda c: "with route cache" if bool(c) else "bare")
    return summarize(rows, ["router", "routes", "mode"])


def scaling_exponents(summary: pd.DataFrame) -> pd.DataFrame:
    import pandas as pd

    out = []
    for (router, mode), group in summary.groupby(["router", "mode"], sort=True):
        group = group.sort_values("routes")
        out.append(
            {
                "router": router,
                "mode": mode,
                "exponent": loglog_slope(list(group["routes"]), list(group["median"])),
                "largest_routes": int(group["routes"].max()),
                "ns_at_largest": float(group["median"].iloc[-1]),
            }
        )
    return pd.DataFrame(out)


def conclude_router_scaling(summary: pd.DataFrame) -> str:
    exps = scaling_exponents(summary)
    if exps.empty:
        return "No data."
    lines = []
    bare = exps[exps["mode"] == "bare"].sort_values("ns_at_largest")
    if not bare.empty:
        n = int(bare["largest_routes"].max())
        parts = [
            f"{r.router} {r.exponent:.2f}" if not _missing(r.exponent) else f"{r.router} n/a"
            for r in bare.itertuples()
        ]
        lines.append(
            "Bare lookup time grows with the table as routes^k with k = "
            + ", ".join(parts)
            + " (1 = linear in the number of routes, 0 = independent of it)."
        )
        best, worst = bare.iloc[0], bare.iloc[-1]
        lines.append(
            f"At {n:,} routes the fastest bare strategy is **{best.router}** ({fmt_num(best.ns_at_largest)} ns "
            f"per lookup) and the slowest {worst.router} ({fmt_num(worst.ns_at_largest)} ns), "
            f"{fmt_num(worst.ns_at_largest / best.ns_at_largest, 2)}x apart."
        )
    cached = exps[exps["mode"] == "with route cache"]
    if not cached.empty and not bare.empty:
        merged = cached.merge(bare, on="router", suffixes=("_cached", "_bare"))
        if not merged.empty:
            speedups = merged["ns_at_largest_bare"] / merged["ns_at_largest_cached"]
            lines.append(
                f"With the route cache in front, lookups at the largest table cost "
                f"{_range(merged['ns_at_largest_cached'], '{:,.0f}')} ns whatever the strategy "
                f"({_range(speedups, '{:.1f}')}x faster than bare), "
                "because repeated paths of a skewed workload are answered from the cache."
            )
    return "\n\n".join(lines)


# -- 03 event pool ---------------------------------------------------------------------------------


def pool_micro_summary(frame: pd.DataFrame, metric_name: str = "ns_per_op") -> pd.DataFrame:
    rows = metric(frame, metric_name)
    rows = rows[rows["pool_policy"].notna()]
    rows["config"] = [
        "none (plain allocation)" if p == "none" else f"{p} {int(s)}"
        for p, s in zip(rows["pool_policy"], rows["pool_size"], strict=True)
    ]
    return summarize(rows, ["config", "pool_policy", "pool_size", "concurrency"])


def allocation_speedups(frame: pd.DataFrame) -> pd.DataFrame:
    """Per concurrency: each bounded size's ns per acquire+release vs plain allocation."""
    import pandas as pd

    rows = metric(frame, "ns_per_op")
    rows = rows[rows["pool_policy"].notna()]
    out = []
    for c, group in rows.groupby("concurrency", sort=True):
        plain = group[group["pool_policy"] == "none"]["value"].tolist()
        for size, g in group[group["pool_policy"] != "none"].groupby("pool_size", sort=True):
            change, lo, hi = relative_change(g["value"].tolist(), plain)
            out.append(
                {
                    "concurrency": int(c),
                    "pool_size": int(size),
                    "speedup_pct": -change * 100,
                    "lo_pct": -hi * 100 if hi is not None else math.nan,
                    "hi_pct": -lo * 100 if lo is not None else math.nan,
                    "verdict": verdict(change, lo, hi, higher_is_better=False),
                }
            )
    return pd.DataFrame(out)


def e2e_summary(frame: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """Served req/s per config, with a 95% interval.

    With several interleaved rounds, one value per round (its whole-run req/s):
    the interval then covers what changes between server starts and over time
    on a shared machine. With one round, the per-second values of that run (an
    interval of within-run noise only).
    """
    runs = metric(frame, "throughput_rps")
    if "repetition" in runs.columns and not runs.empty:
        rounds = runs.groupby(list(by), dropna=False)["repetition"].nunique()
        if rounds.min() >= 2:
            return summarize(runs, by)
    rows = metric(frame, "series_rps")
    return summarize(rows if not rows.empty else runs, by)


def _separation(top: Any, bottom: Any, what: str) -> str:
    """Whether two summaries (median, lo, hi, n) differ beyond their intervals, as a clause."""
    if min(int(top["n"]), int(bottom["n"])) < 3:
        return "too few samples were measured to tell these apart."
    if top["lo"] <= bottom["hi"]:
        return f"the intervals overlap: {what} makes no measurable difference here."
    return (
        f"a {fmt_pct(top['median'] / bottom['median'] - 1)} difference beyond the measured noise."
    )


def conclude_event_pool(
    micro: pd.DataFrame, speedups: pd.DataFrame, reuse: pd.DataFrame, e2e: pd.DataFrame
) -> str:
    """``reuse``: micro reuse_ratio summary; ``e2e``: req/s summary with a ``config`` column."""
    lines = []
    if not speedups.empty:
        supported = speedups[speedups["verdict"] == "better"]
        best = (
            (supported if not supported.empty else speedups)
            .sort_values("speedup_pct", ascending=False)
            .iloc[0]
        )
        typical = speedups["speedup_pct"].median()
        lines.append(
            f"Acquire+release from a bounded pool versus a fresh event: {len(supported)} of {len(speedups)} "
            "size x concurrency cases are measurably faster; the best case is "
            f"{best.speedup_pct:.1f}% faster (size {best.pool_size}, concurrency {best.concurrency}; {best.verdict}), "
            f"the median over all sizes and concurrencies {typical:.1f}%."
        )
    if not reuse.empty:
        bounded = reuse[reuse["pool_policy"] != "none"]
        full = bounded[bounded["pool_size"] >= bounded["concurrency"]]
        short = bounded[bounded["pool_size"] < bounded["concurrency"]]
        text = ""
        if not full.empty:
            text = f"A pool at least as large as the concurrency reuses {_span(full['median'])} of events"
        if not short.empty:
            text += (", " if text else "") + f"a smaller one only {_span(short['median'])}"
        if text:
            lines.append(text + ".")
    if not e2e.empty:
        groups = (
            e2e.groupby("connections", sort=True) if "connections" in e2e.columns else [(None, e2e)]
        )
        for connections, group in groups:
            ranked = group.sort_values("median", ascending=False)
            top, bottom = ranked.iloc[0], ranked.iloc[-1]
            where = f" with {int(connections)} connections" if connections is not None else ""
            lines.append(
                f"End to end{where}, the served rate ranges from {fmt_num(bottom['median'])} req/s "
                f"({bottom['config']}) to {fmt_num(top['median'])} req/s ({top['config']}); "
                + _separation(top, bottom, "the pool")
            )
    return "\n\n".join(lines) or "No data."


# -- load runs (04, 06) ----------------------------------------------------------------------------


def series(frame: pd.DataFrame, name: str, by: Sequence[str]) -> pd.DataFrame:
    rows = metric(frame, name)
    rows = rows[rows["t"].notna()]
    return rows[[*by, "t", "value"]].sort_values([*by, "t"]).reset_index(drop=True)


def degradation_of(
    values: Sequence[float], window: int
) -> tuple[float, float | None, float | None]:
    """``1 - mean(last window)/mean(first window)`` of a per-second series, with a bootstrap CI."""
    values = [float(v) for v in values]
    if window < 1 or len(values) < 2 * window:
        return math.nan, None, None
    first, last = values[:window], values[-window:]
    if sum(first) <= 0:
        return math.nan, None, None
    point = 1.0 - (sum(last) / window) / (sum(first) / window)
    if window < 2:
        return point, None, None
    try:
        lo, hi = bstats.ratio_ci(last, first, n_boot=N_BOOT)
    except ValueError:
        return point, None, None
    return point, 1.0 - hi, 1.0 - lo


def load_table(frame: pd.DataFrame, by: str, window: int) -> pd.DataFrame:
    """Per ``by`` (preset or memory strategy): throughput, degradation, p99, errors, RSS, GC."""
    import pandas as pd

    out = []
    phase = (
        frame["phase"].astype(object).where(frame["phase"].notna(), "")
        if "phase" in frame.columns
        else None
    )
    main = frame if phase is None else frame[phase != "adversarial"]
    adversarial = frame.iloc[0:0] if phase is None else frame[phase == "adversarial"]
    for key in list(dict.fromkeys(frame[by].dropna())):
        part = main[main[by] == key]
        rps = series(part, "series_rps", [by])["value"].tolist()
        degr, dlo, dhi = degradation_of(rps, window)
        thr = metric(part, "throughput_rps")
        p99_open = metric(part, "open_latency_p99_ms")["value"]
        p99_closed = metric(part, "latency_p99_ms")["value"]
        errors = metric(part, "errors_total")
        rss = series(part, "server_rss_mb", [by])["value"]
        pauses = metric(part, "gc_pause_us")["value"]
        reuse = metric(part, "pool_reuse_ratio")["value"]
        adv = adversarial[adversarial[by] == key]
        adv_err = metric(adv, "errors_total")["value"]
        entries = metric(adv, "cache_entries")["value"]
        capacity = metric(adv, "cache_capacity")["value"]
        out.append(
            {
                by: key,
                "throughput_rps": float(thr["value"].median()) if not thr.empty else math.nan,
                "rps_median_per_s": bstats.median(rps) if rps else math.nan,
                "degradation": degr,
                "degradation_lo": dlo,
                "degradation_hi": dhi,
                "p99_open_ms": float(p99_open.median()) if not p99_open.empty else math.nan,
                "p99_closed_ms": float(p99_closed.median()) if not p99_closed.empty else math.nan,
                "errors": float(errors["value"].sum()) if not errors.empty else 0.0,
                "rss_start_mb": float(rss.iloc[0]) if not rss.empty else math.nan,
                "rss_end_mb": float(rss.iloc[-1]) if not rss.empty else math.nan,
                "rss_max_mb": float(rss.max()) if not rss.empty else math.nan,
                "gc_pause_p50_us": float(pauses.quantile(0.5)) if not pauses.empty else math.nan,
                "gc_pause_p99_us": float(pauses.quantile(0.99)) if not pauses.empty else math.nan,
                "gc_pauses": len(pauses),
                "pool_reuse": float(reuse.iloc[-1]) if not reuse.empty else math.nan,
                "adversarial_errors": float(adv_err.sum()) if not adv_err.empty else math.nan,
                "cache_entries": float(entries.max()) if not entries.empty else math.nan,
                "cache_capacity": float(capacity.max()) if not capacity.empty else math.nan,
            }
        )
    return pd.DataFrame(out)


def percentile_table(frame: pd.DataFrame, by: str) -> pd.DataFrame:
    """``latency_quantile_ms`` rows as (by, percentile, nines, latency_ms, fraction) for charts."""
    rows = metric(frame, "latency_quantile_ms")
    out = rows[[by, "quantile", "value"]].rename(columns={"value": "latency_ms"}).copy()
    out["percentile"] = out["quantile"] * 100
    out["fraction"] = out["quantile"]
    out["nines"] = [-math.log10(1 - q) if q < 1 else 5.0 for q in out["quantile"]]
    return out.sort_values([by, "quantile"]).reset_index(drop=True)


def _degr_text(row: Any) -> str:
    text = fmt_pct(row.degradation)
    if row.degradation_lo is not None and not _missing(row.degradation_lo):
        text += f" [{fmt_pct(row.degradation_lo)}, {fmt_pct(row.degradation_hi)}]"
    return text


def conclude_load(table: pd.DataFrame, by: str, what: str) -> str:
    """The 04/06 conclusion from ``load_table``."""
    if table.empty:
        return "No data."
    lines = []
    ranked = table.sort_values("rps_median_per_s", ascending=False)
    top, bottom = ranked.iloc[0], ranked.iloc[-1]
    lines.append(
        f"Sustained throughput (median per second): highest **{top[by]}** at {fmt_num(top.rps_median_per_s)} req/s, "
        f"lowest {bottom[by]} at {fmt_num(bottom.rps_median_per_s)} req/s "
        f"({fmt_pct(top.rps_median_per_s / bottom.rps_median_per_s - 1, signed=True)})."
    )
    parts = [f"{getattr(r, by)} {_degr_text(r)}" for r in table.itertuples()]
    stable = all(
        r.degradation_lo is not None
        and not _missing(r.degradation_lo)
        and r.degradation_lo <= 0 <= r.degradation_hi
        for r in table.itertuples()
    )
    lines.append(
        "Degradation (last window vs first, 95% interval): "
        + "; ".join(parts)
        + "."
        + (
            " Every interval includes 0: no " + what + " degrades measurably over this run."
            if stable
            else ""
        )
    )
    if table["p99_open_ms"].notna().any():
        p = table.sort_values("p99_open_ms")
        lines.append(
            "Open-loop p99 latency at a fixed rate: "
            + ", ".join(f"{getattr(r, by)} {fmt_num(r.p99_open_ms)} ms" for r in p.itertuples())
            + "."
        )
    if table["gc_pause_p99_us"].notna().any():
        lines.append(
            "GC pauses (p99 of the last 256): "
            + ", ".join(
                f"{getattr(r, by)} "
                + ("no collection" if not r.gc_pauses else f"{fmt_num(r.gc_pause_p99_us)} us")
                for r in table.itertuples()
            )
            + "; RSS at the end: "
            + ", ".join(f"{getattr(r, by)} {fmt_num(r.rss_end_mb)} MiB" for r in table.itertuples())
            + "."
        )
    errors = table["errors"].sum()
    lines.append(
        "No request failed."
        if errors == 0
        else f"**{int(errors)} requests failed** in total (see the errors column)."
    )
    if table["adversarial_errors"].notna().any():
        bounded = all(
            _missing(r.cache_capacity) or r.cache_entries <= r.cache_capacity
            for r in table.itertuples()
        )
        lines.append(
            f"Under adversarial never-repeated paths: {int(table['adversarial_errors'].sum(skipna=True))} failed requests, and "
            + (
                "every route cache stayed within its capacity."
                if bounded
                else "**a route cache exceeded its capacity**."
            )
        )
    return "\n\n".join(lines)


# -- 05 middleware ---------------------------------------------------------------------------------


def middleware_overhead(frame: pd.DataFrame) -> pd.DataFrame:
    rows = metric(frame, "ns_per_op")
    rows["middlewares"] = rows["param"].astype(int)
    return summarize(rows, ["middleware", "kind", "middlewares"])


def per_middleware_cost(summary: pd.DataFrame) -> pd.DataFrame:
    import pandas as pd

    out = []
    for (execution, kind), g in summary.groupby(["middleware", "kind"], sort=True):
        out.append(
            {
                "middleware": execution,
                "kind": kind,
                "ns_per_middleware": linear_slope(list(g["middlewares"]), list(g["median"])),
                "ns_at_zero": float(
                    g[g["middlewares"] == g["middlewares"].min()]["median"].iloc[0]
                ),
            }
        )
    return pd.DataFrame(out)


def conclude_middleware(summary: pd.DataFrame, e2e: pd.DataFrame) -> str:
    costs = per_middleware_cost(summary)
    lines = []
    for kind, g in costs.groupby("kind", sort=True):
        parts = ", ".join(
            f"{r.middleware} {fmt_num(r.ns_per_middleware)} ns" for r in g.itertuples()
        )
        lines.append(
            f"Each additional no-op {kind} middleware costs (least-squares slope): {parts}."
        )
        if set(g["middleware"]) >= {"legacy", "fast"}:
            legacy = float(g[g["middleware"] == "legacy"]["ns_per_middleware"].iloc[0])
            fast = float(g[g["middleware"] == "fast"]["ns_per_middleware"].iloc[0])
            if legacy > 0:
                lines[-1] += (
                    f" The fast execution's per-middleware cost is {fmt_pct(fast / legacy)} of legacy's."
                )
    if not e2e.empty:
        n_max = int(e2e["middlewares"].max())
        at = e2e[e2e["middlewares"] == n_max]
        at0 = e2e[e2e["middlewares"] == e2e["middlewares"].min()]
        parts = []
        for r in at.itertuples():
            base = at0[at0["middleware"] == r.middleware]
            drop = r.median / float(base["median"].iloc[0]) - 1 if not base.empty else math.nan
            interval = f" [{fmt_num(r.lo)}, {fmt_num(r.hi)}]" if "lo" in at.columns else ""
            parts.append(
                f"{r.middleware} {fmt_num(r.median)} req/s{interval} ({fmt_pct(drop, signed=True)} vs none)"
            )
        text = f"End to end with {n_max} middlewares: " + "; ".join(parts) + "."
        if len(at) >= 2 and {"lo", "hi", "n"} <= set(at.columns):
            ranked = at.sort_values("median", ascending=False)
            text += (
                f" Between {ranked.iloc[0]['middleware']} and {ranked.iloc[-1]['middleware']}: "
                + _separation(ranked.iloc[0], ranked.iloc[-1], "the execution")
            )
        lines.append(text)
    return "\n\n".join(lines) or "No data."


# -- 07 peers -------------------------------------------------------------------------------------


def peers_table(frame: pd.DataFrame, ceiling: str = "raw") -> pd.DataFrame:
    """Per endpoint and server: median req/s, share of the raw ceiling, h3lab's best / server."""
    import pandas as pd

    rows = metric(frame, "throughput_rps")
    rows = rows[rows["endpoint"].notna()]
    out = []
    for endpoint, g in rows.groupby("endpoint", sort=True):
        med = g.groupby("server")["value"].median()
        ceil = med.get(ceiling)
        h3 = med[[s for s in med.index if str(s).startswith("h3lab")]]
        best_h3 = h3.idxmax() if not h3.empty else None
        for server, rps in med.sort_values(ascending=False).items():
            out.append(
                {
                    "endpoint": endpoint,
                    "server": server,
                    "rps": float(rps),
                    "of_ceiling": float(rps / ceil) if ceil else math.nan,
                    "h3lab_ratio": float(h3[best_h3] / rps)
                    if best_h3 is not None and rps > 0
                    else math.nan,
                    "h3lab_reference": best_h3,
                }
            )
    return pd.DataFrame(out)


def conclude_peers(table: pd.DataFrame, skipped: Sequence[str] = ()) -> str:
    if table.empty:
        return "No data."
    lines = []
    for endpoint, g in table.groupby("endpoint", sort=True):
        ref = g["h3lab_reference"].dropna()
        ref_name = ref.iloc[0] if not ref.empty else None
        others = g[~g["server"].astype(str).str.startswith("h3lab") & (g["server"] != "raw")]
        text = f"**{endpoint}**: "
        if ref_name is not None:
            ref_row = g[g["server"] == ref_name].iloc[0]
            text += f"{ref_name} serves {fmt_num(ref_row.rps)} req/s"
            if not _missing(ref_row.of_ceiling):
                text += f", {fmt_pct(ref_row.of_ceiling, 0)} of the raw httptools ceiling"
            if not others.empty:
                text += "; versus peers it is " + ", ".join(
                    f"{r.h3lab_ratio:.2f}x {r.server}" for r in others.itertuples()
                )
        lines.append(text + ".")
    if skipped:
        lines.append("Skipped: " + "; ".join(skipped) + ".")
    return "\n\n".join(lines)


# -- 00 headline --------------------------------------------------------------------------------------


def _values(frame: pd.DataFrame, name: str, **where: Any) -> list[float]:
    rows = metric(frame, name)
    for key, value in where.items():
        if key not in rows.columns:
            return []
        rows = rows[rows[key] == value]
    return [float(v) for v in rows["value"] if not _missing(v)]


HEADLINE_MEASURES: dict[str, str] = {
    "route_cache_errors": "Route-cache errors (adversarial paths)",
    "degradation_pct": "Throughput degradation",
    "pool_reuse_pct": "Event pool reuse ratio",
    "throughput_rps": "Sustained throughput",
    "alloc_speedup_pct": "Event allocation (acquire+release)",
    "route_lookup_us": "Route lookup",
}


def headline_table(
    frames: Mapping[str, pd.DataFrame],
    lookup_routes: int = 1000,
    window: int | None = None,
    baseline: str = "baseline",
    performance: str = "performance",
) -> pd.DataFrame:
    """The origin project's headline numbers, baseline vs performance, measured here.

    ``frames``: study name -> that study's rows (``load_degradation``,
    ``event_pool``, ``router_scaling``; a missing one gives "not measured" rows).
    Every row has ``improvement`` (positive = the performance preset is better,
    in % or percentage points, see ``improvement_unit``) with an interval when
    the data has repetitions, and a ``verdict`` that only says better/worse when
    the interval (or the noise band) excludes no change.
    """
    import pandas as pd

    rows: dict[str, dict[str, Any]] = {}

    def add(key: str, b: Any, p: Any, unit: str, improvement: float, lo: Any = None, hi: Any = None,
            imp_unit: str = "%", source: str = "", note: str = "", verdict_text: str | None = None) -> None:  # fmt: skip
        rows[key] = {
            "key": key,
            "measure": HEADLINE_MEASURES[key],
            "baseline": b,
            "performance": p,
            "unit": unit,
            "improvement": improvement,
            "improvement_lo": lo,
            "improvement_hi": hi,
            "improvement_unit": imp_unit,
            "verdict": verdict_text or verdict(improvement / 100, _n(lo), _n(hi), True),
            "seed": SEED_FIGURES.get(key, ""),
            "source": source,
            "note": note,
        }

    def _n(x: Any) -> float | None:
        return None if x is None or _missing(x) else float(x) / 100

    nan = math.nan
    load = frames.get("load_degradation")
    if load is not None and not load.empty:
        win = window or _guess_window(load)
        table = load_table(load, "preset", win).set_index("preset")
        b = table.loc[baseline] if baseline in table.index else None
        p = table.loc[performance] if performance in table.index else None

        def cache_errors(r: Any) -> float:
            if r is None or _missing(r["adversarial_errors"]):
                return nan
            breach = (
                0
                if _missing(r["cache_capacity"]) or r["cache_entries"] <= r["cache_capacity"]
                else 1
            )
            return float(r["adversarial_errors"]) + breach

        be, pe = cache_errors(b), cache_errors(p)
        if _missing(be) or _missing(pe):
            text = "not measured"
        elif be == 0 and pe == 0:
            text = "no errors either way"
        else:
            text = "better" if pe < be else "worse" if pe > be else "no measurable difference"
        add("route_cache_errors", be, pe, "errors", be - pe, imp_unit="errors", source="load_degradation",
            note="failed requests + capacity breaches under never-repeated paths; baseline has no route cache",
            verdict_text=text)  # fmt: skip
        add_degradation(add, b, p, win)
        br = b["pool_reuse"] if b is not None else nan
        pr = p["pool_reuse"] if p is not None else nan
        imp = (pr - br) * 100
        text = None if not _missing(imp) else "not measured"
        if text is None and abs(imp) < NOISE * 100:
            text = "no measurable difference"
        add("pool_reuse_pct", br * 100, pr * 100, "%", imp, imp_unit="points", source="load_degradation",
            note="server's own counters after the sustained run; baseline has no pool", verdict_text=text)  # fmt: skip
        b_rps = _values(load[load["preset"] == baseline], "series_rps")
        p_rps = _values(load[load["preset"] == performance], "series_rps")
        change, lo, hi = relative_change(p_rps, b_rps)
        add("throughput_rps", bstats.median(b_rps) if b_rps else nan, bstats.median(p_rps) if p_rps else nan,
            "req/s", change * 100, _pct(lo), _pct(hi), source="load_degradation",
            note="median of per-second throughput under saturating load")  # fmt: skip
    else:
        for key in ("route_cache_errors", "degradation_pct", "pool_reuse_pct", "throughput_rps"):
            add(
                key,
                nan,
                nan,
                "",
                nan,
                source="load_degradation",
                note="no run",
                verdict_text="not measured",
            )
    pool = frames.get("event_pool")
    ns = metric(pool, "ns_per_op") if pool is not None and not pool.empty else None
    if ns is not None and "pool_policy" in ns.columns and ns["pool_policy"].notna().any():
        ns = ns[ns["pool_policy"].notna()]
        conc = _nearest(ns["concurrency"].unique(), 16)
        at = ns[ns["concurrency"] == conc]
        plain = at[at["pool_policy"] == "none"]["value"].tolist()
        bounded = at[at["pool_policy"] == "bounded"]
        size = _nearest(bounded["pool_size"].unique(), 1024)
        pooled = bounded[bounded["pool_size"] == size]["value"].tolist()
        change, lo, hi = relative_change(pooled, plain)
        add("alloc_speedup_pct", bstats.median(plain) if plain else nan, bstats.median(pooled) if pooled else nan,
            "ns", -change * 100, _pct(hi, -1), _pct(lo, -1), source="event_pool",
            note=f"fresh event vs a bounded pool of {size}, {conc} events held at once; % less time")  # fmt: skip
    else:
        add(
            "alloc_speedup_pct",
            nan,
            nan,
            "ns",
            nan,
            source="event_pool",
            note="no run",
            verdict_text="not measured",
        )
    router = frames.get("router_scaling")
    ns = metric(router, "ns_per_op") if router is not None and not router.empty else None
    if ns is not None and not ns.empty:
        routes = _nearest(ns["param"].astype(int).unique(), lookup_routes)
        at = ns[ns["param"].astype(int) == routes]
        cached = at["cached"].astype(bool)
        b_vals = at[(at["router"] == "linear") & ~cached]["value"].tolist()
        p_vals = at[(at["router"] == "hybrid") & cached]["value"].tolist()
        change, lo, hi = relative_change(p_vals, b_vals)
        add("route_lookup_us", bstats.median(b_vals) / 1000 if b_vals else nan,
            bstats.median(p_vals) / 1000 if p_vals else nan, "us", -change * 100, _pct(hi, -1), _pct(lo, -1),
            source="router_scaling",
            note=f"{routes:,} routes, Zipf paths: linear scan (baseline) vs hybrid = trie + route cache; % less time")  # fmt: skip
    else:
        add(
            "route_lookup_us",
            nan,
            nan,
            "us",
            nan,
            source="router_scaling",
            note="no run",
            verdict_text="not measured",
        )
    return pd.DataFrame([rows[key] for key in HEADLINE_MEASURES if key in rows])


def _pct(x: float | None, sign: int = 1) -> float | None:
    return None if x is None else sign * x * 100


def add_degradation(add: Any, b: Any, p: Any, window: int) -> None:
    """Degradation row: 'better' only when performance's interval lies below baseline's.

    A negative degradation (throughput rose) is no degradation: both presets
    within the noise band (or with intervals reaching 0) is "no degradation
    either way", whatever the signs.
    """
    nan = math.nan
    bd = b["degradation"] if b is not None else nan
    pd_ = p["degradation"] if p is not None else nan
    note = f"last {window} s vs first {window} s of the sustained run"
    if _missing(bd) or _missing(pd_):
        add("degradation_pct", bd * 100, pd_ * 100, "%", nan, imp_unit="points", source="load_degradation",
            note=note, verdict_text="not measured")  # fmt: skip
        return

    def negligible(row: Any, point: float) -> bool:
        lo = row["degradation_lo"]
        return point <= NOISE or (lo is not None and not _missing(lo) and lo <= 0)

    def interval(row: Any, point: float) -> tuple[float, float]:
        lo, hi = row["degradation_lo"], row["degradation_hi"]
        if lo is None or _missing(lo):
            return point - NOISE, point + NOISE
        return float(lo), float(hi)

    improvement = (max(bd, 0.0) - max(pd_, 0.0)) * 100
    if negligible(b, bd) and negligible(p, pd_):
        text = "no degradation either way"
    else:
        blo, bhi = interval(b, bd)
        plo, phi = interval(p, pd_)
        if phi < blo:
            text = "better"
        elif plo > bhi:
            text = "worse"
        else:
            text = "no measurable difference"
    add("degradation_pct", bd * 100, pd_ * 100, "%", improvement, imp_unit="points", source="load_degradation",
        note=note + "; negative = throughput rose", verdict_text=text)  # fmt: skip


def _guess_window(load: pd.DataFrame) -> int:
    """A degradation window for a run whose parameters are unknown: 1/4 of its length."""
    n = len(series(load, "series_rps", ["preset"])) // max(1, load["preset"].nunique())
    return max(1, n // 4)


def _fmt_value(value: Any, unit: str) -> str:
    if _missing(value):
        return "n/a"
    if unit == "%":
        return f"{float(value):.1f}%"
    if unit in ("errors", "count"):
        return f"{int(value)}"
    return f"{fmt_num(value)} {unit}"


def _fmt_improvement(r: Any) -> str:
    if _missing(r.improvement):
        return "n/a"
    if r.improvement_unit == "errors":
        return f"{int(r.improvement):+d} errors"
    if r.improvement_unit == "points":
        return f"{r.improvement:+.1f} points"
    text = f"{r.improvement:+.1f}%"
    if r.key in ("alloc_speedup_pct", "route_lookup_us") and r.improvement < 100:
        text += f" ({100 / (100 - r.improvement):.1f}x faster)"
    if r.improvement_lo is not None and not _missing(r.improvement_lo):
        text += f" [{r.improvement_lo:+.1f}, {r.improvement_hi:+.1f}]"
    return text


def headline_display(table: pd.DataFrame) -> pd.DataFrame:
    """The headline table as text (for the notebook, the report and a figure)."""
    import pandas as pd

    out = [
        {
            "measure": r.measure,
            "baseline": _fmt_value(r.baseline, r.unit),
            "performance": _fmt_value(r.performance, r.unit),
            "improvement": _fmt_improvement(r),
            "verdict": r.verdict,
            "origin (published)": r.seed,
        }
        for r in table.itertuples()
    ]
    return pd.DataFrame(out)


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table (no tabulate dependency)."""
    cols = [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(str(v).replace("|", "/") for v in row) + " |")
    return "\n".join(lines)


def conclude_headline(table: pd.DataFrame, machine: str = "") -> str:
    shown = headline_display(table)
    by = {v: table[table["verdict"] == v]["measure"].tolist() for v in table["verdict"].unique()}
    better = by.get("better", [])
    flat = by.get("no measurable difference", []) + by.get("no degradation either way", [])
    worse = by.get("worse", [])
    missing = by.get("not measured", [])
    lines = [markdown_table(shown)]
    measured = len(table) - len(missing)
    lines.append(
        f"Measured here{(' on ' + machine) if machine else ''}: the performance preset is measurably better on "
        f"{len(better)} of {measured} measures"
        + (f" ({', '.join(better)})" if better else "")
        + "."
    )
    if flat:
        lines.append(
            "No measurable gain in Python on: "
            + ", ".join(flat)
            + " -- the origin's figures are not reproduced there."
        )
    if by.get("no errors either way"):
        lines.append(
            "Neither preset produced a route-cache error under never-repeated paths (the bounded caches held)."
        )
    if worse:
        lines.append("Worse with the performance preset: " + ", ".join(worse) + ".")
    if missing:
        lines.append("Not measured (no run): " + ", ".join(missing) + ".")
    lines.append(
        "Improvement is positive when the performance preset is better. The origin column is the seed project's "
        "published figures, for reference only: another language, machine and workload."
    )
    return "\n\n".join(lines)


def headline_rows(table: pd.DataFrame) -> list[dict[str, Any]]:
    """The table as tidy rows: one per (measure, preset) plus the improvement."""
    rows = []
    for r in table.itertuples():
        for preset in ("baseline", "performance"):
            value = getattr(r, preset)
            if not _missing(value):
                rows.append(
                    {
                        "metric": r.key,
                        "value": float(value),
                        "unit": r.unit,
                        "preset": preset,
                        "source_study": r.source,
                    }
                )
        if not _missing(r.improvement):
            rows.append({"metric": f"{r.key}_improvement", "value": float(r.improvement), "unit": r.improvement_unit,
                         "preset": "performance vs baseline", "source_study": r.source, "verdict": r.verdict})  # fmt: skip
    return rows


# -- small frame helpers used by several notebooks -----------------------------------------------


def with_pool_label(frame: pd.DataFrame) -> pd.DataFrame:
    """Adds ``config``: "none (plain allocation)" or "bounded <size>"."""
    out = frame.copy()
    out["config"] = [
        "none (plain allocation)" if p == "none" else f"{p} {int(s)}"
        for p, s in zip(out["pool_policy"], out["pool_size"], strict=True)
    ]
    return out


def ecdf_frame(
    frame: pd.DataFrame, metric_name: str, by: str, max_points: int = 400
) -> pd.DataFrame:
    """Empirical CDF points (value, fraction) per ``by`` from raw samples, thinned to ``max_points``."""
    import pandas as pd

    rows = metric(frame, metric_name)
    out = []
    for key, group in rows.groupby(by, sort=True):
        values = sorted(float(v) for v in group["value"] if not _missing(v))
        n = len(values)
        step = max(1, n // max_points)
        for i in range(0, n, step):
            out.append({by: key, "value": values[i], "fraction": (i + 1) / n})
        if n and (n - 1) % step:
            out.append({by: key, "value": values[-1], "fraction": 1.0})
    return pd.DataFrame(out, columns=[by, "value", "fraction"])


def run_window(meta: Mapping[str, Any], default: int | None = None) -> int | None:
    """The degradation window a run used (its ``window_s`` parameter)."""
    value = (meta.get("params") or {}).get("window_s")
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else default
