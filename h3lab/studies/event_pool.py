"""03 event pool: acquire+release versus allocation, and the pool under overlapping requests.

A synchronous handler runs inline: under any load only one event is alive at a
time, a pool of one suffices and reuse is 100% by construction. So the end-to-
end arms serve ``GET /await`` (a handler that suspends, ``study_apps``) over 64+
connections, where events overlap; the server's own counters give the pool's
high-water mark, creations and reuse. The micro-benchmark is then timed at the
concurrency the server actually reached (its high-water mark), beside the
plan's grid.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from h3lab.studies import loadrun, study_apps
from h3lab.studies.common import (
    Progress,
    Rows,
    compare_arms,
    fmt_num,
    log,
    make_plan,
    metric,
    speedup,
    stability_paragraph,
    summarize,
    timing,
)

if TYPE_CHECKING:
    import pandas as pd

STUDY = "event_pool"

FULL: dict[str, Any] = {
    "policies": None,
    "sizes": [16, 64, 256, 1024],
    "concurrency": [1, 16, 64, 256],
    "repetitions": 7,
    "min_time": 0.01,
    "e2e_pools": [["none", 0], ["bounded", 16], ["bounded", 256]],
    "connections": 64,
    "await_us": 0,
    "rounds": 5,
    "duration": 2.0,
    "warmup": 0.5,
    "engine": "auto",
}
QUICK: dict[str, Any] = {
    "sizes": [16, 256],
    "concurrency": [1, 16],
    "repetitions": 3,
    "min_time": 0.002,
    "e2e_pools": [["none", 0], ["bounded", 256]],
    "rounds": 3,
    "duration": 1.0,
    "warmup": 0.0,
}


def plan(quick: bool = False, **given: Any) -> dict[str, Any]:
    return make_plan(STUDY, FULL, QUICK, quick, given)


def estimate_s(p: Mapping[str, Any]) -> float:
    """Expected duration: the e2e rounds (server start ~1.5 s each) and the micro grid."""
    e2e = len(p["e2e_pools"]) * int(p["rounds"]) * (float(p["duration"]) + float(p["warmup"]) + 1.5)
    micro = (len(p["sizes"]) + 1) * (len(p["concurrency"]) + 1) * int(p["repetitions"]) * 0.25
    return e2e + micro


def arm_name(policy: str, size: int) -> str:
    return "none (plain allocation)" if policy == "none" else f"{policy} {int(size)}"


def arms(p: Mapping[str, Any]) -> list[Any]:
    out = []
    for policy, size in p["e2e_pools"]:
        name = arm_name(str(policy), int(size))
        overrides = (f"pool.policy={policy}", f"pool.size={int(size)}",
                     f"pool.warmup={min(32, int(size))}")  # fmt: skip
        out.append(
            loadrun.arm(
                name,
                "balanced",
                overrides,
                app=study_apps.APP,
                columns={"config": name},
                env={study_apps.AWAIT_ENV: str(int(p["await_us"]))},
            )
        )
    return out


def e2e(p: Mapping[str, Any], progress: Progress = log) -> Rows:
    """Served req/s of ``GET /await`` and the pool's counters per pool arm, in rounds."""
    progress(f"{STUDY}: about {estimate_s(p) / 60:.1f} min")
    engine = loadrun.resolve_engine(p["engine"])
    measure = loadrun.saturating(p, [study_apps.await_request()], engine=engine,
                                 connections=int(p["connections"]), workload="/await")  # fmt: skip
    return loadrun.measure_rounds(
        arms(p), int(p["rounds"]), measure, study=STUDY, progress=progress
    )


def reached_concurrency(frame: pd.DataFrame) -> int | None:
    """The largest pool high-water mark any pooled server reached (median over rounds)."""
    hw = metric(frame, "pool_high_water")
    if hw.empty:
        return None
    per_arm = hw.groupby("arm")["value"].median()
    return int(per_arm.max()) if not per_arm.empty else None


def micro(p: Mapping[str, Any], reached: int | None = None) -> Rows:
    """ns per acquire+release (``none`` = plain allocation), reuse, allocations per op,
    at the plan's concurrencies and at ``reached`` (the server's high-water mark)."""
    from h3lab.bench.micro import run_micro

    levels = sorted({*map(int, p["concurrency"]), *([int(reached)] if reached else [])})
    rows = run_micro(
        "pool",
        policies=p["policies"],
        sizes=list(p["sizes"]),
        concurrency=levels,
        track_alloc=True,
        **timing(p),
    )
    for row in rows:
        row["at_reached"] = bool(reached) and row.get("concurrency") == reached
    return rows


# -- summaries ---------------------------------------------------------------------------------


def micro_summary(frame: pd.DataFrame, metric_name: str = "ns_per_op") -> pd.DataFrame:
    rows = metric(frame, metric_name)
    rows = rows[rows["pool_policy"].notna() & rows["concurrency"].notna()]
    rows["config"] = [
        arm_name(p, s) for p, s in zip(rows["pool_policy"], rows["pool_size"], strict=True)
    ]
    return summarize(rows, ["config", "pool_policy", "pool_size", "concurrency"])


def allocation_speedups(frame: pd.DataFrame) -> pd.DataFrame:
    """Per concurrency: each bounded size's acquire+release against plain allocation."""
    import pandas as pd

    rows = metric(frame, "ns_per_op")
    rows = rows[rows["pool_policy"].notna() & rows["concurrency"].notna()]
    out = []
    for c, group in rows.groupby("concurrency", sort=True):
        plain = group[group["pool_policy"] == "none"]["value"].tolist()
        for size, g in group[group["pool_policy"] != "none"].groupby("pool_size", sort=True):
            s = speedup(plain, g["value"].tolist())
            out.append({"concurrency": int(c), "pool_size": int(size), "speedup": s["ratio"],
                        "lo": s["lo"], "hi": s["hi"], "significant": s["significant"],
                        "text": s["text"]})  # fmt: skip
    return pd.DataFrame(out, columns=["concurrency", "pool_size", "speedup", "lo", "hi",
                                      "significant", "text"])  # fmt: skip


def counters(frame: pd.DataFrame) -> pd.DataFrame:
    """Per arm (median over rounds): pool high-water mark, events created, acquired, reused."""
    import pandas as pd

    out = []
    for arm, part in frame[frame["arm"].notna()].groupby("arm", sort=False):

        def med(name: str, part: pd.DataFrame = part) -> float:
            v = metric(part, name)["value"]
            return float(v.median()) if not v.empty else math.nan

        created, acquired = med("pool_created"), med("pool_acquired")
        out.append({"arm": arm, "high_water": med("pool_high_water"), "created": created,
                    "acquired": acquired, "reused": acquired - created,
                    "reuse_ratio": med("pool_reuse_ratio")})  # fmt: skip
    return pd.DataFrame(out, columns=["arm", "high_water", "created", "acquired", "reused",
                                      "reuse_ratio"])  # fmt: skip


def e2e_comparison(frame: pd.DataFrame) -> pd.DataFrame:
    base = arm_name("none", 0)
    return compare_arms(frame, "throughput_rps", base)


def conclude(
    speedups: pd.DataFrame,
    pool_counters: pd.DataFrame,
    comparison: pd.DataFrame,
    reached: int | None,
    frame: pd.DataFrame | None = None,
) -> str:
    lines = []
    if not pool_counters.empty:
        parts = [
            f"{r.arm}: high-water {fmt_num(r.high_water)}, created {fmt_num(r.created)}, "
            f"reused {fmt_num(r.reused)} of {fmt_num(r.acquired)} acquires"
            for r in pool_counters.itertuples()
            if not math.isnan(r.acquired)
        ]
        if parts:
            lines.append("Under load with a handler that awaits (server counters, median over "
                         "rounds): " + "; ".join(parts) + ".")  # fmt: skip
    if not speedups.empty:
        at = speedups[speedups["concurrency"] == reached] if reached else speedups.iloc[0:0]
        shown = at if not at.empty else speedups
        where = (f"at the concurrency the server reached ({reached} events at once)"
                 if not at.empty else "over the measured concurrencies")  # fmt: skip
        lines.append(
            f"Acquire+release from a bounded pool against plain allocation, {where}: "
            + "; ".join(
                f"pool {r.pool_size} at {r.concurrency}: {r.text}" for r in shown.itertuples()
            )
            + "."
        )
    if not comparison.empty:
        lines.append(
            "End to end (served req/s, paired by round, Holm-corrected), against no pool: "
            + "; ".join(f"{r.arm}: {r.text} over {r.n} rounds" for r in comparison.itertuples())
            + "."
        )
    if frame is not None:
        note = stability_paragraph(frame)
        if note:
            lines.append(note)
    return "\n\n".join(lines) or "No data."
