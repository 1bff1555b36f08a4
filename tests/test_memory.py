"""Memory strategies: GC policy applied and restored, pauses measured, arena reuse."""

from __future__ import annotations

import gc

import pytest

from h3lab.config import MemoryConfig
from h3lab.memory import (
    MEMORY_STRATEGIES,
    BufferArena,
    GCMonitor,
    heap_stats,
    make_memory,
    rss_bytes,
)


@pytest.fixture(params=MEMORY_STRATEGIES.names())
def strategy_name(request: pytest.FixtureRequest) -> str:
    return request.param


def test_install_applies_and_close_restores(strategy_name: str) -> None:
    before = gc.get_threshold()
    memory = make_memory(MemoryConfig(strategy_name, warmup_requests=10))
    memory.install()
    try:
        if memory.threshold0 is None:
            assert gc.get_threshold() == before
        else:
            assert gc.get_threshold()[0] == memory.threshold0
        gc.collect(0)
        stats = memory.stats()
        assert stats["strategy"] == strategy_name
        assert stats["gc"]["collections_total"] >= 1 and stats["rss_bytes"] > 0
    finally:
        memory.close()
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_performance_freezes_after_warmup() -> None:
    memory = make_memory(MemoryConfig("performance", warmup_requests=100))
    memory.install()
    try:
        memory.on_requests(50)
        memory.tick(0.0)
        assert memory.frozen == 0
        memory.on_requests(60)
        assert memory.frozen == 0  # counted only: the freeze waits for the ticker
        memory.tick(0.0)
        assert memory.frozen > 0 and gc.get_freeze_count() > 0
    finally:
        memory.close()
    assert gc.get_freeze_count() == 0


def test_tick_freezes_only_an_installed_freezing_strategy() -> None:
    for name in MEMORY_STRATEGIES.names():
        memory = make_memory(MemoryConfig(name, warmup_requests=1))
        memory.install()
        try:
            memory.on_requests(1)
            memory.tick(0.0)
            assert bool(memory.frozen) is memory.freeze_after_warmup
        finally:
            memory.close()
        assert gc.get_freeze_count() == 0
    # Not installed: a freeze close() would never undo must not happen.
    idle = make_memory(MemoryConfig("performance", warmup_requests=0))
    idle.on_requests(5)
    idle.tick(0.0)
    assert idle.frozen == 0 and gc.get_freeze_count() == 0


def test_config_overrides_strategy_defaults() -> None:
    memory = make_memory(MemoryConfig("balanced", gc_threshold0=1234, arena_buffers=7))
    assert memory.threshold0 == 1234 and memory.arena is not None and memory.arena.capacity == 7
    assert make_memory(MemoryConfig("minimal")).arena is None


def test_gc_monitor_times_collections() -> None:
    monitor = GCMonitor()
    monitor.install()
    try:
        for _ in range(3):
            gc.collect()
    finally:
        monitor.uninstall()
    stats = monitor.stats()
    assert stats["collections"][2] >= 3 and stats["pause_max_us"] > 0
    assert len(stats["pauses_us_recent"]) >= 3


def test_arena_reuses_buffers_and_bounds_them() -> None:
    arena = BufferArena(capacity=2, max_keep=1024)
    a = arena.acquire()
    a += b"x" * 100
    arena.release(a)
    b = arena.acquire()
    assert b is a and len(b) == 0
    assert arena.stats()["reused"] == 1 and arena.stats()["bytes_reused"] == 100
    big = arena.acquire()
    big += b"y" * 2048
    arena.release(big)  # over max_keep: not kept
    assert arena.stats()["buffers_free"] == 0
    for buf in [arena.acquire() for _ in range(5)]:
        arena.release(buf)
    assert arena.stats()["buffers_free"] == 2


def test_rss_is_measured() -> None:
    assert rss_bytes() > 1_000_000


@pytest.mark.skipif(heap_stats() is None, reason="the C allocator gives no statistics (not glibc)")
def test_heap_stats_see_fragmentation_appear_and_go() -> None:
    # Freeing every other one of many same-size chunks leaves holes below live
    # chunks: free bytes the heap cannot trim. Freeing the rest merges them.
    # 16 KiB is under glibc's mmap threshold, so the chunks live in the heap.
    # Deltas, not levels: earlier tests in this process shaped the heap.
    def trapped(s: dict) -> int:
        return s["free_bytes"] - s["trimmable_bytes"]

    bufs = [bytearray(16384) for _ in range(2000)]
    full = heap_stats()
    assert full is not None and full["heap_bytes"] > 2000 * 16384
    assert full["in_use_bytes"] + full["free_bytes"] == full["heap_bytes"]
    del bufs[::2]
    holed = heap_stats()
    assert holed is not None
    assert trapped(holed) - trapped(full) >= 1000 * 16384
    assert holed["free_chunks"] >= full["free_chunks"] + 900
    assert holed["fragmentation"] > full["fragmentation"]
    assert 0.0 <= holed["fragmentation"] <= 1.0
    del bufs
    merged = heap_stats()
    assert merged is not None and merged["free_chunks"] <= holed["free_chunks"] - 900


def test_memory_stats_report_the_heap() -> None:
    heap = make_memory(MemoryConfig(strategy="minimal")).stats()["heap"]
    expected = heap_stats()
    if expected is None:
        assert heap is None
    else:
        assert heap is not None and set(heap) == set(expected)
        assert 0.0 <= heap["fragmentation"] <= 1.0
