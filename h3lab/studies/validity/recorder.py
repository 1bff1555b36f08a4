"""The process-wide recorder and its file: ``current``/``begin``/``reset``,
``save`` to ``<run>/validity.json``, ``load`` back (see ``h3lab.studies.validity``
for how a notebook uses them).

One recorder per kernel, because measurement code deep in ``h3lab.bench``
records into it without being handed one; under the runner it saves itself
at exit so that a check is never lost.
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from h3lab.studies.validity.checks import (
    Check,
    Validity,
    check_ceiling,
    check_client_headroom,
    check_machine,
    check_open_loop_rate,
    check_server_cpu,
    check_stability,
)
from h3lab.studies.validity.sampling import machine_state

VALIDITY_FILE = "validity.json"


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
