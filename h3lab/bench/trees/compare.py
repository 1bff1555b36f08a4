"""From the children's rows to paired ratios of times, per case, current vs each ref.

A *case* is one configuration of the target (``performance /plaintext`` of
``protocol``). Two trees name their cases the same way only up to what they
record besides: a newer tree adds config columns, and a preset may be
defined differently, so a case is keyed by ``(target, strategy, param,
workload)`` plus only those columns that tell apart rows sharing that key
within one run (``cached`` for the router, ``kind`` for the middleware). A case must exist in both trees to be compared; the others are
listed as left out, never silently dropped.

Per round, a case's value in one tree is the median of that child's samples
(``ns_per_op``). The comparison of ``current`` against a ref pairs the two
trees' values of the same round: ``paired_comparison(ref, current,
higher_is_better=False)``, whose ratio is ref time / current time (above 1:
current is faster), with a paired t interval on the log ratios; with more
than one ref the decisions of each case are Holm-corrected across refs.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from h3lab.bench.trees.measure import ArmRun
from h3lab.bench.trees.refs import CURRENT
from h3lab.studies.stats import (
    Comparison,
    Estimate,
    cv,
    describe_ratio,
    holm_adjust,
    median_ci,
    paired_comparison,
)

BASE_KEY = ("target", "strategy", "param", "workload")
# What a sample measured, or how: never part of which case it is.
NOT_IDENTITY = frozenset(
    {
        *BASE_KEY,
        "metric",
        "value",
        "unit",
        "repetition",
        "loops",
        "warning",
        "gc_enabled",
        "gc_threshold",
        "t",
    }
)
CaseKey = tuple[Any, ...]


def timing_rows(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [row for row in rows if row.get("metric") == "ns_per_op"]


def distinguishing_columns(rows: Iterable[dict[str, Any]]) -> tuple[str, ...]:
    """The columns that tell apart timing rows sharing a base key (see the module doc)."""
    seen: dict[tuple[Any, ...], dict[str, set[str]]] = {}
    for row in timing_rows(rows):
        base = tuple(row.get(c) for c in BASE_KEY)
        values = seen.setdefault(base, {})
        for column, value in row.items():
            if column not in NOT_IDENTITY:
                values.setdefault(column, set()).add(repr(value))
    out: set[str] = set()
    for values in seen.values():
        out.update(column for column, distinct in values.items() if len(distinct) > 1)
    return tuple(sorted(out))


def case_key(row: dict[str, Any], columns: Sequence[str]) -> CaseKey:
    return (*(row.get(c) for c in BASE_KEY), *(row.get(c) for c in columns))


def case_label(key: CaseKey, columns: Sequence[str]) -> str:
    """``performance /plaintext``, ``lru param=128``: strategy and param, plus any
    distinguishing column."""
    _, strategy, param, _ = key[: len(BASE_KEY)]
    if isinstance(param, int | float) and not isinstance(param, bool):
        param = f"param={param}"  # a size or a count: "lru param=128", not "lru 128"
    extra = [f"{c}={v}" for c, v in zip(columns, key[len(BASE_KEY) :], strict=True)]
    return " ".join([str(strategy), str(param), *extra])


def round_values(runs: Sequence[ArmRun]) -> tuple[dict[str, dict[str, list[float]]], list[str]]:
    """``{arm: {case label: [median ns of round 0, round 1, ...]}}`` and the columns used.

    A case missing from one of its arm's rounds is left out of that arm.
    """
    # Per run, then united: a preset whose definition changed between the trees
    # (another router under "performance") is still the same case.
    columns = sorted({c for run in runs for c in distinguishing_columns(run.rows)})
    rounds = 1 + max((run.round for run in runs), default=-1)
    per_arm: dict[str, dict[str, list[float | None]]] = {}
    for run in runs:
        samples: dict[str, list[float]] = {}
        for row in timing_rows(run.rows):
            label = case_label(case_key(row, columns), columns)
            samples.setdefault(label, []).append(float(row["value"]))
        cases = per_arm.setdefault(run.arm, {})
        for label, values in samples.items():
            cases.setdefault(label, [None] * rounds)[run.round] = statistics.median(values)
    complete: dict[str, dict[str, list[float]]] = {}
    for arm, cases in per_arm.items():
        complete[arm] = {}
        for label, maybe in cases.items():
            found = [v for v in maybe if v is not None]
            if len(found) == rounds:
                complete[arm][label] = found
    return complete, list(columns)


@dataclass
class CaseSummary:
    """One case: each arm's median over rounds (with interval and CV), and the comparisons."""

    case: str
    values: dict[str, list[float]]
    medians: dict[str, Estimate]
    cvs: dict[str, float]
    comparisons: dict[str, Comparison] = field(default_factory=dict)
    p_holm: dict[str, float] = field(default_factory=dict)

    def sentence(self, ref: str) -> str:
        c = self.comparisons[ref]
        return describe_ratio(c, kind="time")


@dataclass
class TreeComparison:
    """Every case compared, and per ref what was left out (cases not in both trees)."""

    arms: list[str]
    cases: list[CaseSummary]
    only_current: dict[str, list[str]]
    only_ref: dict[str, list[str]]
    rounds: int

    def refs(self) -> list[str]:
        return [arm for arm in self.arms if arm != CURRENT]


def compare(runs: Sequence[ArmRun], arms: Sequence[str], level: float = 0.95) -> TreeComparison:
    """Paired comparison of ``current`` against every other arm, per case in both."""
    values, _ = round_values(runs)
    current = values.get(CURRENT, {})
    refs = [arm for arm in arms if arm != CURRENT]
    labels = list(current)
    for ref in refs:
        labels += [label for label in values.get(ref, {}) if label not in labels]
    only_current = {ref: [c for c in current if c not in values.get(ref, {})] for ref in refs}
    only_ref = {ref: [c for c in values.get(ref, {}) if c not in current] for ref in refs}
    summaries = []
    for label in labels:
        present = [arm for arm in arms if label in values.get(arm, {})]
        summary = CaseSummary(
            label,
            {arm: values[arm][label] for arm in present},
            {arm: median_ci(values[arm][label], level) for arm in present},
            {arm: cv(values[arm][label]) for arm in present},
        )
        if CURRENT in present:
            for ref in refs:
                if ref in present:
                    summary.comparisons[ref] = paired_comparison(
                        values[ref][label], current[label], higher_is_better=False, level=level
                    )
        if len(summary.comparisons) > 1:
            names = list(summary.comparisons)
            adjusted = holm_adjust([summary.comparisons[n].p_value for n in names])
            for name, p in zip(names, adjusted, strict=True):
                c = summary.comparisons[name]
                summary.p_holm[name] = p
                summary.comparisons[name] = c.with_significance(p < 1.0 - level and c.n > 1)
        else:
            summary.p_holm = {name: c.p_value for name, c in summary.comparisons.items()}
        summaries.append(summary)
    rounds = 1 + max((run.round for run in runs), default=-1)
    return TreeComparison(list(arms), summaries, only_current, only_ref, rounds)


# -- text -------------------------------------------------------------------------------------


def _ns(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def format_table(result: TreeComparison, descriptions: dict[str, str]) -> str:
    """One line per case: each arm's median ns [interval] and CV, then current vs each ref."""
    arms, refs = result.arms, result.refs()
    cells: list[list[str]] = []
    for s in result.cases:
        row = [s.case]
        for arm in arms:
            est = s.medians.get(arm)
            row.append(
                "-"
                if est is None
                else f"{_ns(est.value)} [{_ns(est.lo)}, {_ns(est.hi)}] cv {s.cvs[arm]:.1%}"
            )
        row += [s.sentence(ref) if ref in s.comparisons else "-" for ref in refs]
        cells.append(row)
    head = ["case", *(f"{arm} ns/op [range]" for arm in arms), *(f"current vs {r}" for r in refs)]
    widths = [max(len(r[i]) for r in [head, *cells]) for i in range(len(head))]

    def line(row: list[str]) -> str:
        return "  ".join(f"{text:<{w}}" for text, w in zip(row, widths, strict=True)).rstrip()

    lines = [line(head), "-" * len(line(head))]
    lines += [line(row) for row in cells]
    lines.append(
        f"ns/op: the median over {result.rounds} rounds of each round's median sample; "
        "[range]: the order-statistic interval of that median (the full range below 6 rounds); "
        "cv: over rounds."
    )
    lines.append(
        "current vs REF: ratio of times REF/current, paired by round (paired t on log ratios, "
        "95%" + (", Holm-corrected across refs" if len(refs) > 1 else "") + ")."
    )
    for ref in refs:
        lines.append(f"{ref}: {descriptions.get(ref, '')}")
        for what, cases in (
            ("only in current", result.only_current.get(ref, [])),
            (f"only in {ref}", result.only_ref.get(ref, [])),
        ):
            if cases:
                lines.append(f"  left out, {what}: {', '.join(cases)}")
    return "\n".join(lines)


def conclusion_text(result: TreeComparison, target: str, descriptions: dict[str, str]) -> str:
    """The run's conclusion (framed by its validity before it is written or printed)."""
    out = [f"`{target}` micro target, the working tree against {', '.join(result.refs())}."]
    for ref in result.refs():
        out.append("")
        out.append(f"Against {ref} ({descriptions.get(ref, '')}), the current tree is:")
        for s in result.cases:
            if ref in s.comparisons:
                out.append(f"- {s.case}: {s.sentence(ref)}")
        left = result.only_current.get(ref, []) + result.only_ref.get(ref, [])
        if left:
            out.append(f"- not compared (not in both trees): {', '.join(left)}")
    return "\n".join(out)


def measured_rows(runs: Sequence[ArmRun]) -> list[dict[str, Any]]:
    """The stored rows of the measurement: per arm, round and case, the round's median
    (``ns_per_op``, what the comparison pairs) and every sample (``ns_per_op_sample``)."""
    from h3lab.bench.results import STRATEGY_COLUMNS

    columns = sorted({c for run in runs for c in distinguishing_columns(run.rows)})
    keep = (*STRATEGY_COLUMNS, "preset", *columns)
    out: list[dict[str, Any]] = []
    for run in runs:
        groups: dict[str, list[dict[str, Any]]] = {}
        for row in timing_rows(run.rows):
            groups.setdefault(case_label(case_key(row, columns), columns), []).append(row)
        for label, rows in groups.items():
            first = rows[0]
            common = {
                "arm": run.arm,
                "round": run.round,
                "case": label,
                **{c: first.get(c) for c in BASE_KEY},
                **{c: first.get(c) for c in keep if c in first},
                "unit": "ns",
                "repetition": run.round,
            }
            values = [float(r["value"]) for r in rows]
            out.append(
                {
                    **common,
                    "metric": "ns_per_op",
                    "value": statistics.median(values),
                    "samples": len(values),
                    "sample_cv": cv(values),
                    "loops": first.get("loops"),
                }
            )
            out += [
                {**common, "metric": "ns_per_op_sample", "value": v, "sample": i}
                for i, v in enumerate(values)
            ]
    return out


def comparison_rows(result: TreeComparison, target: str) -> list[dict[str, Any]]:
    """One stored row per case and ref: the ratio of times with its interval and p-values."""
    rows = []
    for s in result.cases:
        for ref, c in s.comparisons.items():
            rows.append(
                {
                    "target": target,
                    "case": s.case,
                    "arm": CURRENT,
                    "against": ref,
                    "metric": "time_ratio",
                    "value": c.ratio,
                    "unit": "ratio",
                    "lo": c.lo,
                    "hi": c.hi,
                    "p_value": c.p_value,
                    "p_holm": s.p_holm.get(ref, c.p_value),
                    "significant": c.significant,
                    "rounds": c.n,
                }
            )
    return rows


__all__ = [
    "CaseSummary",
    "TreeComparison",
    "case_key",
    "case_label",
    "compare",
    "comparison_rows",
    "conclusion_text",
    "distinguishing_columns",
    "format_table",
    "measured_rows",
    "round_values",
]
