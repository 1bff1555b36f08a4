"""Every study notebook: committed clean, and runnable end to end in quick mode.

The execution tests run each notebook through papermill with ``quick=True``
into one temporary runs folder; the summaries (``00_*``) read the runs just
made, as after ``h3lab study all`` (they wait for them under pytest-xdist).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from h3lab.studies import headline, parameters, registry, runner

STUDIES = registry.run_order(registry.discover())
IDS = [s.slug for s in STUDIES]


def test_the_suite_is_there() -> None:
    assert {s.number for s in STUDIES} >= {f"{i:02d}" for i in range(8)}


# -- hygiene (no kernel) -------------------------------------------------------------------------


@pytest.mark.parametrize("study", STUDIES, ids=IDS)
def test_committed_without_outputs(study: registry.Study) -> None:
    nb = nbformat.read(str(study.path), as_version=4)
    nbformat.validate(nb)
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        assert cell.get("outputs") == [], f"{study.path.name} cell {index} has outputs"
        assert cell.get("execution_count") is None, (
            f"{study.path.name} cell {index} has an execution count"
        )
        tags = cell.get("metadata", {}).get("tags", [])
        assert "injected-parameters" not in tags, (
            f"{study.path.name} was saved after a papermill run"
        )
    assert "papermill" not in nb.metadata, f"{study.path.name} carries papermill run metadata"


@pytest.mark.parametrize("study", STUDIES, ids=IDS)
def test_exactly_one_parameters_cell_with_the_contract(study: registry.Study) -> None:
    nb = nbformat.read(str(study.path), as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{study.path.name}: {len(tagged)} cells tagged 'parameters'"
    assert tagged[0].cell_type == "code"
    params = parameters.notebook_parameters(study.path)
    for name in ("quick", "run_id", "out_dir"):
        assert name in params, f"{study.path.name}: parameters cell lacks {name}"
    assert params["quick"]["default"] == "False"
    assert params["run_id"]["default"] == params["out_dir"]["default"] == "None"
    assert nb.metadata.get("kernelspec", {}).get("name"), "metadata.kernelspec must name a kernel"
    assert any("conclusion" in c.get("metadata", {}).get("tags", []) for c in nb.cells), (
        "no cell tagged conclusion"
    )


# -- execution (quick) ------------------------------------------------------------------------------

# Under pytest-xdist (``make test``) these runs happen on several workers at once.
# They all write into one runs folder shared by the session's workers (the
# parent of a worker's basetemp), and each leaves a marker when its run is over
# (ok or not). The readers -- the summary notebook, which reads the measurements'
# runs, and the report test, which reads them all -- first wait for the runs of
# this session they read; tests/conftest.py hands them out once those should be
# done. Run alone (``-k 00_``), the summary has nothing to wait for and runs its
# missing inputs itself, as ``h3lab study all`` would.

READERS_WAIT_S = 480
"""How long a reader waits for the runs it reads (under the tests' 600 s timeout)."""


@pytest.fixture(scope="session")
def runs_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    root = shared / "study-runs"
    root.mkdir(exist_ok=True)
    return root


def _done_marker(runs_root: Path, slug: str) -> Path:
    return runs_root.parent / "study-runs-done" / slug


def _selected_runs(session: pytest.Session) -> set[str]:
    """The notebooks whose quick run this session makes (on whichever worker)."""
    return {
        item.callspec.params["study"].slug
        for item in session.items
        if isinstance(item, pytest.Function) and item.function is test_runs_in_quick_mode
    }


def _wait_for_runs(runs_root: Path, slugs: set[str]) -> None:
    deadline = time.monotonic() + READERS_WAIT_S
    while missing := sorted(s for s in slugs if not _done_marker(runs_root, s).exists()):
        if time.monotonic() > deadline:
            pytest.fail(f"the quick runs of {missing} did not finish in {READERS_WAIT_S} s")
        time.sleep(0.25)


def _inputs(study: registry.Study) -> set[str]:
    """The studies whose runs ``study`` reads (a summary: its sources; others: none)."""
    if not study.is_summary:
        return set()
    names = set(headline.SOURCES) if study.name == headline.STUDY else None
    return {s.slug for s in STUDIES if not s.is_summary and (names is None or s.name in names)}


@pytest.mark.notebooks
@pytest.mark.timeout(600)
@pytest.mark.parametrize("study", STUDIES, ids=IDS)
def test_runs_in_quick_mode(
    study: registry.Study, runs_root: Path, request: pytest.FixtureRequest
) -> None:
    _wait_for_runs(runs_root, _inputs(study) & _selected_runs(request.session))
    try:
        result = runner.run_study(study, quick=True, root=runs_root, progress=False)
    finally:
        marker = _done_marker(runs_root, study.slug)
        marker.parent.mkdir(exist_ok=True)
        marker.touch()
    assert result.ok, result.failure.describe() if result.failure else "failed"
    print(f"{study.slug}: {result.duration_s:.1f} s")
    run_dir = result.run_dir
    assert run_dir == runs_root / study.name / result.run_id
    assert (run_dir / study.path.name).is_file() and (run_dir / f"{study.slug}.html").is_file()
    rows = pd.read_parquet(run_dir / "results.parquet")
    assert len(rows) > 0 and set(rows["run_id"]) == {result.run_id}
    pngs = sorted((run_dir / "figures").glob("*.png"))
    assert pngs, "no figures"
    for png in pngs:
        assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 1000, png.name
        svg = png.with_suffix(".svg")
        assert svg.is_file() and svg.stat().st_size > 1000 and "<svg" in svg.read_text()[:200], (
            svg.name
        )
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["study_run"]["status"] == "ok" and meta["study_run"]["quick"] is True
    assert meta["params"]["quick"] is True
    for key in ("git_commit", "machine", "python", "h3lab_version", "cpu_model"):
        assert key in meta, key
    assert (run_dir / "conclusion.md").read_text().strip()
    assert runner.check_outputs(run_dir) == []


@pytest.mark.notebooks
@pytest.mark.timeout(600)
def test_report_of_these_runs_in_a_browser(runs_root: Path, request: pytest.FixtureRequest) -> None:
    """The report of the real quick runs above: every figure loads in Chromium, no console error."""
    from h3lab.studies.browser import check_page, find_chromium
    from h3lab.studies.report import build_report

    from .test_report_browser import keep_artifact

    if find_chromium() is None:
        pytest.skip(
            "chromium is not installed (Debian: apt-get install chromium; .ci/run installs it)"
        )
    _wait_for_runs(runs_root, _selected_runs(request.session))
    if not any(runner.latest_ok_run(s.name, runs_root) for s in STUDIES):
        pytest.skip("no quick run to report on (run the whole module)")
    out = runs_root.parent / "report"
    index = build_report(runs_root, out)
    check = check_page(index, out / "screenshot-quick-report.png")
    n_figures = sum(
        len(
            list(
                (runner.latest_ok_run(s.name, runs_root) or Path("/nonexistent")).glob(
                    "figures/*.png"
                )
            )
        )
        for s in STUDIES
    )
    assert len(check.images) == n_figures > 0
    assert check.broken_images == [] and check.console_errors == []
    keep_artifact(out / "screenshot-quick-report.png")
    # every executed notebook, rendered to HTML, opens offline without errors too
    for html in sorted(out.glob("*/*.html"))[:3]:
        page = check_page(html)
        assert page.broken_images == [] and page.console_errors == [], html
