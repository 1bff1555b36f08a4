"""ServerProcess: start, readiness, sampling, stop, cleanup -- and a real load run on it."""

from __future__ import annotations

import os
import sys
import time
import urllib.request
from collections.abc import Iterator

import psutil
import pytest

from h3lab.bench.apps import json_request, plaintext_request, user_request
from h3lab.bench.load import VerificationError, run_closed_loop, verify
from h3lab.bench.server import ServerProcess, ServerStartError, flatten_stats
from h3lab.bench.workloads import BenchRequest

# xdist_group: one worker for the module, so its module-scoped server is started once
pytestmark = [pytest.mark.timeout(60), pytest.mark.xdist_group("bench-server-process")]


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.fixture(scope="module")
def srv() -> Iterator[ServerProcess]:
    """One h3lab server for the tests that only talk to it (starting one costs ~1 s)."""
    cpu = 0 if len(os.sched_getaffinity(0)) >= 2 else None
    with ServerProcess(preset="performance", cpu=cpu, sample_interval=0.25) as server:
        yield server


def test_ready_line_gives_the_real_port(srv: ServerProcess) -> None:
    assert srv.port != 0
    assert srv.ready_line is not None and f":{srv.port} " in srv.ready_line
    with urllib.request.urlopen(srv.url + "/plaintext", timeout=5) as resp:
        assert resp.read() == b"Hello, World!"


def test_pinned_to_the_requested_cpu(srv: ServerProcess) -> None:
    if srv.cpu is None:
        pytest.skip("needs 2 CPUs to pin")
    assert psutil.Process(srv.pid).cpu_affinity() == [srv.cpu]


def test_sampler_records_process_and_app_stats(srv: ServerProcess) -> None:
    deadline = time.monotonic() + 5
    while len(srv.samples) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    sample = srv.samples[-1]
    assert sample["rss_bytes"] > 1_000_000 and sample["open_fds"] > 0 and sample["t"] > 0
    assert sample["stats"]["server"]["pid"] == srv.pid
    assert "hit_ratio" in sample["stats"]["cache"]
    rows = srv.samples_rows("bench-load", "r", {"router": "hybrid"})
    metrics = {r["metric"] for r in rows}
    assert {"server_rss_mb", "server_cpu_percent", "server_open_fds"} <= metrics
    assert "stats.cache.hit_ratio" in metrics and "stats.server.requests" in metrics
    assert not any(m.startswith("stats.config") for m in metrics)


def test_real_load_run_matches_the_servers_own_count(srv: ServerProcess) -> None:
    reqs = [plaintext_request(), json_request(), *(user_request(i) for i in range(20))]
    verify(srv.url, reqs)
    before = srv.fetch_stats()["server"]["requests"]
    fetches = srv.stats_fetches
    result = run_closed_loop(srv.url, reqs, connections=4, duration=2.0, warmup=0.2)
    sampler_fetches = srv.stats_fetches - fetches
    after = srv.fetch_stats()["server"]["requests"]
    assert result.errors_total == 0 and result.requests > 100
    client = result.requests + result.warmup_requests
    served = after - before - 1 - sampler_fetches  # minus the stats requests themselves
    # every worker finishes its in-flight request before the run returns, so
    # the counts agree up to a stats sample in flight at either end
    assert abs(served - client) <= 2, (served, client)


def test_verification_fails_on_a_wrong_expected_body(srv: ServerProcess) -> None:
    wrong = BenchRequest("GET", "/plaintext", expect_body=b"Hello, World")
    with pytest.raises(VerificationError, match="expected b'Hello, World'"):
        verify(srv.url, [wrong])


def test_flatten_stats() -> None:
    flat = flatten_stats(
        {"config": {"a": 1}, "preset": "x", "cache": {"hits": 3, "ok": True}, "gc": {"n": [1, 2]}}
    )
    assert flat == {"cache.hits": 3, "cache.ok": 1.0}


def test_stop_is_sigterm_and_exit_code_zero() -> None:
    server = ServerProcess(preset="minimal", sample_interval=None).start()
    pid = server.pid
    assert pid is not None and server.alive()
    assert server.stop() == 0  # h3lab shuts down gracefully on SIGTERM
    assert _gone(pid)
    assert server.stop() == 0  # idempotent


def test_no_orphan_when_the_with_block_raises() -> None:
    pid = None
    with pytest.raises(RuntimeError, match="boom"), ServerProcess(sample_interval=None) as server:
        pid = server.pid
        raise RuntimeError("boom")
    assert pid is not None and _gone(pid)


def test_children_of_a_forking_server_are_stopped_too() -> None:
    command = [
        sys.executable,
        "-m",
        "h3lab.cli",
        "serve",
        "h3lab.bench.apps:create_app",
        "--port",
        "{port}",
        "--workers",
        "2",
    ]
    with ServerProcess(
        command=command, ready_pattern="h3lab serving on", sample_interval=None
    ) as s:
        deadline = time.monotonic() + 5
        children: list[psutil.Process] = []
        while len(children) < 2 and time.monotonic() < deadline:
            children = psutil.Process(s.pid).children(recursive=True)
            time.sleep(0.05)
        assert len(children) >= 2
        with urllib.request.urlopen(s.url + "/plaintext", timeout=5) as resp:
            assert resp.status == 200
    assert all(_gone(c.pid) for c in children)
    assert _gone(s.pid)


def test_start_failure_is_clear_and_leaves_nothing() -> None:
    server = ServerProcess(app="h3lab.no_such_module:app", sample_interval=None)
    with pytest.raises(ServerStartError, match="cannot import") as info:
        server.start()
    assert "exited with code 2" in str(info.value)
    assert server.pid is not None and _gone(server.pid)


def test_readiness_timeout_names_the_server() -> None:
    # a "server" that never opens its port
    command = [
        sys.executable,
        "-c",
        "import time, sys; print('starting', file=sys.stderr); time.sleep(30)",
    ]
    server = ServerProcess(command=command, start_timeout=1.0, sample_interval=None, name="sleepy")
    with pytest.raises(ServerStartError, match=r"sleepy not ready after 1\.0s[\s\S]*starting"):
        server.start()
    assert _gone(server.pid)  # type: ignore[arg-type]
