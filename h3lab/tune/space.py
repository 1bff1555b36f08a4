"""The search space over the ``Config`` tree, declared in one table.

``KNOBS`` is the only place a tunable field is described. A ``strategy`` knob
takes its choices from the family's registry (``config.strategy_names``), so a
strategy registered in its module is searched without an edit here; numeric
knobs declare their range (for TPE/random) and their grid points (for grid).

Invalid combinations are excluded *by construction*, not by failing trials:

* a choice knob is offered only the values that the config accepts given the
  values already chosen -- each candidate is checked by building the partial
  ``Config`` (so ``router.matching="hybrid"`` removes ``"none"`` from
  ``cache.policy``, and any rule added to ``Config`` later is honoured the
  same way). A restricted choice list is a *different* Optuna parameter
  (``"cache.policy (not none)"``), because Optuna refuses a categorical
  parameter whose choices change between trials;
* a knob that means nothing under an earlier choice is not sampled at all
  (conditional parameter): ``cache.size`` without a cache, the pool's size and
  warm-up without a pool, ``memory.warmup_requests`` for a strategy that never
  freezes the heap;
* ``pool.warmup`` is sampled as a share of ``pool.size``, so ``warmup <= size``
  always holds.

Order matters: a knob's conditions and checks may only depend on knobs listed
before it.

``SearchSpace.values(config)`` re-expresses any config (a trial's, a
preset's) as one value per knob, so parameter importances can be computed on
the config itself rather than on the conditional Optuna parameters (which
appear in only some trials).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from h3lab.config import Config, strategy_names

if TYPE_CHECKING:
    import optuna
    from optuna.distributions import BaseDistribution

Kind = Literal["strategy", "choice", "int", "share"]


def _freezes_heap(strategy: str) -> bool:
    from h3lab.memory import MEMORY_STRATEGIES

    return bool(getattr(MEMORY_STRATEGIES.get(strategy), "freeze_after_warmup", False))


@dataclass(frozen=True)
class Knob:
    """One tunable ``Config`` field and how it is searched."""

    key: str
    """The dotted config field, e.g. ``"cache.size"``."""
    kind: Kind
    """strategy (registry names) | choice (fixed values) | int (range) | share (of another knob)."""
    why: str
    low: int = 0
    high: int = 0
    log: bool = False
    choices: tuple[Any, ...] = ()
    grid: tuple[Any, ...] = ()
    """Grid points (for ``--sampler grid``); strategy knobs use every name."""
    share_of: str | None = None
    """For ``share``: the knob whose value the sampled share (0..1) multiplies."""
    when: tuple[str, Callable[[Any], bool], str] | None = None
    """``(earlier knob, predicate, text)``: active only when ``predicate(its value)``."""
    inactive: Any = None
    """Value written when inactive (None: keep the base config's value)."""

    def is_active(self, current: Callable[[str], Any]) -> bool:
        if self.when is None:
            return True
        dep, predicate, _ = self.when
        return bool(predicate(current(dep)))

    def all_choices(self) -> tuple[Any, ...]:
        if self.kind == "strategy":
            return strategy_names(self.key)
        return self.choices


# The one table. Ranges are wide enough to contain every preset's value and
# the cliffs the studies found (cache smaller than the working set, a pool
# smaller than the concurrency), log-scaled where the effect is multiplicative.
KNOBS: tuple[Knob, ...] = (
    Knob("router.matching", "strategy", "how a path finds its route"),
    Knob("cache.policy", "strategy", "the route cache in front of the router"),
    Knob(
        "cache.size",
        "int",
        "route-cache entries (hit ratio vs memory)",
        low=16,
        high=16384,
        log=True,
        grid=(64, 1024, 8192),
        when=("cache.policy", lambda policy: policy != "none", "cache.policy != none"),
    ),
    Knob("pool.policy", "strategy", "event reuse between requests"),
    Knob(
        "pool.size",
        "int",
        "idle events kept for reuse",
        low=4,
        high=4096,
        log=True,
        grid=(16, 256, 2048),
        when=("pool.policy", lambda policy: policy != "none", "pool.policy != none"),
        inactive=0,
    ),
    Knob(
        "pool.warmup",
        "share",
        "events created at start, as a share of pool.size",
        grid=(0.0, 0.5, 1.0),
        share_of="pool.size",
        when=("pool.policy", lambda policy: policy != "none", "pool.policy != none"),
        inactive=0,
    ),
    Knob("memory.strategy", "strategy", "GC policy, arena and heap freezing"),
    Knob(
        "memory.gc_threshold0",
        "choice",
        "generation-0 GC threshold (0 = the strategy's own)",
        choices=(0, 700, 5_000, 20_000, 100_000),
    ),
    Knob(
        "memory.arena_buffers",
        "choice",
        "reusable body buffers (0 = the strategy's own)",
        choices=(0, 16, 256, 2048),
    ),
    Knob(
        "memory.warmup_requests",
        "choice",
        "requests served before the heap is frozen",
        choices=(0, 1_000, 10_000),
        when=("memory.strategy", _freezes_heap, "the memory strategy freezes the heap"),
    ),
    Knob("middleware.execution", "strategy", "how the middleware chain runs"),
    Knob("response.json", "strategy", "how JSON responses are encoded"),
)

KNOB_KEYS: tuple[str, ...] = tuple(k.key for k in KNOBS)


def knob(key: str) -> Knob:
    for k in KNOBS:
        if k.key == key:
            return k
    raise ValueError(f"no tunable knob {key!r}; knobs: {list(KNOB_KEYS)}")


def _share_param(k: Knob) -> str:
    return f"{k.key} (share of {k.share_of})"


def _restricted_param(key: str, excluded: Sequence[Any]) -> str:
    return f"{key} (not {', '.join(str(e) for e in excluded)})"


class SearchSpace:
    """The knobs searched (all of ``KNOBS`` by default) over a base config.

    Knobs left out keep the base config's value. ``sample(trial)`` is the
    define-by-run sampler; ``grid()`` the search space for Optuna's
    ``GridSampler``; ``values``/``distributions`` the config-level view used
    for importances.
    """

    def __init__(self, knobs: Iterable[str] | None = None, base: Config | None = None) -> None:
        keys = list(KNOB_KEYS) if knobs is None else [k.strip() for k in knobs if k.strip()]
        for key in keys:
            knob(key)  # raises on an unknown key
        if not keys:
            raise ValueError("the search space needs at least one knob")
        # Keep the table's order whatever order the caller gave: conditions
        # and checks look only at earlier knobs.
        self.knobs: tuple[Knob, ...] = tuple(k for k in KNOBS if k.key in keys)
        for k in self.knobs:
            if k.kind == "share" and k.share_of not in keys:
                raise ValueError(f"knob {k.key!r} is a share of {k.share_of!r}: search both")
        self.base = base if base is not None else Config()
        self._base_flat = self.base.flat()

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(k.key for k in self.knobs)

    # -- validity -------------------------------------------------------------

    def _config(self, values: dict[str, Any]) -> Config:
        return self.base.replace(**values) if values else self.base

    def allowed(self, k: Knob, values: dict[str, Any]) -> tuple[Any, ...]:
        """The choices of ``k`` that the config accepts given the earlier ``values``."""
        ok = []
        for choice in k.all_choices():
            try:
                self._config({**values, k.key: choice})
            except ValueError:
                continue
            ok.append(choice)
        if not ok:
            raise ValueError(
                f"search space: no value of {k.key} is valid after {values}; "
                "a knob's dependencies must come before it in KNOBS"
            )
        return tuple(ok)

    def _choice_param(self, k: Knob, allowed: tuple[Any, ...]) -> str:
        excluded = [c for c in k.all_choices() if c not in allowed]
        return _restricted_param(k.key, excluded) if excluded else k.key

    # -- sampling -----------------------------------------------------------------

    def sample(self, trial: optuna.trial.BaseTrial) -> Config:
        """A valid ``Config`` for ``trial`` (Optuna's define-by-run API)."""
        return self._config(self.walk(lambda name, k, choices: _suggest(trial, name, k, choices)))

    def walk(self, suggest: Callable[[str, Knob, tuple[Any, ...]], Any]) -> dict[str, Any]:
        """Visit the knobs in order; ``suggest(param, knob, choices)`` returns each value.

        ``choices`` is the allowed choice list (choice knobs) or ``()``.
        Returns the dotted config values (inactive knobs at their inactive value).
        """
        values: dict[str, Any] = {}

        def current(key: str) -> Any:
            return values.get(key, self._base_flat[key])

        for k in self.knobs:
            if not k.is_active(current):
                if k.inactive is not None:
                    values[k.key] = k.inactive
                continue
            if k.kind in ("strategy", "choice"):
                allowed = self.allowed(k, values)
                values[k.key] = suggest(self._choice_param(k, allowed), k, allowed)
            elif k.kind == "int":
                values[k.key] = int(suggest(k.key, k, ()))
            else:  # share
                assert k.share_of is not None
                share = float(suggest(_share_param(k), k, ()))
                values[k.key] = round(share * int(current(k.share_of)))
        return values

    def grid(self) -> dict[str, list[Any]]:
        """``GridSampler``'s search space: every parameter any trial may suggest.

        Found by walking every combination of the strategy knobs (the other
        knobs at their first allowed value or grid point), so restricted
        parameters such as ``"cache.policy (not none)"`` are included.
        """
        space: dict[str, list[Any]] = {}

        def explore(prefix: dict[str, Any]) -> None:
            # One walk with the first len(prefix) strategy params fixed and the
            # rest at their first choice; then branch on each of the rest in turn.
            met: list[tuple[str, tuple[Any, ...]]] = []

            def suggest(name: str, k: Knob, choices: tuple[Any, ...]) -> Any:
                if k.kind == "strategy":
                    space.setdefault(name, list(choices))
                    met.append((name, choices))
                    return prefix.get(name, choices[0])
                if k.kind == "choice":
                    space.setdefault(name, list(choices))
                    return choices[0]
                points = list(k.grid)
                space.setdefault(name, points)
                return points[0]

            self.walk(suggest)
            fixed = dict(prefix)
            for name, choices in met:
                if name in prefix:
                    continue
                for choice in choices[1:]:
                    explore({**fixed, name: choice})
                fixed[name] = choices[0]

        explore({})
        return space

    # -- the config-level view ---------------------------------------------------------

    def values(self, config: Config) -> dict[str, Any]:
        """One value per knob, read from ``config`` (log-scaled ints as log2(1 + v))."""
        flat = config.flat()
        out: dict[str, Any] = {}
        for k in self.knobs:
            value = flat[k.key]
            out[k.key] = math.log2(1 + value) if k.kind in ("int", "share") else value
        return out

    def distributions(self) -> dict[str, BaseDistribution]:
        """Fixed Optuna distributions over ``values()``: the same for every trial."""
        from optuna.distributions import CategoricalDistribution, FloatDistribution

        out: dict[str, BaseDistribution] = {}
        for k in self.knobs:
            if k.kind in ("strategy", "choice"):
                out[k.key] = CategoricalDistribution(list(k.all_choices()))
            else:
                top = k.high if k.kind == "int" else knob(str(k.share_of)).high
                # Inactive values (0) and base values must fit the range too.
                top = max(top, int(self._base_flat[k.key]))
                out[k.key] = FloatDistribution(0.0, math.log2(1 + top))
        return out

    def describe(self) -> list[dict[str, Any]]:
        """One row per knob: key, kind, choices or range, grid, condition, why."""
        rows = []
        for k in self.knobs:
            if k.kind in ("strategy", "choice"):
                domain = ", ".join(str(c) for c in k.all_choices())
            elif k.kind == "int":
                domain = f"{k.low}..{k.high}" + (" (log)" if k.log else "")
            else:
                domain = f"0..1 x {k.share_of}"
            rows.append(
                {
                    "knob": k.key,
                    "kind": k.kind,
                    "domain": domain,
                    "grid": ", ".join(str(g) for g in (k.grid or k.all_choices())),
                    "active when": k.when[2] if k.when else "always",
                    "why": k.why,
                }
            )
        return rows


def _suggest(trial: optuna.trial.BaseTrial, name: str, k: Knob, choices: tuple[Any, ...]) -> Any:
    if k.kind in ("strategy", "choice"):
        return trial.suggest_categorical(name, list(choices))
    if k.kind == "int":
        return trial.suggest_int(name, k.low, k.high, log=k.log)
    return trial.suggest_float(name, 0.0, 1.0)


def parse_knobs(text: str | None) -> list[str] | None:
    """``"router.matching,cache.size"`` -> keys (None or empty: every knob)."""
    if not text:
        return None
    keys = [part.strip() for part in text.split(",") if part.strip()]
    for key in keys:
        knob(key)
    return keys


__all__ = ["KNOBS", "KNOB_KEYS", "Knob", "SearchSpace", "knob", "parse_knobs"]
