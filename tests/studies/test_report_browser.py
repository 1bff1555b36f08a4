"""The report in a real browser: headless Chromium loads every figure, logs no error."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from h3lab.studies import registry
from h3lab.studies.browser import check_page, find_chromium
from h3lab.studies.report import build_report
from h3lab.studies.runner import render_html

from .conftest import make_run, png_figure

pytestmark = pytest.mark.skipif(
    find_chromium() is None,
    reason="chromium is not installed (Debian: apt-get install chromium; .ci/run installs it)",
)


def keep_artifact(path: Path) -> None:
    """Copy a screenshot to $H3LAB_ARTIFACTS (CI uploads it) when that is set."""
    target = os.environ.get("H3LAB_ARTIFACTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(target) / path.name)


@pytest.fixture
def report(tmp_path: Path, studies_dir: Path) -> Path:
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

    root = tmp_path / "runs"
    alpha = make_run(root, "alpha", "20260101T000000000Z-aaaaaa", slug="01_alpha", figures=("one", "two"),
                     conclusion="| a | b |\n|---|---|\n| 1 | 2 |\n\nComputed **text**.")  # fmt: skip
    make_run(
        root, "summary", "20260102T000000000Z-bbbbbb", slug="00_summary", figures=("headline",)
    )
    # An executed notebook with a static chart, rendered the way the runner renders it.
    png = png_figure(tmp_path / "nbfig", "chart")["png"]
    import base64

    cell = new_code_cell("run.figure(chart, 'x')", execution_count=1)
    cell.outputs = [
        new_output("display_data", data={"image/png": base64.b64encode(png.read_bytes()).decode()})
    ]
    nb = new_notebook(cells=[new_markdown_cell("# Alpha\n\nmath $x^2$"), cell])
    nbformat.write(nb, str(alpha / "01_alpha.ipynb"))
    render_html(alpha / "01_alpha.ipynb")
    out = tmp_path / "report"
    build_report(root, out, registry.discover(studies_dir))
    return out


def test_every_figure_loads_and_the_console_is_clean(report: Path) -> None:
    shot = report / "screenshot.png"
    check = check_page(report / "index.html", shot)
    assert check.title == "h3lab studies report"
    assert len(check.images) == 3, check.images  # one, two, headline
    assert check.broken_images == []
    assert check.console_errors == []
    assert shot.stat().st_size > 10_000
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    keep_artifact(shot)


def test_the_notebook_html_opens_offline_without_errors(report: Path) -> None:
    check = check_page(report / "alpha" / "01_alpha.html")
    assert len(check.images) == 1 and check.broken_images == []
    assert check.console_errors == []


def test_a_missing_figure_is_reported(report: Path) -> None:
    (report / "alpha" / "figures" / "two.png").unlink()
    check = check_page(report / "index.html")
    assert len(check.broken_images) == 1 and check.broken_images[0].endswith("two.png")
    assert not check.ok


def test_console_errors_are_caught(tmp_path: Path) -> None:
    # The check must not be vacuous: a page that logs and throws is flagged.
    page = tmp_path / "bad.html"
    page.write_text(
        "<!DOCTYPE html><html><head><title>bad</title></head><body>"
        "<script>console.error('logged on purpose'); notDefinedAnywhere();</script></body></html>"
    )
    check = check_page(page)
    text = " ".join(check.console_errors)
    assert "logged on purpose" in text and "notDefinedAnywhere" in text
