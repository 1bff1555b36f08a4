"""``h3lab bench trees``: refs, the paired comparison, the old-tree runner, one real run."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from h3lab.bench.results import load_run
from h3lab.bench.trees import refs
from h3lab.bench.trees.compare import (
    case_label,
    compare,
    comparison_rows,
    conclusion_text,
    distinguishing_columns,
    format_table,
    measured_rows,
)
from h3lab.bench.trees.measure import ArmRun, run_child
from h3lab.bench.trees.refs import CURRENT, Tree, TreeError
from h3lab.cli import main
from h3lab.studies import validity

ROOT = refs.repo_root()
BEFORE = "03e8fa5"  # the README's "before" commit


def _git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=False
    )


needs_git = pytest.mark.skipif(
    shutil.which("git") is None or _git("rev-parse", "HEAD").returncode != 0,
    reason="needs git and a git checkout of h3lab",
)


# -- refs ---------------------------------------------------------------------------------------


@needs_git
def test_a_commit_ref_resolves_to_its_full_hash() -> None:
    head = _git("rev-parse", "HEAD").stdout.strip()
    tree = refs.resolve("HEAD", ROOT)
    assert (tree.kind, tree.ref, tree.commit, tree.path) == ("commit", "HEAD", head, None)
    short = refs.resolve(head[:10], ROOT)
    assert short.commit == head and short.label == head[:10]


@needs_git
def test_an_unknown_ref_is_one_line_naming_it() -> None:
    with pytest.raises(TreeError) as info:
        refs.resolve("no-such-branch-h3lab", ROOT)
    assert (
        str(info.value) == f"--against no-such-branch-h3lab: not a commit of {ROOT} nor a directory"
    )


def test_a_directory_without_h3lab_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TreeError, match="has no h3lab package"):
        refs.resolve(str(tmp_path), ROOT)


def test_a_directory_with_h3lab_is_a_tree(tmp_path: Path) -> None:
    (tmp_path / "h3lab").mkdir()
    (tmp_path / "h3lab" / "__init__.py").write_text("")
    tree = refs.resolve(str(tmp_path), ROOT)
    assert tree.kind == "directory" and tree.path == tmp_path.resolve()
    assert tree.commit is None  # not a checkout of its own: no commit claimed


def test_a_ref_given_twice_is_refused(tmp_path: Path) -> None:
    (tmp_path / "h3lab").mkdir()
    (tmp_path / "h3lab" / "__init__.py").write_text("")
    with pytest.raises(TreeError, match="given twice"):
        refs.resolve_all([str(tmp_path), str(tmp_path)], ROOT)
    with pytest.raises(TreeError, match="given twice"):
        refs.resolve_all([CURRENT], ROOT)


@needs_git
def test_export_writes_the_commit_and_removes_it_after() -> None:
    trees = refs.resolve_all(["HEAD"], ROOT)
    assert trees[0].label == CURRENT and trees[0].path == ROOT
    with refs.exported(trees, ROOT) as ready:
        path = ready[1].path
        assert path is not None and path != ROOT
        assert (path / "h3lab" / "__init__.py").is_file()
        assert ready[0] == trees[0]  # the working tree is used in place
    assert not path.exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--against", "no-such-branch-h3lab"], "not a commit of"),
        (["--against", "HEAD", "--rounds", "4"], "--rounds must be >= 5, got 4"),
        (["--against", "HEAD", "--quick", "--rounds", "2"], "--rounds must be >= 3 with --quick"),
        (["--against", "HEAD", "--target", "pool", "--presets", "baseline"], "takes no presets"),
        (["--against", "HEAD", "--presets", "fastest"], "--presets must be among"),
        (["--against", "HEAD", "--cpu", "4096"], "--cpu 4096 is not an allowed CPU"),
    ],
)
def test_bad_arguments_are_one_line_exit_2(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if "no-such-branch-h3lab" in argv and shutil.which("git") is None:
        pytest.skip("needs git")
    code = main(["bench", "trees", *argv, "--root", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("h3lab bench: error: "), err
    assert message in err and "Traceback" not in err
    assert not any(tmp_path.iterdir())  # nothing measured, nothing stored


# -- the comparison, on planted rows ---------------------------------------------------------


def _row(strategy: str, param: Any, value: float, **columns: Any) -> dict[str, Any]:
    return {
        "target": "protocol",
        "strategy": strategy,
        "param": param,
        "workload": "pipelined-keepalive",
        "metric": "ns_per_op",
        "value": value,
        "unit": "ns",
        "loops": 8,
        **columns,
    }


def _runs(arm: str, per_round: list[dict[str, float]], **columns: Any) -> list[ArmRun]:
    """One ArmRun per round; each case gets three samples around its value."""
    out = []
    for rnd, cases in enumerate(per_round):
        rows = []
        for case, value in cases.items():
            strategy, param = case.split(" ")
            for jitter in (0.99, 1.0, 1.01):
                rows.append(_row(strategy, param, value * jitter, **columns))
            rows.append({**_row(strategy, param, 0.5), "metric": "hit_ratio"})  # not timing
        out.append(ArmRun(arm, rnd, rows))
    return out


def test_paired_ratios_over_rounds_and_the_cases_left_out() -> None:
    drift = [1.0, 1.3, 0.8, 1.1, 0.9]  # the machine slows and speeds up: pairing removes it
    current = _runs(
        CURRENT,
        [
            {"performance /plaintext": 500 * d, "raw /plaintext": 100 * d, "task-start send": 50}
            for d in drift
        ],
        router="compiled",
    )
    before = _runs(
        "03e8fa5",
        [
            {
                "performance /plaintext": 1000 * d * (1.02 if i % 2 else 0.98),
                "raw /plaintext": 100 * d,
            }
            for i, d in enumerate(drift)
        ],
        router="trie",  # the preset changed its router: still the same case
    )
    result = compare([*current, *before], [CURRENT, "03e8fa5"])
    by_case = {s.case: s for s in result.cases}
    fast = by_case["performance /plaintext"].comparisons["03e8fa5"]
    assert fast.ratio == pytest.approx(2.0, rel=0.01)  # ref time / current time
    assert fast.significant and fast.lo > 1.9 and fast.hi < 2.1 and fast.n == 5
    assert re.match(
        r"(1\.9\d|2|2\.0\d)x faster \[", by_case["performance /plaintext"].sentence("03e8fa5")
    )
    same = by_case["raw /plaintext"].comparisons["03e8fa5"]
    assert same.ratio == pytest.approx(1.0) and not same.significant
    assert result.only_current == {"03e8fa5": ["task-start send"]}
    assert result.only_ref == {"03e8fa5": []}
    assert "03e8fa5" not in by_case["task-start send"].comparisons
    assert by_case["performance /plaintext"].medians[CURRENT].value == pytest.approx(500.0)

    table = format_table(result, {"03e8fa5": "commit 03e8fa5"})
    assert "x faster [" in table and "left out, only in current: task-start send" in table
    text = conclusion_text(result, "protocol", {"03e8fa5": "commit 03e8fa5"})
    assert re.search(r"- performance /plaintext: [\d.]+x faster \[", text)
    assert "not compared (not in both trees): task-start send" in text

    stored = measured_rows([*current, *before])
    medians = [r for r in stored if r["metric"] == "ns_per_op"]
    assert len(medians) == 5 * 3 + 5 * 2  # arm x round x case
    assert {r["router"] for r in medians} == {"compiled", "trie"}
    assert sum(r["metric"] == "ns_per_op_sample" for r in stored) == 3 * len(medians)
    (ratio,) = [r for r in comparison_rows(result, "protocol") if r["case"].startswith("perf")]
    assert ratio["against"] == "03e8fa5" and ratio["value"] == pytest.approx(2.0, rel=0.01)


def test_a_slower_current_tree_reads_slower() -> None:
    current = _runs(CURRENT, [{"performance /json": v} for v in (1200, 1190, 1210)])
    before = _runs("old", [{"performance /json": v} for v in (1000, 1001, 999)])
    (summary,) = compare([*current, *before], [CURRENT, "old"]).cases
    assert summary.sentence("old").startswith("1.2x slower [")


def test_holm_across_refs_raises_the_p_values() -> None:
    rounds = [1.0, 1.1, 0.95, 1.05, 1.0]
    runs = _runs(CURRENT, [{"baseline /json": 100 * d} for d in rounds])
    runs += _runs(
        "a", [{"baseline /json": 103 * d * (1 + 0.01 * (i % 3))} for i, d in enumerate(rounds)]
    )
    runs += _runs(
        "b", [{"baseline /json": 130 * d * (1 + 0.02 * (i % 2))} for i, d in enumerate(rounds)]
    )
    (summary,) = compare(runs, [CURRENT, "a", "b"]).cases
    p = {ref: summary.comparisons[ref].p_value for ref in ("a", "b")}
    assert 0 < p["b"] < p["a"]  # b differs more clearly: Holm multiplies its p by 2
    assert summary.p_holm["b"] == pytest.approx(min(1.0, 2 * p["b"]))
    assert summary.p_holm["a"] == pytest.approx(max(summary.p_holm["b"], p["a"]))
    assert summary.comparisons["b"].significant == (summary.p_holm["b"] < 0.05)


def test_only_columns_that_tell_cases_apart_in_one_run_join_the_label() -> None:
    rows = [
        _row("linear", 100, 1.0, cached=False, router="linear"),
        _row("linear", 100, 1.0, cached=True, router="linear"),
    ]
    assert distinguishing_columns(rows) == ("cached",)
    key = ("router", "linear", 100, "zipf", True)
    assert case_label(key, ["cached"]) == "linear param=100 cached=True"


# -- the runner works on the README's "before" commit ------------------------------------------


@needs_git
@pytest.mark.timeout(60)
def test_the_runner_measures_03e8fa5_which_had_no_json_output() -> None:
    if _git("cat-file", "-e", f"{BEFORE}^{{commit}}").returncode != 0:
        pytest.skip(f"{BEFORE} is not in this clone's history (shallow clone?)")
    trees = refs.resolve_all([BEFORE], ROOT)
    with refs.exported(trees, ROOT) as ready:
        payload = run_child(ready[1], "cache", quick=True, cpu=None, kwargs={"sizes": [16]})
        assert Path(payload["h3lab_file"]).is_relative_to(ready[1].path)
    timing = [r for r in payload["rows"] if r["metric"] == "ns_per_op"]
    assert timing and {r["cache_size"] for r in timing} == {16}
    assert all(r["value"] > 0 for r in timing)


def test_a_child_failure_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "h3lab" / "bench").mkdir(parents=True)
    (tmp_path / "h3lab" / "__init__.py").write_text("")
    (tmp_path / "h3lab" / "bench" / "__init__.py").write_text("")
    (tmp_path / "h3lab" / "bench" / "micro.py").write_text("BENCHES = {'pool': None}\n")
    tree = Tree("stub", str(tmp_path), "directory", None, None, tmp_path)
    with pytest.raises(TreeError) as info:
        run_child(tree, "protocol", quick=True, cpu=None)
    assert str(info.value) == (
        "stub: the protocol run failed: this tree has no micro target 'protocol' (it has ['pool'])"
    )


# -- one real run ---------------------------------------------------------------------------------


def _state(other_cpu: float) -> Any:
    def machine_state(interval: float = 0.5, **_: Any) -> dict[str, Any]:
        import time

        time.sleep(interval)
        busy = [{"pid": 1, "name": "busy-loop", "cpu_percent": other_cpu}] if other_cpu else []
        return {
            "loadavg_1": 0.0,
            "cores": 2,
            "other_cpu_percent": other_cpu,
            "busy_processes": busy,
        }

    return machine_state


@needs_git
@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize("busy", [False, True], ids=["quiet", "busy"])
def test_a_quick_run_against_head_is_stored_with_refs_and_validity(
    busy: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The machine watch is planted (the test machine is never quiet): a busy
    # neighbour must make the run invalid and its conclusion claim nothing.
    monkeypatch.setattr(validity, "machine_state", _state(150.0 if busy else 0.0))
    code = main(
        [
            "bench",
            "trees",
            "--target",
            "pool",
            "--quick",
            "--against",
            "HEAD",
            "--root",
            str(tmp_path),
            "--run-id",
            "e2e",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    run = tmp_path / "bench-trees" / "e2e"
    assert f"results: {run}" in out and "current vs HEAD" in out
    frame = load_run(run)
    medians = frame[frame["metric"] == "ns_per_op"]
    assert set(medians["arm"]) == {CURRENT, "HEAD"}
    assert sorted(set(medians["round"])) == [0, 1, 2]
    assert (medians["value"] > 0).all()
    per_arm = medians.groupby("arm")["case"].nunique()
    assert per_arm[CURRENT] == per_arm["HEAD"] > 0
    ratios = frame[frame["metric"] == "time_ratio"]
    assert len(ratios) == per_arm[CURRENT] and set(ratios["against"]) == {"HEAD"}

    meta = json.loads((run / "meta.json").read_text())
    head = _git("rev-parse", "HEAD").stdout.strip()
    assert [(t["arm"], t["ref"], t["commit"]) for t in meta["trees"]] == [
        (CURRENT, "working tree", head),
        ("HEAD", "HEAD", head),
    ]
    saved = json.loads((run / "validity.json").read_text())
    assert meta["validity"]["status"] == saved["status"]
    assert len(saved["checks"]["machine"]) == 6  # one per child: 2 trees x 3 rounds
    conclusion = (run / "conclusion.md").read_text()
    if busy:
        assert saved["status"] == "invalid" and "busy-loop" in saved["reasons"][0]
        assert "INVALID RUN" in out
        assert "**Invalid run:**" in conclusion and "> Against HEAD" in conclusion
        assert "conclusion: none claimed" in out and "\nAgainst HEAD" not in out
    else:
        assert saved["status"] in ("valid", "unstable")
        assert "INVALID RUN" not in out and "**Invalid run:**" not in conclusion
        assert "\nAgainst HEAD (commit " in conclusion and "\nAgainst HEAD (commit " in out
