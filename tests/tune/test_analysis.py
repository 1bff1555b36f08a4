"""The notebook's helpers: importances find the knob that matters, the prose follows the data."""

from __future__ import annotations

from pathlib import Path

import pytest

from h3lab.tune import analysis
from h3lab.tune.run import tune
from tests.tune.test_study import SETTINGS, FakeMeasure

# One worker for the module (pytest-xdist): the 24-trial study below is built once.
pytestmark = pytest.mark.xdist_group("tune-analysis")


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> object:
    root = Path(tmp_path_factory.mktemp("tuning"))
    return tune(
        SETTINGS,
        trials=24,
        measure_fn=FakeMeasure(noise=0.01),
        root=root,
        results_root=None,
        progress=False,
        log=None,
        sampler="random",
        top_k=1,
    )


def test_importance_finds_the_planted_knob(result: object) -> None:
    trials = analysis.trials_frame(result.study, result.space)
    importance = analysis.knob_importance(trials, result.space, "maximize")
    top = importance.iloc[0]
    assert top["knob"] == "router.matching" and top["variance_explained"] > 0.5
    assert top["best_value"] == "compiled" and top["worst_value"] == "linear"
    noise = importance.set_index("knob").loc[
        ["pool.policy", "memory.arena_buffers"], "variance_explained"
    ]
    assert (noise < 0.2).all()
    ped = analysis.ped_anova(result.study, result.space)
    assert ped and "cache.size" not in ped  # conditional knobs are left to variance_explained
    history = analysis.history_frame(trials, "maximize")
    done = history[history["state"] == "complete"]
    assert (done["best_so_far"] >= done["value"]).all() and history[
        "best_so_far"
    ].is_monotonic_increasing


def test_conclusion_is_computed_from_the_run(result: object) -> None:
    trials = analysis.trials_frame(result.study, result.space)
    importance = analysis.knob_importance(trials, result.space, "maximize")
    text = analysis.conclude(
        result, importance, analysis.ped_anova(result.study, result.space), "2 CPUs"
    )
    assert "`router.matching`" in text and "24 trials" in text and "on 2 CPUs" in text
    d = result.decision
    assert d is not None and d.winner is not None  # compiled routing is 1.3x in the fake
    gain = d.comparison(d.winner, "performance").gain
    assert f"**{d.winner} wins**: {(gain - 1) * 100:+.1f}% over `performance`" in text
    arms = analysis.arms_frame(result)
    assert set(arms["role"]) == {"candidate", "preset"} and (arms["lo"] <= arms["median"]).all()
    assert not analysis.gains_frame(result).empty
    assert list(analysis.config_table(result).columns) == [a.label for a in result.arms]


def test_plan_quick_and_overrides() -> None:
    assert analysis.plan(True)["trials"] == analysis.QUICK_PLAN["trials"]
    assert analysis.plan(False, trials=7, workload="adversarial")["trials"] == 7
    with pytest.raises(ValueError, match="no parameter"):
        analysis.plan(False, trails=3)
    p = analysis.plan(True, trace="x.csv")
    settings = analysis.settings_from_plan({**p, "trace": None})
    assert analysis.study_name_from_plan(p, settings, quick=True) == "zipf-throughput-quick"


def test_every_trial_names_the_code_that_measured_it(result: object) -> None:
    from h3lab.bench.machine import git_info

    commit = git_info()["commit"]
    attrs = {t.user_attrs.get("commit") for t in result.study.trials}
    if commit is None:
        assert attrs == {None}
    else:
        (only,) = attrs
        assert only is not None and only.startswith(commit)
    # one version of the code: nothing to say
    trials = analysis.trials_frame(result.study, result.space)
    importance = analysis.knob_importance(trials, result.space, "maximize")
    text = analysis.conclude(result, importance, {}, "2 CPUs")
    assert "more than one version of the code" not in text


def test_a_resumed_study_says_its_trials_come_from_several_commits() -> None:
    from types import SimpleNamespace

    trials = [SimpleNamespace(user_attrs={"commit": "a" * 40}) for _ in range(3)]
    trials += [SimpleNamespace(user_attrs={"commit": "b" * 40 + "-dirty"})]
    trials += [SimpleNamespace(user_attrs={}) for _ in range(2)]
    assert analysis.trial_commits(trials) == {
        "commit aaaaaaaaaa": 3,
        "commit bbbbbbbbbb dirty": 1,
        "an unrecorded commit": 2,
    }
