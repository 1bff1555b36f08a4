"""The study runner: parameters, run folder layout, failure reporting, kernel choice."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from h3lab.cli import main
from h3lab.studies import kernel, parameters, registry, runner

from .conftest import TINY_BODY, tiny_notebook

pytestmark = pytest.mark.notebooks


# -- parameters (no kernel) ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "default", "expected"),
    [
        ("20", "3", 20),
        ("2.5", "1.0", 2.5),
        ("2", "1.0", 2.0),
        ("true", "False", True),
        ("off", "True", False),
        ("[1, 2]", "None", [1, 2]),
        ('["lru", "lfu"]', "None", ["lru", "lfu"]),
        ("lru", "None", "lru"),
        ("none", "None", None),
        ("hello world", "'x'", "hello world"),
        ("12", "'x'", "12"),
        (7, "3", 7),
    ],
)
def test_coerce_types_values_like_the_default(raw: object, default: str, expected: object) -> None:
    value = parameters.coerce(raw, default)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize(("raw", "default"), [("maybe", "False"), ("many", "3")])
def test_coerce_refuses_what_does_not_fit(raw: str, default: str) -> None:
    with pytest.raises(ValueError):
        parameters.coerce(raw, default)


def test_resolve_parameters_validates_names(tiny_repo: Path) -> None:
    study = registry.get("tiny")
    assert parameters.resolve_parameters(study, {"value": "5", "fail": "yes"}) == {
        "value": 5,
        "fail": True,
    }
    with pytest.raises(ValueError, match=r"no parameter 'valeu'.*value"):
        parameters.resolve_parameters(study, {"valeu": "5"})
    with pytest.raises(ValueError, match="set by the runner"):
        parameters.resolve_parameters(study, {"out_dir": "/tmp/x"})


def test_a_notebook_without_the_contract_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cell = new_code_cell("quick = False")
    cell.metadata["tags"] = ["parameters"]
    (tmp_path / "notebooks").mkdir()
    nbformat.write(new_notebook(cells=[cell]), str(tmp_path / "notebooks" / "01_bare.ipynb"))
    monkeypatch.setenv(registry.ROOT_ENV, str(tmp_path))
    with pytest.raises(ValueError, match=r"lacks.*run_id.*out_dir"):
        runner.run_study(registry.get("bare"), root=tmp_path / "runs")


def test_cli_bad_parameter_is_one_line_exit_2(
    tiny_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["study", "run", "tiny", "-p", "nope", "1", "--root", str(tiny_repo / "runs")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no parameter 'nope'" in err[0]
    assert main(["study", "run", "missing-study"]) == 2


def test_ensure_kernel_runs_this_interpreter() -> None:
    from jupyter_client.kernelspec import KernelSpecManager

    name = kernel.ensure_kernel()
    spec = KernelSpecManager().get_kernel_spec(name)
    assert kernel._runs_this_interpreter(spec.argv[0])
    assert kernel._runs_this_interpreter(sys.executable)
    assert not kernel._runs_this_interpreter("/usr/bin/some-other-python")


def test_strip_remote_scripts() -> None:
    html = '<script src=""></script><script src="https://cdn.x/y.js"> </script><script src="a.js"></script><p>k</p>'
    assert runner.strip_remote_scripts(html) == '<script src="a.js"></script><p>k</p>'


# -- real runs (a kernel each) ------------------------------------------------------------------


def test_run_passes_parameters_and_lays_out_the_run_folder(tiny_repo: Path) -> None:
    study = registry.get("tiny")
    result = runner.run_study(
        study, {"value": "7", "label": "hello"}, quick=True, root=tiny_repo / "runs", progress=False
    )
    assert result.ok, result.failure and result.failure.describe()
    run_dir = tiny_repo / "runs" / "tiny" / result.run_id
    assert result.run_dir == run_dir
    for name in ("99_tiny.ipynb", "99_tiny.html", "results.parquet", "meta.json", "conclusion.md"):
        assert (run_dir / name).is_file(), name
    for ext in ("png", "svg"):
        assert (run_dir / "figures" / f"line.{ext}").stat().st_size > 0
    rows = pd.read_parquet(run_dir / "results.parquet")
    # value typed as int (7), quick injected (doubles it), label passed through
    assert rows["value"].tolist() == [14.0] and rows["label"].tolist() == ["hello"]
    assert set(rows["run_id"]) == {result.run_id} and set(rows["study"]) == {"tiny"}
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["params"]["value"] == 7 and meta["params"]["quick"] is True
    assert meta["git_commit"] is None or len(meta["git_commit"]) == 40
    record = meta["study_run"]
    assert record["status"] == "ok" and record["quick"] is True
    assert (
        record["parameters"]["out_dir"] == str(run_dir)
        and record["parameters"]["run_id"] == result.run_id
    )
    assert record["python"] == sys.executable
    assert "**7**" in (run_dir / "conclusion.md").read_text()
    executed = nbformat.read(str(run_dir / "99_tiny.ipynb"), as_version=4)
    first_output = "".join(o.get("text", "") for o in executed.cells[3].outputs)
    assert sys.executable in first_output  # the kernel says which interpreter it is
    html = (run_dir / "99_tiny.html").read_text()
    assert 'src="http' not in html and 'src=""' not in html
    assert runner.latest_ok_run("tiny", tiny_repo / "runs") == run_dir


def test_a_failing_cell_exits_non_zero_naming_notebook_cell_and_error(
    tiny_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tiny_repo / "runs"
    code = main(
        ["study", "run", "tiny", "-p", "fail", "true", "--root", str(root), "--no-progress"]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert "study tiny FAILED" in err
    assert "99_tiny.ipynb" in err
    assert "cell 3" in err  # markdown 0, parameters 1, setup 2, the raising cell 3
    assert "ValueError: boom on purpose" in err
    assert "partial output kept" in err
    (run_dir,) = (root / "tiny").iterdir()
    assert (run_dir / "99_tiny.ipynb").is_file()  # partial notebook kept for inspection
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["study_run"]["status"] == "failed"
    assert "boom on purpose" in meta["study_run"]["error"]
    assert runner.run_status(run_dir) == "failed"
    assert runner.latest_ok_run("tiny", root) is None  # a failed run is never "the latest"


def test_a_cell_timeout_is_a_failure_too(tiny_repo: Path) -> None:
    # Cell 2 is a light one and the setup cell (pandas, altair: seconds on a busy
    # machine) comes after the sleeping cell 3: the per-cell timeout can be short
    # and still only ever expire in cell 3.
    setup, sleeping, *rest = TINY_BODY
    tiny_notebook(
        tiny_repo / "notebooks" / "99_tiny.ipynb", ["import time", sleeping, setup, *rest]
    )
    study = registry.get("tiny")
    result = runner.run_study(
        study,
        {"sleep": "120"},
        root=tiny_repo / "runs",
        execution_timeout=5,
        progress=False,
        html=False,
    )
    assert not result.ok and result.failure is not None
    assert result.failure.cell_index == 3
    assert "Timeout" in result.failure.ename or "timed out" in result.failure.evalue.lower()
    assert result.notebook.is_file()


def test_a_busy_machine_invalidates_a_measuring_run_but_not_a_summary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A summary (00_*) measures nothing; what else the machine did meanwhile
    # says nothing about it (its inputs' validity does). A measuring study on
    # the same busy machine is invalid.
    from tests.studies.conftest import tiny_notebook

    tiny_notebook(tmp_path / "notebooks" / "99_tiny.ipynb")
    tiny_notebook(tmp_path / "notebooks" / "00_tiny_summary.ipynb")
    monkeypatch.setenv(registry.ROOT_ENV, str(tmp_path))
    busy = {"other_cpu_percent": 150.0, "busy_processes": [], "loadavg_1": 0.1, "cores": 2}
    monkeypatch.setattr(runner.MachineWatch, "summary", lambda self: dict(busy))
    measuring = runner.run_study(registry.get("tiny"), root=tmp_path / "runs")
    summary = runner.run_study(registry.get("tiny_summary"), root=tmp_path / "runs")
    assert measuring.validity.status == "invalid"
    assert "busy machine" in " ".join(measuring.validity.reasons)
    assert summary.validity.status != "invalid", summary.validity.reasons


def test_each_kernel_gets_socket_files_of_its_own() -> None:
    # Not kernel-ipc-N in the working directory, picked by looking for free names:
    # two study runs (or pytest-xdist workers) starting kernels at once took the same.
    manager = kernel.ipc_kernel_manager()
    first, second = manager(kernel_name="python3"), manager(kernel_name="python3")
    assert first.transport == second.transport == "ipc"
    assert first.ip != second.ip
    assert Path(first.ip).is_absolute() and Path(first.ip).parent != Path.cwd()
