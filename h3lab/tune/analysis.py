"""What ``notebooks/08_tuning`` computes from a tuning run: frames, charts, the conclusion.

Importances
-----------
Two measures, both on the *config-level view* (``SearchSpace.values``: one
value per knob for every trial, whatever conditional Optuna parameters the
trial used):

* ``variance_explained`` -- the headline. For each knob, the bias-corrected
  share of the objective's variance across trials that the knob explains on
  its own (one-way ANOVA epsilon squared; numeric knobs binned into terciles;
  a conditional knob only over the trials where it is active, e.g.
  ``cache.size`` among trials with a cache). It is transparent (it can be
  checked with a calculator) and is 0 for a knob that does nothing.
* ``ped_anova`` -- Optuna's default ``get_param_importances`` evaluator (PED-
  ANOVA: how differently the top trials' values are distributed), over the
  knobs active in every trial. It needs no scikit-learn (fANOVA does), but
  with few trials it favours continuous knobs; it is shown for comparison,
  and the conclusion says when the two disagree.

Below ``MIN_TRIALS_FOR_IMPORTANCE`` completed trials neither is reported as
meaningful.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from h3lab.config import Config
from h3lab.tune import report
from h3lab.tune.objective import TrialSettings
from h3lab.tune.space import SearchSpace

if TYPE_CHECKING:
    import altair as alt
    import optuna
    import pandas as pd

    from h3lab.tune.run import TuneResult

MIN_TRIALS_FOR_IMPORTANCE = 12
NUMERIC_BINS = 3

# The notebook's sizes: full, then what quick mode changes. The notebook runs
# inside `make study`, so its default search is modest (20 trials, about 2-3
# minutes on 2 cores); `h3lab tune --trials 40` or a rerun (which resumes the
# study) goes further.
FULL_PLAN: dict[str, Any] = {
    "workload": "zipf",
    "objective": "throughput",
    "rate": None,
    "trace": None,
    "trials": 20,
    "trial_duration": 2.0,
    "warmup": 1.0,
    "top_k": 3,
    "repetitions": None,
    "sampler": "tpe",
    "seed": 0,
    "study_name": None,
    "storage": None,
    "max_rss_mb": None,
    "engine": "auto",
    "knobs": None,
}
# Quick: no warm-up (as every quick study plan; tests/tune/test_tune_e2e.py runs one with
# a warm-up): 14 servers x 1 s of wrk less.
QUICK_PLAN: dict[str, Any] = {
    "trials": 5,
    "trial_duration": 1.0,
    "warmup": 0.0,
    "top_k": 1,
    "repetitions": 3,
}


def plan(quick: bool = False, **given: Any) -> dict[str, Any]:
    """The run's parameters: full defaults, shrunk when ``quick``, then every non-None ``given``."""
    unknown = sorted(set(given) - set(FULL_PLAN))
    if unknown:
        raise ValueError(f"tuning has no parameter(s) {unknown}; known: {sorted(FULL_PLAN)}")
    values = {**FULL_PLAN, **(QUICK_PLAN if quick else {})}
    values.update({k: v for k, v in given.items() if v is not None})
    return values


def settings_from_plan(p: dict[str, Any]) -> TrialSettings:
    from h3lab.tune.objective import default_cpus

    workload, params = p["workload"], {}
    if p["trace"]:
        workload, params = "trace", {"path": p["trace"]}
    server_cpu, load_cpu = default_cpus()
    return TrialSettings(
        workload=workload,
        workload_params=params,
        objective=p["objective"],
        rate=p["rate"],
        duration=float(p["trial_duration"]),
        warmup=float(p["warmup"]),
        engine=p["engine"],
        server_cpu=server_cpu,
        load_cpu=load_cpu,
        max_rss_mb=p["max_rss_mb"],
    )


def study_name_from_plan(p: dict[str, Any], settings: TrialSettings, quick: bool) -> str:
    """The CLI's default name; quick runs get their own study so they never mix with full ones."""
    from h3lab.tune.study import default_study_name

    name = p["study_name"] or default_study_name(settings)
    return f"{name}-quick" if quick and not p["study_name"] else name


# -- frames ------------------------------------------------------------------------------------


def trials_frame(study: optuna.Study, space: SearchSpace) -> pd.DataFrame:
    """One row per trial: number, state, value, reason, and each knob's config value."""
    import pandas as pd

    rows = []
    for t in study.get_trials(deepcopy=False):
        row: dict[str, Any] = {
            "trial": t.number,
            "state": t.state.name.lower(),
            "value": t.value,
            "fail_reason": t.user_attrs.get("fail_reason"),
            "duplicate_of": t.user_attrs.get("duplicate_of"),
            "rss_peak_mb": t.user_attrs.get("rss_peak_mb"),
        }
        config_dict = t.user_attrs.get("config")
        if config_dict is not None:
            flat = Config.from_dict(config_dict).flat()
            for k in space.knobs:
                row[k.key] = flat[k.key]
                row[f"active:{k.key}"] = k.is_active(flat.__getitem__)
        rows.append(row)
    return pd.DataFrame(rows)


def history_frame(trials: pd.DataFrame, direction: str) -> pd.DataFrame:
    """Completed trials with the best value so far (failed ones with value None)."""
    frame = trials[["trial", "state", "value"]].copy()
    done = frame["state"] == "complete"
    values = frame["value"].where(done)
    frame["best_so_far"] = values.cummax() if direction == "maximize" else values.cummin()
    frame["best_so_far"] = frame["best_so_far"].ffill()
    return frame


def _epsilon_squared(groups: list[list[float]]) -> float:
    """Bias-corrected share of variance between groups (0 when no effect)."""
    groups = [g for g in groups if g]
    k = len(groups)
    values = [v for g in groups for v in g]
    n = len(values)
    if k < 2 or n <= k:
        return 0.0
    mean = sum(values) / n
    ss_total = sum((v - mean) ** 2 for v in values)
    if ss_total == 0:
        return 0.0
    ss_between = sum(len(g) * (sum(g) / len(g) - mean) ** 2 for g in groups)
    ms_within = (ss_total - ss_between) / (n - k)
    return max(0.0, (ss_between - (k - 1) * ms_within) / (ss_total + ms_within))


def _groups(sub: pd.DataFrame, key: str, numeric: bool) -> dict[str, list[float]]:
    import pandas as pd

    x = sub[key]
    if numeric and x.nunique() > NUMERIC_BINS + 1:
        bins = pd.qcut(x.rank(method="first"), NUMERIC_BINS, labels=False)
        labels = {}
        for b in sorted(set(bins)):
            part = x[bins == b]
            labels[b] = f"{part.min():g}-{part.max():g}"
        x = bins.map(labels)
    out: dict[str, list[float]] = {}
    for label, value in zip(x, sub["value"], strict=True):
        out.setdefault(str(label), []).append(float(value))
    return out


def knob_importance(trials: pd.DataFrame, space: SearchSpace, direction: str) -> pd.DataFrame:
    """Per knob: variance explained, active trials, the best and worst value group."""
    import statistics

    import pandas as pd

    done = trials[(trials["state"] == "complete") & trials["duplicate_of"].isna()]
    rows = []
    for k in space.knobs:
        if k.key not in done.columns:
            continue
        sub = done[done[f"active:{k.key}"].astype(bool)]
        groups = _groups(sub, k.key, k.kind in ("int", "share"))
        medians = {label: statistics.median(vals) for label, vals in groups.items()}
        order = sorted(medians, key=medians.__getitem__, reverse=direction == "maximize")
        rows.append(
            {
                "knob": k.key,
                "variance_explained": _epsilon_squared(list(groups.values())),
                "n": len(sub),
                "groups": len(groups),
                "best_value": order[0] if order else None,
                "best_median": medians[order[0]] if order else None,
                "best_n": len(groups[order[0]]) if order else 0,
                "worst_value": order[-1] if order else None,
                "worst_median": medians[order[-1]] if order else None,
            }
        )
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    return frame.sort_values("variance_explained", ascending=False, ignore_index=True)


def ped_anova(study: optuna.Study, space: SearchSpace) -> dict[str, float]:
    """Optuna's default importance (PED-ANOVA) on the config-level view ({} if it cannot run).

    Only knobs active in every trial are evaluated (as Optuna itself does with
    conditional parameters): an inactive knob holds one constant value, and
    PED-ANOVA would read "the top trials all have cache.size 1024" as an
    effect of the size when it is the absence of a cache.
    """
    import optuna
    from optuna.trial import TrialState

    done = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if "config" in t.user_attrs and "duplicate_of" not in t.user_attrs
    ]
    if len(done) < MIN_TRIALS_FOR_IMPORTANCE:
        return {}
    configs = [Config.from_dict(t.user_attrs["config"]) for t in done]
    flats = [c.flat() for c in configs]
    always = [k.key for k in space.knobs if all(k.is_active(f.__getitem__) for f in flats)]
    if not always:
        return {}
    view = optuna.create_study(direction=study.direction)
    dists = space.distributions()
    for t, config in zip(done, configs, strict=True):
        values = space.values(config)
        view.add_trial(
            optuna.trial.create_trial(
                params={k: values[k] for k in always},
                distributions={k: dists[k] for k in always},
                value=t.value,
            )
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            evaluator = optuna.importance.PedAnovaImportanceEvaluator(target_quantile=0.2)
            return dict(optuna.importance.get_param_importances(view, evaluator=evaluator))
    except (ValueError, RuntimeError, ZeroDivisionError):
        return {}


def arms_frame(result: TuneResult) -> pd.DataFrame:
    """The re-measured arms: median, interval, failures, search value."""
    import pandas as pd

    d = result.decision
    if d is None:
        return pd.DataFrame(columns=["arm", "role", "median", "lo", "hi", "n"])
    by_label = {a.label: a for a in result.arms}
    rows = []
    for s in d.arms:
        arm = by_label[s.label]
        rows.append(
            {
                "arm": s.label,
                "role": s.role,
                "median": s.median,
                "lo": s.low,
                "hi": s.high,
                "n": s.n,
                "failed": s.failed,
                "cv": s.cv,
                "search": arm.search_value,
                "winner": s.label == d.winner,
            }
        )
    return pd.DataFrame(rows)


def gains_frame(result: TuneResult) -> pd.DataFrame:
    """Each candidate's gain over each preset, in percent, with its interval."""
    import pandas as pd

    d = result.decision
    rows = []
    for c in d.comparisons if d is not None else []:
        rows.append(
            {
                "candidate": c.candidate,
                "reference": c.reference,
                "gain_pct": (c.gain - 1) * 100,
                "lo_pct": (c.low - 1) * 100,
                "hi_pct": (c.high - 1) * 100,
                "rounds": c.n,
                "significant": c.significant,
            }
        )
    return pd.DataFrame(rows)


def config_table(result: TuneResult) -> pd.DataFrame:
    """The searched knobs of each re-measured arm, side by side."""
    import pandas as pd

    data = {a.label: {k: a.config.flat()[k] for k in result.space.keys} for a in result.arms}
    return pd.DataFrame(data)


def result_rows(result: TuneResult) -> list[dict[str, Any]]:
    """Every trial, re-measurement and comparison as tidy rows (``run.add``)."""
    rows = report.trial_rows(result.study, result.settings, result.study_name)
    if result.decision is not None and result.remeasurement is not None:
        rows += report.remeasure_rows(
            result.arms, result.remeasurement, result.settings, result.study_name
        )
        rows += report.decision_rows(
            result.decision, result.arms, result.settings, result.study_name
        )
    return rows


# -- charts ----------------------------------------------------------------------------------------


def history_chart(history: pd.DataFrame, unit: str, title: str) -> alt.TopLevelMixin:
    """Every completed trial as a point, the best so far as a step line, failures as ticks."""
    import altair as alt

    done = history[history["state"] == "complete"]
    y = alt.Y("value:Q", title=f"objective ({unit})", scale=alt.Scale(zero=False))
    points = (
        alt.Chart(done)
        .mark_point(filled=True, opacity=0.7)
        .encode(
            x=alt.X("trial:Q", title="trial", axis=alt.Axis(format="d", tickMinStep=1)),
            y=y,
            tooltip=["trial", "value"],
        )
    )
    best = (
        alt.Chart(history.dropna(subset=["best_so_far"]))
        .mark_line(interpolate="step-after", color="#D55E00")
        .encode(x="trial:Q", y=alt.Y("best_so_far:Q", title=f"objective ({unit})"))
    )
    layers: list[Any] = [points, best]
    failed = history[history["state"] == "fail"]
    if not failed.empty:
        layers.append(
            alt.Chart(failed)
            .mark_tick(color="#999", thickness=2)
            .encode(x="trial:Q", tooltip=["trial", "state"])
        )
    return alt.layer(*layers).properties(title=title)


def importance_chart(
    importance: pd.DataFrame, ped: dict[str, float], title: str
) -> alt.TopLevelMixin:
    """Horizontal bars: variance explained per knob (and PED-ANOVA beside it when available)."""
    import altair as alt
    import pandas as pd

    rows = [
        {"knob": r.knob, "measure": "variance explained", "importance": r.variance_explained}
        for r in importance.itertuples()
    ]
    rows += [{"knob": k, "measure": "PED-ANOVA (Optuna)", "importance": v} for k, v in ped.items()]
    frame = pd.DataFrame(rows)
    order = list(importance["knob"]) if not importance.empty else None
    return (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            y=alt.Y("knob:N", sort=order, title=None),
            x=alt.X("importance:Q", title="share (0..1)", scale=alt.Scale(domain=[0, 1])),
            color=alt.Color("measure:N", title=None),
            yOffset="measure:N",
            tooltip=["knob", "measure", alt.Tooltip("importance:Q", format=".2f")],
        )
        .properties(title=title, height=alt.Step(10))
    )


def arms_chart(arms: pd.DataFrame, unit: str, objective: str, title: str) -> alt.TopLevelMixin:
    """One row per arm: the median as a point, its 95% interval as a bar, presets vs candidates."""
    import altair as alt

    better = "higher" if objective == "throughput" else "lower"
    order = arms.sort_values("median", ascending=objective != "throughput")["arm"].tolist()
    base = alt.Chart(arms).encode(
        y=alt.Y("arm:N", sort=order, title=None),
        color=alt.Color("role:N", title=None, scale=alt.Scale(domain=["candidate", "preset"])),
    )
    x_title = f"{objective} ({unit}; {better} is better)"
    points = base.mark_point(filled=True, size=90).encode(
        x=alt.X("median:Q", title=x_title, scale=alt.Scale(zero=False)),
        tooltip=["arm", "role", "median", "lo", "hi", "n", "failed", "search"],
    )
    bars = base.mark_errorbar(ticks=True, thickness=2).encode(
        x=alt.X("lo:Q", title=x_title, scale=alt.Scale(zero=False)), x2="hi:Q"
    )
    return alt.layer(bars, points).properties(title=title, height=alt.Step(36))


# -- the conclusion ------------------------------------------------------------------------------------


def _num(x: float | None, unit: str) -> str:
    from h3lab.studies.common import fmt_num

    return f"{fmt_num(x)} {unit}"


def trial_commits(trials: Sequence[Any]) -> dict[str, int]:
    """How many trials each version of the code measured (its commit, 10 characters)."""
    out: dict[str, int] = {}
    for t in trials:
        commit = t.user_attrs.get("commit")
        label = (
            f"commit {commit[:10]}{' dirty' if commit.endswith('-dirty') else ''}"
            if commit
            else "an unrecorded commit"
        )
        out[label] = out.get(label, 0) + 1
    return out


def conclude(
    result: TuneResult, importance: pd.DataFrame, ped: dict[str, float], machine: str = ""
) -> str:
    """Computed prose: what won (or that nothing did), by how much, and which knobs mattered."""
    s = result.settings
    unit = s.unit
    completed = [t for t in result.completed if "duplicate_of" not in t.user_attrs]
    counts = {
        "all": len(result.study.trials),
        "done": len(result.completed),
        "fail": sum(t.state.name == "FAIL" for t in result.study.trials),
    }
    what = (
        f"p99 latency at {s.arrival_rate:g} req/s (open loop)"
        if s.objective == "p99"
        else "closed-loop throughput"
    )
    lines = [
        f"**Workload `{s.workload}`, objective {what}**{' on ' + machine if machine else ''}: "
        f"{counts['all']} trials in study `{result.study_name}` ({counts['done']} complete, "
        f"{counts['fail']} failed -- a failed trial keeps its reason and never counts as zero), "
        f"{s.warmup:g} s warm-up + {s.duration:g} s measured each."
    ]
    origins = trial_commits(result.study.trials)
    if len(origins) > 1:
        lines.append(
            "The search's trials come from more than one version of the code ("
            + ", ".join(f"{n} at {commit}" for commit, n in origins.items())
            + "): a resumed study keeps its earlier trials, so their single short runs rank "
            "the candidates only; the re-measurement below is all from this run's code."
        )
    d = result.decision
    if d is None and not result.completed:
        lines.append(
            "No trial completed, so nothing was re-measured and no configuration is recommended."
        )
    elif d is None:
        lines.append("The candidates were not re-measured (search only), so no winner is declared.")
    else:
        best = report.recommended(d, result.arms)
        perf = d.comparison(d.winner, "performance") if d.winner else None
        if d.winner and perf is not None:
            lines.append(
                f"**{d.winner} wins**: {(perf.gain - 1) * 100:+.1f}% over `performance` "
                f"(interval {(perf.low - 1) * 100:+.1f}% to {(perf.high - 1) * 100:+.1f}%, "
                f"{perf.n} interleaved rounds, each interval at {d.confidence_each:.1%}); "
                f"it beats `balanced` too, so it is written as the best config."
            )
        else:
            lines.append(f"{d.verdict[0].upper()}{d.verdict[1:]}.")
            if best is not None and best.label == d.best_preset:
                lines.append(
                    f"The config to serve is the preset `{best.label}`, which measurably beats the other."
                )
            elif best is not None:
                lines.append(
                    "The presets do not differ measurably either, so the config to serve stays the "
                    f"default preset `{best.label}`."
                )
        cand = d.best_candidate
        if cand is not None:
            arm = next(a for a in result.arms if a.label == cand)
            s_c = d.summary(cand)
            if arm.search_value is not None and s_c is not None and s_c.median:
                off = abs(arm.search_value / s_c.median - 1)
                kind = "optimistic" if s.better(arm.search_value, s_c.median) else "pessimistic"
                lines.append(
                    f"During the search {cand} measured {_num(arm.search_value, unit)}; re-measured, its "
                    f"median is {_num(s_c.median, unit)}: the single short run was {off:.1%} {kind}, "
                    "which is why only the interleaved re-measurement decides."
                )
    if len(completed) < MIN_TRIALS_FOR_IMPORTANCE:
        lines.append(
            f"With {len(completed)} distinct completed trials the importances are not meaningful "
            f"(at least {MIN_TRIALS_FOR_IMPORTANCE} are needed); run the full notebook for them."
        )
    elif not importance.empty:
        top = importance[importance["variance_explained"] > 0.05]
        if top.empty:
            lines.append(
                "No knob explains more than 5% of the variance between trials on its own: on this "
                "machine the measurement noise is as large as any knob's effect."
            )
        else:
            parts = []
            for r in top.head(3).itertuples():
                parts.append(
                    f"`{r.knob}` ({r.variance_explained:.0%} of the variance; best `{r.best_value}` "
                    f"at a median {_num(r.best_median, unit)} vs `{r.worst_value}` at {_num(r.worst_median, unit)})"
                )
            lines.append("Knobs that mattered for this workload: " + "; ".join(parts) + ".")
            quiet = importance[importance["variance_explained"] <= 0.01]["knob"].tolist()
            if quiet:
                lines.append(
                    "No measurable effect on their own: " + ", ".join(f"`{k}`" for k in quiet) + "."
                )
        if ped:
            ped_top = max(ped, key=ped.__getitem__)
            ours = importance.iloc[0]["knob"]
            agree = (
                "agrees"
                if ped_top == ours
                else f"ranks `{ped_top}` first instead: it asks how the best 20% of trials differ "
                "from the rest rather than how much of the variance a knob explains, and is "
                "noisier on few trials"
            )
            lines.append(f"Optuna's PED-ANOVA importance {agree}.")
    return "\n\n".join(lines)


__all__ = [
    "FULL_PLAN",
    "QUICK_PLAN",
    "arms_chart",
    "arms_frame",
    "conclude",
    "config_table",
    "gains_frame",
    "history_chart",
    "history_frame",
    "importance_chart",
    "knob_importance",
    "ped_anova",
    "plan",
    "result_rows",
    "settings_from_plan",
    "study_name_from_plan",
    "trials_frame",
]
