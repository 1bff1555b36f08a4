"""04 memory strategies: throughput and GC pauses in rounds, and a request-body workload.

Each round starts a fresh server per strategy (order rotated) and loads it to
saturation on a GET workload (served req/s, GC pauses from the server's own
monitor); then the same server reads ``POST /body`` requests for a while: the
path that takes and returns the memory strategy's buffers (its arena), with the
server's RSS before and after, the arena's reuse counters and the C heap's
fragmentation (``h3lab.memory.heap_stats``: free bytes trapped below live
chunks, as a share of the heap). The bodies come in several sizes, mixed in
equal shares, because one size is the kindest case for any allocator: every
freed chunk fits the next request exactly.
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
    fmt_pct,
    log,
    make_plan,
    metric,
)

if TYPE_CHECKING:
    import pandas as pd

STUDY = "memory_strategies"

FULL: dict[str, Any] = {
    "strategies": None,
    "base": "minimal",
    "preset": "balanced",
    "rounds": 5,
    "duration": 2.0,
    "warmup": 0.5,
    "connections": 32,
    "workload": "zipf",
    "body_bytes": [1024, 16384, 65536],
    "body_duration": 2.0,
    "body_connections": 16,
    "engine": "auto",
}
QUICK: dict[str, Any] = {
    "strategies": ["minimal", "performance"],
    "rounds": 3,
    "duration": 1.0,
    "warmup": 0.0,
    "body_duration": 0.5,
}


def plan(quick: bool = False, **given: Any) -> dict[str, Any]:
    return make_plan(STUDY, FULL, QUICK, quick, given)


def strategies(p: Mapping[str, Any]) -> list[str]:
    from h3lab.config import strategy_names

    return list(p["strategies"] or strategy_names("memory.strategy"))


def estimate_s(p: Mapping[str, Any]) -> float:
    per = float(p["duration"]) + float(p["warmup"]) + float(p["body_duration"]) + 2.0
    return len(strategies(p)) * int(p["rounds"]) * per


def arms(p: Mapping[str, Any]) -> list[Any]:
    return [
        loadrun.arm(
            name,
            str(p["preset"]),
            (f"memory.strategy={name}",),
            app=study_apps.APP,
            columns={"memory_strategy": name},
        )
        for name in strategies(p)
    ]


def body_sizes(p: Mapping[str, Any]) -> list[int]:
    """``body_bytes``: one size or a list of sizes (bytes), each a positive int."""
    given = p["body_bytes"]
    try:
        sizes = [given] if isinstance(given, int | float | str) else list(given)
        out = [int(size) for size in sizes]
    except (TypeError, ValueError):
        out = []
    if not out or any(size <= 0 for size in out):
        raise ValueError(f"body_bytes must be a positive int or a list of them, got {given!r}")
    return out


def _rss_mb(stats: Mapping[str, Any] | None) -> float:
    memory = (stats or {}).get("memory") or {}
    return float(memory.get("rss_bytes") or 0) / 2**20


def heap_rows(stats: Mapping[str, Any] | None, when: str) -> list[tuple[str, float, str]]:
    """The C heap around the body phase (none where the allocator has no statistics)."""
    heap = ((stats or {}).get("memory") or {}).get("heap")
    if not heap:
        return []
    return [
        (f"heap_fragmentation_{when}", float(heap["fragmentation"]), "ratio"),
        (f"heap_mb_{when}", heap["heap_bytes"] / 2**20, "MiB"),
        (f"heap_free_mb_{when}", heap["free_bytes"] / 2**20, "MiB"),
    ]


def measure(p: Mapping[str, Any], progress: Progress = log) -> Rows:
    from h3lab.bench.load import run_closed_loop

    progress(f"{STUDY}: about {estimate_s(p) / 60:.1f} min")
    engine = loadrun.resolve_engine(p["engine"])
    requests = loadrun.get_requests(p["workload"])
    sizes = body_sizes(p)
    bodies = [study_apps.body_request(size) for size in sizes]
    connections = int(p["connections"])

    def one(run: Any) -> Rows:
        base = {"engine": engine, "workload": p["workload"], "connections": connections}
        if run.round == 0:  # first server of each arm (see loadrun.saturating)
            loadrun.verify_requests(run.url, [*requests, *bodies])
        result = run.closed_loop(requests, duration=float(p["duration"]), connections=connections,
                                 engine=engine, warmup=float(p["warmup"]),
                                 workload=str(p["workload"]))  # fmt: skip
        stats = run.server.fetch_stats()
        # the body phase measures memory, not speed: the Python client is its bottleneck
        with run.phase("body", saturating=False, check_client=False), loadrun.pinned(run.load_cpu):
            body_result = run_closed_loop(run.url, bodies, connections=int(p["body_connections"]),
                                          duration=float(p["body_duration"]), warmup=0.0)  # fmt: skip
        after = run.server.fetch_stats()
        rows = loadrun.result_rows(result, base) + loadrun.stats_rows(stats, base)
        workload = "POST " + "/".join(f"{size:,}" for size in sizes) + " B"
        body_base = {**base, "phase": "body", "workload": workload}
        arena = ((after or {}).get("memory") or {}).get("arena") or {}
        rows += [
            {**body_base, "metric": "body_rps", "value": body_result.throughput_rps, "unit": "req/s"},
            {**body_base, "metric": "body_errors", "value": body_result.errors_total, "unit": "count"},
            {**body_base, "metric": "rss_before_body_mb", "value": _rss_mb(stats), "unit": "MiB"},
            {**body_base, "metric": "rss_after_body_mb", "value": _rss_mb(after), "unit": "MiB"},
        ]  # fmt: skip
        rows += [
            {**body_base, "metric": name, "value": value, "unit": unit}
            for when, snapshot in (("before", stats), ("after", after))
            for name, value, unit in heap_rows(snapshot, when)
        ]
        if arena.get("acquired"):
            rows.append({**body_base, "metric": "arena_reuse_ratio",
                         "value": arena["reused"] / arena["acquired"], "unit": "ratio"})  # fmt: skip
        return rows

    return loadrun.measure_rounds(arms(p), int(p["rounds"]), one, study=STUDY, progress=progress)


def table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per strategy (medians over rounds): req/s, GC pauses, RSS and C-heap fragmentation
    around the body phase, arena reuse."""
    import pandas as pd

    out = []
    for arm, part in frame[frame["arm"].notna()].groupby("arm", sort=False):

        def med(name: str, part: pd.DataFrame = part) -> float:
            v = metric(part, name)["value"]
            return float(v.median()) if not v.empty else math.nan

        pauses = metric(part, "gc_pause_us")["value"]
        out.append({
            "strategy": arm,
            "throughput_rps": med("throughput_rps"),
            "gc_pause_p50_us": float(pauses.quantile(0.5)) if not pauses.empty else math.nan,
            "gc_pause_p99_us": float(pauses.quantile(0.99)) if not pauses.empty else math.nan,
            "gc_pauses": len(pauses),
            "rss_before_body_mb": med("rss_before_body_mb"),
            "rss_after_body_mb": med("rss_after_body_mb"),
            "rss_growth_mb": med("rss_after_body_mb") - med("rss_before_body_mb"),
            "arena_reuse": med("arena_reuse_ratio"),
            "fragmentation_before": med("heap_fragmentation_before"),
            "fragmentation_after": med("heap_fragmentation_after"),
            "heap_after_mb": med("heap_mb_after"),
            "body_rps": med("body_rps"),
            "errors": float(metric(part, "errors_total")["value"].sum()
                            + metric(part, "body_errors")["value"].sum()),
        })  # fmt: skip
    return pd.DataFrame(out)


def comparison(frame: pd.DataFrame, base: str) -> pd.DataFrame:
    return compare_arms(frame, "throughput_rps", base)


def conclude(summary: pd.DataFrame, compared: pd.DataFrame, base: str) -> str:
    if summary.empty:
        return "No data."
    lines = []
    if not compared.empty:
        lines.append(
            f"Served req/s against the `{base}` strategy (paired by round, Holm-corrected): "
            + "; ".join(f"{r.arm}: {r.text} over {r.n} rounds" for r in compared.itertuples())
            + "."
        )
    lines.append(
        "GC pauses (p99 of the server's last 256 collections): "
        + ", ".join(
            f"{r.strategy} "
            + ("no collection" if not r.gc_pauses else f"{fmt_num(r.gc_pause_p99_us)} us")
            for r in summary.itertuples()
        )
        + "."
    )
    lines.append(
        "Request bodies (RSS before -> after the body phase; arena reuse): "
        + "; ".join(
            f"{r.strategy} {fmt_num(r.rss_before_body_mb)} -> {fmt_num(r.rss_after_body_mb)} MiB"
            + ("" if math.isnan(r.arena_reuse) else f", arena reuse {r.arena_reuse:.1%}")
            for r in summary.itertuples()
        )
        + "."
    )
    if not summary["fragmentation_after"].isna().all():
        lines.append(
            "C heap fragmentation (free bytes trapped below live chunks, share of the heap; "
            "before -> after the body phase): "
            + "; ".join(
                f"{r.strategy} {fmt_pct(r.fragmentation_before)} -> {fmt_pct(r.fragmentation_after)}"
                f" of {fmt_num(r.heap_after_mb)} MiB"
                for r in summary.itertuples()
            )
            + "."
        )
    else:
        lines.append("C heap fragmentation: not measured (the allocator gives no statistics).")
    errors = summary["errors"].sum()
    lines.append("No request failed." if errors == 0 else f"**{int(errors)} requests failed.**")
    return "\n\n".join(lines)
