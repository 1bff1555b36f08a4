"""Validity checks on synthetic series, the recorder, and real CPU sampling by pid."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
import warnings
from typing import Any

import pytest

from h3lab.studies import validity as v
from h3lab.studies.validity import recorder, sampling

# CPU shares and machine quietness are measured here: alone, not beside the
# parallel workers (make test runs the serial tests after them).
pytestmark = pytest.mark.serial


def test_a_server_at_40_percent_during_saturation_is_invalid() -> None:
    check = v.check_server_cpu([41.0, 38.0, 40.0, 43.0], label="balanced round 1")
    assert check.status == "invalid"
    assert "40% of one core" in check.reason and "needs >= 90%" in check.reason
    assert v.check_server_cpu([97.0, 99.0, 98.5]).status == "valid"


def test_a_client_bound_run_is_flagged() -> None:
    rec = v.ValidityRecorder()
    rec.server_cpu(62.0, label="performance")
    rec.client_headroom(99.5, label="performance")
    result = rec.result()
    assert not result.ok and result.status == "invalid"
    assert any("client-bound" in r for r in result.reasons)
    assert any(r.startswith("performance: the server used 62%") for r in result.reasons)
    assert v.check_client_headroom([40.0, 55.0]).status == "valid"


def test_open_loop_must_reach_its_rate_within_one_percent() -> None:
    assert v.check_open_loop_rate(1995.0, 2000.0).status == "valid"
    bad = v.check_open_loop_rate(1900.0, 2000.0)
    assert bad.status == "invalid" and "1900 of 2000" in bad.reason
    with pytest.raises(ValueError):
        v.check_open_loop_rate(1.0, 0.0)


def test_a_figure_above_the_raw_ceiling_is_impossible() -> None:
    bad = v.check_ceiling(147_000, 100_000, what="aiohttp req/s", ceiling_label="raw httptools")
    assert bad.status == "invalid" and "147% of raw httptools" in bad.reason
    assert v.check_ceiling(101_000, 100_000).status == "valid"  # within 2%


def test_cv_and_drift_make_a_run_unstable_not_invalid() -> None:
    steady = [1000.0, 1005.0, 995.0, 1002.0, 998.0, 1001.0]
    assert v.check_stability(steady).status == "valid"
    noisy = [1000.0, 700.0, 1300.0, 800.0, 1250.0, 900.0]
    check = v.check_stability(noisy, label="baseline req/s")
    assert check.status == "unstable" and "cv" in check.reason
    drifting = [1000.0, 990.0, 1000.0, 900.0, 850.0, 800.0]
    assert "drift -" in v.check_stability(drifting).reason
    rec = v.ValidityRecorder()
    rec.add(check)
    result = rec.result()
    assert result.ok and result.status == "unstable"
    assert result.warnings == ["baseline req/s: " + check.reason]


def test_busy_machine_is_invalid() -> None:
    state = {
        "loadavg_1": 3.9,
        "cores": 2,
        "other_cpu_percent": 180.0,
        "busy_processes": [{"pid": 9, "name": "yes", "cpu_percent": 99.0}],
    }
    check = v.check_machine(state)
    assert check.status == "invalid"
    assert "yes (99%)" in check.reason and "load average 3.90" in check.reason
    quiet = {"loadavg_1": 0.3, "cores": 2, "other_cpu_percent": 2.0, "busy_processes": []}
    assert v.check_machine(quiet).status == "valid"


def test_validity_round_trips_and_merges() -> None:
    a = v.Validity.from_checks([v.check_stability([1.0, 2.0, 1.0, 3.0])])
    b = v.Validity.from_checks([v.check_server_cpu(10.0)])
    merged = a.merge(b.to_json())
    assert merged.status == "invalid" and not merged.ok
    assert merged.warnings == a.warnings and merged.reasons == b.reasons
    again = v.Validity.from_json(json.loads(json.dumps(merged.to_json())))
    assert again.to_json() == merged.to_json()
    assert set(again.checks) == {"stability", "server_cpu"}


def test_conclusion_framing() -> None:
    bad = v.Validity.from_checks([v.check_server_cpu(30.0), v.check_stability([1, 5, 1, 5])])
    text = v.frame_conclusion("performance is 2x faster", bad)
    assert text.startswith("**Invalid run:** the server used 30%")
    assert "**Unstable samples:**" in text
    assert "> performance is 2x faster" in text and "diagnosis only" in text  # not a claim
    assert v.frame_conclusion(text, bad) == text  # idempotent
    # a notebook that framed its own invalid run: the first paragraph gets every reason
    own = "**Invalid run:** the server used 30%.\n\nNo difference is claimed."
    worse = bad.merge(v.Validity.from_checks([v.check_client_headroom(99.0)]))
    reframed = v.frame_conclusion(own, worse)
    assert "client-bound" in reframed and reframed.count("**Invalid run:**") == 1
    assert "No difference is claimed." in reframed
    assert v.guard_claim(bad, "2x faster").startswith("No difference is claimed")
    good = v.Validity()
    assert v.guard_claim(good, "2x faster") == "2x faster"
    assert v.frame_conclusion("x", good) == "x\n"


def test_current_recorder_captures_stability_warnings(tmp_path) -> None:
    from h3lab.bench.micro import BenchmarkStabilityWarning

    rec = v.reset()
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = recorder._showwarning  # catch_warnings restored the default
        warnings.warn("lru/64: unstable (cv=12.0%)", BenchmarkStabilityWarning, stacklevel=1)
    assert rec.result().warnings == ["lru/64: unstable (cv=12.0%)"]
    path = v.save(tmp_path, rec)
    assert v.load(tmp_path).warnings == ["lru/64: unstable (cv=12.0%)"]
    assert json.loads(path.read_text())["status"] == "unstable"
    v.reset()


BUSY = "import time\nend = time.time() + {s}\nwhile time.time() < end: pass\n"
WORK = "x = 0\nfor i in range(3_000_000): x += i\n"  # a fixed amount of CPU, ~0.1-0.3 s


def test_process_cpu_by_pid_sees_a_busy_and_an_idle_process() -> None:
    busy = subprocess.Popen([sys.executable, "-c", BUSY.format(s=3)])
    idle = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3)"])
    try:
        time.sleep(0.3)
        b, i = v.ProcessCpu(busy.pid).start(), v.ProcessCpu(idle.pid).start()
        time.sleep(0.8)
        busy_pct, idle_pct = b.stop(), i.stop()
    finally:
        busy.kill()
        idle.kill()
        busy.wait()
        idle.wait()
    # A full core on a quiet machine; a fair share of 2 cores on a loaded one.
    assert busy_pct > 8.0 and b.cpu_s > 0.06
    assert idle_pct < 3.0 and busy_pct > 5 * idle_pct


def test_phase_cpu_counts_reaped_children_as_client() -> None:
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with v.PhaseCpu(None) as cpu:
        subprocess.run([sys.executable, "-c", WORK], check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    child_s = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    # psutil reads clock ticks (10 ms): allow a few of them
    assert child_s > 0.05 and cpu.client_cpu_s is not None and cpu.client_cpu_s >= child_s - 0.03
    assert cpu.client_percent == pytest.approx(100 * cpu.client_cpu_s / cpu.wall_s)
    assert cpu.server_percent is None


def test_machine_state_excludes_our_own_tree() -> None:
    child = subprocess.Popen([sys.executable, "-c", BUSY.format(s=2)])
    try:
        state = v.machine_state(interval=0.3, exclude_pids=[child.pid])
    finally:
        child.kill()
        child.wait()
    assert child.pid not in [p["pid"] for p in state["busy_processes"]]
    assert state["cores"] >= 1 and "other_cpu_percent" in state


def test_machine_state_counts_a_child_started_during_the_interval_as_ours(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The phase watcher starts sampling as the phase starts its load generator:
    # a wrk this tree forks after the tree was read, but before the process
    # list, is ours, not another tenant (the race that made quiet runs invalid).
    children: list[subprocess.Popen[bytes]] = []
    read_tree = sampling._tree_pids

    def read_then_spawn(pids: Any) -> set[int]:
        tree = read_tree(pids)
        if not children:
            children.append(subprocess.Popen([sys.executable, "-c", BUSY.format(s=2)]))
        return tree

    monkeypatch.setattr(sampling, "_tree_pids", read_then_spawn)  # looked up there
    try:
        state = v.machine_state(interval=1.0)
    finally:
        for child in children:
            child.kill()
            child.wait()
    assert children and children[0].pid not in [p["pid"] for p in state["busy_processes"]]


def test_a_machine_disturbed_on_purpose_is_invalid() -> None:
    import os
    import signal

    # Busy loops on both CPUs, started *outside* our process tree (the shell exits
    # at once, so they are re-parented): to machine_state they are other tenants.
    code = BUSY.format(s=6)
    one = f"{sys.executable} -c '{code}' >/dev/null 2>&1 & echo $!"
    script = f"{one}; {one}"
    done = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True)
    pids = [int(p) for p in done.stdout.split()]
    try:
        time.sleep(0.3)
        state = v.machine_state(interval=1.0)
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    busy = {p["pid"] for p in state["busy_processes"]}
    assert set(pids) <= busy, (pids, state["busy_processes"])
    check = v.check_machine(state)
    assert check.status == "invalid" and "busy machine" in check.reason
