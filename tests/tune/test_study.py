"""Studies: SQLite resume, failures recorded with their reason, the pipeline on a fake objective."""

from __future__ import annotations

import random
import re
from pathlib import Path

import optuna
import pytest

from h3lab.bench.results import load_runs
from h3lab.config import Config
from h3lab.tune.objective import Measurement, TrialFailure, TrialSettings
from h3lab.tune.run import tune
from h3lab.tune.space import SearchSpace
from h3lab.tune.study import default_storage, default_study_name, open_study, study_dir

SETTINGS = TrialSettings(workload="zipf", objective="throughput", duration=0.1, warmup=0.0)


class FakeMeasure:
    """A deterministic landscape plus noise: compiled/lfu is faster, legacy middleware fails."""

    def __init__(self, seed: int = 0, noise: float = 0.02) -> None:
        self.rng = random.Random(seed)
        self.noise = noise
        self.calls = 0

    def __call__(self, config: Config, settings: TrialSettings) -> Measurement:
        self.calls += 1
        if config.middleware.execution == "legacy" and config.router.matching == "linear":
            raise TrialFailure("verification failed: GET /x: status 500, expected 200")
        value = 10_000.0
        value *= {"linear": 0.6, "trie": 1.0, "compiled": 1.3, "hybrid": 1.1}[
            config.router.matching
        ]
        value *= 1.1 if config.cache.policy == "lfu" else 1.0
        value *= 1 + self.rng.gauss(0, self.noise)
        rss = 30.0 + config.cache.size / 1000
        return Measurement(value, value, 1.0, 5.0, rss, int(value), 1.0, "fake", "closed")


def _tune(tmp_path: Path, **kw: object) -> object:
    defaults = dict(
        root=tmp_path / "tuning", results_root=None, progress=False, select=False, log=None
    )
    return tune(SETTINGS, **{**defaults, **kw})  # type: ignore[arg-type]


def test_default_names_and_storage(tmp_path: Path) -> None:
    assert default_study_name(SETTINGS) == "zipf-throughput"
    p99 = TrialSettings(workload="adversarial", objective="p99", rate=1500)
    assert default_study_name(p99) == "adversarial-p99-1500rps"
    trace = TrialSettings(workload="trace", workload_params={"path": "data/traces/my log.csv"})
    assert default_study_name(trace) == "trace-my_log-throughput"
    url = default_storage("zipf-throughput", tmp_path / "t")
    assert url == f"sqlite:///{(tmp_path / 't' / 'zipf-throughput.db').resolve()}"
    assert (tmp_path / "t").is_dir()


def test_sqlite_resume_adds_trials_to_the_same_study(tmp_path: Path) -> None:
    fake = FakeMeasure()
    first = _tune(tmp_path, trials=4, measure_fn=fake, sampler="random")
    assert len(first.study.trials) == 4
    assert (tmp_path / "tuning" / "zipf-throughput.db").is_file()
    second = _tune(tmp_path, trials=3, measure_fn=fake, sampler="random")
    trials = second.study.trials
    assert [t.number for t in trials] == list(range(7))
    assert second.study._study_id == first.study._study_id
    assert len(second.new_trials) == 3
    # The resumed sampler is seeded past the history: it does not replay run one's proposals.
    assert [t.params for t in trials[4:7]] != [t.params for t in trials[:3]]
    # Topping up to a total runs only what is missing.
    third = _tune(tmp_path, trials=7, measure_fn=fake, topup=True)
    assert third.new_trials == [] and len(third.study.trials) == 7


def test_resume_refuses_a_study_of_something_else(tmp_path: Path) -> None:
    _tune(tmp_path, trials=1, measure_fn=FakeMeasure())
    other = TrialSettings(workload="adversarial", objective="throughput")
    space = SearchSpace()
    url = default_storage("zipf-throughput", tmp_path / "tuning")
    with pytest.raises(ValueError, match="created for workload='zipf'"):
        open_study("zipf-throughput", other, space, storage=url)
    p99 = TrialSettings(workload="zipf", objective="p99")
    with pytest.raises(ValueError, match="objective"):
        open_study("zipf-throughput", p99, space, storage=url)


def test_failures_are_failed_trials_with_a_reason_never_zero(tmp_path: Path) -> None:
    result = _tune(
        tmp_path,
        trials=12,
        measure_fn=FakeMeasure(),
        sampler="random",
        knobs=["router.matching", "middleware.execution"],
    )
    failed = [t for t in result.study.trials if t.state == optuna.trial.TrialState.FAIL]
    assert failed, "the fake fails linear+legacy; random sampling over 8 configs must meet it"
    for t in failed:
        assert t.value is None
        assert t.user_attrs["fail_reason"].startswith("verification failed")
        assert t.params["router.matching"] == "linear"
    assert all(t.value and t.value > 0 for t in result.completed)


def test_repeated_configs_reuse_the_measurement(tmp_path: Path) -> None:
    fake = FakeMeasure()
    result = _tune(
        tmp_path, trials=6, measure_fn=fake, knobs=["middleware.execution"], sampler="random"
    )
    dups = [t for t in result.study.trials if "duplicate_of" in t.user_attrs]
    assert fake.calls + len(dups) == 6 and fake.calls <= 2
    for t in dups:
        original = result.study.trials[t.user_attrs["duplicate_of"]]
        assert t.value == original.value


def test_unexpected_errors_are_recorded_not_raised(tmp_path: Path) -> None:
    def broken(config: Config, settings: TrialSettings) -> Measurement:
        raise OSError("no space left on device")

    result = _tune(tmp_path, trials=2, measure_fn=broken)
    assert [t.user_attrs["fail_reason"] for t in result.study.trials] == [
        "OSError: no space left on device"
    ] * 2


def test_rss_cap_is_a_constraint(tmp_path: Path) -> None:
    capped = TrialSettings(workload="zipf", max_rss_mb=31.0)
    result = tune(
        capped,
        trials=8,
        measure_fn=FakeMeasure(),
        root=tmp_path,
        results_root=None,
        progress=False,
        select=False,
        log=None,
        knobs=["cache.size"],
    )
    for t in result.study.trials:
        assert t.user_attrs["rss_excess_mb"] == pytest.approx(t.user_attrs["rss_peak_mb"] - 31.0)
        assert t.constraints == {"rss_excess_mb": t.user_attrs["rss_excess_mb"]}
    feasible = [t for t in result.completed if t.user_attrs["rss_excess_mb"] <= 0]
    assert result.study.best_trial in feasible


def test_pipeline_on_a_fake_objective(tmp_path: Path) -> None:
    result = tune(
        SETTINGS,
        trials=10,
        measure_fn=FakeMeasure(noise=0.01),
        root=tmp_path / "tuning",
        results_root=tmp_path / "runs",
        progress=False,
        log=None,
        sampler="random",
        knobs=["router.matching", "cache.policy"],
        top_k=2,
    )
    d = result.decision
    assert d is not None and len(d.arms) == len(result.arms)
    assert {a.label for a in result.arms} >= {"balanced", "performance"}
    # compiled routing is 1.3x faster than the presets' hybrid in the fake landscape.
    assert d.winner is not None
    winner = next(a for a in result.arms if a.label == d.winner)
    assert winner.config.router.matching == "compiled"
    assert Config.load(result.best_path) == winner.config
    assert result.best_path == study_dir("zipf-throughput", tmp_path / "tuning") / "best.toml"
    assert "verdict: " in result.table and "gain vs performance" in result.table
    runs = load_runs("tune", root=tmp_path / "runs")
    metrics = set(runs["metric"])
    assert {"trial_value", "remeasure_value", "gain", "remeasure_median"} <= metrics
    gains = runs[runs["metric"] == "gain"]
    assert (gains["ci_low"] <= gains["value"]).all() and (gains["value"] <= gains["ci_high"]).all()
    assert result.report_path is not None and result.report_path.is_file()


def test_the_table_describes_candidates_and_best_says_why(tmp_path: Path) -> None:
    # The winner, described as changes to the nearest preset.
    result = tune(
        SETTINGS,
        trials=6,
        measure_fn=FakeMeasure(noise=0.01),
        root=tmp_path / "a",
        results_root=None,
        progress=False,
        log=None,
        sampler="grid",
        knobs=["router.matching"],
        top_k=1,
    )
    assert "candidates, as changes to the nearest preset:" in result.table
    assert re.search(r"trial \d+ \((balanced|performance)\+1\)", result.table), result.table
    assert "with router.matching=compiled" in result.table
    assert result.best_reason.startswith("the winner trial ")
    # No candidate can win (only cache.size varies, and it changes nothing here):
    # best.toml holds balanced and says why, in the file and in the result.
    flat = tune(
        SETTINGS,
        trials=4,
        measure_fn=FakeMeasure(noise=0.01),
        root=tmp_path / "b",
        results_root=None,
        progress=False,
        log=None,
        knobs=["cache.size"],
        top_k=1,
    )
    assert flat.decision is not None and flat.decision.winner is None
    assert "no candidate beat every preset measurably" in flat.best_reason
    assert flat.best_path is not None
    assert flat.best_reason in flat.best_path.read_text()
    assert Config.load(flat.best_path).preset_name in ("balanced", "performance")
