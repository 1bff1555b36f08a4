"""The order in which pytest-xdist hands tests out (``make test``: ``-n 4 --dist loadgroup``).

Workers take tests in collection order, a few at a time. A long test collected
late becomes the run's serial tail, so the known-long ones (``pytest
--durations``, quiet 2-core machine) are collected first, longest first; every
other test keeps its place. Two tests read the results of others
(tests/studies/test_notebooks.py: the summary notebook reads the measurements'
quick runs, the report test reads them all) and wait for them: they are placed
where, by these estimates, what they read is done -- handed out first, a worker
would sit waiting; last, they would be the tail.

Modules whose tests share a costly module-scoped fixture (a server, a 24-trial
tuning study) carry an ``xdist_group`` mark: spread over workers, the fixture
would be built once per worker, and again whenever a worker moves between
modules. (With pytest 9.2 and pytest-xdist 3.8 the marks are not honoured yet:
loadgroup leaves every test its own unit; nothing depends on them for
correctness, only the fixture is built more than once.)

A stale estimate only changes the order, never a result. Without xdist
(``pytest tests/...``) the collection order is left alone.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import pytest

SECONDS: dict[str, float] = {
    # node id prefix -> seconds alone (the longest matching prefix counts)
    "tests/studies/test_notebooks.py::test_runs_in_quick_mode[06_load_degradation]": 60,
    "tests/studies/test_notebooks.py::test_runs_in_quick_mode[08_tuning]": 45,
    "tests/tune/test_postgres.py::": 26,
    "tests/studies/test_notebooks.py::test_runs_in_quick_mode[04_memory_strategies]": 24,
    "tests/studies/test_notebooks.py::test_runs_in_quick_mode[07_peers]": 24,
    "tests/studies/test_notebooks.py::test_runs_in_quick_mode[03_event_pool]": 22,
    "tests/studies/test_notebooks.py::test_runs_in_quick_mode[05_middleware]": 19,
    "tests/studies/test_notebooks.py::test_runs_in_quick_mode[01_route_cache]": 18,
    "tests/tune/test_tune_e2e.py::test_quick_tuning_run_end_to_end": 15,
    "tests/studies/test_notebooks.py::test_runs_in_quick_mode[02_router_scaling]": 14,
    "tests/studies/test_notebooks.py::test_runs_in_quick_mode[00_": 12,
    "tests/studies/test_notebooks.py::test_report_of_these_runs_in_a_browser": 12,
    "tests/bench/test_cli.py::test_bench_peers_quick": 12,
    "tests/studies/test_runner.py::test_a_cell_timeout_is_a_failure_too": 10,
    "tests/studies/test_provenance.py::test_an_invalid_run_is_marked": 8,
    "tests/studies/test_provenance.py::test_checks_reach_meta": 8,
    "tests/studies/test_runner.py::test_run_passes_parameters": 8,
    "tests/studies/test_runner.py::test_a_failing_cell": 7,
    "tests/hostile/test_bench_tools.py::test_soak_runs_end_to_end": 8,
    "tests/bench/test_peers.py::test_compare_interleaves": 7,
    "tests/test_cache_properties.py::test_policy_matches_its_reference_model": 6,
    "tests/test_cache_properties.py::test_invariants_hold_for_every_policy": 6,
    "tests/hostile/test_isolation.py::test_unique_path_flood": 5,
    "tests/hostile/test_isolation.py::test_int_hash_colliding": 4.5,
    "tests/bench/test_rounds.py::test_real_servers_fresh_per_arm": 5,
    "tests/test_routing_properties.py::test_every_strategy_agrees_with_linear": 5,
    "tests/bench/test_peers.py::test_peer_starts_verifies_and_serves": 4,
    "tests/bench/test_load.py::test_open_loop_sees_the_stall": 4,
    "tests/tune/test_select.py::test_equal_configs_rarely_win": 4,
    "tests/studies/test_validity.py::test_a_machine_disturbed_on_purpose": 2,
    "tests/studies/test_report_browser.py::": 4,
}
MARKER_SECONDS = {"slow": 5.0, "notebooks": 3.0}  # tests not listed above
TYPICAL_S = 0.1

_RUNS = "tests/studies/test_notebooks.py::test_runs_in_quick_mode["
_SUMMARIES = _RUNS + "00_"
_REPORT = "tests/studies/test_notebooks.py::test_report_of_these_runs_in_a_browser"


def estimate(item: pytest.Item) -> float:
    prefix = max((p for p in SECONDS if item.nodeid.startswith(p)), key=len, default=None)
    if prefix is not None:
        return SECONDS[prefix]
    for name, seconds in MARKER_SECONDS.items():
        if item.get_closest_marker(name) is not None:
            return seconds
    return TYPICAL_S


def reads(item: pytest.Item, items: Sequence[pytest.Item]) -> list[pytest.Item]:
    """The tests whose results ``item`` waits for (see test_notebooks.py)."""
    if item.nodeid.startswith(_SUMMARIES):
        return [i for i in items if i.nodeid.startswith(_RUNS) and i is not item]
    if item.nodeid == _REPORT:
        return [i for i in items if i.nodeid.startswith(_RUNS)]
    return []


def arrange(items: list[pytest.Item], workers: int) -> None:
    """Longest first, readers where their inputs should be done (in place)."""
    readers = [i for i in items if reads(i, items)]
    waiting = {id(i) for i in readers}
    order = sorted((i for i in items if id(i) not in waiting), key=lambda i: -estimate(i))
    for reader in readers:  # collection order: the summary, then the report that reads it
        inputs = {id(i) for i in reads(reader, items)}
        # Greedy estimate: the k-th test starts when the tests before it have
        # used up sum(their seconds) / workers of the run.
        starts, clock = [], 0.0
        for i in order:
            starts.append(clock)
            clock += estimate(i) / workers
        ends = [starts[k] + estimate(i) for k, i in enumerate(order) if id(i) in inputs]
        last = max((k for k, i in enumerate(order) if id(i) in inputs), default=-1)
        ready = max(ends, default=0.0)
        at = next((k for k in range(last + 1, len(order)) if starts[k] >= ready), len(order))
        order.insert(at, reader)
    items[:] = order


def under_xdist() -> int:
    """The number of xdist workers (0 when this is not an xdist worker)."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return 0
    return max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1))
