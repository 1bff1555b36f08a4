"""Validity is data: whether a run's figures may be believed, and why not.

A measurement on a disturbed or mis-set machine looks exactly like a clean
one. So every measured run records *checks* next to its results, and each
check says ``valid``, ``unstable`` or ``invalid``:

================================  =================================================  ==========
check (``Check.name``)            rule (defaults; every bound is stated in the text)  failing ->
================================  =================================================  ==========
``server_cpu``                    the server used >= 90% of one core during a        invalid
                                  saturating closed-loop phase (else it was not the
                                  bottleneck: client-bound or disturbed)
``client_headroom``               the load generator used < 90% of its core          invalid
                                  (a saturated client measures itself)
``open_loop_rate``                an open-loop run achieved its target rate           invalid
                                  within 1% (else the latencies are of another rate)
``ceiling``                       no figure above the ceiling measured in the same    invalid
                                  run (e.g. a framework faster than bare httptools)
``machine``                       no other process used > 20% of a core, and the      invalid
                                  1-minute load average <= 1.5 x cores
``stability``                     sample CV <= 10% and drift (first vs last third     unstable
                                  of the samples, by median) <= 10%
``warning``                       any other unstable-sample warning (e.g. a           unstable
                                  micro-benchmark's ``BenchmarkStabilityWarning``)
================================  =================================================  ==========

``invalid`` makes the run not ``ok``: its conclusion must open with
``**Invalid run:**`` and claim no difference (``h3lab.studies.runner`` does
the first; ``invalid_paragraph`` / ``claims_allowed`` help with the second).
``unstable`` keeps the run ``ok`` but every warning text is kept and shown.

How a notebook records validity
-------------------------------
Measurement code feeds the process-wide recorder; the notebook saves it::

    from h3lab.studies import validity
    rec = validity.begin(out_dir)     # where the run starts (notebook.start): an empty
                                      # process-wide recorder, stability warnings captured
    rec.server_cpu(93.5, label="performance round 2")
    rec.stability([...], label="balanced req/s")
    ...
    validity.save()                   # -> <run>/validity.json (the runner merges it
                                      #    into meta.json["validity"])
    text = validity.guard_claim(validity.current().result(), "2.1x faster [...]")

Under the runner the recorder also saves itself when the kernel exits, so a
check is never lost; a notebook run by hand must call ``save``.

``h3lab.bench.rounds.run_rounds`` records its own checks (server and client
CPU, machine state) into ``current()`` unless given another recorder. The
runner adds the machine state before and after the notebook, so every run
has a ``validity`` even when its notebook recorded nothing.

``PhaseCpu`` measures the CPU of a process tree (by pid, through psutil) and
of this process plus its reaped children (wrk) over one phase; the load
drivers use it.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeGuard

Status = Literal["valid", "unstable", "invalid"]

VALIDITY_FILE = "validity.json"

SERVER_CPU_MIN_PERCENT = 90.0
CLIENT_CPU_MAX_PERCENT = 90.0
OPEN_LOOP_RATE_TOLERANCE = 0.01
CEILING_TOLERANCE = 0.02
MAX_CV = 0.10
MAX_DRIFT = 0.10
OTHER_CPU_MAX_PERCENT = 20.0
LOAD_PER_CORE_MAX = 1.5

_RANK = {"valid": 0, "unstable": 1, "invalid": 2}


def _is_status(value: object) -> TypeGuard[Status]:
    return value in _RANK


@dataclass(frozen=True)
class Check:
    """One check's outcome: ``reason`` is the sentence shown when it is not valid."""

    name: str
    status: Status
    reason: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    label: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "reason": self.reason,
            "label": self.label,
            "data": self.data,
        }


@dataclass
class Validity:
    """The run's verdict: ``ok`` is False exactly when ``status`` is ``invalid``.

    ``reasons`` are the invalid checks' sentences, ``warnings`` the unstable
    ones'; ``checks`` maps each check name to its outcomes (JSON-shaped).
    """

    ok: bool = True
    status: Status = "valid"
    reasons: list[str] = field(default_factory=list)
    checks: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def from_checks(cls, checks: Iterable[Check]) -> Validity:
        out = cls()
        for check in checks:
            out.add(check)
        return out

    def add(self, check: Check) -> None:
        self.checks.setdefault(check.name, []).append(check.to_json())
        text = _sentence(check)
        if check.status == "invalid" and text not in self.reasons:
            self.reasons.append(text)
        elif check.status == "unstable" and text not in self.warnings:
            self.warnings.append(text)
        if _RANK[check.status] > _RANK[self.status]:
            self.status = check.status
        self.ok = self.status != "invalid"

    def merge(self, other: Validity | Mapping[str, Any] | None) -> Validity:
        """A new ``Validity`` holding both (the worse status wins)."""
        other = Validity.from_json(other) if isinstance(other, Mapping) else other
        out = Validity.from_json(self.to_json())
        if other is None:
            return out
        for name, entries in other.checks.items():
            out.checks.setdefault(name, []).extend(entries)
        for reason in other.reasons:
            if reason not in out.reasons:
                out.reasons.append(reason)
        for warning in other.warnings:
            if warning not in out.warnings:
                out.warnings.append(warning)
        if _RANK[other.status] > _RANK[out.status]:
            out.status = other.status
        out.ok = out.status != "invalid"
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "status": self.status,
            "reasons": list(self.reasons),
            "warnings": list(self.warnings),
            "checks": json.loads(json.dumps(self.checks, default=_plain)),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Validity:
        if not data:
            return cls()
        status = data.get("status") or ("valid" if data.get("ok", True) else "invalid")
        if not _is_status(status):
            raise ValueError(f"validity status must be valid, unstable or invalid, got {status!r}")
        return cls(
            ok=status != "invalid",
            status=status,
            reasons=list(data.get("reasons") or []),
            checks={k: list(v) for k, v in (data.get("checks") or {}).items()},
            warnings=list(data.get("warnings") or []),
        )


def _plain(value: Any) -> Any:
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def _sentence(check: Check) -> str:
    text = check.reason or check.name
    return f"{check.label}: {text}" if check.label else text


# -- pure checks ------------------------------------------------------------------------------


def _median(values: Sequence[float] | float) -> tuple[float, int]:
    if isinstance(values, int | float):
        return float(values), 1
    data = [float(v) for v in values if v is not None]
    if not data:
        raise ValueError("no samples to check")
    return statistics.median(data), len(data)


def check_server_cpu(
    percent: Sequence[float] | float,
    *,
    min_percent: float = SERVER_CPU_MIN_PERCENT,
    label: str | None = None,
) -> Check:
    """Server CPU (% of one core; a phase average, or per-second samples -> their median)
    during a *saturating* closed-loop phase: below ``min_percent`` is invalid."""
    value, n = _median(percent)
    data = {"percent": round(value, 1), "min_percent": min_percent, "samples": n}
    if value >= min_percent:
        return Check("server_cpu", "valid", None, data, label)
    return Check(
        "server_cpu",
        "invalid",
        f"the server used {value:.0f}% of one core during saturating load (needs >= "
        f"{min_percent:.0f}%): it was not the bottleneck (client-bound or disturbed)",
        data,
        label,
    )


def check_client_headroom(
    percent: Sequence[float] | float,
    *,
    max_percent: float = CLIENT_CPU_MAX_PERCENT,
    label: str | None = None,
) -> Check:
    """Load-generator CPU (% of one core): at or above ``max_percent`` it had no headroom."""
    value, n = _median(percent)
    data = {"percent": round(value, 1), "max_percent": max_percent, "samples": n}
    if value < max_percent:
        return Check("client_headroom", "valid", None, data, label)
    return Check(
        "client_headroom",
        "invalid",
        f"the load generator used {value:.0f}% of its core (bound {max_percent:.0f}%): "
        "client-bound, the figure measures the client",
        data,
        label,
    )


def check_open_loop_rate(
    achieved: float,
    target: float,
    *,
    tolerance: float = OPEN_LOOP_RATE_TOLERANCE,
    label: str | None = None,
) -> Check:
    """An open-loop run must reach its target arrival rate within ``tolerance``."""
    if target <= 0:
        raise ValueError(f"target rate must be > 0, got {target}")
    share = achieved / target
    data = {"achieved_rps": achieved, "target_rps": target, "tolerance": tolerance}
    if share >= 1.0 - tolerance:
        return Check("open_loop_rate", "valid", None, data, label)
    return Check(
        "open_loop_rate",
        "invalid",
        f"the open loop achieved {achieved:.0f} of {target:.0f} req/s ({share:.1%}; needs "
        f">= {1 - tolerance:.0%}): its latencies are not those of the target rate",
        data,
        label,
    )


def check_ceiling(
    value: float,
    ceiling: float,
    *,
    what: str = "value",
    ceiling_label: str = "the ceiling",
    tolerance: float = CEILING_TOLERANCE,
    label: str | None = None,
) -> Check:
    """A figure above a ceiling measured in the same run (beyond ``tolerance``) is impossible."""
    data = {"value": value, "ceiling": ceiling, "tolerance": tolerance}
    if value <= ceiling * (1.0 + tolerance):
        return Check("ceiling", "valid", None, data, label)
    return Check(
        "ceiling",
        "invalid",
        f"{what} {value:.4g} is {value / ceiling:.0%} of {ceiling_label} ({ceiling:.4g}) "
        "measured in the same run: physically impossible, the measurement is disturbed",
        data,
        label,
    )


def drift(values: Sequence[float]) -> float:
    """Relative change of the median from the first to the last third of the samples."""
    data = [float(v) for v in values]
    if len(data) < 3:
        return 0.0
    third = len(data) // 3
    first = statistics.median(data[:third])
    last = statistics.median(data[-third:])
    return (last - first) / abs(first) if first else 0.0


def check_stability(
    values: Sequence[float],
    *,
    max_cv: float = MAX_CV,
    max_drift: float = MAX_DRIFT,
    label: str | None = None,
) -> Check:
    """Sample CV and drift within limits; else ``unstable`` with the warning text."""
    data = [float(v) for v in values]
    if not data:
        raise ValueError("no samples to check")
    mean = statistics.fmean(data)
    cv = statistics.stdev(data) / abs(mean) if len(data) > 1 and mean else 0.0
    d = drift(data)
    info = {"n": len(data), "cv": cv, "drift": d, "max_cv": max_cv, "max_drift": max_drift}
    problems = []
    if cv > max_cv:
        problems.append(f"cv {cv:.1%} above {max_cv:.0%}")
    if abs(d) > max_drift:
        problems.append(f"drift {d:+.1%} from the first to the last third (limit {max_drift:.0%})")
    if not problems:
        return Check("stability", "valid", None, info, label)
    return Check("stability", "unstable", "unstable samples: " + "; ".join(problems), info, label)


def check_machine(
    state: Mapping[str, Any],
    *,
    other_cpu_max: float = OTHER_CPU_MAX_PERCENT,
    load_per_core_max: float = LOAD_PER_CORE_MAX,
    label: str | None = None,
) -> Check:
    """Invalid when other processes were busy or the load average was high (``machine_state``)."""
    busy = list(state.get("busy_processes") or [])
    other = float(state.get("other_cpu_percent") or 0.0)
    cores = int(state.get("cores") or os.cpu_count() or 1)
    load1 = state.get("loadavg_1")
    problems = []
    if other > other_cpu_max:
        names = ", ".join(f"{p['name']} ({p['cpu_percent']:.0f}%)" for p in busy[:5])
        problems.append(
            f"other processes used {other:.0f}% of a core (bound {other_cpu_max:.0f}%)"
            + (f": {names}" if names else "")
        )
    if load1 is not None and float(load1) > load_per_core_max * cores:
        problems.append(
            f"load average {float(load1):.2f} above {load_per_core_max:g} x {cores} cores"
        )
    data = {**dict(state), "other_cpu_max": other_cpu_max, "load_per_core_max": load_per_core_max}
    if not problems:
        return Check("machine", "valid", None, data, label)
    return Check("machine", "invalid", "busy machine: " + "; ".join(problems), data, label)


# -- measuring the machine and processes ---------------------------------------------------------


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


# -- the recorder ------------------------------------------------------------------------------


class ValidityRecorder:
    """Collects checks during a run; ``result()`` is the run's ``Validity``."""

    def __init__(self) -> None:
        self.checks: list[Check] = []

    def add(self, check: Check) -> Check:
        self.checks.append(check)
        return check

    def server_cpu(self, percent: Sequence[float] | float, **kw: Any) -> Check:
        return self.add(check_server_cpu(percent, **kw))

    def client_headroom(self, percent: Sequence[float] | float, **kw: Any) -> Check:
        return self.add(check_client_headroom(percent, **kw))

    def open_loop(self, achieved: float, target: float, **kw: Any) -> Check:
        return self.add(check_open_loop_rate(achieved, target, **kw))

    def ceiling(self, value: float, ceiling: float, **kw: Any) -> Check:
        return self.add(check_ceiling(value, ceiling, **kw))

    def stability(self, values: Sequence[float], **kw: Any) -> Check:
        return self.add(check_stability(values, **kw))

    def machine(self, state: Mapping[str, Any] | None = None, **kw: Any) -> Check:
        """Check ``state`` (default: ``machine_state()`` sampled now, ~0.5 s)."""
        return self.add(check_machine(state if state is not None else machine_state(), **kw))

    def warn(self, text: str, *, label: str | None = None) -> Check:
        """An unstable-sample warning from elsewhere (kept verbatim)."""
        return self.add(Check("warning", "unstable", text, {}, label))

    def invalid(self, reason: str, *, name: str = "other", label: str | None = None) -> Check:
        """Mark the run invalid for a reason no check above covers."""
        return self.add(Check(name, "invalid", reason, {}, label))

    def result(self) -> Validity:
        return Validity.from_checks(self.checks)

    def reset(self) -> None:
        self.checks.clear()


RUN_DIR_ENV = "H3LAB_RUN_DIR"
"""Set by the runner for the kernel: where ``validity.json`` goes if the notebook never saves."""

_CURRENT: ValidityRecorder | None = None
_PREVIOUS_SHOWWARNING: Any = None


def current() -> ValidityRecorder:
    """The process-wide recorder (one per kernel), created on first use.

    On creation it also starts capturing ``BenchmarkStabilityWarning`` (the
    micro-benchmarks' unstable-sample warning): each is recorded as an
    ``unstable`` check and still shown as before. Under the runner
    (``$H3LAB_RUN_DIR`` set) it also saves itself to
    ``$H3LAB_RUN_DIR/validity.json`` when the kernel exits, so checks recorded
    by measurement code reach ``meta.json`` even if the notebook never calls
    ``save`` (it should, after its last measurement: the kernel's exit is a
    fallback).
    """
    global _CURRENT, _PREVIOUS_SHOWWARNING
    if _CURRENT is None:
        _CURRENT = ValidityRecorder()
        _PREVIOUS_SHOWWARNING = warnings.showwarning
        warnings.showwarning = _showwarning
        run_dir = os.environ.get(RUN_DIR_ENV)
        if run_dir:
            import atexit

            atexit.register(_save_at_exit, Path(run_dir), _CURRENT)
    return _CURRENT


def begin(out_dir: str | Path | None = None) -> ValidityRecorder:
    """Start a run's validity: an empty process-wide recorder capturing stability warnings.

    Call it where the notebook opens its run (``notebook.start``); ``out_dir``
    is remembered as the default of ``save()``.
    """
    global _OUT_DIR
    rec = reset()
    _OUT_DIR = Path(out_dir) if out_dir is not None else None
    return rec


_OUT_DIR: Path | None = None


def _save_at_exit(run_dir: Path, recorder: ValidityRecorder) -> None:
    if run_dir.is_dir() and (recorder.checks or not (run_dir / VALIDITY_FILE).is_file()):
        with contextlib.suppress(OSError):
            save(run_dir, recorder)


def reset() -> ValidityRecorder:
    """Empty the process-wide recorder (a notebook re-run from the top starts clean)."""
    rec = current()
    rec.reset()
    return rec


def _showwarning(message: Any, category: Any, *args: Any, **kwargs: Any) -> None:
    from h3lab.bench.micro import BenchmarkStabilityWarning

    if _CURRENT is not None and issubclass(category, BenchmarkStabilityWarning):
        _CURRENT.warn(str(message))
    if _PREVIOUS_SHOWWARNING is not None:
        _PREVIOUS_SHOWWARNING(message, category, *args, **kwargs)


def save(out_dir: str | Path | None = None, recorder: ValidityRecorder | None = None) -> Path:
    """Write the recorder's ``Validity`` to ``<out_dir>/validity.json`` (the runner merges it).

    ``out_dir`` defaults to the one given to ``begin``, else ``$H3LAB_RUN_DIR``.
    """
    validity = (recorder or current()).result()
    out_dir = out_dir or _OUT_DIR or os.environ.get(RUN_DIR_ENV)
    if not out_dir:
        raise ValueError("validity.save: no out_dir (pass the run folder, or call begin(out_dir))")
    path = Path(out_dir) / VALIDITY_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(validity.to_json(), indent=2) + "\n", encoding="utf-8")
    return path


def load(run_dir: str | Path) -> Validity | None:
    """``validity`` of a run: ``meta.json["validity"]``, else ``validity.json``, else None."""
    run_dir = Path(run_dir)
    try:
        meta = json.loads((run_dir / "meta.json").read_text())
        if isinstance(meta, dict) and isinstance(meta.get("validity"), dict):
            return Validity.from_json(meta["validity"])
    except (OSError, ValueError):
        pass
    try:
        return Validity.from_json(json.loads((run_dir / VALIDITY_FILE).read_text()))
    except (OSError, ValueError):
        return None


# -- what a conclusion may say -------------------------------------------------------------------


INVALID_PREFIX = "**Invalid run:**"
UNSTABLE_PREFIX = "**Unstable samples:**"


def invalid_paragraph(validity: Validity) -> str:
    """``**Invalid run:** reason; reason. ...`` ('' when the run is ok)."""
    if validity.ok:
        return ""
    reasons = "; ".join(validity.reasons) or "a check failed"
    return (
        f"{INVALID_PREFIX} {reasons}. The figures below are kept for diagnosis; "
        "no difference is claimed from them."
    )


def unstable_paragraph(validity: Validity, limit: int = 20) -> str:
    """``**Unstable samples:** warning; warning ...`` ('' when there is none)."""
    if not validity.warnings:
        return ""
    shown = "; ".join(validity.warnings[:limit])
    more = f" (and {len(validity.warnings) - limit} more)" if len(validity.warnings) > limit else ""
    return f"{UNSTABLE_PREFIX} {shown}{more}."


def claims_allowed(validity: Validity | Mapping[str, Any] | None) -> bool:
    """May a conclusion claim a difference? Only from an ok (valid or unstable) run."""
    if validity is None:
        return True
    v = Validity.from_json(validity) if isinstance(validity, Mapping) else validity
    return v.ok


def guard_claim(validity: Validity | Mapping[str, Any] | None, claim: str) -> str:
    """``claim`` when the run is ok, else the sentence that no difference is claimed."""
    if claims_allowed(validity):
        return claim
    return "No difference is claimed: the run is invalid (see above)."


DIAGNOSIS_NOTE = "_Computed from these measurements, kept for diagnosis only (not a conclusion):_"


def frame_conclusion(text: str, validity: Validity | Mapping[str, Any] | None) -> str:
    """``text`` framed by the run's validity (safe to apply twice).

    Invalid run: the ``**Invalid run:**`` paragraph (every reason) comes first.
    If ``text`` already opens with one (the notebook knew, and worded its
    claims with ``guard_claim``), that paragraph is replaced by the complete
    one; otherwise the notebook concluded before the run was found invalid
    (the runner's machine watch decides after the last cell), so its text is
    kept only as a quoted block marked as diagnosis, never as a conclusion.
    Unstable samples: their paragraph is appended once.
    """
    if validity is None:
        return text
    v = Validity.from_json(validity) if isinstance(validity, Mapping) else validity
    body = text.strip()
    head = invalid_paragraph(v)
    if head:
        if body.startswith(INVALID_PREFIX):
            _, _, rest = body.partition("\n\n")
            body = f"{head}\n\n{rest}" if rest else head
        elif body:
            quoted = "\n".join(f"> {line}" if line else ">" for line in body.splitlines())
            body = f"{head}\n\n{DIAGNOSIS_NOTE}\n\n{quoted}"
        else:
            body = head
    tail = unstable_paragraph(v)
    if tail and UNSTABLE_PREFIX not in body:
        body = f"{body}\n\n{tail}"
    return body.strip() + "\n"


__all__ = [
    "VALIDITY_FILE",
    "Check",
    "PhaseCpu",
    "ProcessCpu",
    "Validity",
    "ValidityRecorder",
    "begin",
    "check_ceiling",
    "check_client_headroom",
    "check_machine",
    "check_open_loop_rate",
    "check_server_cpu",
    "check_stability",
    "claims_allowed",
    "current",
    "drift",
    "frame_conclusion",
    "guard_claim",
    "invalid_paragraph",
    "load",
    "machine_state",
    "reset",
    "save",
    "unstable_paragraph",
]
