"""The shared statistics: paired intervals, Holm, TOST, wording, one-sample intervals."""

from __future__ import annotations

import math
import random
import statistics

import pytest

from h3lab.studies import stats


def test_paired_comparison_matches_a_hand_computed_t_interval() -> None:
    base = [100.0, 110.0, 95.0, 105.0, 102.0]
    other = [150.0, 160.0, 150.0, 150.0, 155.0]
    c = stats.paired_comparison(base, other, higher_is_better=True)
    d = [math.log(o / b) for b, o in zip(base, other, strict=True)]
    mean, se = statistics.fmean(d), statistics.stdev(d) / math.sqrt(5)
    t4 = 2.7764451051977934  # t(0.975, 4), from a table
    assert c.ratio == pytest.approx(math.exp(mean))
    assert c.lo == pytest.approx(math.exp(mean - t4 * se))
    assert c.hi == pytest.approx(math.exp(mean + t4 * se))
    assert c.n == 5 and c.significant and c.p_value < 0.001


def test_time_metrics_are_oriented_so_above_one_means_better() -> None:
    base = [10.0, 11.0, 10.5, 9.8]
    other = [5.0, 5.6, 5.1, 5.0]  # half the time: better
    c = stats.paired_comparison(base, other, higher_is_better=False)
    assert 1.9 < c.ratio < 2.2 and c.lo > 1.0
    swapped = stats.paired_comparison(other, base, higher_is_better=False)
    assert swapped.ratio == pytest.approx(1 / c.ratio)
    assert swapped.lo == pytest.approx(1 / c.hi)


def test_pairing_cancels_drift_shared_by_a_round() -> None:
    # Strong drift across rounds, a steady 5% gain within each: paired = significant.
    drift = [100.0, 140.0, 80.0, 120.0, 60.0, 110.0]
    base = drift
    other = [v * 1.05 for v in drift]
    other[2] *= 1.001  # not exactly constant
    c = stats.paired_comparison(base, other, higher_is_better=True)
    assert c.significant and c.lo > 1.04 and c.hi < 1.06


def test_noise_without_effect_is_not_significant() -> None:
    rng = random.Random(3)
    base = [1000 * rng.uniform(0.9, 1.1) for _ in range(5)]
    other = [1000 * rng.uniform(0.9, 1.1) for _ in range(5)]
    c = stats.paired_comparison(base, other, higher_is_better=True)
    assert not c.significant and c.lo < 1.0 < c.hi and c.p_value > 0.05


def test_one_round_gives_no_interval_and_no_claim() -> None:
    c = stats.paired_comparison([10.0], [20.0], higher_is_better=True)
    assert (c.ratio, c.lo, c.hi, c.p_value, c.significant) == (2.0, 2.0, 2.0, 1.0, False)


def test_paired_comparison_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="same length"):
        stats.paired_comparison([1.0, 2.0], [1.0], higher_is_better=True)
    with pytest.raises(ValueError, match="positive"):
        stats.paired_comparison([1.0, 0.0], [1.0, 1.0], higher_is_better=True)
    with pytest.raises(ValueError, match="NaN"):
        stats.paired_comparison([1.0, math.nan], [1.0, 1.0], higher_is_better=True)


def test_holm_against_a_worked_example() -> None:
    # Holm (1979)-style example: p sorted 0.01, 0.02, 0.03, 0.04 with m = 4
    p = [0.04, 0.01, 0.03, 0.02]
    adjusted = stats.holm_adjust(p)
    # sorted: 4*0.01=0.04, 3*0.02=0.06, 2*0.03=0.06, 1*0.04 -> max(0.06,0.04)=0.06
    assert adjusted == pytest.approx([0.06, 0.04, 0.06, 0.06])
    assert stats.holm(p, 0.05) == [False, True, False, False]
    assert stats.holm([0.001, 0.2], 0.05) == [True, False]
    assert stats.holm([], 0.05) == []


def test_holm_is_less_conservative_than_bonferroni() -> None:
    p = [0.012, 0.03]
    assert stats.holm(p, 0.05) == [True, True]
    assert [x * 2 < 0.05 for x in p] == [True, False]  # Bonferroni keeps only one


def test_holm_comparisons_redecides_significance() -> None:
    a = stats.paired_comparison([10, 10.2, 9.9], [10.4, 10.5, 10.4], higher_is_better=True)
    strong = stats.paired_comparison([10, 10.1, 9.9], [20, 20.1, 19.8], higher_is_better=True)
    out = stats.holm_comparisons([a, strong, strong])
    assert out[1].significant and out[2].significant
    assert out[0].p_value == a.p_value


def test_tost_equivalent_inside_the_margin() -> None:
    eq = stats.tost([0.3, -0.2, 0.5, 0.1, -0.4, 0.2], margin_pct=2.0)
    assert eq.verdict == "equivalent"
    assert -2.0 < eq.lo < eq.estimate < eq.hi < 2.0
    assert "no change beyond +-2%" in eq.describe()


def test_tost_never_says_equivalent_from_a_wide_interval() -> None:
    # 4.5% [4.0, 5.0] was once called "no degradation": it is a difference.
    diff = stats.tost(estimate=-4.5, lo=-5.0, hi=-4.0, margin_pct=2.0)
    assert diff.verdict == "different"
    wide = stats.tost([-6.0, 5.0, -3.0, 4.0], margin_pct=2.0)
    assert wide.verdict == "inconclusive"
    one = stats.tost([0.1])
    assert one.verdict == "inconclusive"


def test_tost_interval_is_the_one_minus_two_alpha_t_interval() -> None:
    values = [1.0, 1.5, 0.5, 1.2]
    eq = stats.tost(values, margin_pct=3.0, alpha=0.05)
    se = statistics.stdev(values) / 2
    t3 = 2.3533634348018264  # t(0.95, 3)
    assert eq.lo == pytest.approx(statistics.fmean(values) - t3 * se)
    assert eq.verdict == "equivalent"


def test_tost_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="margin"):
        stats.tost([1.0, 2.0], margin_pct=0)
    with pytest.raises(ValueError, match="not both"):
        stats.tost([1.0], estimate=1.0, lo=0.0, hi=2.0)
    with pytest.raises(ValueError, match="needs"):
        stats.tost(estimate=1.0)


def test_describe_ratio_uses_ratios_never_percentages() -> None:
    fast = stats.Comparison(1.9, 1.7, 2.1, 0.001, 5, True, 0.95, False)
    assert stats.describe_ratio(fast, kind="time") == "1.9x faster [1.7, 2.1]"
    slow = stats.Comparison(0.5, 0.4, 0.625, 0.001, 5, True, 0.95, False)
    assert stats.describe_ratio(slow, kind="time") == "2x slower [1.6, 2.5]"
    more = stats.Comparison(1.3, 1.2, 1.4, 0.001, 5, True)
    assert stats.describe_ratio(more, kind="throughput") == "1.3x more throughput [1.2, 1.4]"
    less = stats.Comparison(0.77, 0.71, 0.83, 0.001, 5, True)
    assert stats.describe_ratio(less, kind="throughput") == "0.77x the throughput [0.71, 0.83]"
    none = stats.Comparison(1.02, 0.97, 1.07, 0.4, 5, False)
    text = stats.describe_ratio(none, kind="time")
    assert text == "no significant difference (1.02x [0.97, 1.07])"
    big = stats.Comparison(174.0, 150.0, 201.0, 0.001, 5, True)
    assert stats.describe_ratio(big, kind="time") == "174x faster [150, 201]"
    for c in (fast, slow, more, less, none):
        for kind in ("time", "throughput"):
            assert "%" not in stats.describe_ratio(c, kind=kind)  # type: ignore[arg-type]


def test_median_ci_is_distribution_free() -> None:
    values = list(range(1, 21))  # n=20: k=6 gives 95.9% coverage
    est = stats.median_ci(values)
    assert est.value == 10.5 and (est.lo, est.hi) == (6, 15)
    small = stats.median_ci([3.0, 1.0, 2.0])
    assert (small.lo, small.value, small.hi) == (1.0, 2.0, 3.0)


def test_bootstrap_ci_is_seeded_and_blocks_widen_it_for_correlated_series() -> None:
    series = [100 + 10 * math.sin(i / 3) for i in range(60)]
    a = stats.bootstrap_ci(series, statistics.fmean, seed=1)
    b = stats.bootstrap_ci(series, statistics.fmean, seed=1)
    assert a == b and a.lo < a.value < a.hi
    blocked = stats.bootstrap_ci(series, statistics.fmean, seed=1, block=10)
    assert blocked.hi - blocked.lo > a.hi - a.lo


def test_schedule_rotates_the_start_arm_each_round() -> None:
    assert stats.schedule(["a", "b", "c"], 3) == [
        ("a", 0), ("b", 0), ("c", 0),
        ("b", 1), ("c", 1), ("a", 1),
        ("c", 2), ("a", 2), ("b", 2),
    ]  # fmt: skip


def test_cv() -> None:
    assert stats.cv([10.0]) == 0.0
    assert stats.cv([9.0, 11.0]) == pytest.approx(statistics.stdev([9, 11]) / 10)
