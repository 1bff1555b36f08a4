"""Cache simulation: bounds, a hand-computed LRU, boundedness, libCacheSim agreement."""

from __future__ import annotations

import random

import pytest

from h3lab.bench.cachesim import (
    CacheBoundError,
    belady,
    libcachesim_hit_ratios,
    next_uses,
    simulate,
    simulate_policy,
    sizes_for,
)
from h3lab.bench.workloads import make_workload, route_table, scan, zipf
from h3lab.cache import CACHES


def random_trace(seed: int, n: int = 3000, universe: int = 300) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    # A skewed mix so the policies differ: half the requests from a small hot set.
    return [
        (
            "GET",
            f"/k/{rng.randrange(universe // 10) if rng.random() < 0.5 else rng.randrange(universe)}",
        )
        for _ in range(n)
    ]


@pytest.mark.parametrize("seed", range(4))
def test_bounds_order_on_random_traces(seed: int) -> None:
    rows = simulate(random_trace(seed), workload_name="random")
    by_size: dict[int, dict[str, dict]] = {}
    for row in rows:
        by_size.setdefault(row["size"], {})[row["policy"]] = row
    assert by_size
    for size, policies in by_size.items():
        assert set(policies) == {*CACHES.names(), "belady", "unbounded"}
        opt = policies["belady"]["hits"]
        for name in CACHES.names():
            assert 0 <= policies[name]["hits"] <= opt, (size, name)
            assert policies[name]["hits"] + policies[name]["misses"] == 3000
        assert policies["unbounded"]["hits"] >= opt
        assert policies["none"]["hits"] == 0


def test_lru_matches_a_hand_computed_trace() -> None:
    # capacity 2:  a  b  a  c  b  a  a  d
    # LRU state:   a  ab ba ac cb ba ba ad   hits at positions 2 and 6
    trace = [("GET", f"/{k}") for k in "abacbaad"]
    assert simulate_policy(trace, "lru", 2) == (2, 6, 4, 2)
    # FIFO keeps insertion order: hits at 2 and 4 (b survives), then a is gone
    assert simulate_policy(trace, "fifo", 2)[:2] == (3, 5)
    # Belady (bypass) on the same trace, worked out by hand: hits at 2, 4, 5, 6
    assert belady(trace, 2)[:2] == (4, 4)


def test_next_uses() -> None:
    assert next_uses(["a", "b", "a", "c", "b"]) == [2, 4, 5, 5, 5]


def test_belady_without_bypass_is_never_better_than_with() -> None:
    trace = random_trace(9)
    for size in (5, 20, 80):
        assert belady(trace, size, bypass=False)[0] <= belady(trace, size)[0]


def test_max_entries_never_exceeds_size() -> None:
    workload = scan(route_table(100, seed=1), seed=0)
    n = workload.working_set()
    rows = simulate(workload.keys(n), sizes=[1, 3, 17, 64])
    for row in rows:
        if row["policy"] != "unbounded":
            assert row["max_entries"] <= row["size"]
        if row["policy"] not in ("none", "unbounded", "belady"):
            assert row["max_entries"] == row["size"]  # a scan fills every cache
        assert row["hits"] == 0  # a scan never repeats a key: no policy can hit
    assert {r["max_entries"] for r in rows if r["policy"] == "unbounded"} == {n}


def test_a_policy_exceeding_its_capacity_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    class Leaky:
        name = "leaky"

        def __init__(self, capacity: int) -> None:
            self.capacity = capacity
            self.entries: dict = {}
            self.hits = self.misses = 0

        def get(self, key):
            if key in self.entries:
                self.hits += 1
                return True
            self.misses += 1
            return None

        def put(self, key, value) -> None:
            self.entries[key] = value  # never evicts

        def __len__(self) -> int:
            return len(self.entries)

        def stats(self) -> dict:
            return {"hits": self.hits, "misses": self.misses, "evictions": 0}

    from h3lab import cache

    monkeypatch.setitem(cache.CACHES._table, "leaky", Leaky)
    with pytest.raises(CacheBoundError, match="leaky"):
        simulate(random_trace(1, n=100), policies=["leaky"], sizes=[4])


def test_sizes_are_fractions_of_the_working_set() -> None:
    keys = zipf(route_table(100, seed=2), seed=1).keys(5000)
    ws = len(set(keys))
    rows = simulate(keys, policies=["lru"], bounds=())
    assert sorted({r["size"] for r in rows}) == sizes_for(ws)
    for row in rows:
        assert row["fraction"] == pytest.approx(row["size"] / ws)
        assert row["workload"] == "custom"
    with pytest.raises(ValueError):
        simulate([], policies=["lru"])
    with pytest.raises(ValueError):
        simulate(keys, bounds=["oracle"])


def test_hit_ratio_grows_with_size_for_lru() -> None:
    keys = zipf(route_table(200, seed=3), s=1.0, seed=2).keys(8000)
    ratios = [r["hit_ratio"] for r in simulate(keys, policies=["lru"], bounds=())]
    assert ratios == sorted(ratios)  # LRU has no Belady anomaly (a stack algorithm)


def test_h3lab_lru_and_fifo_agree_with_libcachesim() -> None:
    pytest.importorskip("libcachesim")
    keys = zipf(route_table(200, seed=4), s=1.0, seed=5).keys(10_000)
    sizes = [16, 64, 256]
    ours = {
        (r["policy"], r["size"]): r["hit_ratio"]
        for r in simulate(keys, policies=["lru", "fifo"], sizes=sizes)
    }
    theirs = libcachesim_hit_ratios(keys, policies=("lru", "fifo"), sizes=sizes)
    assert len(theirs) == 6
    for row in theirs:
        assert row["engine"] == "libcachesim"
        assert row["hit_ratio"] == pytest.approx(ours[(row["policy"], row["size"])], abs=0.005)


def test_libcachesim_belady_matches_ours_without_bypass() -> None:
    pytest.importorskip("libcachesim")
    keys = random_trace(3, n=2000)
    for row in libcachesim_hit_ratios(keys, policies=("belady",), sizes=[8, 32]):
        assert row["hits"] == belady(keys, row["size"], bypass=False)[0]
    with pytest.raises(ValueError, match="no policy"):
        libcachesim_hit_ratios(keys, policies=("nonesuch",), sizes=[4])


_HIT_RATIO_SCRIPT = """
from h3lab.bench.cachesim import simulate
from h3lab.bench.workloads import make_workload, route_table
keys = make_workload("zipf", table=route_table(300, seed=1), s=0.9, seed=2).keys(6000)
rows = simulate(keys, policies=["wtinylfu"], fractions=[0.05, 0.2], bounds=())
print(" ".join(repr(r["hit_ratio"]) for r in rows))
"""


def test_wtinylfu_hit_ratios_do_not_depend_on_the_hash_seed() -> None:
    import os
    import subprocess
    import sys

    outputs = []
    for seed in ("1", "2", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run([sys.executable, "-c", _HIT_RATIO_SCRIPT], env=env,
                              capture_output=True, text=True, timeout=120, check=True)  # fmt: skip
        outputs.append(done.stdout.strip())
    assert outputs[0] and len(outputs[0].split()) == 2
    assert outputs[0] == outputs[1] == outputs[2]


def test_stable_hash_is_the_documented_function() -> None:
    from zlib import crc32

    from h3lab.cache.sketch import stable_hash

    expected = ((crc32(b"GET\0/users/1") + 1) * 0x9E3779B97F4A7C15) & ((1 << 64) - 1)
    assert stable_hash(("GET", "/users/1")) == expected
    assert stable_hash(("GET", "/users/1"), seed=7) != expected
    assert stable_hash(("GET", "/a\udcff")) > 0  # surrogate-escaped bytes hash too
    assert stable_hash("x") == stable_hash("x") and stable_hash(("a", "b", "c")) > 0


def test_cross_check_holds_every_policy_to_its_stated_bound() -> None:
    pytest.importorskip("libcachesim")
    from h3lab.bench.cachesim import WTINYLFU_MIN_SIZE, WTINYLFU_SKEWED_BOUND, cross_check

    table = route_table(1000, seed=0)
    for name, workload in (
        ("zipf-0.8", zipf(table, s=0.8, seed=0)),
        ("scan", make_workload("scan", table=table, seed=0)),
    ):
        keys = workload.keys(8_000)
        rows = cross_check(keys, [50, 150, 600], workload_name=name)
        policies = {r["policy"] for r in rows}
        assert policies == {"lru", "fifo", "wtinylfu", "belady"}
        assert all(r["size"] >= WTINYLFU_MIN_SIZE for r in rows if r["policy"] == "wtinylfu")
        bad = [r for r in rows if not r["within"]]
        assert not bad, bad
        if name.startswith("zipf"):
            gaps = [abs(r["gap"]) for r in rows if r["policy"] == "wtinylfu"]
            assert max(gaps) <= WTINYLFU_SKEWED_BOUND, gaps
