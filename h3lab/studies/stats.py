"""The one statistics module of the studies and of ``h3lab tune``.

Every load comparison in h3lab is *paired*: ``run_rounds`` (``h3lab.bench.rounds``)
measures every arm once per round, the order rotated each round, so the
``i``-th value of two arms was taken minutes apart under the same machine
state. Comparisons therefore work on the per-round differences, never on two
independent samples.

What is computed, and why
-------------------------
``paired_comparison(base, other, higher_is_better=...)``
    Per round the oriented log ratio ``d_i = log(other_i / base_i)`` for a
    throughput-like metric (``higher_is_better=True``) or ``log(base_i /
    other_i)`` for a time-like one, so that ``d_i > 0`` always means "other is
    better". The estimate is ``exp(mean(d))`` (a geometric mean of per-round
    ratios: symmetric, ``A/B`` is exactly ``1 / (B/A)``), the interval
    ``exp(mean(d) +- t[n-1] * sd(d) / sqrt(n))`` -- a paired t interval on
    the log scale -- and the p-value the two-sided paired t test of
    ``mean(d) = 0``. The t interval (not a bootstrap) is used for every n:
    with the 3-7 rounds a study can afford, a percentile bootstrap cannot
    reach its nominal coverage (with 3 rounds its bounds are simply the
    worst and best round) while the t interval is exact for normal log
    ratios and robust for the mild skew seen in practice. One round gives
    no interval: ``lo = hi = ratio``, ``p_value = 1``, never significant.
``holm`` / ``holm_adjust``
    Holm's step-down correction for more than two arms (uniformly more
    powerful than Bonferroni, same family-wise error guarantee).
``tost``
    Two one-sided tests for equivalence within ``+-margin_pct``: the
    ``1 - 2 alpha`` interval of the percentage change must lie inside the
    margin. "No degradation" / "no difference" may only be said from an
    ``equivalent`` verdict; a significant change outside it is
    ``different``; everything else is ``inconclusive``.
``describe_ratio``
    The sentence for a comparison: ``"1.9x faster [1.7, 2.1]"`` (a ratio of
    times), ``"1.3x more throughput [1.2, 1.4]"``, or ``"no significant
    difference (1.02x [0.97, 1.07])"``. Never "X% faster".
``median_ci``, ``bootstrap_ci``
    One sample: the median with a distribution-free (binomial order
    statistic) interval; a seeded (optionally moving-block, for per-second
    series that are autocorrelated) bootstrap of any statistic.

``h3lab tune``'s re-measurement (``h3lab.tune.select``) uses ``schedule``,
``paired_gain_ci`` (a paired percentile bootstrap of the ratio of medians,
with enough rounds for its decision rule) and ``rounds_needed`` from here.

scipy provides the t and binomial distributions (``studies`` extra).
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

Direction = Literal["maximize", "minimize"]
Verdict = Literal["equivalent", "different", "inconclusive"]
RatioKind = Literal["time", "throughput"]

DEFAULT_LEVEL = 0.95
DEFAULT_MARGIN_PCT = 2.0


def _t_ppf(q: float, df: int) -> float:
    from scipy.stats import t

    return float(t.ppf(q, df))


def _t_sf(x: float, df: int) -> float:
    from scipy.stats import t

    return float(t.sf(x, df))


def _finite(values: Sequence[float], what: str) -> list[float]:
    out = [float(v) for v in values]
    if any(not math.isfinite(v) for v in out):
        raise ValueError(f"{what} contain NaN or infinity: {out}")
    return out


def _check_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")


# -- paired comparison ----------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    """``other`` against ``base``: above 1 always means "other is better".

    ``ratio`` is ``other / base`` for throughput-like metrics and ``base /
    other`` for time-like ones (a geometric mean over rounds); ``[lo, hi]``
    its ``level`` interval; ``p_value`` the paired t test of no difference.
    """

    ratio: float
    lo: float
    hi: float
    p_value: float
    n: int
    significant: bool
    level: float = DEFAULT_LEVEL
    higher_is_better: bool = True

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def with_significance(self, significant: bool) -> Comparison:
        """The same comparison with ``significant`` replaced (e.g. after ``holm``)."""
        return Comparison(
            self.ratio,
            self.lo,
            self.hi,
            self.p_value,
            self.n,
            significant,
            self.level,
            self.higher_is_better,
        )


def log_ratios(
    base: Sequence[float], other: Sequence[float], *, higher_is_better: bool
) -> list[float]:
    """Per round, ``log`` of the oriented ratio (> 0 = other is better)."""
    b = _finite(base, "base values")
    o = _finite(other, "other values")
    if len(b) != len(o):
        raise ValueError(f"paired samples need the same length, got {len(b)} and {len(o)}")
    if not b:
        raise ValueError("no paired values")
    if any(v <= 0 for v in (*b, *o)):
        raise ValueError("ratios need positive values (a zero throughput or time has no ratio)")
    if higher_is_better:
        return [math.log(y / x) for x, y in zip(b, o, strict=True)]
    return [math.log(x / y) for x, y in zip(b, o, strict=True)]


def paired_comparison(
    base: Sequence[float],
    other: Sequence[float],
    *,
    higher_is_better: bool,
    level: float = DEFAULT_LEVEL,
) -> Comparison:
    """Paired comparison of per-round values (index ``i`` of both = round ``i``).

    Paired t on the per-round log ratios (see the module doc). ``significant``
    is ``p_value < 1 - level`` (equivalently: the interval excludes 1).
    """
    _check_level(level)
    d = log_ratios(base, other, higher_is_better=higher_is_better)
    n = len(d)
    mean = statistics.fmean(d)
    if n == 1:
        r = math.exp(mean)
        return Comparison(r, r, r, 1.0, 1, False, level, higher_is_better)
    sd = statistics.stdev(d)
    se = sd / math.sqrt(n)
    if se == 0.0:
        # Identical ratio in every round: no spread to speak of.
        r = math.exp(mean)
        p = 1.0 if mean == 0.0 else 0.0
        return Comparison(r, r, r, p, n, mean != 0.0, level, higher_is_better)
    half = _t_ppf(0.5 + level / 2.0, n - 1) * se
    p = min(1.0, 2.0 * _t_sf(abs(mean) / se, n - 1))
    return Comparison(
        math.exp(mean),
        math.exp(mean - half),
        math.exp(mean + half),
        p,
        n,
        p < 1.0 - level,
        level,
        higher_is_better,
    )


def independent_comparison(
    base: Sequence[float],
    other: Sequence[float],
    *,
    higher_is_better: bool,
    level: float = DEFAULT_LEVEL,
) -> Comparison:
    """Two *unpaired* samples (e.g. the same metric in two different runs).

    Welch's t on the log values: ratio of geometric means, its interval with
    Welch-Satterthwaite degrees of freedom, and the p-value of Welch's test.
    Fewer than two values on either side gives no interval and no claim.
    """
    _check_level(level)
    b = _finite(base, "base values")
    o = _finite(other, "other values")
    if not b or not o:
        raise ValueError("both samples need values")
    if any(v <= 0 for v in (*b, *o)):
        raise ValueError("ratios need positive values (a zero throughput or time has no ratio)")
    lb, lo_ = [math.log(v) for v in b], [math.log(v) for v in o]
    diff = statistics.fmean(lo_) - statistics.fmean(lb)
    if not higher_is_better:
        diff = -diff
    r = math.exp(diff)
    if len(b) < 2 or len(o) < 2:
        return Comparison(r, r, r, 1.0, min(len(b), len(o)), False, level, higher_is_better)
    vb, vo = statistics.variance(lb) / len(lb), statistics.variance(lo_) / len(lo_)
    se = math.sqrt(vb + vo)
    if se == 0.0:
        return Comparison(r, r, r, 1.0 if diff == 0 else 0.0, min(len(b), len(o)), diff != 0,
                          level, higher_is_better)  # fmt: skip
    df = (vb + vo) ** 2 / (vb**2 / (len(lb) - 1) + vo**2 / (len(lo_) - 1))
    from scipy.stats import t

    half = float(t.ppf(0.5 + level / 2.0, df)) * se
    p = min(1.0, 2.0 * float(t.sf(abs(diff) / se, df)))
    return Comparison(
        r,
        math.exp(diff - half),
        math.exp(diff + half),
        p,
        min(len(b), len(o)),
        p < 1.0 - level,
        level,
        higher_is_better,
    )


# -- multiple comparisons ----------------------------------------------------------------------


def holm_adjust(p_values: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values (same order as given): reject where adjusted < alpha."""
    p = [float(x) for x in p_values]
    if any(not 0.0 <= x <= 1.0 for x in p):
        raise ValueError(f"p-values must be in [0, 1], got {p}")
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted


def holm(p_values: Sequence[float], alpha: float = 0.05) -> list[bool]:
    """Which hypotheses Holm's step-down procedure rejects at family-wise ``alpha``."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    return [q < alpha for q in holm_adjust(p_values)]


def holm_comparisons(
    comparisons: Sequence[Comparison], alpha: float | None = None
) -> list[Comparison]:
    """The comparisons with ``significant`` re-decided by Holm over all of them.

    ``alpha`` defaults to ``1 - level`` of the first comparison. The intervals
    are left at their own level (report them as such).
    """
    if not comparisons:
        return []
    a = alpha if alpha is not None else 1.0 - comparisons[0].level
    keep = holm([c.p_value for c in comparisons], a)
    return [c.with_significance(k and c.n > 1) for c, k in zip(comparisons, keep, strict=True)]


# -- equivalence ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Equivalence:
    """TOST outcome; ``estimate``, ``lo``, ``hi`` and ``margin`` in percent change."""

    verdict: Verdict
    estimate: float
    lo: float
    hi: float
    margin: float
    alpha: float = 0.05
    n: int | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self, *, change: str = "change") -> str:
        """``"equivalent within +-2% (+0.4% [-0.8%, +1.6%])"`` and the like."""
        interval = f"{self.estimate:+.1f}% [{self.lo:+.1f}%, {self.hi:+.1f}%]"
        if self.verdict == "equivalent":
            return f"no {change} beyond +-{self.margin:g}% ({interval})"
        if self.verdict == "different":
            return f"{change} of {interval}"
        return f"inconclusive: {interval} is neither within +-{self.margin:g}% nor clear of 0"


def tost(
    values_pct_change: Sequence[float] | None = None,
    *,
    estimate: float | None = None,
    lo: float | None = None,
    hi: float | None = None,
    margin_pct: float = DEFAULT_MARGIN_PCT,
    alpha: float = 0.05,
) -> Equivalence:
    """Equivalence within ``+-margin_pct`` by two one-sided tests at ``alpha``.

    Either per-round percentage changes (``values_pct_change``; the ``1 - 2
    alpha`` t interval of their mean is computed), or an ``estimate`` with an
    interval ``[lo, hi]`` that the caller computed at level ``1 - 2 alpha``
    (e.g. a block bootstrap of a first-vs-last-window change).

    * ``equivalent``: the whole interval is inside ``(-margin, +margin)``;
    * ``different``: otherwise, and the interval excludes 0;
    * ``inconclusive``: otherwise (too few or too noisy values to tell).
    """
    if margin_pct <= 0:
        raise ValueError(f"margin_pct must be > 0, got {margin_pct}")
    if not 0.0 < alpha < 0.5:
        raise ValueError(f"alpha must be in (0, 0.5), got {alpha}")
    n: int | None = None
    if values_pct_change is not None:
        if estimate is not None or lo is not None or hi is not None:
            raise ValueError("give values_pct_change or estimate+lo+hi, not both")
        values = _finite(values_pct_change, "percentage changes")
        if not values:
            raise ValueError("no values for the equivalence test")
        n = len(values)
        estimate = statistics.fmean(values)
        if n == 1:
            return Equivalence("inconclusive", estimate, -math.inf, math.inf, margin_pct, alpha, n)
        se = statistics.stdev(values) / math.sqrt(n)
        half = _t_ppf(1.0 - alpha, n - 1) * se
        lo, hi = estimate - half, estimate + half
    elif estimate is None or lo is None or hi is None:
        raise ValueError("tost needs values_pct_change, or estimate, lo and hi")
    estimate, lo, hi = float(estimate), float(lo), float(hi)
    if lo > hi:
        raise ValueError(f"interval lower bound {lo} is above its upper bound {hi}")
    if -margin_pct < lo and hi < margin_pct:
        verdict: Verdict = "equivalent"
    elif lo > 0.0 or hi < 0.0:
        verdict = "different"
    else:
        verdict = "inconclusive"
    return Equivalence(verdict, estimate, lo, hi, margin_pct, alpha, n)


# -- wording ----------------------------------------------------------------------------------


def _x(value: float) -> str:
    return f"{value:.3g}" if value < 10 else f"{value:.0f}" if value >= 100 else f"{value:.1f}"


def describe_ratio(c: Comparison, *, kind: RatioKind) -> str:
    """One phrase for a comparison of ``other`` against ``base``.

    ``kind="time"``: "1.9x faster [1.7, 2.1]" / "1.3x slower [1.2, 1.4]"
    (ratios of times); ``kind="throughput"``: "1.3x more throughput [1.2,
    1.4]" / "0.77x the throughput [0.71, 0.83]". Not significant: "no
    significant difference (1.02x [0.97, 1.07])". Never a percentage.
    """
    if kind not in ("time", "throughput"):
        raise ValueError(f"kind must be 'time' or 'throughput', got {kind!r}")
    if not c.significant:
        return f"no significant difference ({_x(c.ratio)}x [{_x(c.lo)}, {_x(c.hi)}])"
    if kind == "time":
        if c.ratio >= 1.0:
            return f"{_x(c.ratio)}x faster [{_x(c.lo)}, {_x(c.hi)}]"
        return f"{_x(1 / c.ratio)}x slower [{_x(1 / c.hi)}, {_x(1 / c.lo)}]"
    if c.ratio >= 1.0:
        return f"{_x(c.ratio)}x more throughput [{_x(c.lo)}, {_x(c.hi)}]"
    return f"{_x(c.ratio)}x the throughput [{_x(c.lo)}, {_x(c.hi)}]"


# -- one sample -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its interval (``n`` values behind it)."""

    value: float
    lo: float
    hi: float
    n: int
    level: float = DEFAULT_LEVEL

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def median_ci(values: Sequence[float], level: float = DEFAULT_LEVEL) -> Estimate:
    """The median with a distribution-free interval (order statistics, binomial).

    The interval ``[x_(k), x_(n-k+1)]`` covers the population median with
    probability ``1 - 2 P(Binom(n, 1/2) < k)``; the largest ``k`` reaching
    ``level`` is used. Below 6 values no ``k`` reaches 95%: the interval is then
    the sample's range (stated coverage lower than ``level``).
    """
    from scipy.stats import binom

    _check_level(level)
    data = sorted(_finite(values, "values"))
    if not data:
        raise ValueError("no values")
    n = len(data)
    med = statistics.median(data)
    k = 0
    for cand in range(1, n // 2 + 1):
        if 1.0 - 2.0 * float(binom.cdf(cand - 1, n, 0.5)) >= level:
            k = cand
        else:
            break
    if k == 0:
        return Estimate(med, data[0], data[-1], n, level)
    return Estimate(med, data[k - 1], data[n - k], n, level)


def bootstrap_ci(
    values: Sequence[float],
    statistic: Callable[[Sequence[float]], float] = statistics.median,
    *,
    level: float = DEFAULT_LEVEL,
    n_boot: int = 2000,
    seed: int = 0,
    block: int = 1,
) -> Estimate:
    """Seeded percentile bootstrap of ``statistic``; ``block > 1`` = moving-block bootstrap.

    Use ``block`` of a few samples for per-second series: neighbouring
    seconds are correlated, and resampling single seconds would give an
    interval that is too narrow.
    """
    _check_level(level)
    data = _finite(values, "values")
    if not data:
        raise ValueError("no values")
    if block < 1:
        raise ValueError(f"block must be >= 1, got {block}")
    point = float(statistic(data))
    n = len(data)
    if n == 1:
        return Estimate(point, point, point, 1, level)
    rng = random.Random(seed)
    block = min(block, n)
    starts = n - block + 1
    estimates = []
    for _ in range(n_boot):
        sample: list[float] = []
        while len(sample) < n:
            s = rng.randrange(starts)
            sample.extend(data[s : s + block])
        estimates.append(float(statistic(sample[:n])))
    lo, hi = _percentile_interval(estimates, level)
    return Estimate(point, lo, hi, n, level)


def _percentile_interval(estimates: list[float], level: float) -> tuple[float, float]:
    estimates = sorted(estimates)
    alpha = (1.0 - level) / 2.0
    last = len(estimates) - 1
    return (
        estimates[max(0, math.floor(alpha * last))],
        estimates[min(last, math.ceil((1.0 - alpha) * last))],
    )


def cv(values: Sequence[float]) -> float:
    """Coefficient of variation (sample stdev / |mean|; 0 for fewer than 2 values)."""
    data = _finite(values, "values")
    if len(data) < 2:
        return 0.0
    mean = statistics.fmean(data)
    return statistics.stdev(data) / abs(mean) if mean else math.inf


# -- the interleaved schedule and the tuner's bootstrap -----------------------------------------


def schedule(labels: Sequence[str], repetitions: int) -> list[tuple[str, int]]:
    """``[(arm, round), ...]``: every arm once per round, round ``r`` starting at arm ``r mod k``."""
    if repetitions < 0:
        raise ValueError(f"repetitions must be >= 0, got {repetitions}")
    n = len(labels)
    return [(labels[(i + r) % n], r) for r in range(repetitions) for i in range(n)]


def oriented_gain(candidate: float, reference: float, direction: Direction) -> float:
    """Above 1 = the candidate is better (more throughput, or lower latency)."""
    if direction == "maximize":
        return candidate / reference if reference else math.inf
    return reference / candidate if candidate else math.inf


def paired_gain_ci(
    candidate: Sequence[float],
    reference: Sequence[float],
    direction: Direction,
    confidence: float = DEFAULT_LEVEL,
    n_boot: int = 4000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """``(gain, low, high)``: gain of medians and its paired percentile-bootstrap interval.

    Rounds are resampled with replacement, each round's pair kept together.
    Used by ``h3lab tune`` with at least ``rounds_needed`` rounds; for the
    studies' few rounds use ``paired_comparison``.
    """
    if len(candidate) != len(reference):
        raise ValueError("paired samples must have the same length")
    if not candidate:
        raise ValueError("no paired measurements")
    _check_level(confidence)
    median = statistics.median
    point = oriented_gain(median(candidate), median(reference), direction)
    n = len(candidate)
    if n == 1:
        return point, point, point
    rng = random.Random(seed)
    estimates = []
    for _ in range(n_boot):
        idx = [rng.randrange(n) for _ in range(n)]
        estimates.append(
            oriented_gain(
                median([candidate[i] for i in idx]), median([reference[i] for i in idx]), direction
            )
        )
    low, high = _percentile_interval(estimates, confidence)
    return point, low, high


def rounds_needed(alpha_each: float) -> int:
    """Fewest rounds for which a unanimous outcome passes a sign test at ``alpha_each / 2``."""
    if not 0.0 < alpha_each < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha_each}")
    return max(1, math.ceil(math.log2(2.0 / alpha_each) - 1e-9))


__all__ = [
    "Comparison",
    "Equivalence",
    "Estimate",
    "bootstrap_ci",
    "cv",
    "describe_ratio",
    "holm",
    "holm_adjust",
    "holm_comparisons",
    "independent_comparison",
    "log_ratios",
    "median_ci",
    "oriented_gain",
    "paired_comparison",
    "paired_gain_ci",
    "rounds_needed",
    "schedule",
    "tost",
]
