"""Run one study notebook with papermill into its run folder.

The contract between the runner and a notebook
----------------------------------------------
The notebook has exactly one cell tagged ``parameters`` defining at least
``quick`` (bool), ``run_id`` and ``out_dir`` (both ``None`` by default, so the
notebook also runs by hand in JupyterLab). The runner injects ``run_id`` and
``out_dir`` = ``<root>/<study>/<run_id>`` so the ``RunWriter`` inside the
notebook (``h3lab.studies.notebook.start``) writes ``results.parquet`` and
``meta.json`` into the same folder as the executed notebook::

    data/runs/<study>/<run_id>/
        NN_name.ipynb       the executed notebook (kept, partial, when a cell fails)
        NN_name.html        the same, rendered by nbconvert (opens without Jupyter)
        results.parquet     tidy rows (h3lab.bench.results)
        meta.json           parameters, versions, machine, git commit + "study_run",
                            "validity" and "provenance" (added by the runner)
        validity.json       the checks the notebook recorded (h3lab.studies.validity)
        conclusion.md       the computed conclusion (read by the report)
        figures/*.png|svg   every chart

Validity: while the notebook runs, a thread samples the machine (other
processes' CPU, load average; ``MachineWatch``). Afterwards the notebook's
``validity.json`` and that machine check are merged into
``meta.json["validity"]`` and ``conclusion.md`` is framed by it: an invalid
run opens with ``**Invalid run:**`` and its reasons, and claims nothing; every
unstable-sample warning is listed (``validity.frame_conclusion``).
Provenance (run id, commit, machine, full/quick, validity, study/manual) is
stamped into ``meta.json["provenance"]`` (``h3lab.studies.provenance``). A
notebook executed by hand has no ``study_run`` record: a *manual* run, which
never displaces a study run.

The kernel runs in the repository root (relative paths such as
``data/traces/sample.csv`` resolve there), with ``$H3LAB_RUN_DIR`` telling it
its run folder and ``H3LAB_STUDY_RUN=1`` in its environment (charts are then
shown as static images, so executed notebooks and their HTML need no
JavaScript from a CDN). Which kernelspec, and its IPC sockets, are
``h3lab.studies.kernel``'s; the parameters cell is read and ``-p`` values are
typed by ``h3lab.studies.parameters``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from h3lab.studies.kernel import ensure_kernel, ipc_kernel_manager
from h3lab.studies.parameters import (
    RESERVED_PARAMETERS,
    notebook_parameters,
    resolve_parameters,
)
from h3lab.studies.registry import Study, repo_root
from h3lab.studies.validity import RUN_DIR_ENV

STUDY_RUN_ENV = "H3LAB_STUDY_RUN"
DEFAULT_TIMEOUT_S = 1800
"""Per cell, for full runs (a load study's cell runs minutes at most)."""
QUICK_TIMEOUT_S = 300
"""Per cell, in quick mode: a hang fails CI instead of stalling it."""


class StudyFailure(Exception):
    """A notebook failed: which one, which cell, which error, where the partial output is."""

    def __init__(
        self,
        study: str,
        notebook: Path,
        output: Path,
        cell_index: int | None,
        exec_count: int | None,
        ename: str,
        evalue: str,
        source: str = "",
        traceback: str = "",
    ) -> None:
        self.study = study
        self.notebook = notebook
        self.output = output
        self.cell_index = cell_index
        self.exec_count = exec_count
        self.ename = ename
        self.evalue = evalue
        self.source = source
        self.traceback = traceback
        super().__init__(self.summary())

    def summary(self) -> str:
        where = "before any cell ran" if self.cell_index is None else f"cell {self.cell_index}"
        if self.exec_count is not None:
            where += f" (In [{self.exec_count}])"
        return f"{self.notebook}: {where}: {self.ename}: {self.evalue}".rstrip(": ")

    def describe(self) -> str:
        """Several lines for the terminal: summary, the cell's first lines, the traceback tail."""
        lines = [
            f"study {self.study} FAILED",
            f"  notebook: {self.notebook}",
            f"  error:    {self.summary()}",
        ]
        if self.source:
            head = self.source.strip().splitlines()[:6]
            lines.append("  cell source:")
            lines.extend(f"    | {line}" for line in head)
        if self.traceback:
            tail = self.traceback.strip().splitlines()[-12:]
            lines.append("  traceback (last lines):")
            lines.extend(f"    {line}" for line in tail)
        lines.append(f"  partial output kept: {self.output}")
        return "\n".join(lines)


@dataclass
class RunResult:
    study: Study
    run_id: str
    run_dir: Path
    notebook: Path
    ok: bool
    duration_s: float
    parameters: dict[str, Any]
    html: Path | None = None
    failure: StudyFailure | None = None
    warnings: list[str] = field(default_factory=list)
    validity: Any = None
    """The run's ``h3lab.studies.validity.Validity`` (what meta.json["validity"] holds)."""


# -- execution ------------------------------------------------------------------------


KERNEL_HASH_SEED = 0
MACHINE_WATCH_EVERY_S = 5.0
"""The runner samples the machine (other processes' CPU, load average) this often."""


class MachineWatch:
    """Samples ``machine_state`` every ``every`` seconds on a thread while the notebook runs.

    This process's tree (the kernel, the servers and load generators it
    starts) is excluded, so what it sees is everyone else.
    """

    def __init__(self, every: float = MACHINE_WATCH_EVERY_S, interval: float = 1.0) -> None:
        import threading

        self.every = every
        self.interval = interval
        self.states: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="machine-watch")

    def _loop(self) -> None:
        from h3lab.studies.validity import machine_state

        while True:
            with suppress(Exception):  # a vanished process mid-iteration is not a failure
                self.states.append(machine_state(interval=self.interval))
            if self._stop.wait(self.every):
                return

    def __enter__(self) -> MachineWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval + 5.0)

    def summary(self) -> dict[str, Any] | None:
        """Median other-CPU and load average over the samples, the busiest processes seen."""
        import statistics

        if not self.states:
            return None
        others = [float(s["other_cpu_percent"]) for s in self.states]
        loads = [float(s["loadavg_1"]) for s in self.states if s.get("loadavg_1") is not None]
        busy: dict[str, dict[str, Any]] = {}
        for state in self.states:
            for proc in state.get("busy_processes") or []:
                key = f"{proc['name']}:{proc['pid']}"
                if key not in busy or proc["cpu_percent"] > busy[key]["cpu_percent"]:
                    busy[key] = proc
        return {
            "other_cpu_percent": round(statistics.median(others), 1),
            "other_cpu_percent_max": max(others),
            "loadavg_1": statistics.median(loads) if loads else None,
            "loadavg_1_max": max(loads) if loads else None,
            "cores": self.states[0].get("cores"),
            "busy_processes": sorted(busy.values(), key=lambda p: -p["cpu_percent"])[:10],
            "samples": len(self.states),
        }


@contextmanager
def _env(name: str, value: str) -> Any:
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


def _text(source: Any) -> str:
    return "".join(source) if isinstance(source, list) else str(source or "")


def failure_from_notebook(study: Study, output: Path, exc: BaseException | None) -> StudyFailure:
    """Locate the failing cell in the (partial) output notebook."""
    import nbformat
    from papermill.exceptions import PapermillExecutionError, strip_color

    cells: list[Any] = []
    with suppress(OSError, ValueError):
        cells = [
            c
            for c in nbformat.read(str(output), as_version=4).cells
            if "papermill-error-cell-tag" not in c.get("metadata", {}).get("tags", [])
        ]
    if isinstance(exc, PapermillExecutionError):
        index = _source_index(cells, exc.exec_count, exc.source)
        return StudyFailure(
            study.name,
            study.path,
            output,
            index,
            exc.exec_count,
            exc.ename,
            strip_color(str(exc.evalue)),
            _text(exc.source),
            strip_color("\n".join(exc.traceback or [])),
        )
    # A timeout or a dead kernel: the failing cell is the last one that started.
    started = [
        i
        for i, c in enumerate(cells)
        if c.get("metadata", {}).get("papermill", {}).get("start_time")
    ]
    index = started[-1] if started else None
    cell = cells[index] if index is not None else {}
    name = type(exc).__name__ if exc is not None else "Error"
    return StudyFailure(
        study.name,
        study.path,
        output,
        _source_number(cells, index),
        cell.get("execution_count") if cell else None,
        name,
        str(exc).strip().splitlines()[0] if exc is not None and str(exc).strip() else "",
        _text(cell.get("source")) if cell else "",
    )


def _is_injected(cell: Any) -> bool:
    return "injected-parameters" in cell.get("metadata", {}).get("tags", [])


def _source_number(cells: list[Any], index: int | None) -> int | None:
    """Index of an output-notebook cell in the *source* notebook (without the injected cell)."""
    if index is None:
        return None
    return index - sum(1 for c in cells[:index] if _is_injected(c))


def _source_index(cells: list[Any], exec_count: int | None, source: Any) -> int | None:
    text = _text(source)
    for i, cell in enumerate(cells):
        if cell.get("cell_type") == "code" and (
            (exec_count is not None and cell.get("execution_count") == exec_count)
            or _text(cell.source) == text
        ):
            return _source_number(cells, i)
    return None


def render_html(notebook: Path, html: Path | None = None) -> Path:
    """The executed notebook as a standalone HTML page (no script from a CDN)."""
    import nbformat
    from nbconvert import HTMLExporter

    html = html or notebook.with_suffix(".html")
    exporter = HTMLExporter(template_name="lab")
    # MathJax and require.js are fetched from CDNs; the studies need neither
    # (charts are static images in executed notebooks), so the page stays offline.
    exporter.mathjax_url = ""
    exporter.require_js_url = ""
    body, _ = exporter.from_notebook_node(nbformat.read(str(notebook), as_version=4))
    body = strip_remote_scripts(body)
    html.write_text(body, encoding="utf-8")
    return html


def strip_remote_scripts(html: str) -> str:
    """Remove ``<script src="http...">`` and empty ``<script src="">`` tags.

    A page opened offline must not wait on a CDN, and an empty ``src`` makes the
    browser load the page itself as a script (a console error).
    """
    import re

    return re.sub(r"<script[^>]*\bsrc=[\"'](?:https?://[^\"']*)?[\"'][^>]*>\s*</script>", "", html)


def update_meta(
    run_dir: Path,
    study: Study,
    run_id: str,
    record: dict[str, Any],
    params: dict[str, Any],
    *,
    validity: Any = None,
) -> Path:
    """Merge the runner's record, the run's ``validity`` and its ``provenance`` into
    ``meta.json`` (creating it, bench-style, if the notebook did not)."""
    from h3lab.bench.results import META_FILE, RunWriter
    from h3lab.studies.provenance import stamp

    path = run_dir / META_FILE
    meta: dict[str, Any] | None = None
    if path.is_file():
        try:
            meta = json.loads(path.read_text())
        except ValueError:
            meta = None
    if not isinstance(meta, dict):
        meta = RunWriter(study.name, run_id, root=run_dir.parent.parent, params=params).meta()
    meta["study_run"] = record
    if validity is not None:
        meta["validity"] = validity.to_json()
    stamp(meta, run_dir)
    tmp = path.with_name(f".{META_FILE}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(meta, indent=2, default=str) + "\n")
    tmp.replace(path)
    return path


def run_study(
    study: Study,
    params: Mapping[str, Any] | None = None,
    *,
    quick: bool = False,
    root: str | Path = "data/runs",
    run_id: str | None = None,
    kernel_name: str | None = None,
    execution_timeout: int | None = None,
    progress: bool = True,
    log_output: bool = False,
    html: bool = True,
    cwd: str | Path | None = None,
) -> RunResult:
    """Execute ``study`` into ``<root>/<study.name>/<run_id>/``; never raises for a failing cell.

    A failure is returned in ``RunResult.failure`` (the partial notebook is
    kept); bad parameters raise ``ValueError`` before anything runs.
    """
    import papermill as pm

    from h3lab.bench.results import new_run_id

    given = resolve_parameters(study, dict(params or {}))
    known = notebook_parameters(study.path)
    missing = [p for p in ("quick", *RESERVED_PARAMETERS) if p not in known]
    if missing:
        raise ValueError(
            f"{study.slug}: its parameters cell lacks {missing} (see h3lab.studies.runner)"
        )
    run_id = run_id or new_run_id()
    root = Path(root)
    if not root.is_absolute():
        root = (Path(cwd) if cwd is not None else repo_root()) / root
    run_dir = root / study.name / run_id
    (run_dir / "figures").mkdir(parents=True, exist_ok=True)
    output = run_dir / study.path.name
    parameters = {**given, "run_id": run_id, "out_dir": str(run_dir)}
    if quick:
        parameters["quick"] = True
    kernel = kernel_name or ensure_kernel()
    timeout = execution_timeout or (
        QUICK_TIMEOUT_S if parameters.get("quick") else DEFAULT_TIMEOUT_S
    )
    progress_bar: Any = False
    if progress:
        progress_bar = {"desc": study.slug, "unit": "cell", "file": sys.stderr, "leave": True}
    started = time.time()
    t0 = time.perf_counter()
    failure: StudyFailure | None = None
    # The kernel inherits this process's environment. A fixed hash seed makes
    # in-kernel simulations that hash keys (W-TinyLFU's frequency sketch)
    # reproducible from run to run; servers started by the studies keep their
    # own randomized hashing, which defends them against hash flooding.
    watch = MachineWatch()
    with (
        _env(STUDY_RUN_ENV, "1"),
        _env("PYTHONHASHSEED", str(KERNEL_HASH_SEED)),
        _env(RUN_DIR_ENV, str(run_dir)),  # the kernel's validity recorder saves there at exit
        watch,
    ):
        try:
            pm.execute_notebook(
                str(study.path),
                str(output),
                parameters=parameters,
                kernel_name=kernel,
                progress_bar=progress_bar,
                log_output=log_output,
                cwd=str(cwd or repo_root()),
                start_timeout=120,
                execution_timeout=timeout,
                kernel_manager_class=ipc_kernel_manager(),
            )
        except Exception as exc:
            failure = failure_from_notebook(study, output, exc)
    duration = time.perf_counter() - t0
    record = {
        "status": "failed" if failure else "ok",
        "notebook": str(study.path.relative_to(repo_root()))
        if study.path.is_relative_to(repo_root())
        else str(study.path),
        "slug": study.slug,
        "output": output.name,
        "parameters": parameters,
        "quick": bool(parameters.get("quick")),
        "kernel": kernel,
        "python": sys.executable,
        "started": started,
        "duration_s": round(duration, 3),
        "error": failure.summary() if failure else None,
    }
    result = RunResult(
        study, run_id, run_dir, output, failure is None, duration, parameters, failure=failure
    )
    if html and output.is_file():
        try:
            result.html = render_html(output)
            record["html"] = result.html.name
        except Exception as exc:  # the run stands even if its rendering fails
            result.warnings.append(f"nbconvert HTML failed: {exc!r}")
    # A summary measures nothing: its validity is its inputs' (it refuses
    # invalid or mixed ones), not whatever else the machine did meanwhile.
    validity = run_validity(run_dir, None if study.is_summary else watch.summary())
    update_meta(run_dir, study, run_id, record, parameters, validity=validity)
    frame_conclusion_file(run_dir, validity)
    result.validity = validity
    if failure is None:
        result.warnings.extend(check_outputs(run_dir))
    return result


def run_validity(run_dir: Path, machine: Mapping[str, Any] | None) -> Any:
    """The notebook's ``validity.json`` (if it saved one) merged with the runner's machine check."""
    from h3lab.studies.validity import VALIDITY_FILE, Validity, check_machine

    validity = Validity()
    path = run_dir / VALIDITY_FILE
    recorded = False
    if path.is_file():
        try:
            validity = Validity.from_json(json.loads(path.read_text()))
            recorded = True
        except ValueError as exc:
            validity = Validity()
            validity.warnings.append(f"validity.json unreadable: {exc}")
    validity.checks["recorded_by_notebook"] = recorded
    if machine is not None:
        validity.add(check_machine(machine, label="during the run"))
    return validity


def frame_conclusion_file(run_dir: Path, validity: Any) -> None:
    """Open ``conclusion.md`` with ``**Invalid run:**`` when the run is not ok, and end it
    with the unstable-sample warnings (idempotent; nothing when there is no conclusion)."""
    from h3lab.studies.validity import frame_conclusion

    path = run_dir / "conclusion.md"
    if not path.is_file():
        return
    text = path.read_text(encoding="utf-8")
    framed = frame_conclusion(text, validity)
    if framed != text:
        path.write_text(framed, encoding="utf-8")


def check_outputs(run_dir: Path) -> list[str]:
    """What a successful run should have left behind (warnings, not errors)."""
    problems = []
    if not (run_dir / "results.parquet").is_file():
        problems.append("no results.parquet (did the notebook call run.write()?)")
    figures = run_dir / "figures"
    if not any(figures.glob("*.png")):
        problems.append("no figures/*.png")
    if not (run_dir / "conclusion.md").is_file():
        problems.append("no conclusion.md")
    return problems


# -- finding runs -------------------------------------------------------------------------


def run_status(run_dir: Path) -> str:
    """``ok``, ``failed`` or ``unknown`` (a run not made by the runner: ok if it has results)."""
    try:
        meta = json.loads((run_dir / "meta.json").read_text())
    except (OSError, ValueError):
        return "unknown"
    status = (meta.get("study_run") or {}).get("status")
    if status in ("ok", "failed"):
        return str(status)
    return "ok" if (run_dir / "results.parquet").is_file() else "unknown"


def latest_ok_run(
    study: str, root: str | Path = "data/runs", *, include_manual: bool = False
) -> Path | None:
    """The newest successful run of ``study`` made by the runner (None if none).

    A notebook executed by hand leaves a *manual* run: it never displaces a
    study run, and is returned only with ``include_manual`` when no study run
    exists (``h3lab.studies.provenance.latest_run``).
    """
    from h3lab.studies.provenance import latest_run

    return latest_run(study, root, include_manual=include_manual)


def ensure_runs(
    studies: list[str],
    root: str | Path,
    run_missing: bool = True,
    quick: bool = True,
    log: Any = print,
) -> dict[str, Path | None]:
    """The latest successful run of each study; a missing one is run first (quick) when allowed.

    Each missing study runs in a child ``h3lab study run`` process: a summary
    notebook must not drive papermill from inside its own kernel.
    """
    import subprocess

    found: dict[str, Path | None] = {}
    for name in studies:
        run_dir = latest_ok_run(name, root)
        if run_dir is None and run_missing:
            log(
                f"{name}: no successful run under {root}; running it now{' (quick)' if quick else ''}"
            )
            argv = [
                sys.executable,
                "-m",
                "h3lab.cli",
                "study",
                "run",
                name,
                "--root",
                str(root),
                "--no-progress",
            ]
            if quick:
                argv.append("--quick")
            done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=1800)
            if done.returncode != 0:
                log(f"{name}: the run failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
            run_dir = latest_ok_run(name, root)
        log(f"{name}: {run_dir if run_dir is not None else 'no run'}")
        found[name] = run_dir
    return found
