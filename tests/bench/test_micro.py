"""Micro-benchmarks in quick mode: well-formed rows for every strategy (never timing thresholds)."""

from __future__ import annotations

import asyncio
import time
import warnings

import pytest

from h3lab.bench.micro import (
    TARGETS,
    BenchmarkError,
    BenchmarkStabilityWarning,
    Case,
    bench_dispatch,
    calibrate,
    harness,
    run_cases,
    run_micro,
)
from h3lab.bench.micro import router as router_target
from h3lab.bench.workloads import route_table
from h3lab.cache import CACHES
from h3lab.config import PRESETS
from h3lab.pool import POOLS
from h3lab.routing import ROUTERS

pytestmark = pytest.mark.filterwarnings("ignore::h3lab.bench.micro.BenchmarkStabilityWarning")

BASE_KEYS = {
    "target",
    "strategy",
    "param",
    "workload",
    "metric",
    "value",
    "unit",
    "repetition",
    "loops",
}


@pytest.fixture(autouse=True)
def _default_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ROUTES", "SEED", "MIDDLEWARES", "MIDDLEWARE_KIND"):
        monkeypatch.delenv(f"H3LAB_BENCH_{name}", raising=False)


def check_rows(rows: list[dict], target: str) -> None:
    assert rows
    for row in rows:
        assert set(row) >= BASE_KEYS, set(BASE_KEYS) - set(row)
        assert row["target"] == target
        assert isinstance(row["value"], float)
        if row["metric"] == "ns_per_op":
            assert row["value"] > 0 and row["unit"] == "ns"
            assert row["loops"] >= 1
            assert isinstance(row["gc_enabled"], bool) and row["gc_threshold"].count(",") == 2
            assert "warning" in row
        if row["metric"] in ("hit_ratio", "reuse_ratio"):
            assert 0.0 <= row["value"] <= 1.0 and row["unit"] == "ratio"
    reps = {row["repetition"] for row in rows if row["metric"] == "ns_per_op"}
    assert reps == {0, 1, 2}


def metric_rows(rows: list[dict], metric: str) -> list[dict]:
    return [row for row in rows if row["metric"] == metric]


def test_router_rows_cover_every_strategy() -> None:
    rows = run_micro("router", quick=True)
    check_rows(rows, "router")
    timing = metric_rows(rows, "ns_per_op")
    assert {row["strategy"] for row in timing} == set(ROUTERS.names())
    assert {row["param"] for row in timing} == {10, 100}
    assert not any(row["strategy"] == "hybrid" and not row["cached"] for row in timing)
    for row in timing:
        assert row["router"] == row["strategy"]
        assert row["cache_policy"] == ("lru" if row["cached"] else "none")
    ratios = metric_rows(rows, "hit_ratio")
    assert ratios and all(row["cached"] for row in ratios)


@pytest.mark.serial  # quick samples are time-bound: a starved run replays too few keys
def test_cache_rows_cover_every_policy() -> None:
    rows = run_micro("cache", quick=True)
    check_rows(rows, "cache")
    assert {row["strategy"] for row in metric_rows(rows, "ns_per_op")} == set(CACHES.names())
    for row in metric_rows(rows, "hit_ratio"):
        if row["strategy"] == "none":
            assert row["value"] == 0.0
    for row in metric_rows(rows, "approx_bytes"):
        assert row["value"] > 0 and row["unit"] == "bytes"
    # A zipf workload on a warm LRU of 128 entries hits sometimes (a hit ratio, not a timing).
    lru = [
        r["value"]
        for r in metric_rows(rows, "hit_ratio")
        if r["strategy"] == "lru" and r["param"] == 128
    ]
    assert min(lru) > 0.2


def test_pool_rows_cover_every_policy() -> None:
    rows = run_micro("pool", quick=True, guard=True)
    check_rows(rows, "pool")
    strategies = {row["strategy"] for row in metric_rows(rows, "ns_per_op")}
    assert strategies == {*POOLS.names(), "release-guard"}
    guard = {r["param"] for r in metric_rows(rows, "ns_per_op") if r["strategy"] == "release-guard"}
    assert guard == {"guarded", "bare"}
    for row in metric_rows(rows, "reuse_ratio"):
        if row["pool_policy"] == "none":
            assert row["value"] == 0.0 and row["pool_size"] == 0
        elif row["pool_size"] >= row["concurrency"]:
            assert row["value"] == 1.0  # warmed up: every acquire reuses


def test_middleware_rows_and_overhead() -> None:
    rows = run_micro("middleware", quick=True)
    check_rows(rows, "middleware")
    timing = metric_rows(rows, "ns_per_op")
    assert {(r["strategy"], r["kind"], r["param"]) for r in timing} == {
        (e, k, n) for e in ("legacy", "fast") for k in ("onion", "before") for n in (0, 1, 4)
    }
    overhead = metric_rows(rows, "overhead_ns")
    assert len(overhead) == len(timing)
    for row in overhead:
        if row["param"] == 0:
            assert row["value"] == 0.0
        base = next(
            r
            for r in timing
            if (r["strategy"], r["kind"], r["param"], r["repetition"])
            == (row["strategy"], row["kind"], 0, row["repetition"])
        )
        own = next(
            r
            for r in timing
            if (r["strategy"], r["kind"], r["param"], r["repetition"])
            == (row["strategy"], row["kind"], row["param"], row["repetition"])
        )
        assert row["value"] == pytest.approx(own["value"] - base["value"])


def test_dispatch_rows_cover_every_preset_and_endpoint() -> None:
    rows = run_micro("dispatch", quick=True)
    check_rows(rows, "dispatch")
    timing = metric_rows(rows, "ns_per_op")
    assert {(r["strategy"], r["param"]) for r in timing} == {
        (p, e) for p in PRESETS for e in ("/plaintext", "/json", "/users/:id")
    }
    for row in timing:
        assert row["preset"] == row["strategy"]
        assert {"router", "cache_policy", "pool_policy", "memory_strategy", "middleware"} <= set(
            row
        )


def test_quick_mode_with_allocation_pass() -> None:
    rows = run_micro("pool", quick=True, track_alloc=True, concurrency=(4,))
    alloc = metric_rows(rows, "alloc_bytes_per_op")
    assert {r["strategy"] for r in alloc} == set(POOLS.names())
    for metric, unit in (
        ("alloc_bytes_per_op", "bytes"),
        ("alloc_blocks_per_op", "blocks"),
        ("gc_objects_per_op", "objects"),
    ):
        assert all(r["unit"] == unit for r in metric_rows(rows, metric))
    assert all(r["value"] >= 0 for r in alloc)
    # Events are freed by reference counting alone (no event -> bound method ->
    # event cycle left after reset), pooled or not: no work left for the cyclic GC.
    cyclic = {r["strategy"]: r["value"] for r in metric_rows(rows, "gc_objects_per_op")}
    assert cyclic["none"] < 1.0 and cyclic["bounded"] < 1.0


def test_run_micro_rejects_unknown_targets() -> None:
    with pytest.raises(ValueError, match=r"router.*cache.*pool.*middleware.*dispatch"):
        run_micro("disk")


def test_targets_name_every_target_module() -> None:
    # One module per target in h3lab/bench/micro/, each in the registry the CLI
    # offers (a hand-kept list once went stale: 5 of 6 targets).
    from pathlib import Path

    from h3lab.bench.cli import MICRO_TARGETS

    package = Path(harness.__file__).parent
    helpers = {"__init__", "harness", "targets", "stage_report"}  # stage_report: stages' table
    modules = {p.stem for p in package.glob("*.py")} - helpers
    assert set(TARGETS) == modules
    assert tuple(TARGETS) == MICRO_TARGETS
    assert all(TARGETS[name].__module__ == f"h3lab.bench.micro.{name}" for name in TARGETS)


def test_calibrate_reaches_min_time() -> None:
    # sleep() never returns early, so every count >= 4 reaches 4 ms and a count
    # that fell short was at most 3. The next count is at most double that, or
    # the estimate, which cannot exceed 1.2 x 4 when each loop takes >= 1 ms: so
    # never more than 6 (a busy machine makes 3 -> 6 happen; 4 was once assumed).
    loops = calibrate(lambda n: time.sleep(0.001 * n), min_time=0.004)
    assert 1 <= loops <= 6
    with pytest.raises(ValueError):
        calibrate(lambda n: None, min_time=0)


def test_run_cases_interleaves_samples() -> None:
    order: list[str] = []

    def make(name: str) -> Case:
        def fn(loops: int) -> int:
            order.append(name)
            time.sleep(0.0005)
            return loops

        return Case("t", name, 0, "w", fn)

    rows = run_cases([make("A"), make("B")], repetitions=3, warmups=0, min_time=0.0001)
    assert order[-6:] == ["A", "B", "B", "A", "A", "B"]  # interleaved, rotated each round
    assert [r["repetition"] for r in rows] == [0, 0, 1, 1, 2, 2]


def test_unstable_samples_warn() -> None:
    case = Case("t", "s", 0, "w", lambda n: n)
    rows = [{"value": v, "warning": None} for v in (100.0, 150.0, 60.0, 100.0)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        harness._check_stability(case, rows)
    assert any(issubclass(w.category, BenchmarkStabilityWarning) for w in caught)
    assert all(r["warning"].startswith("unstable") for r in rows)


def test_a_wrong_route_raises() -> None:
    class WrongRouter:
        def match(self, method: str, path: str) -> None:
            return None

    request = route_table(10)[0].request()
    with pytest.raises(BenchmarkError, match="should match"):
        router_target._verify_router(WrongRouter(), [request], "fake")


def test_a_wrong_dispatch_body_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    from h3lab.bench import apps

    monkeypatch.setattr(apps, "_json", lambda event: {"message": "Hello, World?"})
    with pytest.raises(BenchmarkError, match="/json"):
        bench_dispatch(presets=["balanced"], endpoints=["/json"], repetitions=1, min_time=0.0001)


def test_a_suspending_chain_raises() -> None:
    async def suspends() -> None:
        await asyncio.sleep(0)

    with pytest.raises(BenchmarkError, match="suspended"):
        harness.drive(suspends())
    assert harness.drive(42) == 42


def test_protocol_target_rows_and_floor() -> None:
    rows = run_micro("protocol", quick=True, presets=("performance",), endpoints=("/plaintext",))
    ns = metric_rows(rows, "ns_per_op")
    assert {r["strategy"] for r in ns} == {"performance", "raw", "framework-floor", "task-start"}
    assert all(r["value"] > 0 and r["unit"] == "ns" for r in ns)
    # What each way of running a request's coroutine costs, on this interpreter.
    starts = {r["param"] for r in ns if r["strategy"] == "task-start"}
    assert {"send", "context", "server", "scheduled"} <= starts


def test_protocol_bench_refuses_wrong_answers() -> None:
    from h3lab.bench.micro.protocol import BATCH, _check

    _check([b"HTTP/1.1 200 OK\r\n\r\n" * BATCH], "ok")
    with pytest.raises(BenchmarkError, match="answered 200"):
        _check([b"HTTP/1.1 404 Not Found\r\n\r\n" * BATCH], "wrong")
