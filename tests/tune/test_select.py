"""Winner selection on synthetic noisy measurements: no winner when the intervals overlap."""

from __future__ import annotations

import random
from collections import Counter

import optuna
import pytest

from h3lab.config import Config
from h3lab.tune.objective import TrialFailure, config_key
from h3lab.tune.select import (
    Arm,
    build_arms,
    decide,
    paired_gain_ci,
    remeasure,
    repetitions_for,
    rounds_needed,
    schedule,
    top_trials,
)

PRESETS = ["balanced", "performance"]


def _noisy(rng: random.Random, centre: float, sd: float, drift: list[float]) -> list[float]:
    """One value per round: the round's shared drift times the arm's centre, plus own noise."""
    return [centre * d * (1 + rng.gauss(0, sd)) for d in drift]


def _experiment(
    seed: int, gains: dict[str, float], rounds: int = 7, sd: float = 0.03, drift_sd: float = 0.0
) -> dict[str, list[float | None]]:
    rng = random.Random(seed)
    drift = [1 + rng.gauss(0, drift_sd) for _ in range(rounds)]
    base = {"balanced": 1.0, "performance": 1.0, **gains}
    return {label: _noisy(rng, 10_000 * g, sd, drift) for label, g in base.items()}


def test_schedule_interleaves_and_rotates() -> None:
    order = schedule(["a", "b", "c"], 3)
    assert order == [
        ("a", 0),
        ("b", 0),
        ("c", 0),
        ("b", 1),
        ("c", 1),
        ("a", 1),
        ("c", 2),
        ("a", 2),
        ("b", 2),
    ]
    for r in range(3):
        assert sorted(label for label, rnd in order if rnd == r) == ["a", "b", "c"]


def test_rounds_needed_matches_a_sign_test() -> None:
    assert rounds_needed(0.05) == 6  # 2 / 0.05 = 40 <= 2**6
    assert repetitions_for(1) == 6
    assert repetitions_for(3) == 7
    assert 0.5 ** rounds_needed(0.01) <= 0.01 / 2 < 0.5 ** (rounds_needed(0.01) - 1)


def test_clear_winner_is_declared_with_its_interval() -> None:
    values = _experiment(1, {"trial 3": 1.15, "trial 7": 1.0})
    d = decide(values, ["trial 3", "trial 7"], PRESETS, "maximize")
    assert d.winner == "trial 3"
    for ref in PRESETS:
        c = d.comparison("trial 3", ref)
        assert c is not None and c.significant and c.low > 1.0 and c.low <= c.gain <= c.high
    assert not d.comparison("trial 7", "performance").significant
    assert "beats every preset" in d.verdict


def test_no_winner_when_intervals_overlap() -> None:
    values = _experiment(2, {"trial 1": 1.02}, sd=0.10)
    d = decide(values, ["trial 1"], PRESETS, "maximize")
    assert d.winner is None
    c = d.comparison("trial 1", "performance")
    assert c is not None and c.low <= 1.0 <= c.high
    assert d.verdict.startswith("no configuration beats the presets on this machine")
    assert d.best_candidate == "trial 1"


def test_equal_configs_rarely_win_despite_several_candidates() -> None:
    wins = 0
    for seed in range(60):
        values = _experiment(seed, {"trial 1": 1.0, "trial 2": 1.0, "trial 3": 1.0}, sd=0.05)
        d = decide(values, ["trial 1", "trial 2", "trial 3"], PRESETS, "maximize", n_boot=400)
        wins += d.winner is not None
    assert wins <= 3  # Bonferroni + every preset must be beaten: ~0 expected


def test_unanimous_but_too_few_rounds_decides_nothing() -> None:
    values = {
        "trial 1": [120.0, 121.0, 119.0],
        "balanced": [100.0, 101.0, 99.0],
        "performance": [100.0] * 3,
    }
    d = decide(values, ["trial 1"], PRESETS, "maximize")
    assert d.comparison("trial 1", "performance").low > 1.1  # the interval alone would say "win"
    assert d.winner is None
    assert "cannot decide" in d.verdict and f">= {d.rounds_needed}" in d.verdict


def test_pairing_sees_through_drift_shared_by_a_round() -> None:
    # 30% drift between rounds swamps a 5% gain in the unpaired spread, not in the pairs.
    values = _experiment(3, {"trial 1": 1.05}, sd=0.005, drift_sd=0.30)
    d = decide(values, ["trial 1"], PRESETS, "maximize")
    assert d.winner == "trial 1"
    s = d.summary("trial 1")
    p = d.summary("performance")
    assert s.low < p.high  # the medians' own intervals overlap widely


def test_latency_objective_is_oriented() -> None:
    # p99: lower is better, gains above 1 mean a lower latency.
    values = {
        label: [v * (1 + 0.01 * i) for i in range(7)]
        for label, v in {"trial 1": 4.0, "balanced": 5.0, "performance": 5.0}.items()
    }
    d = decide(values, ["trial 1"], PRESETS, "minimize")
    assert d.winner == "trial 1"
    assert d.comparison("trial 1", "balanced").gain == pytest.approx(5.0 / 4.0, rel=0.02)
    gain, lo, hi = paired_gain_ci([4.0] * 5, [5.0] * 5, "minimize")
    assert gain == lo == hi == pytest.approx(1.25)


def test_min_gain_and_failed_rounds() -> None:
    values = _experiment(4, {"trial 1": 1.04}, sd=0.002)
    assert decide(values, ["trial 1"], PRESETS, "maximize").winner == "trial 1"
    assert decide(values, ["trial 1"], PRESETS, "maximize", min_gain=0.10).winner is None
    values["trial 1"][2] = None  # one failed re-measurement: not eligible
    d = decide(values, ["trial 1"], PRESETS, "maximize")
    assert d.winner is None and d.summary("trial 1").failed == 1


def test_remeasure_records_failures_in_their_round() -> None:
    arms = [
        Arm("trial 1", Config(), "candidate", 1),
        Arm("balanced", Config.preset("balanced"), "preset"),
    ]
    calls: Counter[str] = Counter()

    def measure(arm: Arm) -> float:
        calls[arm.label] += 1
        if arm.label == "trial 1" and calls[arm.label] == 2:
            raise TrialFailure("verification failed: body differs")
        return 100.0 + calls[arm.label]

    seen = []
    out = remeasure(arms, measure, 3, on_result=lambda label, rnd, value: seen.append((label, rnd)))
    assert out.values["trial 1"] == [101.0, None, 103.0]
    assert out.values["balanced"] == [101.0, 102.0, 103.0]
    assert out.failures["trial 1"] == ["round 1: verification failed: body differs"]
    assert seen == [(label, rnd) for label, rnd in schedule(["trial 1", "balanced"], 3)]
    assert [d["order"] for d in out.details] == list(range(6))


def _study_with(values: list[tuple[Config, float | None, float]]) -> optuna.Study:
    study = optuna.create_study(direction="maximize")
    for config, value, rss in values:
        attrs = {"config": config.to_dict(), "config_key": config_key(config), "rss_peak_mb": rss}
        if value is None:
            trial = optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL, user_attrs=attrs)
        else:
            trial = optuna.trial.create_trial(value=value, user_attrs=attrs)
        study.add_trial(trial)
    return study


def test_top_trials_and_arms() -> None:
    a = Config().replace("cache.size", 64)
    b = Config().replace("router.matching", "trie")
    perf = Config.preset("performance")
    study = _study_with(
        [(a, 10.0, 30), (b, 30.0, 80), (a, 20.0, 30), (perf, 25.0, 30), (b, None, 30)]
    )
    top = top_trials(study, 3, "maximize")
    assert [t.number for t in top] == [1, 3, 2]  # one per config, best value first
    assert [t.number for t in top_trials(study, 3, "maximize", max_rss_mb=50)] == [3, 2]
    arms = build_arms(top)
    assert [a.label for a in arms] == ["trial 1", "trial 2", "balanced", "performance"]
    performance = next(x for x in arms if x.label == "performance")
    assert performance.aliases == ("trial 3",)  # measured once, as the preset
    assert arms[0].search_value == 30.0 and arms[0].config == b


def test_recommendation_does_not_flip_on_noise() -> None:
    # No candidate wins; performance measures higher but within the noise: serve the default.
    noisy = _experiment(5, {"trial 1": 0.9}, sd=0.15)
    noisy["performance"] = [v * 1.03 for v in noisy["performance"]]
    d = decide(noisy, ["trial 1"], PRESETS, "maximize")
    assert d.winner is None and d.recommended == "balanced"
    # A preset that clearly beats the other is recommended.
    clear = _experiment(6, {"trial 1": 0.9, "performance": 1.2}, sd=0.01)
    d = decide(clear, ["trial 1"], PRESETS, "maximize")
    assert d.winner is None and d.best_preset == "performance" and d.recommended == "performance"
    win = decide(_experiment(1, {"trial 3": 1.15}), ["trial 3"], PRESETS, "maximize")
    assert win.recommended == win.winner == "trial 3"
