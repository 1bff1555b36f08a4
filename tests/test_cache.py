"""Behavioural suite for every route cache policy in ``h3lab.cache.CACHES``.

The ``cache_cls`` fixture runs each generic test over every registered policy;
policy-specific tests follow. ``none`` stores nothing, so generic tests state
what it must return instead (``kept(...)``).
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Sequence
from typing import Any

import pytest

from h3lab.cache import (
    CACHES,
    FIFORouteCache,
    Key,
    LFURouteCache,
    LRURouteCache,
    NoRouteCache,
    RouteCache,
    WTinyLFURouteCache,
)
from h3lab.cache.sketch import FrequencySketch

POLICY_NAMES: tuple[str, ...] = CACHES.names()
EXPECTED_POLICIES = {
    "none": NoRouteCache,
    "lru": LRURouteCache,
    "lfu": LFURouteCache,
    "fifo": FIFORouteCache,
    "wtinylfu": WTinyLFURouteCache,
}
STATS_KEYS = {"policy", "hits", "misses", "evictions", "size", "capacity", "hit_ratio"}

KEY_A: Key = ("GET", "/a")
KEY_B: Key = ("GET", "/b")
KEY_C: Key = ("GET", "/c")
KEY_D: Key = ("GET", "/d")


@pytest.fixture(params=POLICY_NAMES, ids=POLICY_NAMES)
def cache_cls(request: pytest.FixtureRequest) -> type[RouteCache]:
    return CACHES.get(request.param)


def kept(cache_cls: type[RouteCache], value: Any, instead: Any = None) -> Any:
    """What a policy that stores gives back; ``instead`` is what ``none`` gives."""
    return instead if cache_cls is NoRouteCache else value


def key(i: int, prefix: str = "k") -> Key:
    return ("GET", f"/{prefix}/{i}")


def request_all(cache: RouteCache, keys: Iterable[Key]) -> None:
    """Serve each key as the router would: look up, and on a miss store the answer."""
    for k in keys:
        if cache.get(k) is None:
            cache.put(k, k)


# --- registry and fixture -----------------------------------------------------------


def test_fixture_covers_exactly_the_registered_policies() -> None:
    # POLICY_NAMES drives the fixture: it must be the registry, never a hand-kept list.
    assert CACHES.names() == POLICY_NAMES
    assert dict(zip(POLICY_NAMES, map(CACHES.get, POLICY_NAMES), strict=True)) == EXPECTED_POLICIES
    assert list(EXPECTED_POLICIES) == list(CACHES.names())  # registration order


def test_registered_class_names_match_and_satisfy_the_protocol(
    cache_cls: type[RouteCache],
) -> None:
    assert CACHES.get(cache_cls.name) is cache_cls
    cache = cache_cls(4)
    assert isinstance(cache, RouteCache)
    assert cache.capacity == 4
    assert not hasattr(cache, "__dict__"), "cache classes use __slots__"


# --- get / put / replace ------------------------------------------------------------


def test_put_then_get_returns_the_value(cache_cls: type[RouteCache]) -> None:
    cache = cache_cls(8)
    cache.put(KEY_A, "route-a")
    assert cache.get(KEY_A) == kept(cache_cls, "route-a")
    assert cache.get(KEY_B) is None


def test_put_replaces_the_value_of_a_present_key(cache_cls: type[RouteCache]) -> None:
    cache = cache_cls(8)
    cache.put(KEY_A, "old")
    cache.put(KEY_A, "new")
    assert cache.get(KEY_A) == kept(cache_cls, "new")
    assert len(cache) == kept(cache_cls, 1, instead=0)
    assert cache.stats()["evictions"] == 0


def test_miss_then_hit_is_counted(cache_cls: type[RouteCache]) -> None:
    cache = cache_cls(8)
    assert cache.get(KEY_A) is None
    assert (cache.stats()["hits"], cache.stats()["misses"]) == (0, 1)
    cache.put(KEY_A, "route-a")
    cache.get(KEY_A)
    expected = (0, 2) if cache_cls is NoRouteCache else (1, 1)
    assert (cache.stats()["hits"], cache.stats()["misses"]) == expected


def test_clear_drops_entries_and_keeps_counters(cache_cls: type[RouteCache]) -> None:
    cache = cache_cls(2)
    request_all(cache, [KEY_A, KEY_A, KEY_B, KEY_C, KEY_C])
    before = cache.stats()
    cache.clear()
    after = cache.stats()
    assert len(cache) == 0
    assert KEY_A not in cache and KEY_C not in cache
    assert after["size"] == 0
    for counter in ("hits", "misses", "evictions"):
        assert after[counter] == before[counter]
    assert cache.get(KEY_C) is None
    assert cache.stats()["misses"] == before["misses"] + 1


def test_contains_has_no_side_effects_on_counters(cache_cls: type[RouteCache]) -> None:
    cache = cache_cls(4)
    request_all(cache, [KEY_A, KEY_B, KEY_A])
    before = cache.stats()
    assert (KEY_A in cache) == (cache_cls is not NoRouteCache)
    assert KEY_D not in cache
    assert "not even a key" not in cache
    assert cache.stats() == before


def test_contains_has_no_side_effects_on_eviction_order(cache_cls: type[RouteCache]) -> None:
    """Two caches fed the same traffic end the same, however often one is probed."""
    rng = random.Random(11)
    traffic = [key(rng.randrange(12)) for _ in range(400)]
    plain, probed = cache_cls(5), cache_cls(5)
    for k in traffic:
        request_all(plain, [k])
        for i in range(12):
            _ = key(i) in probed
        request_all(probed, [k])
    assert plain.stats() == probed.stats()
    assert [key(i) in plain for i in range(12)] == [key(i) in probed for i in range(12)]


def test_a_cached_none_value_is_a_hit(cache_cls: type[RouteCache]) -> None:
    cache = cache_cls(4)
    cache.put(KEY_A, None)
    assert cache.get(KEY_A) is None
    assert cache.stats()["hits"] == kept(cache_cls, 1, instead=0)


# --- construction and keys ----------------------------------------------------------


@pytest.mark.parametrize("capacity", [0, -1, 1.5, "8", None, True])
def test_bad_capacity_is_a_value_error_naming_it(
    cache_cls: type[RouteCache], capacity: object
) -> None:
    with pytest.raises(ValueError, match="capacity .*" + re.escape(repr(capacity))):
        cache_cls(capacity)  # type: ignore[arg-type]


def test_capacity_one_is_allowed(cache_cls: type[RouteCache]) -> None:
    cache = cache_cls(1)
    request_all(cache, [KEY_A, KEY_B, KEY_B])
    assert len(cache) <= 1
    assert cache.get(KEY_B) == kept(cache_cls, KEY_B)


@pytest.mark.parametrize(
    "bad_key",
    [
        (b"GET", "/x"),
        (memoryview(b"GET"), "/x"),
        (bytearray(b"GET"), "/x"),
        ("GET", b"/x"),
        "GET /x",
        ("GET", "/x", 1),
        ("GET",),
        ["GET", "/x"],
    ],
    ids=[
        "bytes-method",
        "memoryview",
        "bytearray",
        "bytes-path",
        "str",
        "3-tuple",
        "1-tuple",
        "list",
    ],
)
def test_put_refuses_anything_but_a_pair_of_str(
    cache_cls: type[RouteCache], bad_key: object
) -> None:
    cache = cache_cls(4)
    with pytest.raises(TypeError, match="tuple of exactly two str"):
        cache.put(bad_key, "route")  # type: ignore[arg-type]
    assert len(cache) == 0
    assert cache.stats()["evictions"] == 0


# --- boundedness --------------------------------------------------------------------


def test_bounded_under_100k_unique_keys(cache_cls: type[RouteCache]) -> None:
    capacity = 64
    cache = cache_cls(capacity)
    n = 100_000
    for i in range(n):
        k = key(i, "unique")
        if cache.get(k) is None:
            cache.put(k, i)
        assert len(cache) <= capacity
        if i % 1000 == 0:
            assert cache.stats()["size"] == len(cache)
    if cache_cls is NoRouteCache:
        assert (len(cache), cache.stats()["evictions"]) == (0, 0)
    else:
        assert len(cache) == capacity
        assert cache.stats()["evictions"] == n - capacity


def test_bounded_under_put_only_churn_with_repeats(cache_cls: type[RouteCache]) -> None:
    """Puts of repeated and new keys, no gets: still bounded, evictions balance."""
    capacity = 16
    cache = cache_cls(capacity)
    rng = random.Random(5)
    new_keys = 0
    for _ in range(20_000):
        k = key(rng.randrange(200))
        new_keys += k not in cache
        cache.put(k, 0)
        assert len(cache) <= capacity
    if cache_cls is not NoRouteCache:
        assert new_keys - cache.stats()["evictions"] == len(cache)


# --- stats and memory ---------------------------------------------------------------


def test_stats_report_the_contract_keys_and_the_hit_ratio(cache_cls: type[RouteCache]) -> None:
    cache = cache_cls(8)
    stats = cache.stats()
    assert stats.keys() >= STATS_KEYS
    assert stats["hit_ratio"] == 0.0
    assert (stats["policy"], stats["capacity"], stats["size"]) == (cache_cls.name, 8, 0)
    cache.put(KEY_A, "a")
    for _ in range(3):
        cache.get(KEY_A)
    cache.get(KEY_B)
    stats = cache.stats()
    hits, misses = (0, 4) if cache_cls is NoRouteCache else (3, 1)
    assert (stats["hits"], stats["misses"]) == (hits, misses)
    assert stats["hit_ratio"] == pytest.approx(hits / 4)
    assert stats["size"] == len(cache)


def test_approx_bytes_grows_with_the_entries(cache_cls: type[RouteCache]) -> None:
    cache = cache_cls(256)
    empty = cache.approx_bytes()
    assert isinstance(empty, int) and empty > 0
    request_all(cache, [key(i) for i in range(256)])
    if cache_cls is NoRouteCache:
        assert cache.approx_bytes() == empty
    else:
        # Each entry holds at least its key tuple and two str.
        assert cache.approx_bytes() - empty >= 256 * 3 * 40


# --- policy-specific eviction order -------------------------------------------------


def fill(cache: RouteCache, keys: Sequence[Key]) -> None:
    for k in keys:
        cache.put(k, k)


def test_lru_evicts_least_recently_used_and_get_refreshes() -> None:
    cache = LRURouteCache(2)
    fill(cache, [KEY_A, KEY_B])
    cache.get(KEY_A)
    cache.put(KEY_C, KEY_C)
    assert (KEY_A in cache, KEY_B in cache, KEY_C in cache) == (True, False, True)


def test_lru_replace_refreshes() -> None:
    cache = LRURouteCache(2)
    fill(cache, [KEY_A, KEY_B, KEY_A, KEY_C])
    assert (KEY_A in cache, KEY_B in cache) == (True, False)


def test_lru_contains_does_not_refresh() -> None:
    cache = LRURouteCache(2)
    fill(cache, [KEY_A, KEY_B])
    assert KEY_A in cache
    cache.put(KEY_C, KEY_C)
    assert KEY_A not in cache and KEY_B in cache


def test_fifo_evicts_oldest_inserted_and_get_does_not_refresh() -> None:
    cache = FIFORouteCache(2)
    fill(cache, [KEY_A, KEY_B])
    assert cache.get(KEY_A) == KEY_A
    cache.put(KEY_C, KEY_C)
    assert (KEY_A in cache, KEY_B in cache, KEY_C in cache) == (False, True, True)


def test_fifo_replace_keeps_the_insertion_place() -> None:
    cache = FIFORouteCache(2)
    fill(cache, [KEY_A, KEY_B])
    cache.put(KEY_A, "replaced")
    cache.put(KEY_C, KEY_C)
    assert KEY_A not in cache and cache.get(KEY_B) == KEY_B


def test_lfu_evicts_least_frequently_used() -> None:
    cache = LFURouteCache(3)
    fill(cache, [KEY_A, KEY_B, KEY_C])
    for k in (KEY_A, KEY_A, KEY_B, KEY_C, KEY_C):
        cache.get(k)
    cache.put(KEY_D, KEY_D)  # counts: A 3, B 2, C 3 -> B goes
    assert (KEY_A in cache, KEY_B in cache, KEY_C in cache, KEY_D in cache) == (
        True,
        False,
        True,
        True,
    )


def test_lfu_breaks_ties_by_least_recently_used() -> None:
    cache = LFURouteCache(3)
    fill(cache, [KEY_A, KEY_B, KEY_C])
    for k in (KEY_C, KEY_A, KEY_B):  # all at count 2; C is the least recent
        cache.get(k)
    cache.put(KEY_D, KEY_D)
    assert KEY_C not in cache
    cache.put(("GET", "/e"), "e")  # D (count 1) is now the only least frequent
    assert KEY_D not in cache and KEY_A in cache and KEY_B in cache


def test_lfu_new_key_starts_at_count_one_after_an_eviction() -> None:
    cache = LFURouteCache(2)
    fill(cache, [KEY_A, KEY_B])
    for _ in range(5):
        cache.get(KEY_A)
    cache.put(KEY_C, KEY_C)  # evicts B
    cache.put(KEY_D, KEY_D)  # C has count 1 < A's 6: C goes, A stays
    assert (KEY_A in cache, KEY_C in cache, KEY_D in cache) == (True, False, True)


# --- W-TinyLFU: scan resistance, admission, aging -----------------------------------


def hot_and_scan_traffic(seed: int, n: int) -> list[tuple[bool, Key]]:
    """Half requests to 500 hot keys (zipf, s=1), half a one-time scan; (is_hot, key)."""
    rng = random.Random(seed)
    hot = [key(i, "hot") for i in range(500)]
    weights = [1 / rank for rank in range(1, len(hot) + 1)]
    hot_requests = iter(rng.choices(hot, weights=weights, k=n))
    scan = (key(i, "scan") for i in range(n))
    return [
        (True, next(hot_requests)) if rng.random() < 0.5 else (False, next(scan)) for _ in range(n)
    ]


def hot_hit_ratio(cache: RouteCache, traffic: list[tuple[bool, Key]]) -> float:
    hot_hits = hot_requests = 0
    for is_hot, k in traffic:
        hit = cache.get(k) is not None
        if not hit:
            cache.put(k, k)
        hot_hits += is_hot and hit
        hot_requests += is_hot
    return hot_hits / hot_requests


def test_wtinylfu_beats_lru_on_a_hot_set_under_a_scan() -> None:
    # Measured with this seed: W-TinyLFU ~0.72, LRU ~0.49 (LFU ~0.71, FIFO ~0.42),
    # stable to +-0.01 across PYTHONHASHSEED values (the sketch hashes with hash()).
    traffic = hot_and_scan_traffic(seed=7, n=40_000)
    wtinylfu = hot_hit_ratio(WTinyLFURouteCache(100), traffic)
    lru = hot_hit_ratio(LRURouteCache(100), traffic)
    assert wtinylfu > lru + 0.15, (wtinylfu, lru)


def test_wtinylfu_keeps_a_frequent_key_through_a_scan_of_ten_times_capacity() -> None:
    capacity = 100
    hot = ("GET", "/hot")
    scan = [key(i, "scan") for i in range(10 * capacity)]
    wtinylfu, lru = WTinyLFURouteCache(capacity), LRURouteCache(capacity)
    for cache in (wtinylfu, lru):
        request_all(cache, [hot] * 20)
        request_all(cache, scan)
    assert hot in wtinylfu
    assert wtinylfu.get(hot) == hot
    assert wtinylfu.stats()["rejections"] > 0
    assert hot not in lru  # the same traffic does flush LRU: the scan is long enough


def test_wtinylfu_admits_a_candidate_only_if_it_beats_probations_lru() -> None:
    cache = WTinyLFURouteCache(100)  # window 1, main 99
    residents = [key(i, "resident") for i in range(100)]
    request_all(cache, residents[:98])  # seen once each
    for _ in range(5):
        cache.get(residents[98])  # will be probation's most recent, and frequent
    request_all(cache, residents[98:])  # main is now full; residents[99] in the window
    for _ in range(3):
        cache.get(KEY_A)
    cache.put(KEY_A, "a")  # pushes residents[99] (seen once) against resident 0 (once): a tie
    assert residents[99] not in cache and residents[0] in cache
    assert cache.stats()["rejections"] == 1
    cache.put(KEY_B, "b")  # pushes KEY_A (seen 3x) against resident 0 (once): admitted
    assert KEY_A in cache and residents[0] not in cache and residents[98] in cache
    assert cache.stats()["rejections"] == 1
    assert cache.stats()["evictions"] == 2


def test_wtinylfu_segments_stay_within_their_shares() -> None:
    cache = WTinyLFURouteCache(200)
    # A loop over 300 keys promotes plenty into protected; then hot keys and a scan.
    loop = [key(i, "loop") for i in range(300)] * 3
    traffic = loop + [k for _, k in hot_and_scan_traffic(seed=3, n=5_000)]
    largest_protected = 0
    for k in traffic:
        request_all(cache, [k])
        stats = cache.stats()
        assert stats["window_size"] <= stats["window_capacity"] == 2
        assert stats["protected_size"] <= stats["protected_capacity"] == 158
        segments = stats["window_size"] + stats["probation_size"] + stats["protected_size"]
        assert segments == len(cache)
        largest_protected = max(largest_protected, stats["protected_size"])
    assert largest_protected == 158


def test_wtinylfu_ages_its_sketch_and_adapts_when_the_hot_set_changes() -> None:
    """After the hot set moves, W-TinyLFU follows it; LFU, which never forgets, does not."""
    rng = random.Random(3)
    weights = [1 / rank for rank in range(1, 401)]

    def zipf_phase(prefix: str) -> list[Key]:
        return rng.choices([key(i, prefix) for i in range(400)], weights=weights, k=20_000)

    old, new = zipf_phase("old"), zipf_phase("new")
    wtinylfu, lfu = WTinyLFURouteCache(50), LFURouteCache(50)
    ratios = {}
    for cache in (wtinylfu, lfu):
        request_all(cache, old)
        hits_before = cache.stats()["hits"]
        request_all(cache, new)
        ratios[cache.name] = (cache.stats()["hits"] - hits_before) / len(new)
    assert ratios["wtinylfu"] > 0.5, ratios  # measured ~0.64
    assert ratios["lfu"] < 0.1, ratios  # measured ~0.04
    assert wtinylfu.stats()["sketch_resets"] == len(old + new) // (10 * 50)


def test_wtinylfu_sketch_resets_every_ten_times_capacity_lookups() -> None:
    cache = WTinyLFURouteCache(10)
    for i in range(250):
        cache.get(key(i % 7))
    assert cache.stats()["sketch_resets"] == 2


# --- the frequency sketch behind W-TinyLFU ------------------------------------------


def test_sketch_counts_after_the_doorkeeper_and_saturates() -> None:
    sketch = FrequencySketch(64)
    h = hash(("GET", "/counted"))
    assert sketch.estimate(h) == 0
    estimates = []
    for _ in range(20):
        sketch.increment(h)
        estimates.append(sketch.estimate(h))
    # 1st access: doorkeeper bit only; then the counters, capped at 15 (+1 for the bit).
    assert estimates == [*range(1, 17), 16, 16, 16, 16]


def test_sketch_aging_halves_counters_and_clears_the_doorkeeper() -> None:
    sketch = FrequencySketch(8)  # ages every 80 increments
    h = hash(("GET", "/aging"))
    for _ in range(12):
        sketch.increment(h)  # doorkeeper + 11 in the counters
    others = [hash(key(i, "filler")) for i in range(80 - 12)]
    for other in others:
        sketch.increment(other)
    assert sketch.resets == 1
    # Counters 11 -> 5, doorkeeper bit gone (a stray collision could only add).
    assert sketch.estimate(h) == 11 // 2


def test_sketch_doorkeeper_keeps_one_time_keys_out_of_the_counters() -> None:
    sketch = FrequencySketch(1024)  # ages every 10240 increments: not in this test
    for i in range(5_000):
        sketch.increment(hash(key(i, "once")))
    unseen = [sketch.estimate(hash(key(i, "never"))) for i in range(1_000)]
    # Without the doorkeeper ~25% of unseen keys would collide to >= 1; with it ~1%.
    assert sum(estimate == 0 for estimate in unseen) >= 950
