"""``h3lab bench``: end-to-end runs write results and print the path; bad arguments exit 2."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from h3lab.bench.results import load_run
from h3lab.cli import main


def _results_path(out: str) -> Path:
    lines = [line for line in out.splitlines() if line.startswith("results: ")]
    assert len(lines) == 1, out
    return Path(lines[0].removeprefix("results: "))


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_bench_load_quick_run_writes_results(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "bench",
            "load",
            "--preset",
            "performance",
            "--set",
            "cache.size=512",
            "--workload",
            "zipf",
            "--param",
            "s=1.1",
            "--connections",
            "4",
            "--duration",
            "1",
            "--warmup",
            "0",
            "--root",
            str(tmp_path),
            "--run-id",
            "quick",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    path = _results_path(out)
    assert path == tmp_path / "bench-load" / "quick"
    assert (path / "results.parquet").is_file() and (path / "meta.json").is_file()
    engine = "wrk" if shutil.which("wrk") else "aiohttp"  # auto: wrk when installed
    assert f"engine {engine} (" in out and "req/s" in out  # what was measured, and how
    assert "workload zipf (s=1.1), config performance+1 (cache.size=512)" in out
    assert "loading http://127.0.0.1:" in out
    frame = load_run(path)
    summary = frame[frame["metric"] == "throughput_rps"].iloc[0]
    assert summary["study"] == "bench-load" and summary["workload"] == "zipf"
    assert summary["router"] == "hybrid" and summary["cache_size"] == 512
    assert summary["value"] > 0
    value = {
        m: frame[frame["metric"] == m]["value"].iloc[0]
        for m in ("requests", "server_requests", "errors_total")
    }
    assert value["errors_total"] == 0
    # the server's own count agrees with the client's (warm-up 0, +-1 stats sample in flight)
    # (wrk does not count the requests in flight when it stops: up to one per connection)
    assert abs(value["server_requests"] - value["requests"]) <= 2 + (4 if engine == "wrk" else 0)
    if engine == "aiohttp":  # wrk reports totals, not a per-second series
        assert (frame["metric"] == "series_requests").any()
    assert (frame["metric"] == "server_rss_mb").any()


@pytest.mark.timeout(60)
def test_bench_micro_quick(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # stability warnings are expected in --quick
        code = main(["bench", "micro", "--target", "pool", "--quick", "--root", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0
    frame = load_run(_results_path(out))
    assert set(frame["study"]) == {"bench-micro"}
    assert "median ns" in out and "std ns" in out and "values" in out and "loops" in out
    assert "held=" in out and "[" not in out.split("results:")[0]  # a readable param column


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_bench_peers_quick(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "bench",
            "peers",
            "--quick",
            "--peers",
            "raw",
            "--endpoints",
            "plaintext",
            "--connections",
            "4",
            "--root",
            str(tmp_path),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "h3lab-performance" in out and "raw" in out and "h3lab x" in out
    frame = load_run(_results_path(out))
    assert set(frame.loc[frame["metric"] == "throughput_rps", "server"]) == {
        "h3lab-performance",
        "raw",
    }
    # The run says whether it was valid (4 connections may not saturate the
    # server: either verdict is possible here), and keeps the checks beside it.
    assert re.search(r"^validity: (valid|unstable|invalid)", out, re.M)
    saved = json.loads((Path(_results_path(out)) / "validity.json").read_text())
    assert saved["status"] in ("valid", "unstable", "invalid") and saved["checks"]
    if saved["status"] == "invalid":
        assert "INVALID RUN" in out


BAD = [
    ["bench"],
    ["bench", "load", "--connections", "x"],
    ["bench", "load", "--connections", "0"],
    ["bench", "load", "--duration", "-1"],
    ["bench", "load", "--engine", "foo"],
    ["bench", "load", "--preset", "nope"],
    ["bench", "load", "--set", "cache.polcy=lru"],
    ["bench", "load", "--set", "cache.size=big"],
    ["bench", "load", "--workload", "nope"],
    ["bench", "load", "--workload", "trace"],
    ["bench", "load", "--workload", "zipf", "--param", "bogus=1"],
    ["bench", "load", "--param", "noequals"],
    ["bench", "load", "--rate", "100", "--engine", "wrk"],
    ["bench", "load", "--server-cpu", "999"],
    ["bench", "load", "--config", "/nonexistent/h3lab.toml"],
    ["bench", "load", "--preset", "minimal", "--config", "x.toml"],
    ["bench", "micro", "--target", "nope"],
    ["bench", "peers", "--endpoints", "nope"],
    ["bench", "peers", "--peers", "nginx"],
    ["bench", "peers", "--presets", "turbo"],
    ["bench", "peers", "--repetitions", "0"],
]


@pytest.mark.parametrize("argv", BAD, ids=[" ".join(a[1:]) or "bench" for a in BAD])
def test_bad_arguments_one_line_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own errors (bad int, bad choice)
        code = exc.code
    captured = capsys.readouterr()
    assert code == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert "error:" in lines[0]
    assert captured.out == ""  # nothing started, nothing written


def test_bad_argument_through_python_dash_m() -> None:
    # under `python -m h3lab.cli` the running main is __main__.main: still one line, exit 2
    proc = subprocess.run(
        [sys.executable, "-m", "h3lab.cli", "bench", "load", "--engine", "foo"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("h3lab bench load: error: argument --engine: invalid choice: 'foo'")
