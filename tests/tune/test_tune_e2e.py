"""One real quick tuning run on loopback, end to end, through the CLI."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from h3lab.bench.results import load_runs
from h3lab.cli import main
from h3lab.config import Config


def test_quick_tuning_run_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, runs = tmp_path / "tuning", tmp_path / "runs"
    argv = [
        "tune",
        "--quick",
        "--workload",
        "zipf",
        "--trials",
        "3",
        "--trial-duration",
        "1",
        "--warmup",
        "0",
        "--top-k",
        "1",
        "--repetitions",
        "2",
        "--study-name",
        "e2e",
        "--out",
        str(out),
        "--root",
        str(runs),
        "--no-progress",
    ]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "verdict: " in text and "gain vs performance" in text

    best = out / "e2e" / "best.toml"
    assert (out / "e2e" / "candidate.toml").is_file()
    if "INVALID re-measurement" in text:
        # A disturbed machine (a parallel test run) decides nothing, and says why.
        assert not best.is_file() and "no best config: no verdict" in text
    else:
        assert best.read_text().startswith("# h3lab tune: study e2e (zipf, throughput)")
        Config.load(best)  # the file h3lab serve --config takes (round trip: test_config_roundtrip)
    frame = load_runs("tune", root=runs)
    trials = frame[frame["metric"] == "trial_value"]
    assert len(trials) + (frame["metric"] == "trial_failed").sum() == 3
    assert (trials["value"] > 0).all()
    remeasured = frame[frame["metric"] == "remeasure_value"]
    assert set(remeasured["arm"]) >= {"balanced", "performance"}
    assert sorted(set(remeasured["repetition"])) == [0, 1]

    # Rerunning continues the same study (worker mode: search only), this time with a
    # warm-up (a disjoint slice of paths sent first; the quick notebook 08 has none).
    argv2 = [
        "tune",
        "--workload",
        "zipf",
        "--trials",
        "1",
        "--trial-duration",
        "1",
        "--warmup",
        "1",
        "--study-name",
        "e2e",
        "--out",
        str(out),
        "--root",
        str(runs),
        "--no-progress",
        "--no-select",
    ]
    assert main(argv2) == 0
    with sqlite3.connect(out / "e2e.db") as db:
        (n,) = db.execute("select count(*) from trials").fetchone()
    assert n == 4


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["tune", "--workload", "nope"], "workload must be one of"),
        (["tune", "--trace", "/nonexistent/trace.csv"], "no such file"),
        (["tune", "--workload", "trace"], "needs --trace"),
        (["tune", "--knobs", "cache.polcy"], "no tunable knob"),
        (["tune", "--objective", "p99", "--engine", "wrk"], "open-loop"),
    ],
)
def test_cli_errors_are_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main([*argv, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("h3lab tune: error:") and message in err and "\n" not in err


def test_an_invalid_remeasurement_names_no_winner(tmp_path: Path) -> None:
    # A re-measurement whose server never saturated its core (client-bound or
    # disturbed) is invalid: no best.toml, and the reason is given instead.
    from h3lab.tune.objective import Measurement, TrialSettings
    from h3lab.tune.run import tune

    def starved(config: Config, settings: TrialSettings) -> Measurement:
        return Measurement(
            value=1000.0, throughput_rps=1000.0, p50_ms=1.0, p99_ms=2.0, rss_peak_mb=30.0,
            requests=1000, duration_s=1.0, engine="fake", loop_mode="closed", notes=[],
            server_cpu_percent=40.0, client_cpu_percent=20.0,
        )  # fmt: skip

    settings = TrialSettings(workload="zipf", duration=1.0, warmup=0.0)
    result = tune(
        settings, trials=2, study_name="starved", root=tmp_path / "tuning", results_root=None,
        top_k=1, repetitions=2, progress=False, measure_fn=starved, log=None,
    )  # fmt: skip
    assert result.validity is not None and result.validity.status == "invalid"
    assert "40% of one core" in " ".join(result.validity.reasons)
    assert result.best_path is None and "no verdict" in result.best_reason
    assert not (tmp_path / "tuning" / "starved" / "best.toml").exists()
