"""Small statistics for benchmark samples, in the manner of pyperf.

Medians rather than means (a noisy machine adds slow outliers, never fast
ones), bootstrap confidence intervals (no normality assumption about timing
distributions, which are skewed), pyperf's stability checks, and the
interleaved run order that spreads slow drift (thermal, other tenants) over
every configuration instead of penalising whichever ran last.

Pure standard library: importable from the server process and from tests
without numpy or pandas. Comparisons between arms (paired intervals, Holm,
equivalence tests, the ratio wording) live in ``h3lab.studies.stats``.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")

# pyperf's thresholds (pyperf/_cli.py: format_checks).
UNSTABLE_CV = 0.10
OUTLIER_FACTOR = 0.50
MIN_VALUES = 3


def _values(values: Sequence[float]) -> list[float]:
    out = [float(v) for v in values]
    if not out:
        raise ValueError("no values to summarize")
    if any(math.isnan(v) for v in out):
        raise ValueError("values contain NaN")
    return out


def summarize(values: Sequence[float]) -> dict[str, float]:
    """n, median, mean, stdev (sample; 0 for one value), min, max, cv, q1, q3."""
    data = _values(values)
    n = len(data)
    mean = statistics.fmean(data)
    stdev = statistics.stdev(data) if n > 1 else 0.0
    if n > 1:
        q1, _, q3 = statistics.quantiles(data, n=4, method="inclusive")
    else:
        q1 = q3 = data[0]
    return {
        "n": n,
        "median": statistics.median(data),
        "mean": mean,
        "stdev": stdev,
        "min": min(data),
        "max": max(data),
        "cv": stdev / abs(mean) if mean else 0.0,
        "q1": q1,
        "q3": q3,
    }


def _percentile_interval(estimates: list[float], confidence: float) -> tuple[float, float]:
    estimates.sort()
    alpha = (1.0 - confidence) / 2.0
    last = len(estimates) - 1
    lo = estimates[max(0, math.floor(alpha * last))]
    hi = estimates[min(last, math.ceil((1.0 - alpha) * last))]
    return lo, hi


def _check_ci_args(confidence: float, n_boot: int) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")


def bootstrap_ci(
    values: Sequence[float], confidence: float = 0.95, n_boot: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """Percentile-bootstrap confidence interval of the median (seeded, reproducible)."""
    data = _values(values)
    _check_ci_args(confidence, n_boot)
    if len(data) == 1:
        return data[0], data[0]
    rng = random.Random(seed)
    n = len(data)
    median = statistics.median
    estimates = [median(rng.choices(data, k=n)) for _ in range(n_boot)]
    return _percentile_interval(estimates, confidence)


def ratio_ci(
    a_values: Sequence[float],
    b_values: Sequence[float],
    confidence: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
) -> tuple[float, float]:
    """Bootstrap CI of ``median(a) / median(b)`` (independent resamples of a and b).

    An interval that excludes 1.0 is a difference the samples support.
    """
    a = _values(a_values)
    b = _values(b_values)
    _check_ci_args(confidence, n_boot)
    rng = random.Random(seed)
    median = statistics.median
    estimates = []
    for _ in range(n_boot):
        denominator = median(rng.choices(b, k=len(b)))
        if denominator == 0:
            raise ValueError("median of b_values resampled to 0: the ratio is undefined")
        estimates.append(median(rng.choices(a, k=len(a))) / denominator)
    return _percentile_interval(estimates, confidence)


def stability_warnings(values: Sequence[float]) -> list[str]:
    """pyperf's checks: too few values, stdev >= 10% of the mean, min/max >= 50% off the mean."""
    data = _values(values)
    warnings: list[str] = []
    if len(data) < MIN_VALUES:
        warnings.append(f"too few values (n={len(data)}; at least {MIN_VALUES} are needed)")
    s = summarize(data)
    mean = s["mean"]
    if len(data) > 1 and s["cv"] >= UNSTABLE_CV:
        warnings.append(f"unstable (cv={s['cv']:.1%}: stdev is >= {UNSTABLE_CV:.0%} of the mean)")
    if mean > 0:
        if s["max"] >= mean * (1 + OUTLIER_FACTOR):
            warnings.append(
                f"max {s['max']:.4g} is {(s['max'] / mean - 1):.0%} above the mean {mean:.4g}"
            )
        if s["min"] <= mean * (1 - OUTLIER_FACTOR):
            warnings.append(
                f"min {s['min']:.4g} is {(1 - s['min'] / mean):.0%} below the mean {mean:.4g}"
            )
    return warnings


def interleave(configs: Sequence[T], repetitions: int) -> list[tuple[T, int]]:
    """``[(A, 0), (B, 0), (C, 0), (B, 1), (C, 1), (A, 1), ...]``: every config once per
    round, round ``r`` starting at config ``r mod k`` (as ``h3lab.bench.rounds`` does), so
    no config always runs first, right after the warm-up, or after the same neighbour."""
    if repetitions < 0:
        raise ValueError(f"repetitions must be >= 0, got {repetitions}")
    k = len(configs)
    return [(configs[(i + rep) % k], rep) for rep in range(repetitions) for i in range(k)]


def median(values: Sequence[float]) -> float:
    return statistics.median(_values(values))


def describe(values: Sequence[float], unit: str = "") -> str:
    """``"123.4 ns +- 5.6 (median, n=10)"``: one line for reports."""
    s = summarize(values)
    suffix = f" {unit}" if unit else ""
    return f"{s['median']:.4g}{suffix} +- {s['stdev']:.2g} (median, n={s['n']})"


__all__ = [
    "bootstrap_ci",
    "describe",
    "interleave",
    "median",
    "ratio_ci",
    "stability_warnings",
    "summarize",
]
