"""``h3lab study compare A B``: did anything change between two runs (asv compare, pyperf compare_to)?

``A`` and ``B`` are each a run id (or a unique prefix of one) or a commit
(prefix): a run id names one run of one study; a commit names, for every
study, its latest successful study run at that commit. Studies present on
both sides are compared.

Per *measurement* -- the rows of one metric with the same identifying
columns (arm, preset, router, cache size, workload, connections...; not the
round, repetition or timestamp, which are what repeats) -- the values of A
and of B form two samples. Their comparison is
``h3lab.studies.stats.independent_comparison`` (Welch's t on logs: ratio of
geometric means with its interval; different runs are not paired), oriented
so that above 1 means B is better. Whether higher or lower is better comes
from the metric's name and unit (``direction``); metrics with no known
direction (counts, ratios of unknown sense) are listed, never flagged.
Significance is Holm-corrected over every comparison of a study: with
hundreds of metrics, uncorrected 95% intervals would flag a few by chance.

A *regression* is a significant change for the worse whose size exceeds
``--fail-above PCT``: for time-like metrics ``B/A - 1`` of the time, for
throughput-like ones ``1 - B/A`` of the throughput, in percent.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from h3lab.studies.stats import (
    Comparison,
    RatioKind,
    describe_ratio,
    holm_comparisons,
    independent_comparison,
)

# Columns that repeat within one measurement or describe the run, not the measurement.
NOT_IDENTITY = frozenset(
    {
        "value",
        "run_id",
        "study",
        "t",
        "repetition",
        "round",
        "order",
        "timestamp",
        "warning",
        "git_commit",
        "git_dirty",
        "h3lab_version",
        "hostname",
        "cpu_model",
        "server_cpu",
        "load_cpu",
        "url",
    }
)

_HIGHER = ("rps", "throughput", "hit_ratio", "reuse", "per_s", "ops_per")
_LOWER = ("latency", "_ms", "_us", "_ns", "ns_per", "rss", "bytes", "pause", "errors", "alloc")
_HIGHER_UNITS = ("req/s", "ops/s", "/s")
_LOWER_UNITS = ("ns", "us", "ms", "s", "MiB", "bytes", "B")


def direction(metric: str, unit: str | None) -> bool | None:
    """True when higher is better, False when lower is, None when unknown."""
    name = metric.lower()
    if any(h in name for h in _HIGHER):
        return True
    if any(low in name for low in _LOWER):
        return False
    u = (unit or "").strip()
    if u in _HIGHER_UNITS:
        return True
    if u in _LOWER_UNITS:
        return False
    return None


def _kind(higher_is_better: bool) -> RatioKind:
    return "throughput" if higher_is_better else "time"


@dataclass
class MetricChange:
    study: str
    metric: str
    unit: str
    identity: dict[str, Any]
    a_median: float
    b_median: float
    n_a: int
    n_b: int
    higher_is_better: bool | None
    comparison: Comparison | None

    @property
    def label(self) -> str:
        ident = ", ".join(f"{k}={v}" for k, v in self.identity.items())
        return f"{self.study}: {self.metric}" + (f" [{ident}]" if ident else "")

    @property
    def worse_pct(self) -> float:
        """How much worse B is, in percent (negative = better); 0 without a direction."""
        c = self.comparison
        if c is None or self.higher_is_better is None or c.ratio <= 0:
            return 0.0
        return (
            (1.0 / c.ratio - 1.0) * 100.0 if not self.higher_is_better else (1.0 - c.ratio) * 100.0
        )

    def describe(self) -> str:
        c = self.comparison
        if c is None or self.higher_is_better is None:
            ratio = self.b_median / self.a_median if self.a_median else math.nan
            return f"B/A = {ratio:.3g} (no direction known: not judged)"
        return describe_ratio(c, kind=_kind(self.higher_is_better))


@dataclass
class CompareResult:
    a: str
    b: str
    runs_a: dict[str, Path]
    runs_b: dict[str, Path]
    changes: list[MetricChange] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# -- resolving A and B ----------------------------------------------------------------------


def _meta(run_dir: Path) -> dict[str, Any]:
    try:
        meta = json.loads((run_dir / "meta.json").read_text())
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def resolve(ref: str, root: str | Path, study: str | None = None) -> dict[str, Path]:
    """``{study: run_dir}`` for a run id (prefix) or a commit (prefix); ``ValueError`` if none."""
    from h3lab.studies.provenance import latest_run

    root = Path(root)
    if not ref or not root.is_dir():
        raise ValueError(f"no runs under {root}" if ref else "empty run id or commit")
    studies = [study] if study else sorted(p.name for p in root.iterdir() if p.is_dir())
    by_id = [
        run_dir
        for s in studies
        if (root / s).is_dir()
        for run_dir in (root / s).iterdir()
        if run_dir.is_dir() and run_dir.name.startswith(ref)
    ]
    if len(by_id) == 1:
        return {by_id[0].parent.name: by_id[0]}
    if len(by_id) > 1:
        names = ", ".join(sorted(f"{p.parent.name}/{p.name}" for p in by_id)[:5])
        raise ValueError(f"run id {ref!r} is ambiguous: {names}")
    found: dict[str, Path] = {}
    from h3lab.bench.results import run_dirs

    for s in studies:
        for run_dir in reversed(run_dirs(s, root)):
            meta = _meta(run_dir)
            if not str(meta.get("git_commit") or "").startswith(ref):
                continue
            # the latest successful study run at that commit (manual runs only if no other)
            best = latest_run(s, root, include_manual=True)
            if best is not None and str(_meta(best).get("git_commit") or "").startswith(ref):
                found[s] = best
            elif (run_dir / "results.parquet").is_file():
                found[s] = run_dir
            break
    if not found:
        raise ValueError(f"{ref!r} is neither a run id nor a commit of any run under {root}")
    return found


# -- comparing ---------------------------------------------------------------------------------


def _identity(row: dict[str, Any], columns: list[str]) -> tuple[tuple[str, Any], ...]:
    out = []
    for c in columns:
        v = row.get(c)
        if v is None or (isinstance(v, float) and math.isnan(v)):
            continue
        out.append((c, v))
    return tuple(out)


def _samples(run_dir: Path) -> dict[tuple[Any, ...], tuple[str, str, list[float]]]:
    from h3lab.bench.results import load_run

    frame = load_run(run_dir)
    columns = [c for c in frame.columns if c not in NOT_IDENTITY and c not in ("metric", "unit")]
    out: dict[tuple[Any, ...], tuple[str, str, list[float]]] = {}
    for row in frame.to_dict("records"):
        value = row.get("value")
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            continue
        metric, unit = str(row["metric"]), str(row.get("unit") or "")
        key = (metric, unit, _identity(row, columns))
        out.setdefault(key, (metric, unit, []))[2].append(float(value))
    return out


def compare_study(study: str, a_dir: Path, b_dir: Path, level: float = 0.95) -> list[MetricChange]:
    import statistics

    a, b = _samples(a_dir), _samples(b_dir)
    changes: list[MetricChange] = []
    for key in a.keys() & b.keys():
        metric, unit, va = a[key]
        _, _, vb = b[key]
        higher = direction(metric, unit)
        comparison = None
        if higher is not None and all(v > 0 for v in (*va, *vb)):
            comparison = independent_comparison(va, vb, higher_is_better=higher, level=level)
        changes.append(
            MetricChange(
                study,
                metric,
                unit,
                dict(key[2]),
                statistics.median(va),
                statistics.median(vb),
                len(va),
                len(vb),
                higher,
                comparison,
            )
        )
    judged = [(c, c.comparison) for c in changes if c.comparison is not None]
    if len(judged) > 1:
        adjusted = holm_comparisons([comp for _, comp in judged], 1.0 - level)
        for (change, _), comp in zip(judged, adjusted, strict=True):
            change.comparison = comp
    changes.sort(key=lambda c: (c.metric, c.label))
    return changes


def compare_runs(
    a: str, b: str, root: str | Path = "data/runs", *, study: str | None = None
) -> CompareResult:
    runs_a, runs_b = resolve(a, root, study), resolve(b, root, study)
    result = CompareResult(a, b, runs_a, runs_b)
    common = sorted(runs_a.keys() & runs_b.keys())
    if not common:
        raise ValueError(
            f"{a} ({', '.join(sorted(runs_a))}) and {b} ({', '.join(sorted(runs_b))}) "
            "share no study"
        )
    for s in sorted(runs_a.keys() ^ runs_b.keys()):
        result.notes.append(f"{s}: only on one side, not compared")
    for s in common:
        for side, run_dir in (("A", runs_a[s]), ("B", runs_b[s])):
            v = _meta(run_dir).get("validity") or {}
            if v and not v.get("ok", True):
                result.notes.append(f"{s}: {side} run {run_dir.name} is INVALID")
        result.changes += compare_study(s, runs_a[s], runs_b[s])
    return result


def regressions(result: CompareResult, fail_above_pct: float) -> list[str]:
    """Significant changes for the worse larger than ``fail_above_pct`` percent."""
    out = []
    for c in result.changes:
        if c.comparison is not None and c.comparison.significant and c.worse_pct > fail_above_pct:
            out.append(f"{c.label}: {c.describe()} ({c.worse_pct:.1f}% worse)")
    return out


def format_report(result: CompareResult, show_all: bool = False) -> str:
    """Text: the runs compared, then one line per (significant, unless ``show_all``) change."""
    lines = [f"A = {result.a}, B = {result.b}"]
    for s in sorted(result.runs_a.keys() & result.runs_b.keys()):
        lines.append(f"  {s}: A {result.runs_a[s].name}  B {result.runs_b[s].name}")
    lines += [f"  note: {n}" for n in result.notes]
    significant = [
        c for c in result.changes if c.comparison is not None and c.comparison.significant
    ]
    lines.append(
        f"{len(result.changes)} measurements compared, {len(significant)} changed significantly "
        "(Welch t on logs, Holm-corrected per study; ratios > 1 favour B)"
    )
    for c in result.changes if show_all else significant:
        flag = ""
        if c.comparison is not None and c.comparison.significant:
            flag = "WORSE " if c.worse_pct > 0 else "better"
        lines.append(
            f"  {flag:<6} {c.label}: A {c.a_median:.4g} -> B {c.b_median:.4g} {c.unit}: {c.describe()}"
        )
    return "\n".join(lines)


__all__ = [
    "CompareResult",
    "MetricChange",
    "compare_runs",
    "compare_study",
    "direction",
    "format_report",
    "regressions",
    "resolve",
]
