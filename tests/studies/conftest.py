"""Fixtures of the studies tests: tiny notebooks and hand-made run folders."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from h3lab.studies import registry

TINY_PARAMS = """quick = False  # tiny sizes
run_id = None  # set by the runner
out_dir = None  # set by the runner
value = 3  # a number the notebook records
label = "x"  # a text the notebook records
fail = False  # raise in the middle, on purpose
sleep = 0.0  # seconds to sleep (timeout tests)
"""

TINY_BODY = [
    """from h3lab.studies import charts, notebook
import altair as alt
import pandas as pd

run = notebook.start("tiny", run_id=run_id, out_dir=out_dir, quick=quick, value=value, label=label)
run.add([{"metric": "value", "value": value * (2 if quick else 1), "unit": "count", "label": label}])""",
    """import time

time.sleep(sleep)
if fail:
    raise ValueError("boom on purpose")""",
    """chart = alt.Chart(pd.DataFrame({"x": [1, 2, 3], "y": [value, 1, 2]})).mark_line().encode(x="x", y="y")
run.figure(chart, "line")""",
    "run.write()",
    'run.conclude(f"The value was **{value}** and the label {label}.")',
]


def tiny_notebook(path: Path, body: list[str] | None = None) -> Path:
    """The tiny study (``body``: other code cells after the parameters, default ``TINY_BODY``)."""
    cells = [new_markdown_cell("# Tiny study\n\nA notebook for the runner tests.")]
    params = new_code_cell(TINY_PARAMS)
    params.metadata["tags"] = ["parameters"]
    cells.append(params)
    cells += [new_code_cell(src) for src in (TINY_BODY if body is None else body)]
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"tiny-{i}"
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return path


@pytest.fixture
def tiny_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A repo root (H3LAB_ROOT) with notebooks/99_tiny.ipynb."""
    tiny_notebook(tmp_path / "notebooks" / "99_tiny.ipynb")
    monkeypatch.setenv(registry.ROOT_ENV, str(tmp_path))
    return tmp_path


def png_figure(figures: Path, name: str, n: int = 3) -> dict[str, Path]:
    """A real (small) chart exported by the suite's own helper."""
    import altair as alt
    import pandas as pd

    from h3lab.studies import charts

    charts.setup()
    frame = pd.DataFrame({"x": list(range(n)), "y": [i * i for i in range(n)]})
    return charts.save_chart(alt.Chart(frame).mark_line().encode(x="x", y="y"), figures, name)


def make_run(
    root: Path,
    study: str,
    run_id: str,
    *,
    status: str = "ok",
    slug: str | None = None,
    figures: tuple[str, ...] = ("first",),
    conclusion: str | None = "A conclusion.",
    params: dict[str, Any] | None = None,
    timestamp: str = "2026-01-01T00:00:00+00:00",
    notebook_conclusion: str | None = None,
) -> Path:
    """A run folder as the runner leaves it (meta.json with study_run, results, figures...)."""
    from h3lab.bench.results import RunWriter

    params = params or {"quick": True, "size": 3}
    writer = RunWriter(study, run_id, root=root, params=params)
    writer.add_rows([{"metric": "m", "value": 1.0, "unit": "count"}])
    run_dir = writer.write()
    meta = json.loads((run_dir / "meta.json").read_text())
    meta["timestamp"] = timestamp
    slug = slug or f"01_{study}"
    meta["study_run"] = {"status": status, "quick": bool(params.get("quick")), "duration_s": 1.5, "output": f"{slug}.ipynb",
                         "error": None if status == "ok" else "nb: cell 2: ValueError: x"}  # fmt: skip
    (run_dir / "meta.json").write_text(json.dumps(meta))
    for name in figures:
        png_figure(run_dir / "figures", name)
    if conclusion is not None:
        (run_dir / "conclusion.md").write_text(conclusion)
    cells = [new_markdown_cell("# A study")]
    if notebook_conclusion is not None:
        cell = new_code_cell("run.conclude(...)")
        cell.metadata["tags"] = ["conclusion"]
        cell.outputs = [new_output("display_data", data={"text/markdown": notebook_conclusion})]
        cells.append(cell)
    nb = new_notebook(cells=cells)
    nbformat.write(nb, str(run_dir / f"{slug}.ipynb"))
    (run_dir / f"{slug}.html").write_text(
        "<!DOCTYPE html><html><head><title>nb</title></head><body>nb</body></html>"
    )
    return run_dir


@pytest.fixture
def studies_dir(tmp_path: Path) -> Path:
    """notebooks/ with two studies (01_alpha, 00_summary) for report tests."""
    nb_dir = tmp_path / "notebooks"
    for name, title in (
        ("00_summary", "Summary"),
        ("01_alpha", "Alpha study"),
        ("02_beta", "Beta study"),
    ):
        nb = new_notebook(cells=[new_markdown_cell(f"# {title}")])
        nb_dir.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, str(nb_dir / f"{name}.ipynb"))
    return nb_dir
