"""run_rounds: rotation, fresh servers, tagging, validity checks, paired comparisons."""

from __future__ import annotations

import pytest

from h3lab.bench.apps import plaintext_request
from h3lab.bench.rounds import Arm, ArmRun, cpus, default_rounds, pinned, run_rounds
from h3lab.studies.validity import ValidityRecorder


def test_rounds_rotate_and_tag_rows_without_servers() -> None:
    seen: list[tuple[str, int]] = []
    speed = {"a": 100.0, "b": 150.0, "c": 101.0}

    def measure(run: ArmRun) -> list[dict]:
        seen.append((run.arm.label, run.round))
        drift = 1.0 + 0.3 * run.round  # a drift every arm shares within a round
        noise = 1.0 + 0.02 * ((run.order * 7) % 5)  # up to 8% per measurement
        value = speed[run.arm.label] * drift * noise
        return [{"metric": "throughput_rps", "value": value, "unit": "req/s"}]

    arms = [Arm(x, server=None, columns={"preset": x}) for x in "abc"]
    lines: list[str] = []
    result = run_rounds(
        arms, rounds=4, measure=measure, study="demo", progress=lines.append,
        recorder=ValidityRecorder(),
    )  # fmt: skip
    assert seen[:6] == [("a", 0), ("b", 0), ("c", 0), ("b", 1), ("c", 1), ("a", 1)]
    assert lines[0] == "demo | a | round 1/4: 100 req/s"
    assert {r["study"] for r in result.rows} == {"demo"}
    served = [r for r in result.rows if r["metric"] == "throughput_rps"]
    assert [r["preset"] for r in served[:3]] == ["a", "b", "c"]
    values = result.values("throughput_rps")
    assert all(v is not None for v in values["b"]) and len(values["b"]) == 4
    comparisons = result.compare("a", "throughput_rps", higher_is_better=True)
    assert comparisons["b"].significant and 1.45 < comparisons["b"].ratio < 1.55
    assert not comparisons["c"].significant  # 1% apart under 8% noise: no claim
    # the machine's speed was probed before every arm, and checked once for the run
    probes = [r for r in result.rows if r["metric"] == "machine_probe_ns"]
    assert len(probes) == 12 and all(r["value"] > 0 for r in probes)
    assert {(r["arm"], r["round"]) for r in probes} == {(a, r) for a in "abc" for r in range(4)}


def test_a_slower_machine_between_arms_invalidates_the_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from h3lab.bench import canary

    # the host slows the VM down for the second round: no process shows it
    speeds = iter([100.0, 101.0, 99.0, 140.0, 141.0, 100.0])
    monkeypatch.setattr(canary, "probe", lambda cpu=None, **kw: next(speeds))
    recorder = ValidityRecorder()
    arms = [Arm(x, server=None) for x in "abc"]
    run_rounds(arms, rounds=2, measure=lambda run: [], recorder=recorder, progress=None)
    (check,) = [c for c in recorder.checks if c.name == "machine_speed"]
    assert check.status == "invalid"
    assert check.reason is not None and "1.40x slower before c round 2" in check.reason
    assert not recorder.result().ok


def test_run_rounds_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="rounds"):
        run_rounds([Arm("a", server=None)], rounds=0, measure=lambda r: [])
    with pytest.raises(ValueError, match="distinct"):
        run_rounds([Arm("a", server=None)] * 2, rounds=1, measure=lambda r: [])
    assert default_rounds(quick=True) >= 3 and default_rounds(quick=False) >= 5


def test_pinned_restores_affinity() -> None:
    import os

    before = os.sched_getaffinity(0)
    _server_cpu, load_cpu = cpus()
    with pinned(load_cpu):
        if load_cpu is not None:
            assert os.sched_getaffinity(0) == {load_cpu}
    assert os.sched_getaffinity(0) == before


@pytest.mark.serial  # it checks that the server saturated its core
def test_real_servers_fresh_per_arm_with_cpu_checks() -> None:
    recorder = ValidityRecorder()
    pids: list[int] = []
    req = [plaintext_request()]

    def measure(run: ArmRun) -> list[dict]:
        assert run.server is not None
        pids.append(run.server.pid)
        result = run.closed_loop(req, duration=0.6, connections=8, engine="aiohttp")
        return [{"metric": "throughput_rps", "value": result.throughput_rps, "unit": "req/s"}]

    arms = [
        Arm("balanced", server={"preset": "balanced", "sample_interval": None}),
        Arm("performance", server={"preset": "performance", "sample_interval": None}),
    ]
    result = run_rounds(arms, rounds=2, measure=measure, recorder=recorder, progress=None)
    assert len(set(pids)) == 4  # every arm-round on its own server
    phase = [r for r in result.rows if r["metric"] == "phase_server_cpu_percent"]
    assert len(phase) == 4 and all(r["phase"] == "closed" and r["value"] > 0 for r in phase)
    names = [c.name for c in recorder.checks]
    assert names.count("server_cpu") == 4 and names.count("client_headroom") == 4
    assert "machine" in names
    assert all(v > 0 for v in result.values("throughput_rps")["balanced"])


def test_closed_loop_with_wrk_and_an_open_loop_record_their_checks() -> None:
    from h3lab.bench.load.wrk import wrk_available

    if not wrk_available():
        pytest.skip("wrk is not installed")
    recorder = ValidityRecorder()
    req = [plaintext_request()]
    seen: dict[str, float] = {}

    def measure(run: ArmRun) -> list[dict]:
        closed = run.closed_loop(req, duration=1.0, connections=4, engine="wrk", warmup=0.0)
        opened = run.open_loop(req, rate=200.0, duration=1.0, connections=4)
        seen.update(closed=closed.throughput_rps, opened=opened.throughput_rps)
        return [{"metric": "throughput_rps", "value": closed.throughput_rps, "unit": "req/s"}]

    arms = [Arm("balanced", server={"preset": "balanced", "sample_interval": None})]
    result = run_rounds(arms, rounds=1, measure=measure, recorder=recorder, progress=None)
    assert seen["closed"] > 0 and seen["opened"] > 0
    phases = {r["phase"] for r in result.rows if r["metric"] == "phase_client_cpu_percent"}
    assert phases == {"closed", "open"}
    names = [c.name for c in recorder.checks]
    assert names.count("server_cpu") == 1  # the closed loop only: the open loop does not saturate
    assert names.count("open_loop_rate") == 1
    rate = next(c for c in recorder.checks if c.name == "open_loop_rate")
    assert rate.data["target_rps"] == 200.0 and rate.data["achieved_rps"] > 0
