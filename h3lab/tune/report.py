"""What a tuning run leaves behind: the winner table, config files, tidy rows.

* ``data/tuning/<study>/best.toml`` -- the configuration to serve: the winner
  when one was declared, otherwise a preset (the best-measured one if it beats
  the other measurably, else ``balanced``); the verdict is in the file's
  header comment. ``h3lab serve --config`` and
  ``Config.load`` read it.
* ``data/tuning/<study>/candidate.toml`` -- the best tuned candidate, winner
  or not (to re-test it later, elsewhere).
* ``data/tuning/<study>/report.json`` -- the decision, the intervals, the settings.
* ``data/runs/tune/<run_id>/`` -- every trial, every re-measurement and every
  comparison as tidy rows in the bench results store (``RunWriter``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from h3lab.config import Config

if TYPE_CHECKING:
    import optuna

    from h3lab.tune.objective import TrialSettings
    from h3lab.tune.select import Arm, Decision, Remeasurement

RESULTS_STUDY = "tune"


# -- config files ----------------------------------------------------------------------------


def write_config(config: Config, path: str | Path, comment: Sequence[str] = ()) -> Path:
    """``Config.dump`` plus ``#`` header lines; ``Config.load`` reads it back exactly."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    config.dump(path)
    if comment:
        if path.suffix != ".toml":
            raise ValueError("header comments need a .toml file (JSON has no comments)")
        header = "".join(f"# {line}\n" for text in comment for line in str(text).splitlines())
        path.write_text(header + path.read_text())
    return path


def recommended(decision: Decision | None, arms: Sequence[Arm]) -> Arm | None:
    """The arm to serve (``Decision.recommended``), None without a decision."""
    if decision is None:
        return None
    return next((a for a in arms if a.label == decision.recommended), None)


# -- the table ---------------------------------------------------------------------------------


def _num(value: float | None, unit: str) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:,.0f}" if unit == "req/s" else f"{value:,.3g}"


def _gain(decision: Decision, cand: str, ref: str) -> str:
    c = decision.comparison(cand, ref)
    if c is None:
        return ""
    mark = " *" if c.significant else ""
    return f"{(c.gain - 1) * 100:+.1f}% [{(c.low - 1) * 100:+.1f}, {(c.high - 1) * 100:+.1f}]{mark}"


def nearest_preset(config: Config, presets: Sequence[str]) -> tuple[str, dict[str, Any]]:
    """The preset ``config`` is fewest changes away from, and those changes."""
    from h3lab.config import PRESETS

    flat = config.flat()
    best: tuple[str, dict[str, Any]] | None = None
    for name in [*presets, *(p for p in PRESETS if p not in presets)]:
        base = Config.preset(name).flat()
        changes = {k: v for k, v in flat.items() if base.get(k) != v}
        if best is None or len(changes) < len(best[1]):
            best = (name, changes)
    assert best is not None
    return best


def describe_candidate(config: Config, presets: Sequence[str]) -> str:
    """``performance with cache.size=2048, pool.size=512`` (or ``= balanced``)."""
    name, changes = nearest_preset(config, presets)
    if not changes:
        return f"= {name}"
    return f"{name} with " + ", ".join(f"{k}={v}" for k, v in changes.items())


def format_table(decision: Decision, arms: Sequence[Arm], unit: str, presets: Sequence[str]) -> str:
    """The final table: each arm's median and interval, each candidate's gain over each preset."""
    better = "higher" if decision.direction == "maximize" else "lower"
    head = [
        "arm",
        "role",
        "search",
        f"median ({unit})",
        f"{decision.confidence:.0%} CI of median",
        "fails",
    ]
    head += [f"gain vs {p} [CI]" for p in presets]
    rows = []
    for arm in arms:
        s = decision.summary(arm.label)
        if s is None:
            continue
        ci = f"[{_num(s.low, unit)}, {_num(s.high, unit)}]" if s.low is not None else "-"
        label = arm.label + (f" (= {', '.join(arm.aliases)})" if arm.aliases else "")
        if arm.role == "candidate":
            name, changes = nearest_preset(arm.config, presets)
            label += f" ({name}+{len(changes)})"
        row = [
            label,
            arm.role,
            _num(arm.search_value, unit),
            _num(s.median, unit),
            ci,
            str(s.failed),
        ]
        row += [_gain(decision, arm.label, p) if arm.role == "candidate" else "" for p in presets]
        rows.append(row)
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    lines = [
        "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in [head, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    candidates = [
        f"  {arm.label}: {describe_candidate(arm.config, presets)}"
        for arm in arms
        if arm.role == "candidate"
    ]
    if candidates:
        lines += ["", "candidates, as changes to the nearest preset:", *candidates]
    notes = [
        f"gain: {better} is better, oriented so + = the candidate is better; intervals are paired "
        f"bootstrap over interleaved rounds, each at {decision.confidence_each:.1%} "
        f"(Bonferroni); * = significant. A decision needs >= {decision.rounds_needed} rounds.",
        "search: the value during the search (one short run: biased upwards, not used to decide).",
        f"verdict: {decision.verdict}",
    ]
    return "\n".join([*lines, "", *notes])


# -- tidy rows ---------------------------------------------------------------------------------


def _config_cols(config: Config) -> dict[str, Any]:
    from h3lab.bench.results import config_columns

    return config_columns(config)


def _base(settings: TrialSettings, study_name: str) -> dict[str, Any]:
    return {
        "workload": settings.workload,
        "study_name": study_name,
        "objective": settings.objective,
    }


def trial_rows(
    study: optuna.Study, settings: TrialSettings, study_name: str
) -> list[dict[str, Any]]:
    """One row per trial and metric (failed trials: ``trial_failed`` = 1 with the reason)."""
    rows: list[dict[str, Any]] = []
    for t in study.get_trials(deepcopy=False):
        attrs = t.user_attrs
        if "config" not in attrs:
            continue
        config = Config.from_dict(attrs["config"])
        base = {
            **_base(settings, study_name),
            **_config_cols(config),
            "trial": t.number,
            "state": t.state.name.lower(),
            "duplicate_of": attrs.get("duplicate_of"),
            "t": t.datetime_complete.timestamp() if t.datetime_complete else None,
        }
        if t.state.name == "COMPLETE" and t.value is not None:
            rows.append(
                {**base, "metric": "trial_value", "value": float(t.value), "unit": settings.unit}
            )
            for key, unit in (
                ("throughput_rps", "req/s"),
                ("p99_ms", "ms"),
                ("rss_peak_mb", "MiB"),
            ):
                if isinstance(attrs.get(key), int | float):
                    rows.append(
                        {**base, "metric": f"trial_{key}", "value": float(attrs[key]), "unit": unit}
                    )
        elif t.state.name == "FAIL":
            reason = attrs.get("fail_reason") or t.system_attrs.get("fail_reason") or "unknown"
            rows.append(
                {
                    **base,
                    "metric": "trial_failed",
                    "value": 1,
                    "unit": "count",
                    "fail_reason": reason,
                }
            )
    return rows


def remeasure_rows(
    arms: Sequence[Arm], remeasurement: Remeasurement, settings: TrialSettings, study_name: str
) -> list[dict[str, Any]]:
    by_label = {a.label: a for a in arms}
    rows = []
    for record in remeasurement.details:
        arm = by_label[record["arm"]]
        base = {
            **_base(settings, study_name),
            **_config_cols(arm.config),
            "arm": arm.label,
            "role": arm.role,
            "trial": arm.trial,
            "repetition": record["round"],
            "order": record["order"],
        }
        if record.get("value") is None:
            rows.append(
                {
                    **base,
                    "metric": "remeasure_failed",
                    "value": 1,
                    "unit": "count",
                    "fail_reason": record.get("fail_reason"),
                }
            )
            continue
        rows.append(
            {**base, "metric": "remeasure_value", "value": record["value"], "unit": settings.unit}
        )
        for key, unit in (("throughput_rps", "req/s"), ("p99_ms", "ms"), ("rss_peak_mb", "MiB")):
            if isinstance(record.get(key), int | float):
                rows.append(
                    {
                        **base,
                        "metric": f"remeasure_{key}",
                        "value": float(record[key]),
                        "unit": unit,
                    }
                )
    return rows


def decision_rows(
    decision: Decision, arms: Sequence[Arm], settings: TrialSettings, study_name: str
) -> list[dict[str, Any]]:
    by_label = {a.label: a for a in arms}
    rows = []
    for c in decision.comparisons:
        arm = by_label[c.candidate]
        rows.append(
            {
                **_base(settings, study_name),
                **_config_cols(arm.config),
                "arm": c.candidate,
                "role": "candidate",
                "trial": arm.trial,
                "reference": c.reference,
                "metric": "gain",
                "value": c.gain,
                "unit": "ratio",
                "ci_low": c.low,
                "ci_high": c.high,
                "n_rounds": c.n,
                "significant": c.significant,
                "winner": decision.winner == c.candidate,
            }
        )
    for s in decision.arms:
        if s.median is None:
            continue
        arm = by_label[s.label]
        rows.append(
            {
                **_base(settings, study_name),
                **_config_cols(arm.config),
                "arm": s.label,
                "role": s.role,
                "trial": arm.trial,
                "metric": "remeasure_median",
                "value": s.median,
                "unit": settings.unit,
                "ci_low": s.low,
                "ci_high": s.high,
                "n_rounds": s.n,
                "winner": decision.winner == s.label,
            }
        )
    return rows


def write_results(
    rows: list[dict[str, Any]],
    params: dict[str, Any],
    *,
    run_id: str | None = None,
    root: str | Path = "data/runs",
) -> Path:
    from h3lab.bench.results import RunWriter

    writer = RunWriter(RESULTS_STUDY, run_id=run_id, root=root, params=params)
    writer.add_rows(rows)
    return writer.write()


def report_json(path: str | Path, payload: dict[str, Any]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=_default) + "\n")
    return path


def _default(value: Any) -> Any:
    if hasattr(value, "__dataclass_fields__"):
        return asdict(value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Config):
        return value.to_dict()
    return repr(value)


__all__ = [
    "RESULTS_STUDY",
    "decision_rows",
    "describe_candidate",
    "format_table",
    "nearest_preset",
    "recommended",
    "remeasure_rows",
    "report_json",
    "trial_rows",
    "write_config",
    "write_results",
]
