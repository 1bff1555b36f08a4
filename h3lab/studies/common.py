"""What every study module shares: plans, formatting, frame helpers, paired comparisons.

Conventions
-----------
* Rows are the tidy rows of ``h3lab.bench.results`` (``metric``, ``value``,
  ``unit``, strategy columns, extras such as ``arm`` and ``round``).
* A *summary* is one row per group with ``median``, ``lo``, ``hi`` and ``n``;
  charts draw these, never raw samples.
* Load comparisons are *paired*: every arm is measured once per round, the
  order rotated (``h3lab.bench.rounds``), and ``compare_arms`` turns the
  per-round values into ratios with intervals (``h3lab.studies.stats``), Holm-
  corrected when more than one arm is compared with the same base.
* Every sentence of a conclusion is built from these numbers; a difference is
  only named when its interval excludes "no change".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from h3lab.bench import stats as bstats

if TYPE_CHECKING:
    import pandas as pd

Rows = list[dict[str, Any]]
Progress = Callable[[str], None]

NOISE = 0.05
"""A relative change smaller than this, without an interval, is not called a difference."""
N_BOOT = 1000


def log(message: str) -> None:
    print(message, flush=True)


# -- plans -------------------------------------------------------------------------------


def make_plan(
    study: str,
    full: Mapping[str, Any],
    quick_overrides: Mapping[str, Any],
    quick: bool,
    given: Mapping[str, Any],
) -> dict[str, Any]:
    """A study's sizes: ``full``, shrunk by ``quick_overrides`` when ``quick``, then every
    non-None ``given`` (an unknown name is a ``ValueError`` naming the known ones)."""
    unknown = sorted(set(given) - set(full))
    if unknown:
        raise ValueError(f"{study} has no parameter(s) {unknown}; known: {sorted(full)}")
    values = {**full, **(quick_overrides if quick else {})}
    values.update({k: v for k, v in given.items() if v is not None})
    return values


def timing(p: Mapping[str, Any]) -> dict[str, Any]:
    """The micro-benchmark timing knobs of a plan."""
    return {"repetitions": int(p["repetitions"]), "min_time": float(p["min_time"])}


# -- formatting -----------------------------------------------------------------------


def missing(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def fmt_num(x: Any, digits: int = 3) -> str:
    """Significant-digit formatting without scientific notation for everyday magnitudes."""
    if missing(x):
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
    if missing(x):
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
        values = [float(v) for v in group[value] if not missing(v)]
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
    new = [float(v) for v in new if not missing(v)]
    old = [float(v) for v in old if not missing(v)]
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
    if missing(change):
        return "not measured"
    if lo is not None and hi is not None:
        if lo > 0 or hi < 0:
            good = (lo > 0) == higher_is_better
            return "better" if good else "worse"
        return "no measurable difference"
    if abs(change) < NOISE:
        return "no measurable difference"
    return "better" if (change > 0) == higher_is_better else "worse"


def nearest(values: Iterable[Any], target: float) -> Any:
    values = [v for v in values if not missing(v)]
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


# -- load runs (04, 06) ----------------------------------------------------------------------------


def series(frame: pd.DataFrame, name: str, by: Sequence[str]) -> pd.DataFrame:
    rows = metric(frame, name)
    rows = rows[rows["t"].notna()]
    return rows[[*by, "t", "value"]].sort_values([*by, "t"]).reset_index(drop=True)


def percentile_table(frame: pd.DataFrame, by: str) -> pd.DataFrame:
    """``latency_quantile_ms`` rows as (by, percentile, nines, latency_ms, fraction) for charts."""
    rows = metric(frame, "latency_quantile_ms")
    out = rows[[by, "quantile", "value"]].rename(columns={"value": "latency_ms"}).copy()
    out["percentile"] = out["quantile"] * 100
    out["fraction"] = out["quantile"]
    out["nines"] = [-math.log10(1 - q) if q < 1 else 5.0 for q in out["quantile"]]
    return out.sort_values([by, "quantile"]).reset_index(drop=True)


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table (no tabulate dependency)."""
    cols = [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(str(v).replace("|", "/") for v in row) + " |")
    return "\n".join(lines)


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
        values = sorted(float(v) for v in group["value"] if not missing(v))
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


# -- paired comparisons of arms measured in rounds ---------------------------------------------


def per_round(frame: pd.DataFrame, name: str, arm_col: str = "arm") -> pd.DataFrame:
    """``metric`` values as a round x arm table (rounds where an arm is missing are dropped)."""
    rows = metric(frame, name)
    if rows.empty or "round" not in rows.columns:
        import pandas as pd

        return pd.DataFrame()
    table = rows.pivot_table(index="round", columns=arm_col, values="value", aggfunc="median")
    return table


def compare_arms(
    frame: pd.DataFrame,
    name: str,
    base: str,
    *,
    arm_col: str = "arm",
    higher_is_better: bool = True,
    others: Sequence[str] | None = None,
    level: float = 0.95,
) -> pd.DataFrame:
    """Each arm against ``base`` on metric ``name``, paired by round (see ``compare_pairs``)."""
    table = per_round(frame, name, arm_col)
    arms = [a for a in (others or list(table.columns)) if a != base]
    return compare_pairs(frame, name, [(base, a) for a in arms], arm_col=arm_col,
                         higher_is_better=higher_is_better, level=level)  # fmt: skip


def compare_pairs(
    frame: pd.DataFrame,
    name: str,
    pairs: Sequence[tuple[str, str]],
    *,
    arm_col: str = "arm",
    higher_is_better: bool = True,
    level: float = 0.95,
) -> pd.DataFrame:
    """``(base, other)`` arm pairs on metric ``name``, paired by round.

    One row per pair: ``ratio`` (> 1 = ``other`` is better: more throughput,
    or less time), ``lo``, ``hi``, ``p_value``, ``n`` (rounds), ``significant``
    after Holm's correction over all the pairs, and ``text`` ("1.9x faster
    [1.7, 2.1]", "1.3x more throughput [...]" or "no significant difference
    ..."). Pairs with an arm that was not measured are left out.
    """
    import pandas as pd

    from h3lab.studies import stats

    cols = ["arm", "base", "ratio", "lo", "hi", "p_value", "n", "significant", "text"]
    table = per_round(frame, name, arm_col)
    found = []
    for base, arm in pairs:
        if table.empty or base not in table.columns or arm not in table.columns:
            continue
        pair = table[[base, arm]].dropna()
        pair = pair[(pair[base] > 0) & (pair[arm] > 0)]
        if pair.empty:
            continue
        c = stats.paired_comparison(pair[base].tolist(), pair[arm].tolist(),
                                    higher_is_better=higher_is_better, level=level)  # fmt: skip
        found.append((base, arm, c))
    comps = [c for _, _, c in found]
    corrected = stats.holm_comparisons(comps) if len(comps) > 1 else comps
    kind: stats.RatioKind = "throughput" if higher_is_better else "time"
    out = [
        {"arm": arm, "base": base, "ratio": c.ratio, "lo": c.lo, "hi": c.hi,
         "p_value": c.p_value, "n": c.n, "significant": bool(c.significant),
         "text": stats.describe_ratio(c, kind=kind)}
        for (base, arm, _), c in zip(found, corrected, strict=True)
    ]  # fmt: skip
    return pd.DataFrame(out, columns=cols)


def arm_summary(frame: pd.DataFrame, name: str, by: Sequence[str] = ("arm",)) -> pd.DataFrame:
    """Median over rounds per arm with a distribution-free interval (for bars)."""
    import pandas as pd

    from h3lab.studies import stats

    rows = metric(frame, name)
    out = []
    if rows.empty:
        return pd.DataFrame(columns=[*by, "median", "lo", "hi", "n"])
    for key, group in rows.groupby(list(by), sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        values = [float(v) for v in group["value"] if not missing(v)]
        if not values:
            continue
        est = stats.median_ci(values)
        out.append(
            {**dict(zip(by, key, strict=True)), "median": est.value, "lo": est.lo, "hi": est.hi,
             "n": est.n}
        )  # fmt: skip
    return pd.DataFrame(out, columns=[*by, "median", "lo", "hi", "n"])


def window_change(
    values: Sequence[float],
    window: int,
    *,
    margin_pct: float = 2.0,
    alpha: float = 0.05,
    block: int = 3,
    n_boot: int = 2000,
    seed: int = 0,
) -> Any:
    """Last window against first of a per-second series: a TOST ``Equivalence`` (in %).

    The estimate is ``mean(last) / mean(first) - 1`` in percent (negative =
    throughput fell); its ``1 - 2 alpha`` interval a moving-block bootstrap of
    both windows (neighbouring seconds are correlated). "No degradation" may
    only be said from its ``equivalent`` verdict. None when the series is
    shorter than two windows.
    """
    import random

    from h3lab.studies import stats

    values = [float(v) for v in values if not missing(v)]
    if window < 2 or len(values) < 2 * window:
        return None
    first, last = values[:window], values[-window:]
    if sum(first) <= 0:
        return None
    point = (sum(last) / window) / (sum(first) / window) * 100 - 100
    rng = random.Random(seed)
    # blocks shorter than the window, or every resample is the window itself
    block = max(1, min(block, window // 3))

    def resample(data: list[float]) -> float:
        sample: list[float] = []
        while len(sample) < len(data):
            s = rng.randrange(len(data) - block + 1)
            sample.extend(data[s : s + block])
        return sum(sample[: len(data)]) / len(data)

    boots = []
    for _ in range(n_boot):
        f = resample(first)
        if f > 0:
            boots.append(resample(last) / f * 100 - 100)
    boots.sort()
    lo = boots[int(alpha * (len(boots) - 1))]
    hi = boots[int((1 - alpha) * (len(boots) - 1))]
    return stats.tost(estimate=point, lo=min(lo, point), hi=max(hi, point),
                      margin_pct=margin_pct, alpha=alpha)  # fmt: skip


def describe_change(eq: Any, what: str = "throughput") -> str:
    """A TOST outcome in words: "no degradation (within +-2%: ...)", "degrades 4.5% [...]"..."""
    if eq is None:
        return "not measured (series too short)"
    interval = f"{eq.estimate:+.1f}% [{eq.lo:+.1f}%, {eq.hi:+.1f}%]"
    if eq.verdict == "equivalent":
        return f"no degradation: {what} stays within +-{eq.margin:g}% ({interval})"
    if eq.verdict == "different":
        if eq.estimate < 0:
            return f"degrades {-eq.estimate:.1f}% [{-eq.hi:.1f}, {-eq.lo:.1f}]"
        return f"{what} rises {eq.estimate:.1f}% [{eq.lo:.1f}, {eq.hi:.1f}]"
    return f"inconclusive ({interval}, margin +-{eq.margin:g}%)"


def speedup(base: Sequence[float], other: Sequence[float]) -> dict[str, Any]:
    """Ratio of median times ``base / other`` (> 1 = other is faster) with a bootstrap interval.

    For independent samples (micro-benchmarks): ``ratio``, ``lo``, ``hi``,
    ``significant`` (the interval excludes 1) and ``text`` ("1.9x faster [1.7,
    2.1]", "1.3x slower [...]" or "no measurable difference (...)").
    """
    b = [float(v) for v in base if not missing(v)]
    o = [float(v) for v in other if not missing(v)]
    if not b or not o or bstats.median(o) == 0:
        return {"ratio": math.nan, "lo": math.nan, "hi": math.nan, "significant": False,
                "text": "not measured"}  # fmt: skip
    ratio = bstats.median(b) / bstats.median(o)
    if len(b) < 2 or len(o) < 2:
        lo = hi = math.nan
    else:
        lo, hi = bstats.ratio_ci(b, o, n_boot=N_BOOT)
    significant = not missing(lo) and (lo > 1 or hi < 1)
    return {"ratio": ratio, "lo": lo, "hi": hi, "significant": significant,
            "text": fmt_speedup(ratio, lo, hi, significant)}  # fmt: skip


def fmt_x(x: float) -> str:
    return f"{x:.3g}" if x < 10 else f"{x:.1f}" if x < 100 else f"{x:.0f}"


def fmt_speedup(ratio: float, lo: float, hi: float, significant: bool = True) -> str:
    """A ratio of times as words: "N.N x faster [lo, hi]" / "slower" / no difference."""
    if missing(ratio):
        return "not measured"
    interval = "" if missing(lo) else f" [{fmt_x(lo)}, {fmt_x(hi)}]"
    if not significant:
        return f"no measurable difference ({fmt_x(ratio)}x{interval})"
    if ratio >= 1:
        return f"{fmt_x(ratio)}x faster{interval}"
    inv = "" if missing(lo) else f" [{fmt_x(1 / hi)}, {fmt_x(1 / lo)}]"
    return f"{fmt_x(1 / ratio)}x slower{inv}"


def stability_notes(frame: pd.DataFrame) -> list[str]:
    """The unstable-sample warnings the measurements attached to their rows (one line each)."""
    if "warning" not in frame.columns:
        return []
    rows = frame[frame["warning"].notna() & (frame["warning"].astype(str) != "")]
    keys = [c for c in ("target", "strategy", "param", "arm", "cached") if c in rows.columns]
    out = []
    for _, r in rows.drop_duplicates(subset=[*keys, "warning"]).iterrows():
        where = "/".join(str(r[k]) for k in keys if not missing(r[k]))
        out.append(f"{where}: {r['warning']}")
    return out


def stability_paragraph(frame: pd.DataFrame, limit: int = 12) -> str:
    """The warnings as a conclusion paragraph ('' when there are none)."""
    notes = stability_notes(frame)
    if not notes:
        return ""
    shown = "; ".join(notes[:limit])
    more = f" (and {len(notes) - limit} more)" if len(notes) > limit else ""
    return f"**Unstable samples ({len(notes)}):** {shown}{more}."
