"""Validity and provenance through the runner, manual runs, 00's input selection, CLI fixes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from h3lab.cli import main
from h3lab.studies import parameters, provenance, registry, runner
from tests.studies.conftest import make_run

CHECKED_PARAMS = """quick = False  # tiny sizes
run_id = None  # set by the runner
out_dir = None  # set by the runner
server_cpu = 95.0  # the server CPU the notebook 'measured'
routes = None  # type: Optional[int] a typed parameter
save = True  # save validity.json explicitly (else the kernel's exit does)
"""

CHECKED_BODY = [
    """from h3lab.studies import notebook, validity
run = notebook.start("checked", run_id=run_id, out_dir=out_dir, quick=quick)
rec = validity.reset()
rec.server_cpu(server_cpu, label="demo round 1")
rec.warn("demo: cv 12.0% above 10%")
run.add([{"metric": "throughput_rps", "value": 1000.0, "unit": "req/s"}])
run.write()
if save:
    validity.save(run.out_dir)""",
    'run.conclude("performance serves 2x more.")',
]


@pytest.fixture
def checked_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    params = new_code_cell(CHECKED_PARAMS)
    params.metadata["tags"] = ["parameters"]
    cells = [new_markdown_cell("# Checked study with a rather long title that must not be cut"),
             params, *(new_code_cell(src) for src in CHECKED_BODY)]  # fmt: skip
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"checked-{i}"
    (tmp_path / "notebooks").mkdir()
    nbformat.write(nb, str(tmp_path / "notebooks" / "98_checked.ipynb"))
    monkeypatch.setenv(registry.ROOT_ENV, str(tmp_path))
    return tmp_path


@pytest.mark.notebooks
def test_an_invalid_run_is_marked_and_claims_nothing(
    checked_repo: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    root = checked_repo / "runs"
    code = main(["study", "run", "checked", "-p", "server_cpu", "40", "--root", str(root),
                 "--no-progress", "--no-html"])  # fmt: skip
    out, err = capfd.readouterr()
    assert code == 0  # it ran; it is just not believable
    assert "without encryption" not in err  # the kernel listens on IPC, not TCP
    assert "(invalid)" in err and "the server used 40% of one core" in err
    (run_dir,) = (root / "checked").iterdir()
    assert out.strip() == str(run_dir)
    meta = json.loads((run_dir / "meta.json").read_text())
    v = meta["validity"]
    assert v["ok"] is False and v["status"] == "invalid"
    assert any("40% of one core" in r for r in v["reasons"])
    assert v["warnings"] == ["demo: cv 12.0% above 10%"]
    assert v["checks"]["recorded_by_notebook"] is True and "machine" in v["checks"]
    p = meta["provenance"]
    assert p["origin"] == "study" and p["mode"] == "full" and p["validity"] == "invalid"
    assert p["run_id"] == run_dir.name and p["machine"]["cores"]
    conclusion = (run_dir / "conclusion.md").read_text()
    assert conclusion.startswith("**Invalid run:** demo round 1: the server used 40%")
    assert "no difference is claimed" in conclusion
    assert "**Unstable samples:** demo: cv 12.0% above 10%" in conclusion
    assert "invalid" in provenance.caption(meta) and run_dir.name in provenance.caption(meta)


@pytest.mark.notebooks
def test_checks_reach_meta_even_if_the_notebook_never_saves(checked_repo: Path) -> None:
    result = runner.run_study(registry.get("checked"), {"save": "false"},
                              root=checked_repo / "runs", progress=False, html=False)  # fmt: skip
    assert result.ok
    v = json.loads((result.run_dir / "meta.json").read_text())["validity"]
    assert v["checks"]["recorded_by_notebook"] is True
    assert v["checks"]["server_cpu"][0]["status"] == "valid"
    assert v["status"] in ("unstable", "invalid") and "demo: cv 12.0% above 10%" in v["warnings"]


def test_a_badly_typed_parameter_fails_before_the_notebook_runs(
    checked_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = checked_repo / "runs"
    code = main(["study", "run", "checked", "-p", "routes", "abc", "--root", str(root)])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""  # no run folder printed as if it had succeeded
    assert err.strip().count("\n") == 0 and "routes" in err and "Optional[int]" in err
    assert not root.exists()
    study = registry.get("checked")
    assert parameters.resolve_parameters(study, {"routes": "12"}) == {"routes": 12}
    assert parameters.resolve_parameters(study, {"routes": "none"}) == {"routes": None}
    with pytest.raises(ValueError, match="expected a number"):
        parameters.resolve_parameters(study, {"server_cpu": "[1]"})


def test_check_type() -> None:
    assert parameters.check_type([1, 2], "list[int]") == [1, 2]
    assert parameters.check_type(3, "float") == 3.0
    with pytest.raises(ValueError):
        parameters.check_type(["a"], "Optional[list[int]]")
    with pytest.raises(ValueError):
        parameters.check_type(True, "int")
    assert parameters.check_type("x", None) == "x"


def _manual(root: Path, study: str, run_id: str) -> Path:
    """A run as a notebook executed by hand leaves it: meta.json without study_run."""
    from h3lab.bench.results import RunWriter

    writer = RunWriter(study, run_id, root=root, params={"quick": False})
    writer.add_rows([{"metric": "m", "value": 2.0, "unit": "count"}])
    return writer.write()


def test_a_manual_run_never_displaces_a_study_run(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    study_run = make_run(root, "alpha", "20260101T000000000Z-aaaaaa")
    manual = _manual(root, "alpha", "20260105T000000000Z-mmmmmm")  # newer
    assert provenance.origin(provenance.read_meta(manual)) == "manual"
    assert runner.latest_ok_run("alpha", root) == study_run
    assert runner.latest_ok_run("alpha", root, include_manual=True) == study_run
    only_manual = _manual(root, "beta", "20260105T000000000Z-nnnnnn")
    assert runner.latest_ok_run("beta", root) is None
    assert runner.latest_ok_run("beta", root, include_manual=True) == only_manual
    assert "manual run" in provenance.caption(provenance.read_meta(only_manual))


def _study_run(root: Path, study: str, run_id: str, commit: str, *, quick: bool = False,
               status: str = "valid", dirty: bool = False) -> Path:  # fmt: skip
    run_dir = make_run(root, study, run_id, params={"quick": quick})
    meta = json.loads((run_dir / "meta.json").read_text())
    meta.update(git_commit=commit, git_dirty=dirty)
    meta["study_run"]["quick"] = quick
    meta["validity"] = {"ok": status != "invalid", "status": status, "reasons": [], "checks": {}}
    provenance.stamp(meta, run_dir)
    (run_dir / "meta.json").write_text(json.dumps(meta))
    return run_dir


def test_select_runs_takes_one_commit_and_refuses_the_rest(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    a1 = _study_run(root, "alpha", "20260101T000000000Z-a00001", "1" * 40)
    b1 = _study_run(root, "beta", "20260101T000001000Z-b00001", "1" * 40)
    _study_run(root, "alpha", "20260102T000000000Z-a00002", "2" * 40)  # beta lacks commit 2
    _study_run(root, "beta", "20260102T000001000Z-b00002", "2" * 40, quick=True)
    _study_run(root, "beta", "20260102T000002000Z-b00003", "2" * 40, status="invalid")
    sel = provenance.select_runs(["alpha", "beta"], root)
    assert sel.runs == {"alpha": a1, "beta": b1} and sel.commit == "1" * 40 and not sel.mixed
    assert "commit 1111111111" in sel.describe()
    with pytest.raises(provenance.ProvenanceError, match=r"beta: usable at 1111111111"):
        provenance.select_runs(["alpha", "beta"], root, commit="2")
    mixed = provenance.select_runs(["alpha", "beta", "gamma"], root, allow_mixed=True)
    assert mixed.mixed and mixed.runs["alpha"].name.endswith("a00002")
    assert any("gamma: no run" in n for n in mixed.notes)
    with pytest.raises(provenance.ProvenanceError, match="gamma: none usable"):
        provenance.select_runs(["alpha", "gamma"], root)


def test_select_runs_refuses_quick_invalid_and_dirty(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    _study_run(root, "alpha", "20260101T000000000Z-a00001", "1" * 40, quick=True)
    _study_run(root, "beta", "20260101T000000000Z-b00001", "1" * 40, status="invalid")
    _study_run(root, "gamma", "20260101T000000000Z-c00001", "1" * 40, dirty=True)
    for study, why in (("alpha", "quick"), ("beta", "invalid"), ("gamma", "dirty checkout")):
        with pytest.raises(provenance.ProvenanceError, match=why):
            provenance.select_runs([study], root)
    sel = provenance.select_runs(["alpha", "beta", "gamma"], root, allow_mixed=True)
    assert sel.mixed and "**Mixed inputs (allow_mixed):**" in sel.describe()
    assert "alpha 20260101T000000000Z-a00001 at 1111111111 (quick)" in sel.describe()


def test_caption_and_footer(tmp_path: Path) -> None:
    run_dir = _study_run(tmp_path, "alpha", "20260101T000000000Z-a00001", "1" * 40)
    meta = provenance.read_meta(run_dir)
    text = provenance.caption(meta)
    assert text.startswith("run 20260101T000000000Z-a00001 · commit 1111111111 · ")
    assert text.endswith(" · full · valid")
    import altair as alt
    import pandas as pd

    chart = alt.Chart(pd.DataFrame({"x": [1, 2], "y": [3, 4]})).mark_line().encode(x="x", y="y")
    stamped = provenance.footer(chart, meta)
    assert text in json.dumps(stamped.to_dict(), ensure_ascii=False)
    stamped.save(str(tmp_path / "stamped.svg"))  # renders (vl-convert), caption included
    assert "commit 1111111111" in (tmp_path / "stamped.svg").read_text()


def test_study_list_survives_a_closed_pipe_and_keeps_titles(checked_repo: Path) -> None:
    env = {"H3LAB_ROOT": str(checked_repo), "PYTHONPATH": str(Path(__file__).parents[2])}
    import os

    env = {**os.environ, **env}
    done = subprocess.run(
        f"{sys.executable} -m h3lab.cli study list | head -1",
        shell=True, capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert "BrokenPipeError" not in done.stderr and "Traceback" not in done.stderr
    full = subprocess.run([sys.executable, "-m", "h3lab.cli", "study", "list"], env=env,
                          capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    assert "Checked study with a rather long title that must not be cut" in full.stdout


def test_report_check_without_chromium_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from h3lab.studies import browser

    monkeypatch.setattr(browser, "find_chromium", lambda: None)
    monkeypatch.setattr(browser.shutil, "which", lambda name: None)
    code = main(["study", "report", "--root", str(tmp_path / "runs"),
                 "--out", str(tmp_path / "report"), "--check"])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "chromium" in err[0].lower()
