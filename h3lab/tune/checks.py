"""Whether ``h3lab tune``'s re-measurement can decide anything.

The same checks a study's load rounds make (``h3lab.bench.rounds``): the
server saturated its core under a closed loop, the load generator kept
headroom, an open loop reached its rate, and nothing else was busy on the
machine. One failed check makes the re-measurement invalid, and an invalid
re-measurement names no winner (``h3lab.tune.run``).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from h3lab.studies.validity import (
    ValidityRecorder,
    check_machine,
    check_open_loop_rate,
    machine_state,
)
from h3lab.tune.objective import Measurement, TrialSettings

MACHINE_SAMPLE_S = 0.5
"""How long the machine is watched at the start of each measurement (as ``rounds.phase``)."""


@contextlib.contextmanager
def watch_machine() -> Iterator[dict[str, Any]]:
    """Sample the other processes' CPU on a thread while the block measures.

    The servers and load generators this process starts are its children,
    so they are not counted (``machine_state`` excludes this process's tree).
    """
    state: dict[str, Any] = {}
    thread = threading.Thread(
        target=lambda: state.update(machine_state(interval=MACHINE_SAMPLE_S)), daemon=True
    )
    thread.start()
    try:
        yield state
    finally:
        thread.join(timeout=MACHINE_SAMPLE_S + 5.0)


def record_checks(
    recorder: ValidityRecorder,
    measurement: Measurement,
    machine: dict[str, Any],
    settings: TrialSettings,
    where: str,
) -> None:
    """Record one re-measurement's checks under the label ``where`` ("arm round N")."""
    closed = measurement.loop_mode != "open"
    if closed and settings.objective == "throughput" and measurement.server_cpu_percent is not None:
        recorder.server_cpu(measurement.server_cpu_percent, label=where)
    if measurement.client_cpu_percent is not None:
        recorder.client_headroom(measurement.client_cpu_percent, label=where)
    if not closed and settings.arrival_rate:
        recorder.add(
            check_open_loop_rate(measurement.throughput_rps, settings.arrival_rate, label=where)
        )
    if machine:
        recorder.add(check_machine(machine, label=where))


__all__ = ["MACHINE_SAMPLE_S", "record_checks", "watch_machine"]
