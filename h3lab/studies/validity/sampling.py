"""Measuring the machine and processes (psutil): who else used the CPU, and
how much CPU a process tree or this process and its reaped children used.

``machine_state`` feeds ``check_machine``; ``PhaseCpu`` (around one load
phase) feeds ``check_server_cpu`` and ``check_client_headroom``. psutil is
imported where it is used: importing the package to read or frame results
does not load it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from typing import Any


def _tree_pids(pids: Iterable[int]) -> set[int]:
    import psutil

    out: set[int] = set()
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            out.add(pid)
            out.update(c.pid for c in proc.children(recursive=True))
        except psutil.Error:
            continue
    return out


def machine_state(
    interval: float = 0.5, exclude_pids: Iterable[int] = (), busy_percent: float = 5.0
) -> dict[str, Any]:
    """Load average, and the processes (not this one's tree nor ``exclude_pids``') that used
    more than ``busy_percent`` of a core over ``interval`` seconds (psutil)."""
    import psutil

    mine = _tree_pids([os.getpid(), *exclude_pids])
    procs = []
    for p in psutil.process_iter(["pid", "name"]):
        if p.pid in mine:
            continue
        try:
            p.cpu_percent(None)
            procs.append(p)
        except psutil.Error:
            continue
    time.sleep(interval)
    # A load generator this tree starts during the interval (wrk for the
    # phase being watched) is ours too: the tree is read again at the end.
    mine |= _tree_pids([os.getpid(), *exclude_pids])
    busy: list[dict[str, Any]] = []
    other = 0.0
    for p in procs:
        if p.pid in mine:
            continue
        try:
            pct = p.cpu_percent(None)
        except psutil.Error:
            continue
        other += pct
        if pct > busy_percent:
            busy.append({"pid": p.pid, "name": p.info.get("name"), "cpu_percent": round(pct, 1)})
    busy.sort(key=lambda b: -b["cpu_percent"])
    load: tuple[float | None, float | None, float | None]
    try:
        load = os.getloadavg()
    except OSError:
        load = (None, None, None)
    return {
        "loadavg_1": load[0],
        "loadavg_5": load[1],
        "cores": os.cpu_count(),
        "other_cpu_percent": round(other, 1),
        "busy_processes": busy[:10],
        "interval_s": interval,
        "time": time.time(),
    }


def _cpu_seconds(proc: Any) -> float:
    t = proc.cpu_times()
    return float(t.user + t.system)


class ProcessCpu:
    """CPU of one process tree (by pid) between ``start()`` and ``stop()``, in % of one core."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._t0 = 0.0
        self._cpu0: dict[int, float] = {}
        self.percent: float | None = None
        self.cpu_s: float | None = None
        """CPU seconds used over the phase (user + system, the whole tree)."""

    def _times(self) -> dict[int, float]:
        import psutil

        out: dict[int, float] = {}
        try:
            root = psutil.Process(self.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return out
        for p in procs:
            try:
                out[p.pid] = _cpu_seconds(p)
            except psutil.Error:
                continue
        return out

    def start(self) -> ProcessCpu:
        self._cpu0 = self._times()
        self._t0 = time.monotonic()
        return self

    def stop(self) -> float:
        wall = max(1e-9, time.monotonic() - self._t0)
        now = self._times()
        used = sum(now[pid] - self._cpu0.get(pid, 0.0) for pid in now)
        self.cpu_s = used
        self.percent = 100.0 * used / wall
        return self.percent


class PhaseCpu:
    """``with PhaseCpu(server_pid) as cpu: <load>``; then ``cpu.server_percent`` and
    ``cpu.client_percent`` (this process's threads plus the children it reaped
    in the phase, e.g. wrk run by ``subprocess.run``), both in % of one core."""

    def __init__(self, server_pid: int | None) -> None:
        self.server = ProcessCpu(server_pid) if server_pid is not None else None
        self.server_percent: float | None = None
        self.client_percent: float | None = None
        self.client_cpu_s: float | None = None
        self.wall_s = 0.0

    def __enter__(self) -> PhaseCpu:
        import psutil

        self._me = psutil.Process()
        t = self._me.cpu_times()
        self._client0 = t.user + t.system + t.children_user + t.children_system
        self._t0 = time.monotonic()
        if self.server is not None:
            self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.server is not None:
            self.server_percent = self.server.stop()
        self.wall_s = max(1e-9, time.monotonic() - self._t0)
        t = self._me.cpu_times()
        used = t.user + t.system + t.children_user + t.children_system - self._client0
        self.client_cpu_s = used
        self.client_percent = 100.0 * used / self.wall_s
