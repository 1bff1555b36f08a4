"""Rounds of fresh, pinned processes, one per tree, the order rotated each round.

Each round runs the chosen micro target once in every tree, each time in a
new interpreter (``runner.py`` with that tree alone on ``PYTHONPATH``) pinned
to one CPU, so no arm inherits another's warm caches, allocator state or
interpreter specialisation. The order follows ``h3lab.studies.stats.schedule``
(round ``r`` starts at arm ``r mod k``): a slow drift of the machine spreads
over every arm instead of biasing the one that always ran last, and the
``i``-th values of two arms are paired (taken seconds apart).

While a child runs, this process samples the rest of the machine
(``h3lab.studies.validity.machine_state``: other processes' CPU, the load
average) and records one ``machine`` check per child; it keeps itself off
the child's CPU meanwhile, so its own sampling does not disturb the timing.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from h3lab.bench.trees.refs import Tree, TreeError
from h3lab.studies.stats import schedule

RUNNER = Path(__file__).with_name("runner.py")
CHILD_TIMEOUT_S = 900.0
MACHINE_SAMPLE_S = 0.25


@dataclass
class ArmRun:
    """One child: the target's rows in one tree during one round."""

    arm: str
    round: int
    rows: list[dict[str, Any]]
    warnings: list[str] = field(default_factory=list)
    machine: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


def run_child(
    tree: Tree,
    target: str,
    *,
    quick: bool,
    cpu: int | None,
    kwargs: dict[str, Any] | None = None,
    timeout: float = CHILD_TIMEOUT_S,
) -> dict[str, Any]:
    """Run ``target`` in a fresh interpreter importing only ``tree``'s h3lab; its payload."""
    if tree.path is None:
        raise TreeError(f"tree {tree.label} has no files yet (export it first)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("H3LAB_")}
    env["PYTHONPATH"] = str(tree.path)  # that tree alone: never the current one behind it
    env["PYTHONHASHSEED"] = "0"  # the same hash seed in every arm
    with tempfile.TemporaryDirectory(prefix="h3lab-trees-run-") as tmp:
        out = Path(tmp) / "rows.json"
        argv = [sys.executable, "-P", str(RUNNER), "--target", target, "--out", str(out)]
        argv += ["--kwargs", json.dumps(kwargs or {})]
        if quick:
            argv.append("--quick")
        if cpu is not None:
            argv += ["--cpu", str(cpu)]
        try:
            done = subprocess.run(
                argv, cwd=tmp, env=env, capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired:
            raise TreeError(f"{tree.label}: the {target} run took over {timeout:g} s") from None
        if done.returncode != 0 or not out.is_file():
            lines = [line for line in done.stderr.splitlines() if line.strip()]
            last = lines[-1].strip() if lines else f"exit status {done.returncode}"
            raise TreeError(f"{tree.label}: the {target} run failed: {last}")
        payload: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    imported = Path(payload["h3lab_file"]).resolve()
    if not imported.is_relative_to(tree.path.resolve()):
        raise TreeError(
            f"{tree.label}: the child imported h3lab from {imported}, not from {tree.path} "
            "(an installed copy shadows PYTHONPATH)"
        )
    return payload


class MachineWatch:
    """Samples ``machine_state`` in a thread until stopped; ``state()`` summarises them.

    The summary is the mean of the other processes' CPU over the samples (a
    spike of a quarter second is not a busy machine, a busy neighbour over
    the whole run is), the busiest processes seen, and the last load average.
    """

    def __init__(self, interval: float = MACHINE_SAMPLE_S) -> None:
        self.interval = interval
        self.samples: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        from h3lab.studies.validity import machine_state

        while not self._stop.is_set():
            self.samples.append(machine_state(interval=self.interval))

    def __enter__(self) -> MachineWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10.0)

    def state(self) -> dict[str, Any]:
        if not self.samples:
            return {}
        others = [float(s.get("other_cpu_percent") or 0.0) for s in self.samples]
        worst = max(self.samples, key=lambda s: float(s.get("other_cpu_percent") or 0.0))
        last = self.samples[-1]
        return {
            **last,
            "other_cpu_percent": round(statistics.fmean(others), 1),
            "other_cpu_percent_max": max(others),
            "busy_processes": worst.get("busy_processes", []),
            "samples": len(self.samples),
        }


@contextlib.contextmanager
def away_from(cpu: int | None) -> Iterator[None]:
    """This process on every allowed CPU but ``cpu`` (when another exists), restored after."""
    getter = getattr(os, "sched_getaffinity", None)
    if cpu is None or getter is None:
        yield
        return
    before = getter(0)
    others = before - {cpu}
    if not others:
        yield
        return
    os.sched_setaffinity(0, others)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def measure(
    trees: list[Tree],
    target: str,
    *,
    rounds: int,
    quick: bool,
    cpu: int | None,
    kwargs: dict[str, Any] | None = None,
    recorder: Any = None,
    progress: Callable[[str], None] | None = None,
) -> list[ArmRun]:
    """Every tree once per round, in rotated order; one ``machine`` check per child."""
    from h3lab.studies.validity import check_machine

    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    by_label = {tree.label: tree for tree in trees}
    runs: list[ArmRun] = []
    with away_from(cpu):
        for label, rnd in schedule([tree.label for tree in trees], rounds):
            where = f"{label} round {rnd + 1}/{rounds}"
            with MachineWatch() as watch:
                payload = run_child(by_label[label], target, quick=quick, cpu=cpu, kwargs=kwargs)
            state = watch.state()
            if recorder is not None and state:
                recorder.add(check_machine(state, label=where))
            runs.append(
                ArmRun(
                    label,
                    rnd,
                    list(payload["rows"]),
                    list(payload.get("warnings") or []),
                    state,
                    float(payload.get("seconds") or 0.0),
                )
            )
            if progress is not None:
                progress(where)
    return runs


__all__ = ["ArmRun", "MachineWatch", "away_from", "measure", "run_child"]
