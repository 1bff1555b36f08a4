"""The glue a study notebook calls: where its run goes, and what it leaves behind.

A notebook does::

    run = notebook.start("route_cache", run_id=run_id, out_dir=out_dir, quick=quick, ...)
    run.add(rows)                        # tidy rows (h3lab.bench.results schema)
    run.figure(chart, "hit_ratio")       # PNG + SVG into figures/ (captioned with the
                                         # run id, commit and machine), displayed
    run.write()                          # results.parquet + meta.json
    run.conclude(text)                   # conclusion.md (validity-framed), as Markdown

Validity: ``start`` empties the process-wide validity recorder; measurement
code feeds it (``h3lab.studies.validity``); ``conclude`` saves it
(``validity.json``, merged into ``meta.json`` by the runner) and frames the
text: an invalid run's conclusion opens with ``**Invalid run:**`` and its
reasons and claims no difference (the computed text is withheld); unstable-
sample warnings are listed after it.

``start`` prints which interpreter and which h3lab the kernel runs (a kernel
on the wrong interpreter is the classic papermill failure), and works without
the runner too: in JupyterLab ``out_dir=None`` makes a fresh run folder under
``data/runs/``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from h3lab.studies import charts

if TYPE_CHECKING:
    import altair as alt
    import pandas as pd

    from h3lab.bench.results import RunWriter

CONCLUSION_FILE = "conclusion.md"


class StudyRun:
    """One run of one study: its ``RunWriter``, figures folder and conclusion."""

    def __init__(
        self,
        writer: RunWriter,
        quick: bool,
        params: dict[str, Any],
        info: dict[str, Any] | None = None,
    ) -> None:
        self.writer = writer
        self.quick = quick
        self.params = params
        self.info = info or {}
        self.figures: dict[str, dict[str, Path]] = {}

    @property
    def study(self) -> str:
        return self.writer.study

    @property
    def run_id(self) -> str:
        return self.writer.run_id

    @property
    def out_dir(self) -> Path:
        return self.writer.path

    @property
    def runs_root(self) -> Path:
        return self.writer.root

    @property
    def figures_dir(self) -> Path:
        return self.out_dir / "figures"

    def add(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Append tidy rows (each with ``metric`` and numeric ``value``); how many."""
        before = len(self.writer.rows)
        self.writer.add_rows(rows)
        return len(self.writer.rows) - before

    def frame(self) -> pd.DataFrame:
        return self.writer.frame()

    def write(self) -> Path:
        return self.writer.write()

    @property
    def caption(self) -> str:
        """Provenance under every exported figure: run id, commit, machine, mode, validity so far
        (``provenance.caption``; a run outside ``h3lab study`` is marked manual)."""
        import platform

        from h3lab.studies import provenance, validity

        meta: dict[str, Any] = {
            "run_id": self.run_id,
            "study": self.study,
            "git_commit": self.info.get("git_commit"),
            "git_dirty": self.info.get("git_dirty"),
            "cpu_model": self.info.get("cpu_model"),
            "cores": len(self.info.get("cpus") or []) or None,
            "python": platform.python_version(),
            "params": {"quick": self.quick},
            "validity": validity.current().result().to_json(),
        }
        if charts.study_run_mode():
            meta["study_run"] = {"quick": self.quick}
        return provenance.caption(meta)

    def figure(self, chart: alt.TopLevelMixin, name: str) -> Any:
        """Save PNG + SVG (captioned with the provenance) and return what the cell should display."""
        paths = charts.save_chart(chart, self.figures_dir, name, caption=self.caption)
        self.figures[name] = paths
        return charts.show(chart, paths, name)

    def validity(self) -> Any:
        from h3lab.studies import validity

        return validity.current().result()

    def conclude(self, text: str) -> Any:
        """Write ``conclusion.md`` (the report shows it) and return it as Markdown.

        The validity recorded during the run is saved and frames the text; an
        invalid run claims nothing: its computed conclusion is replaced by the
        reasons.
        """
        from IPython.display import Markdown

        from h3lab.studies import validity

        self.out_dir.mkdir(parents=True, exist_ok=True)
        valid = self.validity()
        validity.save(self.out_dir)
        if not valid.ok:
            text = (
                "No difference is claimed from this run. The computed comparison is withheld; "
                "the tables and figures above are kept for diagnosis only."
            )
        text = validity.frame_conclusion(text, valid)
        (self.out_dir / CONCLUSION_FILE).write_text(text.strip() + "\n", encoding="utf-8")
        return Markdown(text)


def runtime_info() -> dict[str, Any]:
    import h3lab
    from h3lab.bench.machine import cpu_affinity, cpu_model, git_info

    git = git_info()
    return {
        "python": sys.executable,
        "h3lab": h3lab.__file__,
        "h3lab_version": h3lab.__version__,
        "cwd": os.getcwd(),
        "git_commit": git["commit"],
        "git_dirty": git["dirty"],
        "cpus": cpu_affinity(),
        "cpu_model": cpu_model(),
    }


def start(
    study: str,
    *,
    run_id: str | None = None,
    out_dir: str | Path | None = None,
    quick: bool = False,
    root: str | Path = "data/runs",
    **params: Any,
) -> StudyRun:
    """Open the run: theme on, writer pointed at ``out_dir`` (``<root>/<study>/<run_id>``).

    A relative ``root`` is taken from the repository root, not from the kernel's
    working directory: JupyterLab starts kernels in ``notebooks/``, papermill (via
    the runner) in the repository root, and both must write to ``data/runs``.
    """
    from h3lab.bench.results import RunWriter
    from h3lab.studies import validity
    from h3lab.studies.registry import repo_root

    charts.setup()
    info = runtime_info()
    print(f"python  {info['python']}")
    print(f"h3lab   {info['h3lab']} ({info['h3lab_version']}, commit {str(info['git_commit'])[:10]}"
          f"{' dirty' if info['git_dirty'] else ''})")  # fmt: skip
    print(f"cwd     {info['cwd']}   cpus {info['cpus']}")
    all_params = {"quick": bool(quick), **params}
    if out_dir is not None:
        out = Path(out_dir)
        run_id = run_id or out.name
        if out.name != run_id or out.parent.name != study:
            raise ValueError(f"out_dir must be <root>/{study}/<run_id>, got {out}")
        writer = RunWriter(study, run_id, root=out.parent.parent, params=all_params)
    else:
        root = Path(root)
        writer = RunWriter(
            study,
            run_id,
            root=root if root.is_absolute() else repo_root() / root,
            params=all_params,
        )
    writer.path.mkdir(parents=True, exist_ok=True)
    validity.begin(writer.path)  # an empty recorder for this run; saved by conclude()
    print(f"run     {writer.path}{'  (quick)' if quick else ''}")
    return StudyRun(writer, bool(quick), all_params, info)


def load_latest(
    studies: list[str], root: str | Path, run_missing: bool = True, quick: bool = True
) -> dict[str, tuple[pd.DataFrame, dict[str, Any]]]:
    """``{study: (rows, meta)}`` of each study's latest successful run under ``root``.

    A study without one is run first (in quick mode by default) when
    ``run_missing``; a study still without a run is left out.
    """
    from h3lab.bench.results import load_run, read_meta
    from h3lab.studies.runner import ensure_runs

    found = ensure_runs(studies, root, run_missing=run_missing, quick=quick)
    return {
        name: (load_run(path), read_meta(path)) for name, path in found.items() if path is not None
    }


def overrides(full: Mapping[str, Any], namespace: Mapping[str, Any]) -> dict[str, Any]:
    """The plan parameters a notebook was given that differ from the study's full defaults.

    The ``parameters`` cell shows the real (full-mode) defaults; only values
    changed from them (by papermill or by hand) override the plan, so
    ``quick=True`` still shrinks every size that was left at its default.
    """
    return {k: namespace[k] for k in full if k in namespace and namespace[k] != full[k]}


def select_sources(
    studies: list[str],
    root: str | Path,
    *,
    allow_mixed: bool = False,
    run_missing: bool = True,
) -> tuple[dict[str, tuple[pd.DataFrame, dict[str, Any]]], Any, str | None]:
    """A summary's inputs: ``({study: (rows, meta)}, Selection, refusal)``.

    ``provenance.select_runs``: the latest full, valid, clean study runs of
    ONE commit; anything else is refused (``refusal`` says why and nothing is
    loaded) unless ``allow_mixed``, and then ``Selection.notes`` says what was
    mixed. A study without any run is first run in quick mode when
    ``run_missing`` (which only a mixed selection can then use).
    """
    from h3lab.bench.results import load_run
    from h3lab.studies import provenance
    from h3lab.studies.runner import ensure_runs

    if run_missing:
        ensure_runs(studies, root, run_missing=True, quick=True)
    try:
        selection = provenance.select_runs(studies, root, allow_mixed=allow_mixed)
    except provenance.ProvenanceError as exc:
        return {}, None, str(exc)
    loaded = {
        name: (load_run(path), selection.metas[name]) for name, path in selection.runs.items()
    }
    return loaded, selection, None
