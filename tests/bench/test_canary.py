"""The machine-speed probe between arms: its verdicts, and that it sees a slower CPU."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from h3lab.bench.canary import Probe, check_speed, probe


def probes(*ns: float) -> list[Probe]:
    return [Probe(f"arm round {i + 1}", v) for i, v in enumerate(ns)]


def test_a_steady_machine_is_valid() -> None:
    check = check_speed(probes(100, 103, 98, 101, 105, 99))
    assert check.status == "valid" and check.reason is None
    assert check.data["median_ns"] == pytest.approx(100.5)


def test_a_short_slowdown_is_unstable_and_a_large_one_invalid() -> None:
    unstable = check_speed(probes(100, 100, 110, 100, 100))
    assert unstable.status == "unstable"
    assert unstable.reason is not None and "1.10x slower before arm round 3" in unstable.reason
    invalid = check_speed(probes(100, 100, 100, 131, 135, 100, 100))
    assert invalid.status == "invalid"
    assert invalid.reason is not None and "1.35x slower before arm round 5" in invalid.reason
    assert "2 of 7 probes" in invalid.reason


def test_a_faster_probe_is_not_a_disturbance() -> None:
    # the median is the reference: a run that got faster for one arm is not flagged
    assert check_speed(probes(100, 100, 100, 80, 100)).status == "valid"


def test_no_probes_is_an_error() -> None:
    with pytest.raises(ValueError, match="no probes"):
        check_speed([])


@pytest.mark.serial  # it times the CPU; the parallel workers would disturb it
@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs CPU affinity")
def test_the_probe_sees_a_cpu_shared_with_a_busy_process() -> None:
    cpu = sorted(os.sched_getaffinity(0))[-1]
    alone = probe(cpu)
    busy = subprocess.Popen(
        ["taskset", "-c", str(cpu), sys.executable, "-c", "while True: pass"],
        stdout=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.2)
        shared = probe(cpu)
    finally:
        busy.kill()
        busy.wait()
    # sharing the core halves what each repetition gets: far over the invalid bound
    assert shared > alone * 1.3, (alone, shared)
