"""01 route cache: hit ratios (simulated, Belady-bounded, cross-checked), lookup cost, bounds."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from h3lab.studies.common import Rows, fmt_num, fmt_pct, log, make_plan, metric, nearest, timing

if TYPE_CHECKING:
    import pandas as pd

STUDY = "route_cache"
TRACE_SAMPLE = "data/traces/sample.csv"

FULL: dict[str, Any] = {
    "policies": ["lru", "lfu", "fifo", "wtinylfu"],
    "workloads": ["uniform", "zipf", "scan", "adversarial", "trace"],
    "zipf_skews": [0.6, 0.8, 1.0, 1.2],
    "fractions": [0.01, 0.02, 0.05, 0.1, 0.2, 0.5],
    "routes": 1000,
    "n_requests": 30_000,
    "lookup_sizes": [64, 256, 1024, 4096],
    "lookup_workloads": ["uniform", "zipf", "scan", "adversarial"],
    "repetitions": 7,
    "min_time": 0.01,
    "bound_size": 1024,
    "bound_requests": 200_000,
    "libcachesim_policies": ["lru", "lfu", "fifo"],
    "trace_path": TRACE_SAMPLE,
}
QUICK: dict[str, Any] = {
    "zipf_skews": [0.8, 1.2],
    "fractions": [0.02, 0.1, 0.5],
    "routes": 200,
    "n_requests": 5_000,
    "lookup_sizes": [64, 512],
    "lookup_workloads": ["zipf", "adversarial"],
    "repetitions": 3,
    "min_time": 0.002,
    "bound_size": 256,
    "bound_requests": 20_000,
}
ESTIMATE_FULL_S = 120
"""Full mode, measured: simulation grid + lookup micro-benchmarks + bounds."""


def plan(quick: bool = False, **given: Any) -> dict[str, Any]:
    return make_plan(STUDY, FULL, QUICK, quick, given)


def cache_workloads(p: Mapping[str, Any], seed: int = 0) -> list[tuple[str, Any, dict[str, Any]]]:
    """``(label, Workload, extra columns)`` for the hit-ratio grid (zipf once per skew)."""
    from h3lab.bench.route_tables import route_table
    from h3lab.bench.workloads import make_workload

    table = route_table(int(p["routes"]), seed=seed)
    out: list[tuple[str, Any, dict[str, Any]]] = []
    for name in p["workloads"]:
        if name == "zipf":
            for s in p["zipf_skews"]:
                out.append(
                    (
                        f"zipf-{s:g}",
                        make_workload("zipf", table=table, s=float(s), seed=seed),
                        {"skew": float(s)},
                    )
                )
        elif name == "adversarial":
            out.append(
                (
                    "adversarial",
                    make_workload("adversarial", seed=seed, junk_share=0.0),
                    {"skew": None},
                )
            )
        elif name == "trace":
            from h3lab.studies.registry import repo_root

            path = Path(p.get("trace_path") or TRACE_SAMPLE)
            # relative to the repository, wherever the kernel was started (Lab: notebooks/)
            path = path if path.is_absolute() else repo_root() / path
            if path.is_file():
                out.append(("trace", make_workload("trace", path=path), {"skew": None}))
            else:
                log(f"trace {path} not found: the trace workload is skipped")
        else:
            out.append(
                (
                    name,
                    make_workload(name, table=table, seed=seed),
                    {"skew": 0.0 if name == "uniform" else None},
                )
            )
    return out


def hit_ratios(p: Mapping[str, Any], seed: int = 0) -> Rows:
    """Simulated hit ratios (h3lab policies + Belady + unbounded) and libCacheSim's, per workload."""
    from h3lab.bench import cachesim

    rows: Rows = []
    for label, workload, extra in cache_workloads(p, seed):
        keys = workload.keys(int(p["n_requests"]))
        sim = cachesim.simulate(
            keys, list(p["policies"]), fractions=list(p["fractions"]), workload_name=label
        )
        sizes = sorted({r["size"] for r in sim})
        for r in sim:
            base = {
                "cache_policy": r["policy"],
                "cache_size": r["size"],
                "workload": label,
                "fraction": r["fraction"],
                "engine": "h3lab",
                "working_set": len(set(keys)),
                **extra,
            }
            rows.append({**base, "metric": "hit_ratio", "value": r["hit_ratio"], "unit": "ratio"})
            rows.append(
                {**base, "metric": "max_entries", "value": r["max_entries"], "unit": "count"}
            )
        lcs_policies = [q for q in p.get("libcachesim_policies") or [] if q]
        if lcs_policies:
            try:
                lcs = cachesim.libcachesim_hit_ratios(
                    keys, lcs_policies, sizes, workload_name=label
                )
            except ImportError as exc:
                log(f"libcachesim unavailable ({exc}): no cross-check")
                lcs = []
            ws = len(set(keys))
            for r in lcs:
                rows.append(
                    {
                        "cache_policy": r["policy"],
                        "cache_size": r["size"],
                        "workload": label,
                        "fraction": r["size"] / ws,
                        "engine": "libcachesim",
                        "working_set": ws,
                        **extra,
                        "metric": "hit_ratio",
                        "value": r["hit_ratio"],
                        "unit": "ratio",
                    }
                )
    return rows


def lookup(p: Mapping[str, Any], seed: int = 0) -> Rows:
    """ns per get(+put on miss), hit ratio and bytes held, per policy x size x workload (micro)."""
    from h3lab.bench.micro import run_micro

    rows: Rows = []
    for workload in p["lookup_workloads"]:
        rows += run_micro(
            "cache",
            policies=list(p["policies"]),
            sizes=list(p["lookup_sizes"]),
            workload=workload,
            routes=int(p["routes"]),
            n_requests=min(int(p["n_requests"]), 20_000),
            seed=seed,
            **timing(p),
        )
    return rows


def boundedness(p: Mapping[str, Any], seed: int = 0, checkpoints: int = 20) -> Rows:
    """Adversarial never-repeating paths through each real cache: entries and bytes held over time.

    An unbounded dict fed the same keys is the contrast: it grows with every request.
    """
    import sys

    from h3lab.bench.workloads import make_workload
    from h3lab.cache import CACHES

    n = int(p["bound_requests"])
    size = int(p["bound_size"])
    keys = make_workload("adversarial", seed=seed, junk_share=0.0).keys(n)
    every = max(1, n // checkpoints)
    rows: Rows = []
    for policy in [*p["policies"], "unbounded"]:
        cache = None if policy == "unbounded" else CACHES.get(policy)(size)
        plain: dict[Any, Any] = {}
        worst = 0
        for i, key in enumerate(keys, start=1):
            if cache is None:
                plain.setdefault(key, key)
                held = len(plain)
            else:
                if cache.get(key) is None:
                    cache.put(key, key)
                held = len(cache)
            worst = max(worst, held)
            if i % every == 0 or i == n:
                if cache is None:
                    approx = sys.getsizeof(plain) + sum(sys.getsizeof(k[1]) for k in plain)
                else:
                    approx = cache.approx_bytes()
                base = {
                    "cache_policy": policy,
                    "cache_size": size,
                    "workload": "adversarial",
                    "requests_seen": i,
                }
                rows.append({**base, "metric": "entries", "value": held, "unit": "count"})
                rows.append({**base, "metric": "approx_bytes", "value": approx, "unit": "bytes"})
        rows.append(
            {
                "cache_policy": policy,
                "cache_size": size,
                "workload": "adversarial",
                "metric": "bound_violations",
                "value": 0 if cache is None or worst <= size else 1,
                "unit": "count",
                "max_entries": worst,
            }
        )
    return rows


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


def conclude(
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
        frac = nearest(at["fraction"].unique(), fraction)
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
        loose = [
            f"{policy} ({fmt_num(d * 100, 2)} points)" for policy, d in worst.items() if d > 0.005
        ]
        if loose:
            text += f"; beyond half a point: {', '.join(loose)}"
        lines.append(text + ".")
    if lookup is not None and not lookup.empty:
        per = lookup.groupby("cache_policy")["median"].median().sort_values()
        lines.append(
            f"Lookup cost (median over sizes and workloads): fastest **{per.index[0]}** at "
            f"{fmt_num(per.iloc[0])} ns, slowest {per.index[-1]} at {fmt_num(per.iloc[-1])} ns per lookup."
        )
    return "\n\n".join(lines) or "No data."
