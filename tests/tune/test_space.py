"""The search space: derived from the registries, invalid combinations excluded by construction."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import optuna
import pytest

from h3lab.cache import CACHES
from h3lab.cache.lru import LRURouteCache
from h3lab.config import Config, strategy_names
from h3lab.registry import FAMILIES as STRATEGY_FAMILIES
from h3lab.tune.space import KNOB_KEYS, KNOBS, SearchSpace, knob, parse_knobs
from h3lab.tune.study import make_sampler

FAMILIES = tuple(strategy.field for strategy in STRATEGY_FAMILIES)


def _random_configs(
    space: SearchSpace, n: int, seed: int = 0
) -> list[tuple[Config, dict[str, Any]]]:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    out = []
    for _ in range(n):
        trial = study.ask()
        config = space.sample(trial)
        out.append((config, dict(trial.params)))
        study.tell(trial, 0.0)
    return out


def test_every_strategy_family_is_a_knob() -> None:
    for family in FAMILIES:
        assert knob(family).kind == "strategy"
        assert knob(family).all_choices() == strategy_names(family)


@pytest.mark.parametrize("family", FAMILIES)
def test_every_strategy_name_is_reachable(family: str) -> None:
    grid = SearchSpace().grid()
    offered = {v for name, values in grid.items() if name.split(" ")[0] == family for v in values}
    assert offered == set(strategy_names(family))
    sampled = {c.flat()[family] for c, _ in _random_configs(SearchSpace(), 150)}
    assert sampled == set(strategy_names(family))


def test_hybrid_never_meets_no_cache() -> None:
    space = SearchSpace()
    allowed = space.allowed(knob("cache.policy"), {"router.matching": "hybrid"})
    assert "none" not in allowed
    assert set(allowed) == set(strategy_names("cache.policy")) - {"none"}
    assert "none" in space.allowed(knob("cache.policy"), {"router.matching": "trie"})
    # A restricted choice list is its own Optuna parameter (Optuna refuses changing choices).
    assert "cache.policy (not none)" in space.grid()
    for config, params in _random_configs(space, 300, seed=1):
        assert not (config.router.matching == "hybrid" and config.cache.policy == "none")
        if config.router.matching == "hybrid":
            assert "cache.policy (not none)" in params and "cache.policy" not in params


def test_sampled_configs_are_valid_and_conditional() -> None:
    for config, params in _random_configs(SearchSpace(), 300, seed=2):
        assert config.pool.warmup <= config.pool.size
        if config.cache.policy == "none":
            assert "cache.size" not in params  # meaningless without a cache: not sampled
        else:
            assert 16 <= config.cache.size <= 16384
        if config.pool.policy == "none":
            assert "pool.size" not in params
            assert (config.pool.size, config.pool.warmup) == (0, 0)
        if config.memory.strategy != "performance":
            assert "memory.warmup_requests" not in params
        Config.from_dict(config.to_dict())  # re-validates


def test_a_new_strategy_joins_the_search_without_edits() -> None:
    table = CACHES._table  # test-only: register a strategy, then put the registry back
    saved = dict(table)

    class ProbeRouteCache(LRURouteCache):
        name = "probe"

    try:
        CACHES.register(ProbeRouteCache)
        grid = SearchSpace().grid()
        assert "probe" in grid["cache.policy"]
        assert "probe" in grid["cache.policy (not none)"]
        assert Config().replace("cache.policy", "probe").cache.policy == "probe"
    finally:
        table.clear()
        table.update(saved)
    with pytest.raises(ValueError, match=r"cache\.policy must be one of \['none'.*'probe'"):
        Config().replace("cache.policy", "probe")


def test_grid_sampler_visits_valid_distinct_configs() -> None:
    space = SearchSpace(["router.matching", "cache.policy"])
    grid = space.grid()
    assert set(grid) == {"router.matching", "cache.policy", "cache.policy (not none)"}
    study = optuna.create_study(sampler=make_sampler("grid", space, seed=0))
    seen = set()
    while not study.sampler.is_exhausted(study):
        trial = study.ask()
        config = space.sample(trial)
        seen.add((config.router.matching, config.cache.policy))
        study.tell(trial, 0.0)
    routers, caches = strategy_names("router.matching"), strategy_names("cache.policy")
    expected = {(r, c) for r in routers for c in caches if not (r == "hybrid" and c == "none")}
    assert seen == expected


def test_subset_keeps_table_order_and_base_values() -> None:
    base = Config.preset("performance")
    space = SearchSpace(["middleware.execution", "cache.size"], base=base)
    assert space.keys == ("cache.size", "middleware.execution")
    for config, params in _random_configs(space, 20):
        assert set(params) == {"cache.size", "middleware.execution"}
        assert config.router.matching == base.router.matching
        assert config.memory == base.memory
    with pytest.raises(ValueError, match="share of"):
        SearchSpace(["pool.warmup"])
    with pytest.raises(ValueError, match="no tunable knob"):
        SearchSpace(["cache.polcy"])
    assert parse_knobs(" router.matching, cache.size ") == ["router.matching", "cache.size"]
    assert parse_knobs("") is None


def test_config_level_view_fits_fixed_distributions() -> None:
    space = SearchSpace()
    dists = space.distributions()
    assert set(dists) == set(KNOB_KEYS)
    configs = [c for c, _ in _random_configs(space, 50)] + [
        Config.preset(p) for p in ("baseline", "performance")
    ]
    by_key: dict[str, set[Any]] = defaultdict(set)
    for config in configs:
        values = space.values(config)
        assert set(values) == set(KNOB_KEYS)
        for key, value in values.items():
            dist = dists[key]
            assert dist._contains(dist.to_internal_repr(value)), (key, value)
            by_key[key].add(value)
    assert len(by_key["router.matching"]) > 1


def test_describe_has_a_row_per_knob() -> None:
    rows = SearchSpace().describe()
    assert [r["knob"] for r in rows] == [k.key for k in KNOBS]
    assert (
        next(r for r in rows if r["knob"] == "cache.size")["active when"] == "cache.policy != none"
    )
