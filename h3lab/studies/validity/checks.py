"""The checks: pure functions from measured numbers to a ``Check``, and the
run's ``Validity`` they add up to (the worst status wins).

Each bound is a module constant and a keyword argument, and the reason a
check gives names the figure and the bound, so a reader of ``meta.json``
sees why a run was not believed (the table is in ``h3lab.studies.validity``).
"""

from __future__ import annotations

import json
import os
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeGuard

Status = Literal["valid", "unstable", "invalid"]

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
