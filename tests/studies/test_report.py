"""The HTML report: latest successful run per study, self-contained, escaped."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from h3lab.cli import main
from h3lab.studies import registry
from h3lab.studies.report import build_report, collect, conclusion_of

from .conftest import make_run


@pytest.fixture
def runs(tmp_path: Path, studies_dir: Path) -> Path:
    root = tmp_path / "runs"
    make_run(root, "alpha", "20260101T000000000Z-aaaaaa", slug="01_alpha", figures=("hit_ratio", "lookup"),
             conclusion="Alpha hits **42%** <script>alert(1)</script>", params={"quick": False, "sizes": [1, 2]},
             timestamp="2026-01-01T00:00:00+00:00")  # fmt: skip
    make_run(root, "alpha", "20260102T000000000Z-bbbbbb", slug="01_alpha", status="failed", figures=(),
             conclusion=None, timestamp="2026-01-02T00:00:00+00:00")  # fmt: skip
    make_run(root, "summary", "20260103T000000000Z-cccccc", slug="00_summary", figures=("headline",),
             conclusion=None, notebook_conclusion="| a | b |\n|---|---|\n| 1 | 2 |\n\nFrom the **tagged** cell.",
             timestamp="2026-01-03T00:00:00+00:00")  # fmt: skip
    return root


def test_collect_picks_the_latest_successful_run(runs: Path, studies_dir: Path) -> None:
    sections = {s.study.name: s for s in collect(runs, registry.discover(studies_dir))}
    alpha = sections["alpha"]
    assert alpha.run_dir is not None and alpha.run_dir.name == "20260101T000000000Z-aaaaaa"
    assert alpha.newer_failed == "20260102T000000000Z-bbbbbb"
    assert [p.stem for p in alpha.figures] == ["hit_ratio", "lookup"]  # drawing order
    assert sections["beta"].run_dir is None
    assert "tagged" in sections["summary"].conclusion


def test_report_content_and_self_containment(runs: Path, studies_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    index = build_report(runs, out, registry.discover(studies_dir))
    page = index.read_text()
    # order: the summary first (registry order), then alpha, then beta without a run
    assert page.index("id='summary'") < page.index("id='alpha'") < page.index("id='beta'")
    assert "No successful run yet" in page and "h3lab study run beta" in page
    assert "failed; this is the latest successful one" in page
    # conclusion rendered as Markdown, and escaped
    assert "<strong>42%</strong>" in page
    assert "<script>alert" not in page and "&lt;script&gt;" in page
    assert "<table>" in page and "<strong>tagged</strong>" in page
    # parameters, machine, links to executed notebooks and their HTML
    assert (
        "sizes" in page and "quick mode" not in page.split("id='alpha'")[1].split("</section>")[0]
    )
    assert "01_alpha.ipynb" in page and "01_alpha.html" in page and "notebook as HTML" in page
    # no script at all, nothing from the network, every local reference exists in the report folder
    assert "<script" not in page
    refs = re.findall(r"(?:src|href)='([^']+)'", page)
    assert refs
    for ref in refs:
        if ref.startswith("#"):
            continue
        assert not re.match(r"^[a-z]+:", ref), ref
        assert (out / ref).is_file(), ref
    assert (out / "alpha" / "figures" / "hit_ratio.png").stat().st_size > 0
    assert (out / "alpha" / "figures" / "hit_ratio.svg").stat().st_size > 0


def test_report_is_rebuilt_cleanly(runs: Path, studies_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    (out / "alpha" / "figures").mkdir(parents=True)
    (out / "alpha" / "figures" / "stale.png").write_bytes(b"old")
    build_report(runs, out, registry.discover(studies_dir))
    assert not (out / "alpha" / "figures" / "stale.png").exists()


def test_empty_runs_folder_still_gives_a_page(tmp_path: Path, studies_dir: Path) -> None:
    index = build_report(tmp_path / "nothing", tmp_path / "report", registry.discover(studies_dir))
    assert index.read_text().count("No successful run yet") == 3


def test_conclusion_fallbacks(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path, "x", "20260101T000000000Z-dddddd", conclusion=None, figures=(),
                       notebook_conclusion="From the cell.")  # fmt: skip
    assert conclusion_of(run_dir, run_dir / "01_x.ipynb") == "From the cell."
    (run_dir / "conclusion.md").write_text("From the file.\n")
    assert conclusion_of(run_dir, run_dir / "01_x.ipynb") == "From the file."
    assert conclusion_of(tmp_path, None) == ""


def test_cli_report(runs: Path, studies_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                    capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    monkeypatch.setenv(registry.ROOT_ENV, str(tmp_path))
    assert main(["study", "report", "--root", str(runs), "--out", str(tmp_path / "r")]) == 0
    assert str(tmp_path / "r" / "index.html") in capsys.readouterr().out
    assert main(["study", "list", "--root", str(runs)]) == 0
    listing = capsys.readouterr().out
    assert "alpha" in listing and "FAILED" in listing and "20260101T000000000Z-aaaaaa" in listing


def _stamped(run_dir: Path, *, quick: bool, status: str, sources: dict | None = None) -> Path:
    from h3lab.studies import provenance

    meta = json.loads((run_dir / "meta.json").read_text())
    meta.update(git_commit="1" * 40, git_dirty=False)
    meta["study_run"]["quick"] = quick
    meta["params"] = {
        **meta.get("params", {}),
        "quick": quick,
        **({"sources": sources} if sources else {}),
    }
    meta["validity"] = {"ok": status != "invalid", "status": status, "reasons": [], "checks": {}}
    provenance.stamp(meta, run_dir)
    (run_dir / "meta.json").write_text(json.dumps(meta))
    return run_dir


def test_export_readme_figures(tmp_path: Path) -> None:
    from h3lab.studies.report import export_figures

    root = tmp_path / "runs"
    good = "20260101T000000000Z-aaaaaa"
    _stamped(make_run(root, "alpha", good, figures=("hit_ratio",)), quick=False, status="valid")
    # Newer runs that must never reach the README: an invalid one, a quick one.
    newer_bad = make_run(root, "alpha", "20260102T000000000Z-bbbbbb", figures=("hit_ratio",))
    _stamped(newer_bad, quick=False, status="invalid")
    newer_quick = make_run(root, "alpha", "20260103T000000000Z-cccccc", figures=("hit_ratio",))
    _stamped(newer_quick, quick=True, status="valid")
    written = export_figures(root, tmp_path / "figs", (("alpha", "hit_ratio"),), cited=())
    assert sorted(p.name for p in written) == [
        "PROVENANCE.md",
        "alpha-hit_ratio.png",
        "alpha-hit_ratio.svg",
        "conclusion.md",
        "meta.json",
    ]
    assert all(p.stat().st_size > 0 for p in written)
    table = (tmp_path / "figs" / "PROVENANCE.md").read_text()
    row = next(line for line in table.splitlines() if line.startswith("| alpha-hit_ratio.png"))
    # run id, mode and validity of the run the figure came from: the valid full one
    assert good in row and "| full |" in row and "| valid |" in row
    # its evidence travels with the figures (data/runs is not committed)
    evidence = tmp_path / "figs" / "runs" / "alpha" / good
    assert json.loads((evidence / "meta.json").read_text())["run_id"] == good
    with pytest.raises(ValueError, match=r"no figures/missing\.png"):
        export_figures(root, tmp_path / "figs", (("alpha", "missing"),), cited=())
    with pytest.raises(ValueError, match="no successful run of 'beta'"):
        export_figures(root, tmp_path / "figs", (("beta", "x"),), cited=())
    only_invalid = make_run(root, "gamma", "20260101T000000000Z-dddddd", figures=("x",))
    _stamped(only_invalid, quick=False, status="invalid")
    with pytest.raises(ValueError, match=r"no full, valid, clean run of 'gamma'.*invalid"):
        export_figures(root, tmp_path / "figs", (("gamma", "x"),), cited=())


def test_export_copies_the_evidence_of_a_summarys_inputs(tmp_path: Path) -> None:
    from h3lab.studies.report import export_figures

    root = tmp_path / "runs"
    source = "20260101T000000000Z-eeeeee"
    _stamped(make_run(root, "alpha", source, figures=()), quick=False, status="valid")
    summary = make_run(root, "overview", "20260102T000000000Z-ffffff", figures=("head",))
    _stamped(summary, quick=False, status="valid", sources={"alpha": source})
    quoted = "20260101T000000000Z-gggggg"
    _stamped(make_run(root, "quoted", quoted, figures=()), quick=False, status="valid")
    export_figures(root, tmp_path / "figs", (("overview", "head"),), cited=("quoted",))
    assert (tmp_path / "figs" / "runs" / "alpha" / source / "meta.json").is_file()
    assert (tmp_path / "figs" / "runs" / "quoted" / quoted / "validity.json").is_file() is False
    assert (tmp_path / "figs" / "runs" / "quoted" / quoted / "meta.json").is_file()
    assert quoted in (tmp_path / "figs" / "PROVENANCE.md").read_text()
    assert (tmp_path / "figs" / "runs" / "overview" / summary.name / "conclusion.md").is_file()


def test_readme_passages_are_rewritten_from_the_runs_their_markers_name(tmp_path: Path) -> None:
    from h3lab.studies import readme

    root = tmp_path / "runs"
    good = "20260101T000000000Z-aaaaaa"
    run = make_run(root, "alpha", good, figures=(), conclusion="Policy X hits **61.1%**.")
    _stamped(run, quick=False, status="valid")
    newer_quick = make_run(root, "alpha", "20260102T000000000Z-bbbbbb", figures=(),
                           conclusion="A quick 99% that must not show.")  # fmt: skip
    _stamped(newer_quick, quick=True, status="valid")
    doc = tmp_path / "README.md"
    doc.write_text(
        "# Title\n\nProse the editors keep.\n\n"
        "<!-- h3lab:run alpha -->\nhand-typed 70%, stale\n<!-- /h3lab:run -->\n\nMore prose.\n"
    )
    assert readme.update(doc, root) == ["alpha"]
    text = doc.read_text()
    assert text.startswith("# Title\n\nProse the editors keep.\n\n<!-- h3lab:run alpha -->\n")
    assert text.endswith("<!-- /h3lab:run -->\n\nMore prose.\n")
    assert "Policy X hits **61.1%**." in text and "stale" not in text and "99%" not in text
    assert f"run {good}" in text and "commit 1111111111" in text and "full" in text
    assert readme.render(text, root) == text  # rewriting twice changes nothing

    # a study whose only run is invalid cannot be quoted
    bad = make_run(root, "beta", "20260101T000000000Z-cccccc", figures=())
    _stamped(bad, quick=False, status="invalid")
    doc.write_text(text + "<!-- h3lab:run beta -->\nx\n<!-- /h3lab:run -->\n")
    with pytest.raises(ValueError, match=r"no full, valid, clean run of 'beta'"):
        readme.update(doc, root)
    assert "Policy X" in doc.read_text()  # nothing half-written


def test_study_figures_refuses_a_missing_readme_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from h3lab.cli import main

    code = main(["study", "figures", "--root", str(tmp_path), "--out", str(tmp_path / "f"),
                 "--readme", str(tmp_path / "NOPE.md")])  # fmt: skip
    err = capsys.readouterr().err
    assert code != 0 and "NOPE.md: no such file" in err and len(err.strip().splitlines()) == 1
