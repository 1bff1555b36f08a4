"""Statistics on synthetic data with known answers."""

from __future__ import annotations

import random
import statistics

import pytest

from h3lab.bench.stats import (
    bootstrap_ci,
    describe,
    interleave,
    ratio_ci,
    stability_warnings,
    summarize,
)


def test_summarize_known_values() -> None:
    s = summarize([1, 2, 3, 4, 5])
    assert s["n"] == 5
    assert s["median"] == 3 and s["mean"] == 3
    assert s["min"] == 1 and s["max"] == 5
    assert s["stdev"] == pytest.approx(statistics.stdev([1, 2, 3, 4, 5]))
    assert s["cv"] == pytest.approx(s["stdev"] / 3)
    assert (s["q1"], s["q3"]) == (2, 4)
    one = summarize([7.0])
    assert one["stdev"] == 0 and one["q1"] == one["q3"] == 7.0
    with pytest.raises(ValueError):
        summarize([])
    with pytest.raises(ValueError):
        summarize([1.0, float("nan")])


def test_bootstrap_ci_contains_the_true_median() -> None:
    """Normal(100, 10) has median 100; a 95% CI should cover it nearly always."""
    covered = 0
    for trial in range(20):
        rng = random.Random(trial)
        sample = [rng.gauss(100, 10) for _ in range(40)]
        lo, hi = bootstrap_ci(sample, n_boot=500, seed=trial)
        assert lo <= statistics.median(sample) <= hi
        covered += lo <= 100 <= hi
    assert covered >= 16  # expected ~19/20; a binomial tail makes < 16 very unlikely


def test_bootstrap_ci_is_seeded_and_narrows_with_more_data() -> None:
    rng = random.Random(1)
    small = [rng.expovariate(1.0) for _ in range(20)]
    large = [rng.expovariate(1.0) for _ in range(2000)]
    assert bootstrap_ci(small, seed=3) == bootstrap_ci(small, seed=3)
    lo_s, hi_s = bootstrap_ci(small, n_boot=500)
    lo_l, hi_l = bootstrap_ci(large, n_boot=300)
    assert hi_l - lo_l < hi_s - lo_s
    assert lo_l <= 0.693 <= hi_l  # the exponential's median is ln 2
    assert bootstrap_ci([5.0]) == (5.0, 5.0)
    with pytest.raises(ValueError):
        bootstrap_ci([1, 2], confidence=1.5)


def test_ratio_ci_brackets_the_true_ratio() -> None:
    rng = random.Random(2)
    a = [rng.gauss(200, 5) for _ in range(50)]
    b = [rng.gauss(100, 3) for _ in range(50)]
    lo, hi = ratio_ci(a, b, n_boot=500)
    assert lo < 2.0 < hi
    assert hi < 2.2 and lo > 1.8
    same_lo, same_hi = ratio_ci(b, b, n_boot=300)
    assert same_lo <= 1.0 <= same_hi
    with pytest.raises(ValueError, match="undefined"):
        ratio_ci([1.0], [0.0], n_boot=10)


def test_stability_warnings_follow_pyperf() -> None:
    assert stability_warnings([100, 101, 99, 100, 100]) == []
    assert any("too few" in w for w in stability_warnings([1.0, 1.0]))
    unstable = stability_warnings([100, 130, 70, 100, 125, 75])
    assert any(w.startswith("unstable (cv=") for w in unstable)
    outlier = stability_warnings([100] * 20 + [400])
    assert any("max" in w and "above the mean" in w for w in outlier)
    low = stability_warnings([100] * 20 + [1])
    assert any("min" in w and "below the mean" in w for w in low)


def test_interleave_round_robin_order_rotates_each_round() -> None:
    assert interleave(["A", "B", "C"], 2) == [
        ("A", 0),
        ("B", 0),
        ("C", 0),
        ("B", 1),
        ("C", 1),
        ("A", 1),
    ]
    assert interleave(["A"], 0) == []
    with pytest.raises(ValueError):
        interleave(["A"], -1)


def test_describe_is_one_line() -> None:
    text = describe([1.0, 2.0, 3.0], "ns")
    assert "2 ns" in text and "n=3" in text and "\n" not in text
