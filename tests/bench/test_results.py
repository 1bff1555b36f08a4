"""The results store: write -> load round trip, metadata, schema versioning."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from h3lab import Config
from h3lab.bench.machine import git_info, machine_info
from h3lab.bench.results import (
    SCHEMA_COLUMNS,
    SCHEMA_VERSION,
    RunWriter,
    config_columns,
    latest_run,
    load_runs,
    new_run_id,
)

pd = pytest.importorskip("pandas")


def rows(n: int = 3, **extra: object) -> list[dict]:
    return [
        {
            "metric": "ns_per_op",
            "value": 100.0 + i,
            "unit": "ns",
            "repetition": i,
            "workload": "zipf",
            **extra,
        }
        for i in range(n)
    ]


def test_run_id_is_sortable_and_unique() -> None:
    ids = [new_run_id() for _ in range(20)]
    assert len(set(ids)) == 20
    assert all(re.fullmatch(r"\d{8}T\d{9}Z-[0-9a-f]{6}", i) for i in ids)
    assert ids[0][:15] <= ids[-1][:15]


def test_write_read_round_trip(tmp_path: Path) -> None:
    config = Config.preset("performance")
    writer = RunWriter(
        "router", root=tmp_path, params={"sizes": (10, 100), "config": config.flat()}
    )
    writer.add_rows(rows(**config_columns(config), target="router", param=10))
    # mixed extra types (param int and str) and partial columns must still write
    writer.add_rows(rows(2, target="dispatch", param="/json", loop_mode="inline"))
    path = writer.write()
    assert path == tmp_path / "router" / writer.run_id
    assert (path / "results.parquet").is_file() and (path / "meta.json").is_file()

    frame = load_runs("router", root=tmp_path)
    assert len(frame) == 5
    assert set(SCHEMA_COLUMNS) <= set(frame.columns)
    assert {"target", "param", "loop_mode", "preset", "timestamp", "git_commit"} <= set(
        frame.columns
    )
    assert set(frame["study"]) == {"router"} and set(frame["run_id"]) == {writer.run_id}
    first = frame.iloc[0]
    assert (
        first["router"] == "hybrid" and first["cache_size"] == 4096 and first["pool_size"] == 1024
    )
    assert first["memory_strategy"] == "performance" and first["middleware"] == "fast"
    assert list(frame["value"]) == [100.0, 101.0, 102.0, 100.0, 101.0]
    assert list(frame["param"]) == ["10", "10", "10", "/json", "/json"]
    assert frame["t"].notna().all()
    assert pd.isna(frame.iloc[4]["router"])


def test_meta_json_content(tmp_path: Path) -> None:
    writer = RunWriter("cache", run_id="fixed-run", root=tmp_path, params={"fractions": [0.1, 0.5]})
    writer.add_rows(rows())
    meta = json.loads((writer.write() / "meta.json").read_text())
    assert meta["schema_version"] == SCHEMA_VERSION == 1
    assert meta["study"] == "cache" and meta["run_id"] == "fixed-run"
    assert meta["params"] == {"fractions": [0.1, 0.5]}
    assert meta["n_rows"] == 3
    for key in (
        "git_commit",
        "git_dirty",
        "h3lab_version",
        "python",
        "uvloop_version",
        "httptools_version",
        "cpu_model",
        "cores",
        "cpu_affinity",
        "timestamp",
        "hostname",
        "platform",
    ):
        assert key in meta, key
    assert meta["h3lab_version"] and meta["python"].count(".") >= 1
    assert meta["cores"] >= 1


def test_runs_from_several_studies_and_days_read_together(tmp_path: Path) -> None:
    first = RunWriter("router", root=tmp_path).add_rows(rows(2)).write()
    second = RunWriter("router", root=tmp_path).add_rows(rows(1)).write()
    RunWriter("pool", root=tmp_path).add_rows(rows(4)).write()
    assert latest_run("router", root=tmp_path) == second
    assert latest_run("nothing", root=tmp_path) is None
    router = load_runs("router", root=tmp_path)
    assert len(router) == 3 and router["run_id"].nunique() == 2
    assert router["run_id"].iloc[0] == first.name  # oldest first
    everything = load_runs(root=tmp_path)
    assert len(everything) == 7 and set(everything["study"]) == {"router", "pool"}
    empty = load_runs("absent", root=tmp_path)
    assert empty.empty and set(SCHEMA_COLUMNS) <= set(empty.columns)


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = RunWriter("router", root=tmp_path).add_rows(rows()).write()
    meta = json.loads((path / "meta.json").read_text())
    meta["schema_version"] = SCHEMA_VERSION + 1
    (path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="upgrade h3lab"):
        load_runs("router", root=tmp_path)


def test_bad_rows_and_names_are_refused(tmp_path: Path) -> None:
    writer = RunWriter("s", root=tmp_path)
    with pytest.raises(ValueError, match="metric"):
        writer.add_rows([{"value": 1.0}])
    with pytest.raises(ValueError, match="number"):
        writer.add_rows([{"metric": "x", "value": "fast"}])
    with pytest.raises(ValueError, match="study"):
        RunWriter("../escape", root=tmp_path)
    with pytest.raises(ValueError, match="run_id"):
        RunWriter("ok", run_id="a/b", root=tmp_path)


def test_crashed_run_without_results_is_skipped(tmp_path: Path) -> None:
    RunWriter("router", root=tmp_path).add_rows(rows()).write()
    broken = RunWriter("router", root=tmp_path).add_rows(rows()).write()
    (broken / "results.parquet").unlink()
    with pytest.warns(UserWarning, match="no results.parquet"):
        frame = load_runs("router", root=tmp_path)
    assert len(frame) == 3


def test_config_columns() -> None:
    cols = config_columns(Config.preset("baseline"))
    assert cols == {
        "router": "linear",
        "cache_policy": "none",
        "cache_size": 1024,
        "pool_policy": "none",
        "pool_size": 0,
        "memory_strategy": "minimal",
        "middleware": "legacy",
        "json": "stdlib",
        "preset": "baseline",
    }


def test_machine_info() -> None:
    info = machine_info()
    assert info["cores"] >= 1
    assert info["python"].startswith("3.")
    assert info["versions"]["httptools"] is not None
    assert info["cpu_affinity"] is None or len(info["cpu_affinity"]) >= 1
    json.dumps(info)


def test_git_info_in_and_out_of_a_repository(tmp_path: Path) -> None:
    assert git_info(tmp_path) == {"commit": None, "dirty": None, "branch": None}
    assert git_info(tmp_path / "missing")["commit"] is None
    try:
        subprocess.run(["git", "init", "-q", str(tmp_path)], check=True, capture_output=True)
        (tmp_path / "f.txt").write_text("1")
        env = ["-c", "user.email=t@example.com", "-c", "user.name=t"]
        subprocess.run(
            ["git", "-C", str(tmp_path), "add", "f.txt"], check=True, capture_output=True
        )
        subprocess.run(
            ["git", *env, "-C", str(tmp_path), "commit", "-qm", "x"],
            check=True,
            capture_output=True,
        )
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("git is not usable here")
    clean = git_info(tmp_path)
    assert re.fullmatch(r"[0-9a-f]{40}", clean["commit"]) and clean["dirty"] is False
    (tmp_path / "f.txt").write_text("2")
    assert git_info(tmp_path)["dirty"] is True
    (tmp_path / "untracked.txt").write_text("u")
    (tmp_path / "f.txt").write_text("1")
    assert git_info(tmp_path)["dirty"] is False  # untracked files do not count


def test_results_module_does_not_import_pandas() -> None:
    import sys

    code = "import sys, h3lab.bench, h3lab.bench.results, h3lab.bench.micro, h3lab.bench.cachesim, h3lab.bench.apps; print('pandas' in sys.modules, 'libcachesim' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["False", "False"]
