"""Winner selection: re-measure the best candidates beside the presets, then decide.

Why a second phase
------------------
The search measures each configuration once, for a short time, on a noisy
machine; the best trial value is therefore biased upwards (the maximum of
noisy values is mostly luck -- the "winner's curse"). So the top ``k``
distinct configurations are measured again, ``R`` times each, next to the
``balanced`` and ``performance`` presets, in the same run, and only these
re-measurements decide.

Interleaving
------------
One *round* measures every arm once, each a fresh server. Rounds are
repeated ``R`` times, and the order within a round is rotated by one arm per
round. Slow drift (other tenants, thermal state, a noisy neighbour starting
a build) then hits every arm about equally instead of whichever ran last,
and no arm always runs right after the same other one. Measurements of the
same round are close in time, so they are compared *as pairs*.

Intervals
---------
For a candidate ``c`` and a reference preset ``p`` the *gain* is oriented so
that above 1 is better: ``median(c) / median(p)`` for throughput,
``median(p) / median(c)`` for p99. Its confidence interval is a paired
percentile bootstrap: rounds are resampled with replacement (keeping each
round's pair together, so the drift shared by a round cancels), and the gain
of medians is recomputed on each resample. No normality is assumed; timing
distributions are skewed.

Decision rule
-------------
* Several candidates are tested, so each interval is computed at the
  Bonferroni-corrected level ``1 - alpha / k`` (``alpha = 1 - confidence``):
  the chance that *any* of ``k`` equal candidates looks significant stays
  below ``alpha``.
* A candidate wins only if its interval's lower bound exceeds ``1 + min_gain``
  against **every** preset (an intersection-union test: no correction is
  needed across presets, because all must be beaten).
* A percentile bootstrap over ``n`` rounds cannot be more certain than the
  rounds allow (with 3 rounds its lower bound is simply the worst round). So
  a decision is only possible with ``n >= ceil(log2(2 / alpha_each))``
  complete rounds -- the fewest for which even a unanimous outcome would pass
  an exact sign test at the interval's own tail level ``alpha_each / 2``
  (6 rounds for one candidate at 95%, 7 for three). ``rounds_needed`` gives
  it; the CLI's default repetitions use it.
* A candidate with a failed re-measurement is not eligible.
* Among eligible significant candidates the winner has the largest gain over
  the best preset; otherwise the verdict is that no configuration beats the
  presets on this machine, with the best candidate's interval.
* Without a winner, the config to serve (``Decision.recommended``) is the
  best-measured preset only if it beats the other presets by the same kind of
  interval (at ``confidence``), else the first preset (``balanced``, the
  default): noise must not flip the recommendation between runs.

The schedule, the paired bootstrap and ``rounds_needed`` live in
``h3lab.studies.stats``, the one statistics module shared with the studies.

``decide`` is pure (synthetic measurements in, ``Decision`` out) and is what
the unit tests exercise; ``remeasure`` runs the schedule with a ``measure``
callable.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from h3lab.config import Config
from h3lab.studies.stats import (
    Direction,
    oriented_gain,
    paired_gain_ci,
    rounds_needed,
    schedule,
)

if TYPE_CHECKING:
    import optuna

REFERENCE_PRESETS = ("balanced", "performance")


@dataclass(frozen=True)
class Arm:
    """One configuration in the re-measurement: a tuned candidate or a preset."""

    label: str
    config: Config
    role: Literal["candidate", "preset"]
    trial: int | None = None
    search_value: float | None = None
    """The candidate's value during the search (biased: see the module doc)."""
    aliases: tuple[str, ...] = ()
    """Trials whose config is this preset's (measured once, under the preset)."""


# -- the schedule: h3lab.studies.stats.schedule (round r starts at arm r mod k) -------------


@dataclass
class Remeasurement:
    values: dict[str, list[float | None]]
    """Per arm, one value per round (None where that measurement failed)."""
    failures: dict[str, list[str]] = field(default_factory=dict)
    details: list[dict[str, Any]] = field(default_factory=list)
    """One record per measurement: arm, round, order, value, and the measurement's attrs."""


def remeasure(
    arms: Sequence[Arm],
    measure: Callable[[Arm], Any],
    repetitions: int,
    on_result: Callable[[str, int, float | None], None] | None = None,
) -> Remeasurement:
    """Run ``schedule``; ``measure(arm)`` returns a value or an object with ``.value``.

    A measurement raising ``TrialFailure`` (or any ``Exception``) is recorded as
    None with its reason; ``KeyboardInterrupt`` stops the run.
    """
    labels = [a.label for a in arms]
    if len(set(labels)) != len(labels):
        raise ValueError(f"arm labels must be distinct, got {labels}")
    by_label = {a.label: a for a in arms}
    out = Remeasurement({label: [None] * repetitions for label in labels})
    for order, (label, rnd) in enumerate(schedule(labels, repetitions)):
        record: dict[str, Any] = {"arm": label, "round": rnd, "order": order}
        try:
            result = measure(by_label[label])
        except Exception as exc:
            value = None
            reason = (
                f"{type(exc).__name__}: {exc}" if type(exc).__name__ != "TrialFailure" else str(exc)
            )
            out.failures.setdefault(label, []).append(f"round {rnd}: {reason}")
            record["fail_reason"] = reason
        else:
            value = float(getattr(result, "value", result))
            attrs = getattr(result, "attrs", None)
            if callable(attrs):
                record.update({k: v for k, v in attrs().items() if k != "value"})
        out.values[label][rnd] = value
        record["value"] = value
        out.details.append(record)
        if on_result is not None:
            on_result(label, rnd, value)
    return out


# -- statistics -----------------------------------------------------------------------------


def repetitions_for(candidates: int, confidence: float = 0.95) -> int:
    """Rounds that let ``decide`` reach a verdict for ``candidates`` candidates."""
    return rounds_needed((1.0 - confidence) / max(1, candidates))


def median_ci(
    values: Sequence[float], confidence: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    from h3lab.bench.stats import bootstrap_ci

    return bootstrap_ci(values, confidence=confidence, seed=seed)


@dataclass(frozen=True)
class Comparison:
    candidate: str
    reference: str
    n: int
    """Rounds where both were measured."""
    gain: float
    low: float
    high: float
    significant: bool


@dataclass(frozen=True)
class ArmSummary:
    label: str
    role: str
    n: int
    failed: int
    median: float | None
    low: float | None
    high: float | None
    cv: float | None


@dataclass
class Decision:
    winner: str | None
    verdict: str
    direction: Direction
    confidence: float
    confidence_each: float
    rounds_needed: int
    min_gain: float
    best_preset: str | None
    best_candidate: str | None
    arms: list[ArmSummary]
    comparisons: list[Comparison]
    recommended: str | None = None
    """The config to serve: the winner; else the best preset if it beats the others
    measurably; else the first (default) preset -- never a coin flip between presets."""

    def comparison(self, candidate: str, reference: str) -> Comparison | None:
        for c in self.comparisons:
            if c.candidate == candidate and c.reference == reference:
                return c
        return None

    def summary(self, label: str) -> ArmSummary | None:
        for a in self.arms:
            if a.label == label:
                return a
        return None


def _ok(values: Sequence[float | None]) -> list[float]:
    return [v for v in values if v is not None]


def _pct(gain: float) -> str:
    return f"{(gain - 1) * 100:+.1f}%"


def decide(
    values: Mapping[str, Sequence[float | None]],
    candidates: Sequence[str],
    presets: Sequence[str],
    direction: Direction,
    *,
    confidence: float = 0.95,
    min_gain: float = 0.0,
    n_boot: int = 4000,
    seed: int = 0,
) -> Decision:
    """The winner (or none) from per-round values; see the module doc for the rule.

    ``values[label][round]`` is None where that measurement failed; rounds are
    aligned across arms (same index = same round).
    """
    if direction not in ("maximize", "minimize"):
        raise ValueError(f"direction must be maximize or minimize, got {direction!r}")
    if not presets:
        raise ValueError("at least one reference preset is needed")
    for label in [*candidates, *presets]:
        if label not in values:
            raise ValueError(f"no measurements for arm {label!r}")
    alpha = 1.0 - confidence
    m = max(1, len(candidates))
    conf_each = 1.0 - alpha / m
    needed = rounds_needed(alpha / m)
    maximize = direction == "maximize"

    arms = []
    for label in [*candidates, *presets]:
        ok = _ok(values[label])
        arm_median: float | None = None
        arm_low: float | None = None
        arm_high: float | None = None
        arm_cv: float | None = None
        if ok:
            arm_median = statistics.median(ok)
            arm_low, arm_high = median_ci(ok, confidence)
            mean = statistics.fmean(ok)
            arm_cv = statistics.stdev(ok) / mean if len(ok) > 1 and mean else 0.0
        arms.append(
            ArmSummary(
                label,
                "candidate" if label in candidates else "preset",
                len(ok),
                len(values[label]) - len(ok),
                arm_median,
                arm_low,
                arm_high,
                arm_cv,
            )
        )
    medians = {a.label: a.median for a in arms}

    def rank(label: str) -> float:
        med = medians[label]
        if med is None:
            return -math.inf
        return med if maximize else -med

    measured_presets = [p for p in presets if medians[p] is not None]
    best_preset = max(measured_presets, key=rank) if measured_presets else None
    best_candidate = (
        max(candidates, key=rank)
        if candidates and any(medians[c] is not None for c in candidates)
        else None
    )

    comparisons = []
    for cand in candidates:
        for ref in presets:
            pairs = [
                (c, r)
                for c, r in zip(values[cand], values[ref], strict=False)
                if c is not None and r is not None
            ]
            if not pairs:
                continue
            gain, lo, hi = paired_gain_ci(
                [c for c, _ in pairs], [r for _, r in pairs], direction, conf_each, n_boot, seed
            )
            eligible = len(pairs) >= needed and not any(v is None for v in values[cand])
            comparisons.append(
                Comparison(cand, ref, len(pairs), gain, lo, hi, eligible and lo > 1.0 + min_gain)
            )

    # Which preset to recommend when no candidate wins: the best-measured one
    # only if its interval beats every other preset, else the default (first).
    recommended = presets[0]
    if best_preset is not None and best_preset != presets[0]:
        beaten = []
        for other in presets:
            if other == best_preset:
                continue
            pairs = [
                (b, o)
                for b, o in zip(values[best_preset], values[other], strict=False)
                if b is not None and o is not None
            ]
            if len(pairs) < rounds_needed(alpha):
                beaten.append(False)
                continue
            _, lo, _ = paired_gain_ci(
                [b for b, _ in pairs], [o for _, o in pairs], direction, confidence, n_boot, seed
            )
            beaten.append(lo > 1.0)
        if all(beaten):
            recommended = best_preset

    def beats_all(cand: str) -> bool:
        mine = [c for c in comparisons if c.candidate == cand]
        return len(mine) == len(presets) and all(c.significant for c in mine)

    winners = [c for c in candidates if beats_all(c)]
    level = f"{confidence:.0%} (each interval at {conf_each:.1%}, Bonferroni over {m})"
    if winners and best_preset is not None:
        winner = max(
            winners,
            key=lambda c: next(
                x.gain for x in comparisons if x.candidate == c and x.reference == best_preset
            ),
        )
        cmp = next(x for x in comparisons if x.candidate == winner and x.reference == best_preset)
        verdict = (
            f"{winner} beats every preset: {_pct(cmp.gain)} vs {best_preset} "
            f"[{_pct(cmp.low)}, {_pct(cmp.high)}] at {level}"
        )
        return Decision(
            winner,
            verdict,
            direction,
            confidence,
            conf_each,
            needed,
            min_gain,
            best_preset,
            best_candidate,
            arms,
            comparisons,
            recommended=winner,
        )
    rounds = min((a.n for a in arms), default=0)
    if best_candidate is None or best_preset is None:
        verdict = "no decision: the candidates or the presets have no successful re-measurement"
    else:
        best = next(
            (
                x
                for x in comparisons
                if x.candidate == best_candidate and x.reference == best_preset
            ),
            None,
        )
        interval = f" [{_pct(best.low)}, {_pct(best.high)}]" if best else ""
        best_gain = f"{_pct(best.gain)}{interval}" if best else "n/a"
        why = ""
        if rounds < needed:
            why = f"; {rounds} round(s) cannot decide at this level (need >= {needed})"
        elif min_gain > 0:
            why = f"; a win needs the interval above +{min_gain:.1%}"
        verdict = (
            f"no configuration beats the presets on this machine: best candidate {best_candidate} "
            f"{best_gain} vs best preset {best_preset} at {level}{why}"
        )
    return Decision(
        None,
        verdict,
        direction,
        confidence,
        conf_each,
        needed,
        min_gain,
        best_preset,
        best_candidate,
        arms,
        comparisons,
        recommended=recommended,
    )


# -- candidates from a study --------------------------------------------------------------------


def top_trials(
    study: optuna.Study, k: int, direction: Direction, max_rss_mb: float | None = None
) -> list[optuna.trial.FrozenTrial]:
    """The best ``k`` completed trials with distinct configs (within the RSS cap)."""
    from optuna.trial import TrialState

    from h3lab.tune.objective import feasible

    scored = [
        (t.value, t)
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.value is not None and feasible(t, max_rss_mb) and "config" in t.user_attrs
    ]
    scored.sort(key=lambda pair: pair[0] if direction == "minimize" else -pair[0])
    out: list[optuna.trial.FrozenTrial] = []
    seen: set[str] = set()
    for _, t in scored:
        key = t.user_attrs.get("config_key") or repr(t.user_attrs["config"])
        if key in seen:
            continue
        seen.add(key)
        out.append(t)
        if len(out) >= k:
            break
    return out


def build_arms(
    trials: Sequence[optuna.trial.FrozenTrial], presets: Sequence[str] = REFERENCE_PRESETS
) -> list[Arm]:
    """Preset arms, then one arm per trial whose config is not already a preset's."""
    from h3lab.tune.objective import config_key

    preset_arms = {name: Config.preset(name) for name in presets}
    by_key = {config_key(cfg): name for name, cfg in preset_arms.items()}
    aliases: dict[str, list[str]] = {name: [] for name in presets}
    candidates = []
    for t in trials:
        config = Config.from_dict(t.user_attrs["config"])
        name = by_key.get(config_key(config))
        if name is not None:
            aliases[name].append(f"trial {t.number}")
            continue
        candidates.append(Arm(f"trial {t.number}", config, "candidate", t.number, t.value))
    arms = [
        Arm(name, cfg, "preset", aliases=tuple(aliases[name])) for name, cfg in preset_arms.items()
    ]
    return candidates + arms


__all__ = [
    "REFERENCE_PRESETS",
    "Arm",
    "ArmSummary",
    "Comparison",
    "Decision",
    "Remeasurement",
    "build_arms",
    "decide",
    "oriented_gain",
    "paired_gain_ci",
    "remeasure",
    "repetitions_for",
    "rounds_needed",
    "schedule",
    "top_trials",
]
