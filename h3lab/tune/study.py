"""Optuna studies: where they live, how they resume, which sampler they use.

Storage
-------
By default a study lives in an embedded SQLite file,
``data/tuning/<study-name>.db``: nothing to run, and rerunning the same
command *continues* the study (``load_if_exists``) -- new trials are added to
the old ones and the samplers learn from all of them.

Any SQLAlchemy URL works instead (``--storage postgresql://user:pw@host/db``,
``mysql+pymysql://...``): several machines can then run workers of the *same*
study at once, each asking the shared database for its next trial. TPE uses
the "constant liar" so concurrent workers do not all propose the same
configuration. SQLite is fine for one process; for concurrent workers use a
server database (SQLite locks the whole file per write).

Samplers
--------
``tpe`` (default; multivariate, grouped for the conditional space, constraint-
aware under an RSS cap), ``random`` and ``grid`` (the knobs' declared grid
points, visited in random order without repetition; exhaustive only when the
grid is small, e.g. with ``--knobs``). Seeds are deterministic: the sampler's
seed is ``seed + trials already in the study``, so a resumed study does not
replay the first run's proposals, and the same history gives the same
proposals. Concurrent workers should each get their own ``--seed``.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna

    from h3lab.tune.objective import TrialSettings
    from h3lab.tune.space import SearchSpace

DEFAULT_ROOT = Path("data/tuning")
SAMPLERS = ("tpe", "random", "grid")
STUDY_ATTR = "h3lab"
"""Study user attribute holding what the study measures (checked on resume)."""
TPE_STARTUP_TRIALS = 10

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def default_study_name(settings: TrialSettings) -> str:
    """``zipf-throughput``, ``adversarial-p99-2000rps``, ``trace-mytrace-throughput``."""
    name = settings.workload
    path = settings.workload_params.get("path")
    if settings.workload == "trace" and path:
        name = f"trace-{Path(str(path)).stem}"
    parts = [name, settings.objective]
    if settings.objective == "p99":
        parts.append(f"{settings.arrival_rate:g}rps")
    return _SAFE.sub("_", "-".join(parts))


def default_storage(study_name: str, root: str | Path = DEFAULT_ROOT) -> str:
    """``sqlite:////abs/data/tuning/<name>.db`` (the directory is created)."""
    root = Path(root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{root / (_SAFE.sub('_', study_name) + '.db')}"


def study_dir(study_name: str, root: str | Path = DEFAULT_ROOT) -> Path:
    """``data/tuning/<name>/``: the best config and the report of a study."""
    return Path(root) / _SAFE.sub("_", study_name)


def make_sampler(
    kind: str,
    space: SearchSpace,
    seed: int,
    *,
    startup_trials: int = TPE_STARTUP_TRIALS,
) -> optuna.samplers.BaseSampler:
    """The sampler; TPE reads the RSS cap from each trial's constraint (``set_constraint``)."""
    import optuna

    if kind == "tpe":
        with warnings.catch_warnings():
            # multivariate/group are marked experimental but are the sampler's
            # documented answer to conditional spaces like this one.
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(
                seed=seed,
                n_startup_trials=startup_trials,
                multivariate=True,
                group=True,
                constant_liar=True,
            )
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if kind == "grid":
        return _grid_sampler(space.grid(), seed)
    raise ValueError(f"sampler must be one of {list(SAMPLERS)}, got {kind!r}")


def _grid_sampler(grid: dict[str, list[Any]], seed: int) -> optuna.samplers.GridSampler:
    import optuna

    class AskTellGridSampler(optuna.samplers.GridSampler):
        """GridSampler for the ask-and-tell loop.

        Optuna's calls ``study.stop()`` after the last grid point, which raises
        outside ``study.optimize``; the loop checks ``is_exhausted`` instead.
        """

        def after_trial(self, *args: Any, **kwargs: Any) -> None:
            return None

    return AskTellGridSampler(grid, seed=seed)


def describe_study(settings: TrialSettings, space: SearchSpace) -> dict[str, Any]:
    return {"settings": settings.describe(), "knobs": list(space.keys)}


def open_study(
    name: str,
    settings: TrialSettings,
    space: SearchSpace,
    *,
    storage: str | None = None,
    sampler: str = "tpe",
    seed: int = 0,
    root: str | Path = DEFAULT_ROOT,
    startup_trials: int = TPE_STARTUP_TRIALS,
) -> optuna.Study:
    """Create the study, or load it to continue; refuse one that measures something else."""
    import optuna

    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {list(SAMPLERS)}, got {sampler!r}")
    url = storage or default_storage(name, root)
    try:
        study = optuna.create_study(
            storage=url,
            study_name=name,
            direction=settings.direction,
            load_if_exists=True,
            sampler=optuna.samplers.RandomSampler(seed=seed),  # replaced below
        )
    except ImportError as exc:  # e.g. postgresql:// without its driver
        raise ValueError(f"storage {url!r}: {exc}") from None
    mine = describe_study(settings, space)
    theirs = study.user_attrs.get(STUDY_ATTR)
    if theirs is None:
        study.set_user_attr(STUDY_ATTR, mine)
    else:
        _check_same(name, theirs.get("settings", {}), mine["settings"])
    if study.direction.name.lower() != settings.direction:
        raise ValueError(
            f"study {name!r} {study.direction.name.lower()}s; objective {settings.objective!r} "
            f"{settings.direction}s: use another --study-name"
        )
    study.sampler = make_sampler(
        sampler,
        space,
        seed + len(study.trials),
        startup_trials=startup_trials,
    )
    return study


# What a study measures; anything else (duration, CPUs, the RSS cap) may change between runs.
_IDENTITY = ("workload", "workload_params", "objective", "rate", "app")


def _check_same(name: str, old: dict[str, Any], new: dict[str, Any]) -> None:
    for key in _IDENTITY:
        if key in old and old.get(key) != new.get(key):
            raise ValueError(
                f"study {name!r} was created for {key}={old.get(key)!r}, not {new.get(key)!r}: "
                "use another --study-name (or the original settings to continue it)"
            )


def grid_exhausted(study: optuna.Study) -> bool:
    import optuna

    sampler = study.sampler
    return isinstance(sampler, optuna.samplers.GridSampler) and sampler.is_exhausted(study)


def trial_counts(study: optuna.Study) -> dict[str, int]:
    from collections import Counter

    counts = Counter(t.state.name.lower() for t in study.get_trials(deepcopy=False))
    return {"total": sum(counts.values()), **counts}


__all__ = [
    "DEFAULT_ROOT",
    "SAMPLERS",
    "default_storage",
    "default_study_name",
    "grid_exhausted",
    "make_sampler",
    "open_study",
    "study_dir",
    "trial_counts",
]
