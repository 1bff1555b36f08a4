"""05 middleware: per-middleware cost of each execution strategy, and end to end in rounds."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from h3lab.studies import loadrun
from h3lab.studies.common import (
    Progress,
    Rows,
    compare_pairs,
    fmt_num,
    fmt_x,
    linear_slope,
    log,
    make_plan,
    metric,
    summarize,
    timing,
)

if TYPE_CHECKING:
    import pandas as pd

STUDY = "middleware"

FULL: dict[str, Any] = {
    "executions": ["legacy", "fast"],
    "counts": [0, 1, 2, 4, 8, 16, 32],
    "kinds": ["onion", "before"],
    "repetitions": 7,
    "min_time": 0.01,
    "e2e_counts": [0, 8],
    "e2e_kind": "before",
    "rounds": 5,
    "duration": 2.0,
    "warmup": 0.5,
    "connections": 32,
    "engine": "auto",
}
QUICK: dict[str, Any] = {
    "counts": [0, 4, 32],
    "kinds": ["before"],
    "repetitions": 3,
    "min_time": 0.002,
    "e2e_counts": [8],
    "rounds": 3,
    "duration": 1.0,
    "warmup": 0.0,
}


def plan(quick: bool = False, **given: Any) -> dict[str, Any]:
    return make_plan(STUDY, FULL, QUICK, quick, given)


def estimate_s(p: Mapping[str, Any]) -> float:
    e2e = len(p["executions"]) * len(p["e2e_counts"]) * int(p["rounds"])
    micro = len(p["executions"]) * len(p["counts"]) * len(p["kinds"]) * int(p["repetitions"])
    return e2e * (float(p["duration"]) + float(p["warmup"]) + 1.5) + micro * 0.2


def micro(p: Mapping[str, Any]) -> Rows:
    from h3lab.bench.micro import run_micro

    return run_micro(
        "middleware",
        executions=list(p["executions"]),
        counts=list(p["counts"]),
        kinds=list(p["kinds"]),
        **timing(p),
    )


def arm_name(execution: str, n: int) -> str:
    return f"{execution} x{int(n)}"


def e2e(p: Mapping[str, Any], progress: Progress = log) -> Rows:
    """Served req/s of /plaintext behind N no-op middlewares per execution, in rounds."""
    progress(f"{STUDY}: about {estimate_s(p) / 60:.1f} min")
    from h3lab.bench.apps import MIDDLEWARE_KIND_ENV, MIDDLEWARES_ENV, plaintext_request

    engine = loadrun.resolve_engine(p["engine"])
    arms = [
        loadrun.arm(
            arm_name(execution, n), "balanced", (f"middleware.execution={execution}",),
            env={MIDDLEWARES_ENV: str(int(n)), MIDDLEWARE_KIND_ENV: str(p["e2e_kind"])},
            columns={"middlewares": int(n), "kind": p["e2e_kind"], "execution": execution},
        )
        for n in p["e2e_counts"]
        for execution in p["executions"]
    ]  # fmt: skip
    measure = loadrun.saturating(p, [plaintext_request()], engine=engine,
                                 connections=int(p["connections"]), workload="/plaintext")  # fmt: skip
    return loadrun.measure_rounds(arms, int(p["rounds"]), measure, study=STUDY, progress=progress)


def e2e_comparison(frame: pd.DataFrame, base: str = "legacy", other: str = "fast") -> pd.DataFrame:
    """At every middleware count: ``other`` against ``base`` execution, paired, Holm over counts."""
    rows = metric(frame, "throughput_rps")
    if rows.empty or "middlewares" not in rows.columns:
        return compare_pairs(frame, "throughput_rps", [])
    counts = sorted({int(n) for n in rows["middlewares"].dropna()})
    pairs = [(arm_name(base, n), arm_name(other, n)) for n in counts]
    out = compare_pairs(frame, "throughput_rps", pairs)
    out["middlewares"] = [int(str(a).rsplit("x", 1)[1]) for a in out["arm"]]
    return out


def overhead(frame: pd.DataFrame) -> pd.DataFrame:
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


def conclude(summary: pd.DataFrame, compared: pd.DataFrame) -> str:
    costs = per_middleware_cost(summary)
    lines = []
    for kind, g in costs.groupby("kind", sort=True):
        parts = ", ".join(
            f"{r.middleware} {fmt_num(r.ns_per_middleware)} ns" for r in g.itertuples()
        )
        text = f"Each additional no-op {kind} middleware costs (least-squares slope): {parts}."
        if set(g["middleware"]) >= {"legacy", "fast"}:
            legacy = float(g[g["middleware"] == "legacy"]["ns_per_middleware"].iloc[0])
            fast = float(g[g["middleware"] == "fast"]["ns_per_middleware"].iloc[0])
            if legacy > 0 and fast > 0:
                text += f" Per middleware, fast is {fmt_x(legacy / fast)}x faster than legacy."
        lines.append(text)
    if not compared.empty:
        lines.append(
            "End to end, fast against legacy execution (served req/s, paired by round, "
            "Holm-corrected): "
            + "; ".join(
                f"with {r.middlewares} middlewares {r.text} over {r.n} rounds"
                for r in compared.itertuples()
            )
            + "."
        )
    return "\n\n".join(lines) or "No data."
