"""Repeated, interleaved, paired load measurements: the one way h3lab compares servers.

``run_rounds(arms, rounds=5, measure=fn)`` runs ``rounds`` rounds; in each,
every arm is measured once on a *freshly started* server, the order rotated
by one arm per round (round ``r`` starts at arm ``r mod k``:
``h3lab.studies.stats.schedule``). Slow drift -- a neighbour's build, thermal
state -- then lands on every arm about equally, no arm always follows the
same other one, and the ``i``-th values of two arms were taken close in time:
compare them as pairs (``RoundsResult.compare`` -> ``paired_comparison``,
Holm-corrected for more than two arms).

Pinning: the server runs on one CPU (``taskset``), the load generator on the
other (``pinned`` for the in-process aiohttp engine, ``taskset`` for wrk):
``cpus()`` picks them. Studies, ``h3lab bench peers`` and ``h3lab tune`` all
use these two helpers.

Validity: each load phase run through ``ArmRun.closed_loop`` /
``ArmRun.open_loop`` (or wrapped in ``ArmRun.phase``) measures the server's
and the client's CPU over the phase (``PhaseCpu``, psutil by pid) and which
other processes were busy meanwhile, records the checks (server >= 90% of a
core when saturating, client headroom, open-loop rate within 1%, machine
quiet; and, from ``h3lab.bench.canary``, the machine's own speed probed on the
server's CPU before every arm, the same throughout) into a ``ValidityRecorder`` (default: the process-wide
``h3lab.studies.validity.current()``), and adds rows
``phase_server_cpu_percent`` / ``phase_client_cpu_percent`` /
``phase_other_cpu_percent`` tagged with the phase.

A ``measure`` function::

    def measure(run: ArmRun) -> list[dict]:
        result = run.closed_loop(requests, duration=5, connections=64, engine="wrk")
        return result.rows(study, run_id, run.arm.columns)   # or hand-made tidy rows

Every row returned is tagged with ``arm``, ``round`` (0-based), ``order``
(position in the whole schedule) and the arm's ``columns``. Progress lines
read ``study | arm | round r/R: ...``.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from h3lab.bench.load import LoadResult
    from h3lab.bench.server import ServerProcess
    from h3lab.studies.stats import Comparison
    from h3lab.studies.validity import ValidityRecorder

Rows = list[dict[str, Any]]

FULL_ROUNDS = 5
QUICK_ROUNDS = 3


def default_rounds(quick: bool) -> int:
    """At least 5 rounds in full mode, 3 in quick mode (issue 9, part B)."""
    return QUICK_ROUNDS if quick else FULL_ROUNDS


# -- pinning --------------------------------------------------------------------------------


def cpus() -> tuple[int | None, int | None]:
    """(server CPU, load CPU): the first two CPUs this process may use, else no pinning."""
    try:
        usable = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None, None
    if len(usable) < 2:
        return None, None
    return usable[0], usable[1]


@contextlib.contextmanager
def pinned(cpu: int | None) -> Iterator[None]:
    """Pin the calling thread (and threads it starts: the aiohttp engine's loop) to ``cpu``."""
    if cpu is None or not hasattr(os, "sched_setaffinity"):
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def resolve_engine(engine: str) -> str:
    """``auto`` -> wrk when installed, else aiohttp; ``wrk``/``aiohttp`` checked."""
    from h3lab.bench.load.wrk import wrk_available

    if engine == "auto":
        return "wrk" if wrk_available() else "aiohttp"
    if engine not in ("wrk", "aiohttp"):
        raise ValueError(f"engine must be auto, wrk or aiohttp, got {engine!r}")
    return engine


# -- arms and runs --------------------------------------------------------------------------


@dataclass(frozen=True)
class Arm:
    """One thing compared: how to start its server, and columns for its rows.

    ``server`` holds ``ServerProcess`` keyword arguments (``preset``,
    ``overrides``, ``env``, ``app``, ``command``, ``sample_interval``...;
    ``cpu`` is set by ``run_rounds``); ``start`` replaces them with a factory
    ``start(cpu) -> ServerProcess`` (peers). ``server=None`` and no ``start``:
    the arm has no server (an in-process measurement).
    """

    label: str
    server: Mapping[str, Any] | None = field(default_factory=dict)
    start: Callable[[int | None], ServerProcess] | None = None
    columns: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class ArmRun:
    """What ``measure`` gets: the arm, the round, the running server and the CPUs."""

    arm: Arm
    round: int
    order: int
    server: ServerProcess | None
    server_cpu: int | None
    load_cpu: int | None
    recorder: ValidityRecorder
    study: str = ""
    rows: Rows = field(default_factory=list)
    """Phase CPU rows, added by ``phase``; tagged and returned with ``measure``'s rows."""

    @property
    def url(self) -> str:
        if self.server is None:
            raise RuntimeError(f"arm {self.arm.label} has no server")
        return self.server.url

    @property
    def where(self) -> str:
        return f"{self.arm.label} round {self.round + 1}"

    @contextlib.contextmanager
    def phase(self, name: str, *, saturating: bool, check_client: bool = True) -> Iterator[Any]:
        """Measure CPU (server, client, others) over the block and record the checks.

        ``saturating``: a closed loop meant to saturate the server, so the
        server must reach 90% of a core. ``check_client``: the load
        generator must keep headroom (off for phases where the client is the
        point, e.g. an open loop at a low rate).
        """
        from h3lab.studies.validity import PhaseCpu, check_machine, machine_state

        exclude = [self.server.pid] if self.server is not None and self.server.pid else []
        state: dict[str, Any] = {}

        def sample_machine() -> None:
            state.update(machine_state(interval=0.5, exclude_pids=exclude))

        watcher = threading.Thread(target=sample_machine, daemon=True)
        pid = self.server.pid if self.server is not None else None
        with PhaseCpu(pid) as cpu:
            watcher.start()
            yield cpu
        watcher.join(timeout=5.0)
        label = f"{self.where} {name}"
        if saturating and cpu.server_percent is not None:
            self.recorder.server_cpu(cpu.server_percent, label=label)
        if check_client and cpu.client_percent is not None:
            self.recorder.client_headroom(cpu.client_percent, label=label)
        if state:
            self.recorder.add(check_machine(state, label=label))
        base = {"phase": name, "unit": "%"}
        for metric, value in (
            ("phase_server_cpu_percent", cpu.server_percent),
            ("phase_client_cpu_percent", cpu.client_percent),
            ("phase_other_cpu_percent", state.get("other_cpu_percent")),
        ):
            if value is not None:
                self.rows.append({**base, "metric": metric, "value": float(value)})

    def closed_loop(
        self,
        requests: Sequence[Any],
        *,
        duration: float,
        connections: int,
        engine: str = "auto",
        warmup: float = 0.0,
        pipelining: int = 1,
        workload: str | None = None,
        saturating: bool = True,
    ) -> LoadResult:
        """A (by default saturating) closed loop on this arm's server, with its validity checks.

        wrk (GET paths only) or the aiohttp engine, pinned to the load CPU; an
        untimed ``warmup`` first (outside the measured phase).
        """
        from h3lab.bench.load import run_closed_loop
        from h3lab.bench.load.wrk import run_wrk

        engine = resolve_engine(engine)
        name = workload or "custom"
        if engine == "wrk":
            paths = [r.path for r in requests]
            if any(r.method != "GET" or r.body for r in requests):
                raise ValueError("the wrk engine sends bodiless GETs only; use engine='aiohttp'")
            if warmup > 0:
                run_wrk(self.url, connections=connections, duration=max(1.0, warmup),
                        paths=paths, cpu=self.load_cpu, pipelining=pipelining)  # fmt: skip
            with self.phase("closed", saturating=saturating):
                result = run_wrk(self.url, connections=connections, duration=duration,
                                 paths=paths, cpu=self.load_cpu, pipelining=pipelining,
                                 workload=name)  # fmt: skip
            return result
        with pinned(self.load_cpu):
            if warmup > 0:
                run_closed_loop(self.url, list(requests), connections=connections,
                                duration=warmup, warmup=0.0, pipelining=pipelining)  # fmt: skip
            with self.phase("closed", saturating=saturating):
                result = run_closed_loop(self.url, list(requests), connections=connections,
                                         duration=duration, warmup=0.0, pipelining=pipelining)  # fmt: skip
        result.workload = name
        return result

    def open_loop(
        self,
        requests: Sequence[Any],
        *,
        rate: float,
        duration: float,
        connections: int = 32,
        workload: str | None = None,
    ) -> LoadResult:
        """An open loop at ``rate`` req/s (aiohttp engine, pinned); checks the achieved rate."""
        from h3lab.bench.load import run_open_loop

        with pinned(self.load_cpu), self.phase("open", saturating=False):
            result = run_open_loop(
                self.url, list(requests), rate=rate, duration=duration, connections=connections
            )
        result.workload = workload or result.workload
        sent = (result.requests + result.errors_total) / max(1e-9, result.duration_s)
        self.recorder.open_loop(sent, rate, label=f"{self.where} open")
        return result


# -- the rounds ---------------------------------------------------------------------------------


@dataclass
class RoundsResult:
    """Everything ``run_rounds`` measured, and paired comparisons over it."""

    arms: list[str]
    rounds: int
    rows: Rows

    def values(
        self, metric: str, *, where: Mapping[str, Any] | None = None
    ) -> dict[str, list[float | None]]:
        """Per arm, one value of ``metric`` per round (None where missing).

        Rows are matched on ``metric`` and every ``where`` column; if one
        (arm, round) has several matching rows, their median is used.
        """
        import statistics

        found: dict[tuple[str, int], list[float]] = {}
        for row in self.rows:
            if row.get("metric") != metric:
                continue
            if where and any(row.get(k) != v for k, v in where.items()):
                continue
            value = row.get("value")
            if value is None:
                continue
            found.setdefault((row["arm"], int(row["round"])), []).append(float(value))
        return {
            arm: [
                statistics.median(found[(arm, r)]) if (arm, r) in found else None
                for r in range(self.rounds)
            ]
            for arm in self.arms
        }

    def compare(
        self,
        base: str,
        metric: str,
        *,
        higher_is_better: bool,
        where: Mapping[str, Any] | None = None,
        level: float = 0.95,
    ) -> dict[str, Comparison]:
        """Every other arm against ``base`` on ``metric``: paired over the rounds where
        both were measured; Holm-corrected when there are two or more comparisons."""
        from h3lab.studies.stats import holm_comparisons, paired_comparison

        values = self.values(metric, where=where)
        if base not in values:
            raise ValueError(f"no arm {base!r}; arms: {self.arms}")
        out: dict[str, Comparison] = {}
        for arm in self.arms:
            if arm == base:
                continue
            pairs = [
                (b, o)
                for b, o in zip(values[base], values[arm], strict=True)
                if b is not None and o is not None
            ]
            if not pairs:
                continue
            out[arm] = paired_comparison(
                [b for b, _ in pairs],
                [o for _, o in pairs],
                higher_is_better=higher_is_better,
                level=level,
            )
        if len(out) > 1:
            out = dict(zip(out, holm_comparisons(list(out.values())), strict=True))
        return out


def _log(message: str) -> None:
    print(message, flush=True)


def run_rounds(
    arms: Sequence[Arm],
    *,
    rounds: int,
    measure: Callable[[ArmRun], Rows | None],
    study: str = "",
    progress: Callable[[str], None] | None = _log,
    recorder: ValidityRecorder | None = None,
    server_cpu: int | None = None,
    load_cpu: int | None = None,
    summarize: Callable[[Rows], str] | None = None,
) -> RoundsResult:
    """Run ``rounds`` interleaved, rotated rounds of ``arms``; each arm on a fresh server.

    ``server_cpu`` / ``load_cpu`` default to ``cpus()``. ``measure(run)``
    returns tidy rows (or None); they are tagged with ``arm``, ``round``,
    ``order``, ``study`` and the arm's ``columns``. A server that fails to
    start, or a ``measure`` that raises, stops the whole run (a comparison
    with a hole in it is not a result); the server is stopped either way.
    ``summarize(rows)`` gives the progress line's tail (default: req/s when
    a ``throughput_rps`` row exists).
    """
    from h3lab.bench import canary
    from h3lab.bench.server import ServerProcess
    from h3lab.studies.stats import schedule
    from h3lab.studies.validity import current

    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    labels = [a.label for a in arms]
    if not labels:
        raise ValueError("no arms to measure")
    if len(set(labels)) != len(labels):
        raise ValueError(f"arm labels must be distinct, got {labels}")
    by_label = {a.label: a for a in arms}
    if server_cpu is None and load_cpu is None:
        server_cpu, load_cpu = cpus()
    recorder = recorder if recorder is not None else current()
    rows: Rows = []
    probes: list[canary.Probe] = []
    for order, (label, rnd) in enumerate(schedule(labels, rounds)):
        arm = by_label[label]
        # before the server starts, so nothing of ours runs on its CPU meanwhile
        probes.append(canary.Probe(f"{label} round {rnd + 1}", canary.probe(server_cpu)))
        server: ServerProcess | None = None
        if arm.start is not None:
            server = arm.start(server_cpu)
        elif arm.server is not None:
            server = ServerProcess(**{**dict(arm.server), "cpu": server_cpu})
        with server if server is not None else contextlib.nullcontext():
            run = ArmRun(arm, rnd, order, server, server_cpu, load_cpu, recorder, study)
            produced = list(measure(run) or [])
        tag = {**dict(arm.columns), "arm": label, "round": rnd, "order": order}
        if study:
            tag["study"] = study
        speed = {"metric": "machine_probe_ns", "value": probes[-1].ns, "unit": "ns"}
        for row in [*produced, *run.rows, speed]:
            for key, value in tag.items():
                row.setdefault(key, value)
            row["arm"], row["round"], row["order"] = label, rnd, order
            rows.append(row)
        if progress is not None:
            tail = summarize(produced) if summarize else _default_summary(produced)
            prefix = f"{study} | " if study else ""
            progress(f"{prefix}{label} | round {rnd + 1}/{rounds}{': ' + tail if tail else ''}")
    recorder.add(canary.check_speed(probes))
    return RoundsResult(labels, rounds, rows)


def _default_summary(rows: Rows) -> str:
    rps = [r["value"] for r in rows if r.get("metric") == "throughput_rps" and r.get("t") is None]
    return f"{rps[0]:.0f} req/s" if rps else ""


__all__ = [
    "FULL_ROUNDS",
    "QUICK_ROUNDS",
    "Arm",
    "ArmRun",
    "RoundsResult",
    "cpus",
    "default_rounds",
    "pinned",
    "resolve_engine",
    "run_rounds",
]
