"""The machine's own speed, probed between the arms of a comparison.

Why
---
The validity checks of ``h3lab.studies.validity`` see what happens *on this
machine*: the server short of its core, the client without headroom, another
process busy. They cannot see a slower machine. On a virtual machine the host
can run the same vCPU slower for minutes (another tenant on the sibling
hyper-thread, a frequency change, a vCPU moved to a busier core): every process
still shows 100% of a core, and every arm measured in that window serves fewer
requests. A 06 run on this project's VM had arms that served 1.3-1.45x less
in whole stretches of consecutive arms, while every check passed; the paired
intervals came out wide, but the run said it was valid.

How
---
Before each arm of ``bench.rounds.run_rounds`` starts its server, ``probe``
times a fixed piece of pure-Python work (dict, string and integer operations,
the kind a request handler does) on the server's CPU, about 50 ms, and keeps
the fastest of five repetitions. ``check_speed`` compares every probe
with the run's median: a probe slower than it by more than ``UNSTABLE_SHIFT``
marks the run unstable, by more than ``INVALID_SHIFT`` invalid -- the arms
measured around it ran on a different machine than the others.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from h3lab.studies.validity import Check

REPETITIONS = 5
"""Timed repetitions per probe; the probe is the fastest of them.

The fastest, not the median: a slowdown that matters to a measurement of
seconds lasts seconds, so it slows every repetition of a 50 ms probe, while
a blip of a few milliseconds (one host tick) slows one or two of them and
would not move a 2-second measurement either."""
LOOPS = 15_000
"""Work items per repetition: ~10 ms of CPython on this project's 2-core VM.

Long on purpose: a CPU shared in time slices (a few ms each, by this kernel's
scheduler or by the host's) must show in every repetition. Repetitions of a
millisecond would fit between the slices, and their median would report the
undisturbed speed."""
UNSTABLE_SHIFT = 0.08
"""A probe this much slower than the run's median makes the run unstable."""
INVALID_SHIFT = 0.15
"""A probe this much slower than the run's median makes the run invalid."""


def _work(loops: int) -> int:
    # Fixed, allocation-light interpreter work: dict hits, string building and
    # int arithmetic. What matters is that it is the same every time.
    table = {f"/users/{i}": i for i in range(64)}
    total = 0
    for i in range(loops):
        key = "/users/" + str(i & 63)
        total += table[key] * 3 + len(key)
        total ^= i << 2
    return total


def probe(cpu: int | None = None, *, repetitions: int = REPETITIONS, loops: int = LOOPS) -> float:
    """Nanoseconds per work item, fastest of ``repetitions``, run on ``cpu`` (None: where we are)."""
    before = None
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        before = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {cpu})
    try:
        _work(100)  # warm: the first call builds the code's caches
        times = []
        for _ in range(repetitions):
            start = time.perf_counter_ns()
            _work(loops)
            times.append(time.perf_counter_ns() - start)
    finally:
        if before is not None:
            os.sched_setaffinity(0, before)
    return min(times) / loops


@dataclass(frozen=True)
class Probe:
    """One probe: taken before ``label`` (``arm round r``) started."""

    label: str
    ns: float


def check_speed(
    probes: Sequence[Probe],
    *,
    unstable_shift: float = UNSTABLE_SHIFT,
    invalid_shift: float = INVALID_SHIFT,
) -> Check:
    """Valid when no probe was slower than the run's median by more than ``unstable_shift``."""
    from h3lab.studies.validity import Check

    if not probes:
        raise ValueError("no probes to check")
    median = statistics.median(p.ns for p in probes)
    shifts = [(p.ns / median - 1.0, p.label) for p in probes]
    slowest, where = max(shifts)
    data = {
        "median_ns": median,
        "probes_ns": [round(p.ns, 2) for p in probes],
        "labels": [p.label for p in probes],
        "slowest_shift": slowest,
        "unstable_shift": unstable_shift,
        "invalid_shift": invalid_shift,
    }
    if slowest <= unstable_shift:
        return Check("machine_speed", "valid", None, data)
    slow = [label for shift, label in shifts if shift > unstable_shift]
    reason = (
        f"the machine was {1 + slowest:.2f}x slower before {where} than its median over the "
        f"run (a fixed 50 ms CPU probe between arms; {len(slow)} of {len(probes)} probes over "
        f"{1 + unstable_shift:.2f}x): a slowdown no process on this machine shows, such as "
        "the host's other tenants"
    )
    if slowest > invalid_shift:
        return Check("machine_speed", "invalid", reason, data)
    return Check("machine_speed", "unstable", reason, data)


__all__ = ["INVALID_SHIFT", "UNSTABLE_SHIFT", "Probe", "check_speed", "probe"]
