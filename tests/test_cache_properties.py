"""Stateful Hypothesis tests of the route cache policies.

Two machines, run once per policy:

* ``CacheInvariants`` (every policy): whatever the sequence of get / put /
  clear / membership probes, the cache stays within capacity, ``get`` returns
  the last value put for a key that is present, ``hits + misses`` equals the
  number of gets, and (for policies that store) new entries minus evictions
  equals the size.
* ``MatchesReferenceModel`` (lru, fifo, lfu): the cache holds exactly the keys
  that a plain list-based model holds, so every eviction picks the same victim.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from h3lab.cache import CACHES, FIFORouteCache, Key, LFURouteCache, LRURouteCache, NoRouteCache
from h3lab.cache.base import RouteCache

KEY_POOL: list[Key] = [("GET", f"/r/{i}") for i in range(10)] + [("POST", "/r/0"), ("GET", "")]
keys = st.sampled_from(KEY_POOL)
# Non-None values only: a cached None reads like a miss, which the contract allows.
values = st.integers(min_value=0, max_value=1_000)
capacities = st.integers(min_value=1, max_value=8)

MACHINE_SETTINGS = settings(
    max_examples=200,
    stateful_step_count=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


# --- every policy: invariants -------------------------------------------------------


class CacheInvariants(RuleBasedStateMachine):
    """Contract invariants, for the policy in ``cache_cls`` (set by a subclass)."""

    cache_cls: type[RouteCache]

    def __init__(self) -> None:
        super().__init__()
        self.cache: RouteCache | None = None
        self.last_put: dict[Key, int] = {}
        self.gets = 0
        self.new_entries = 0
        self.cleared_entries = 0

    @property
    def live(self) -> RouteCache:
        assert self.cache is not None
        return self.cache

    @initialize(capacity=capacities)
    def build(self, capacity: int) -> None:
        self.cache = self.cache_cls(capacity)

    @rule(key=keys)
    def get(self, key: Key) -> None:
        present = key in self.live
        value = self.live.get(key)
        self.gets += 1
        if present:
            assert value == self.last_put[key]
        else:
            assert value is None

    @rule(key=keys, value=values)
    def put(self, key: Key, value: int) -> None:
        self.new_entries += key not in self.live
        self.live.put(key, value)
        self.last_put[key] = value

    @rule()
    def clear(self) -> None:
        before = self.live.stats()
        self.cleared_entries += len(self.live)
        self.live.clear()
        after = self.live.stats()
        assert len(self.live) == 0
        assert [after[c] for c in ("hits", "misses", "evictions")] == [
            before[c] for c in ("hits", "misses", "evictions")
        ]

    @invariant()
    def within_capacity(self) -> None:
        assert len(self.live) <= self.live.capacity
        assert self.live.stats()["size"] == len(self.live)

    @invariant()
    def every_get_is_a_hit_or_a_miss(self) -> None:
        stats = self.live.stats()
        assert stats["hits"] + stats["misses"] == self.gets

    @invariant()
    def entries_are_accounted_for(self) -> None:
        if self.cache_cls is NoRouteCache:
            assert len(self.live) == 0
            return
        evicted = self.live.stats()["evictions"]
        assert self.new_entries - evicted - self.cleared_entries == len(self.live)

    @invariant()
    def present_keys_hold_their_last_value(self) -> None:
        for key in KEY_POOL:
            if key in self.live:
                assert key in self.last_put


@pytest.mark.parametrize("name", CACHES.names())
def test_invariants_hold_for_every_policy(name: str) -> None:
    machine = type(f"Invariants_{name}", (CacheInvariants,), {"cache_cls": CACHES.get(name)})
    run_state_machine_as_test(machine, settings=MACHINE_SETTINGS)


# --- lru, fifo, lfu: exact agreement with a list-based model -------------------------


@dataclass
class ModelEntry:
    key: Key
    value: int
    inserted: int
    last_used: int
    uses: int = 1


class ListModel:
    """A list of entries; the victim is the entry with the smallest ``rank``."""

    def __init__(
        self, capacity: int, rank: Callable[[ModelEntry], Any], *, put_is_a_use: bool
    ) -> None:
        self.capacity = capacity
        self.rank = rank
        self.put_is_a_use = put_is_a_use
        self.entries: list[ModelEntry] = []
        self.clock = 0
        self.evictions = 0

    def find(self, key: Key) -> ModelEntry | None:
        return next((entry for entry in self.entries if entry.key == key), None)

    def use(self, entry: ModelEntry) -> None:
        self.clock += 1
        entry.last_used = self.clock
        entry.uses += 1

    def get(self, key: Key) -> int | None:
        entry = self.find(key)
        if entry is None:
            return None
        self.use(entry)
        return entry.value

    def put(self, key: Key, value: int) -> None:
        entry = self.find(key)
        if entry is not None:
            entry.value = value
            if self.put_is_a_use:
                self.use(entry)
            return
        if len(self.entries) == self.capacity:
            self.entries.remove(min(self.entries, key=self.rank))
            self.evictions += 1
        self.clock += 1
        self.entries.append(ModelEntry(key, value, inserted=self.clock, last_used=self.clock))

    def keys(self) -> set[Key]:
        return {entry.key for entry in self.entries}


# cache class -> (victim rank, whether a replacing put counts as a use)
MODELS: dict[str, tuple[Callable[[ModelEntry], Any], bool]] = {
    LRURouteCache.name: (lambda entry: entry.last_used, True),
    FIFORouteCache.name: (lambda entry: entry.inserted, False),
    LFURouteCache.name: (lambda entry: (entry.uses, entry.last_used), True),
}


class MatchesReferenceModel(RuleBasedStateMachine):
    """The cache and the list model agree on every answer and every resident key."""

    cache_cls: type[RouteCache]

    def __init__(self) -> None:
        super().__init__()
        self.cache: RouteCache | None = None
        self.model: ListModel | None = None

    @property
    def live(self) -> tuple[RouteCache, ListModel]:
        assert self.cache is not None and self.model is not None
        return self.cache, self.model

    @initialize(capacity=capacities)
    def build(self, capacity: int) -> None:
        rank, put_is_a_use = MODELS[self.cache_cls.name]
        self.cache = self.cache_cls(capacity)
        self.model = ListModel(capacity, rank, put_is_a_use=put_is_a_use)

    @rule(key=keys)
    def get(self, key: Key) -> None:
        cache, model = self.live
        assert cache.get(key) == model.get(key)

    @rule(key=keys, value=values)
    def put(self, key: Key, value: int) -> None:
        cache, model = self.live
        cache.put(key, value)
        model.put(key, value)

    @precondition(lambda self: self.cache is not None and len(self.cache) > 0)
    @rule()
    def clear(self) -> None:
        cache, model = self.live
        cache.clear()
        model.entries.clear()

    @invariant()
    def same_resident_keys(self) -> None:
        cache, model = self.live
        assert {key for key in KEY_POOL if key in cache} == model.keys()
        assert len(cache) == len(model.entries)

    @invariant()
    def same_eviction_count(self) -> None:
        cache, model = self.live
        assert cache.stats()["evictions"] == model.evictions


def test_models_cover_the_policies_with_a_simple_eviction_rule() -> None:
    assert set(MODELS) == set(CACHES.names()) - {"none", "wtinylfu"}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_policy_matches_its_reference_model(name: str) -> None:
    machine = type(f"Model_{name}", (MatchesReferenceModel,), {"cache_cls": CACHES.get(name)})
    run_state_machine_as_test(machine, settings=MACHINE_SETTINGS)
