"""The whole tuning pipeline as one call: search, re-measure, decide, write.

``tune(settings, trials=40)`` is what ``h3lab tune`` and ``notebooks/08_tuning``
run. Each step is also usable alone (``open_study``, ``run_trial``,
``remeasure``/``decide``, ``report``), which is how the tests drive them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from h3lab.bench import canary
from h3lab.config import Config
from h3lab.studies.validity import ValidityRecorder
from h3lab.tune import report
from h3lab.tune.checks import record_checks, watch_machine
from h3lab.tune.objective import Measurement, TrialSettings, measure, run_trial
from h3lab.tune.select import (
    REFERENCE_PRESETS,
    Arm,
    Decision,
    Remeasurement,
    build_arms,
    decide,
    remeasure,
    repetitions_for,
    top_trials,
)
from h3lab.tune.space import SearchSpace
from h3lab.tune.study import (
    DEFAULT_ROOT,
    default_storage,
    default_study_name,
    grid_exhausted,
    open_study,
    study_dir,
    trial_counts,
)

if TYPE_CHECKING:
    import optuna


@dataclass
class TuneResult:
    study_name: str
    storage: str
    study: optuna.Study
    settings: TrialSettings
    space: SearchSpace
    new_trials: list[optuna.trial.FrozenTrial] = field(default_factory=list)
    arms: list[Arm] = field(default_factory=list)
    remeasurement: Remeasurement | None = None
    decision: Decision | None = None
    best_config: Config | None = None
    best_path: Path | None = None
    best_reason: str = ""
    """Why best.toml holds what it holds (a winner, or which preset and why)."""
    candidate_path: Path | None = None
    report_path: Path | None = None
    run_dir: Path | None = None
    table: str = ""
    validity: Any = None
    """The re-measurement's ``Validity`` (server saturated, client headroom, machine quiet)."""

    @property
    def completed(self) -> list[optuna.trial.FrozenTrial]:
        from optuna.trial import TrialState

        return self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def _progress(total: int, enabled: bool, desc: str) -> Any:
    from tqdm import tqdm  # not tqdm.auto: no widget warning inside a kernel

    return tqdm(
        total=total, disable=not enabled, desc=desc, unit="trial", file=sys.stderr, leave=True
    )


def search(
    study: optuna.Study,
    space: SearchSpace,
    settings: TrialSettings,
    n_trials: int,
    *,
    measure_fn: Callable[[Config, TrialSettings], Measurement] | None = None,
    progress: bool = True,
) -> list[optuna.trial.FrozenTrial]:
    """Run ``n_trials`` new trials (stopping early when a grid is exhausted)."""
    done: list[optuna.trial.FrozenTrial] = []
    if n_trials <= 0:
        return done
    maximize = settings.direction == "maximize"
    bar = _progress(n_trials, progress, "tune")
    try:
        for i in range(n_trials):
            if grid_exhausted(study):
                bar.write("grid exhausted: every grid point has been measured")
                break
            bar.set_description(f"trial {i + 1}/{n_trials}")
            t = run_trial(study, space, settings, measure_fn)
            done.append(t)
            bar.update(1)
            bar.set_postfix_str(_best_so_far(study, maximize, settings), refresh=True)
    finally:
        bar.close()
    return done


def _best_so_far(study: optuna.Study, maximize: bool, settings: TrialSettings) -> str:
    from optuna.trial import TrialState

    from h3lab.tune.objective import feasible

    ok = [
        (t.value, t)
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.value is not None and feasible(t, settings.max_rss_mb)
    ]
    failed = len(study.get_trials(deepcopy=False, states=(TrialState.FAIL,)))
    if not ok:
        return f"no result yet, {failed} failed"
    value, best = max(ok, key=lambda pair: pair[0] if maximize else -pair[0])
    return f"best {fmt_value(value, settings.unit)} (trial {best.number}), {failed} failed"


def fmt_value(value: float | None, unit: str) -> str:
    if value is None:
        return "failed"
    return f"{value:,.0f} {unit}" if unit == "req/s" else f"{value:.3g} {unit}"


def tune(
    settings: TrialSettings,
    *,
    trials: int = 40,
    study_name: str | None = None,
    storage: str | None = None,
    sampler: str = "tpe",
    seed: int = 0,
    knobs: Sequence[str] | None = None,
    top_k: int = 3,
    repetitions: int | None = None,
    confidence: float = 0.95,
    min_gain: float = 0.0,
    select: bool = True,
    topup: bool = False,
    root: str | Path = DEFAULT_ROOT,
    results_root: str | Path | None = "data/runs",
    run_id: str | None = None,
    progress: bool = True,
    measure_fn: Callable[[Config, TrialSettings], Measurement] | None = None,
    presets: Sequence[str] = REFERENCE_PRESETS,
    log: Callable[[str], None] | None = print,
    recorder: ValidityRecorder | None = None,
) -> TuneResult:
    """Search ``trials`` new configurations, then re-measure and decide.

    The re-measurement's validity checks go to ``recorder`` (a notebook
    passes its run's recorder; default: a fresh one) and to
    ``result.validity``: an invalid re-measurement names no winner.

    ``topup=True`` runs only what is missing for the study to hold ``trials``
    trials (a notebook rerun then resumes instead of growing the study).
    ``select=False`` only searches (a worker of a shared study).
    ``results_root=None`` writes nothing to the results store.
    """
    say = log or (lambda _text: None)
    space = SearchSpace(knobs)
    name = study_name or default_study_name(settings)
    url = storage or default_storage(name, root)
    create_schema(url)
    study = open_study(name, settings, space, storage=url, sampler=sampler, seed=seed, root=root)
    result = TuneResult(name, url, study, settings, space)
    n_new = max(0, trials - len(study.trials)) if topup else trials
    before = trial_counts(study)
    say(f"study {name!r} in {_shown(url)}: {before['total']} trial(s) so far, {n_new} to run")
    result.new_trials = search(
        study, space, settings, n_new, measure_fn=measure_fn, progress=progress
    )
    counts = trial_counts(study)
    say(
        f"search done: {counts['total']} trial(s) in the study, {counts.get('complete', 0)} complete, "
        f"{counts.get('fail', 0)} failed"
    )
    for t in result.new_trials:
        if t.state.name == "FAIL":
            say(f"  trial {t.number} failed: {t.user_attrs.get('fail_reason', 'unknown')}")
    if select:
        _select(
            result, top_k, repetitions, confidence, min_gain, measure_fn, progress, presets, say,
            recorder if recorder is not None else ValidityRecorder(),
        )  # fmt: skip
    out = study_dir(name, root)
    _write(
        result,
        out,
        results_root,
        run_id,
        dict(
            trials=trials,
            sampler=sampler,
            seed=seed,
            top_k=top_k,
            repetitions=repetitions,
            confidence=confidence,
            min_gain=min_gain,
        ),
    )
    return result


def create_schema(url: str, attempts: int = 5) -> None:
    """Create Optuna's tables in a server database before the study is opened.

    Workers started together on an empty database race to create the schema
    (two ``CREATE TYPE studydirection`` -> a unique violation for the loser).
    Losing that race is harmless once the winner is done, so retry briefly.
    """
    if not url.startswith(("postgresql", "mysql", "mariadb")):
        return  # SQLite: one file, one process at a time creates it
    import time

    import optuna
    from sqlalchemy.exc import IntegrityError, ProgrammingError

    for attempt in range(attempts):
        try:
            optuna.storages.RDBStorage(url)
            return
        except (IntegrityError, ProgrammingError):
            if attempt == attempts - 1:
                raise
            time.sleep(0.2 * (attempt + 1))


def _preset_reason(decision: Decision, label: str) -> str:
    why = "no candidate beat every preset measurably"
    if label == decision.best_preset:
        return f"the preset {label}: {why}, and {label} measurably beats the other preset(s)"
    return f"the default preset {label}: {why}, and the presets do not differ measurably here"


def _shown(url: str) -> str:
    # Never echo a database password.
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


def _select(
    result: TuneResult,
    top_k: int,
    repetitions: int | None,
    confidence: float,
    min_gain: float,
    measure_fn: Any,
    progress: bool,
    presets: Sequence[str],
    say: Callable[[str], None],
    recorder: ValidityRecorder,
) -> None:
    settings = result.settings
    top = top_trials(result.study, top_k, settings.direction, settings.max_rss_mb)
    if not top:
        say("no completed trial within the constraints: nothing to re-measure")
        return
    arms = build_arms(top, presets)
    candidates = [a.label for a in arms if a.role == "candidate"]
    reps = repetitions if repetitions is not None else repetitions_for(len(candidates), confidence)
    result.arms = arms
    say(f"re-measuring {len(arms)} arms x {reps} interleaved rounds ({settings.duration:g} s each)")
    fn = measure_fn or measure
    bar = _progress(len(arms) * reps, progress, "re-measure")
    probes: list[canary.Probe] = []
    server_cpu = settings.server_cpu  # None: the probe runs wherever this process may
    try:
        done = {label: 0 for label in (a.label for a in arms)}

        def one(arm: Arm) -> Measurement:
            where = f"{arm.label} round {done[arm.label] + 1}"
            done[arm.label] += 1
            if measure_fn is not None:
                # An injected measurement (tests, replays) measures nothing on
                # this machine: only its own figures are checked.
                m = fn(arm.config, settings)
                record_checks(recorder, m, {}, settings, where)
                return m
            # the machine's own speed first, as a study's rounds do (h3lab.bench.canary)
            probes.append(canary.Probe(where, canary.probe(server_cpu)))
            with watch_machine() as machine:
                m = fn(arm.config, settings)
            record_checks(recorder, m, machine, settings, where)
            return m

        def tick(label: str, rnd: int, value: float | None) -> None:
            bar.update(1)
            bar.set_postfix_str(f"{label} round {rnd + 1}: {fmt_value(value, settings.unit)}")

        result.remeasurement = remeasure(arms, one, reps, on_result=tick)
    finally:
        bar.close()
    if probes:
        recorder.add(canary.check_speed(probes))
    result.validity = recorder.result()
    result.decision = decide(
        result.remeasurement.values,
        candidates,
        [a.label for a in arms if a.role == "preset"],
        settings.direction,
        confidence=confidence,
        min_gain=min_gain,
    )
    result.table = report.format_table(result.decision, arms, settings.unit, list(presets))


def _write(
    result: TuneResult,
    out: Path,
    results_root: str | Path | None,
    run_id: str | None,
    params: dict[str, Any],
) -> None:
    settings = result.settings
    decision = result.decision
    header = [f"h3lab tune: study {result.study_name} ({settings.workload}, {settings.objective})"]
    best_arm = report.recommended(decision, result.arms)
    invalid = result.validity is not None and result.validity.status == "invalid"
    if invalid:
        # A disturbed re-measurement decides nothing: no best.toml, and the
        # verdict says why instead of naming a winner or a preset.
        result.best_reason = (
            "no verdict: the re-measurement was invalid ("
            + "; ".join(result.validity.reasons[:3])
            + "); re-run `h3lab tune` on a quiet machine"
        )
        best_arm = None
    if decision is not None and best_arm is not None:
        header.append(decision.verdict)
        if decision.winner is None:
            result.best_reason = f"this is {_preset_reason(decision, best_arm.label)}"
            header.append(f"so {result.best_reason}")
        else:
            result.best_reason = (
                f"the winner {best_arm.label}: "
                f"{report.describe_candidate(best_arm.config, REFERENCE_PRESETS)}"
            )
        result.best_config = best_arm.config
        result.best_path = report.write_config(best_arm.config, out / "best.toml", header)
    top = top_trials(result.study, 1, settings.direction, settings.max_rss_mb)
    if top:
        t = top[0]
        cand = Config.from_dict(t.user_attrs["config"])
        result.candidate_path = report.write_config(
            cand,
            out / "candidate.toml",
            [
                f"h3lab tune: best trial ({t.number}) of study {result.study_name}: "
                f"{t.value:,.4g} {settings.unit} during the search (not a verdict)"
            ],
        )
        if result.best_path is None and decision is None:
            result.best_config = cand
    rows = report.trial_rows(result.study, settings, result.study_name)
    if decision is not None and result.remeasurement is not None:
        rows += report.remeasure_rows(
            result.arms, result.remeasurement, settings, result.study_name
        )
        rows += report.decision_rows(decision, result.arms, settings, result.study_name)
    payload = {
        "study_name": result.study_name,
        "storage": _shown(result.storage),
        "settings": settings.describe(),
        "knobs": list(result.space.keys),
        "counts": trial_counts(result.study),
        "winner": decision.winner if decision and not invalid else None,
        "verdict": (
            result.best_reason
            if invalid
            else (decision.verdict if decision else "no re-measurement")
        ),
        "validity": result.validity.to_json() if result.validity is not None else None,
        "best_config": str(result.best_path) if result.best_path else None,
        "decision": decision,
        "arms": [
            {
                "label": a.label,
                "role": a.role,
                "trial": a.trial,
                "config": a.config.to_dict(),
                "aliases": list(a.aliases),
            }
            for a in result.arms
        ],
        "failures": result.remeasurement.failures if result.remeasurement else {},
        "params": params,
    }
    if results_root is not None and rows:
        result.run_dir = report.write_results(
            rows,
            {"study_name": result.study_name, "settings": settings.describe(), **params},
            run_id=run_id,
            root=results_root,
        )
        payload["run_dir"] = str(result.run_dir)
    result.report_path = report.report_json(out / "report.json", payload)


__all__ = ["TuneResult", "create_schema", "search", "tune"]
