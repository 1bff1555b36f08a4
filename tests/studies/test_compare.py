"""``h3lab study compare``: a planted regression is found, flagged and fails the gate."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest

from h3lab.cli import main
from h3lab.studies import compare, stats


def _run(root: Path, study: str, run_id: str, commit: str, *, rps: float, p99: float,
         hits: float = 0.9, seed: int = 0) -> Path:  # fmt: skip
    from h3lab.bench.results import RunWriter

    rng = random.Random(seed)
    writer = RunWriter(study, run_id, root=root, params={"quick": False})
    for rnd in range(5):
        for preset, scale in (("balanced", 1.0), ("performance", 1.4)):
            cols = {"preset": preset, "arm": preset, "round": rnd, "connections": 64}
            writer.add_row(metric="throughput_rps", value=rps * scale * rng.uniform(0.98, 1.02),
                           unit="req/s", **cols)  # fmt: skip
            writer.add_row(metric="latency_p99_ms", value=p99 / scale * rng.uniform(0.97, 1.03),
                           unit="ms", **cols)  # fmt: skip
            writer.add_row(metric="events_created", value=100 * rng.uniform(0.5, 1.5),
                           unit="count", **cols)  # fmt: skip
    run_dir = writer.write()
    meta = json.loads((run_dir / "meta.json").read_text())
    meta.update(git_commit=commit, git_dirty=False)
    meta["study_run"] = {"status": "ok", "quick": False}
    meta["validity"] = {"ok": True, "status": "valid", "reasons": [], "checks": {}}
    (run_dir / "meta.json").write_text(json.dumps(meta))
    return run_dir


@pytest.fixture
def planted(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    _run(root, "load", "20260101T000000000Z-aaaaaa", "a" * 40, rps=10_000, p99=2.0, seed=1)
    # B: 20% less throughput, 30% more p99 time -- the planted regression
    _run(root, "load", "20260102T000000000Z-bbbbbb", "b" * 40, rps=8_000, p99=2.6, seed=2)
    _run(root, "load", "20260103T000000000Z-cccccc", "c" * 40, rps=10_000, p99=2.0, seed=3)
    return root


def test_independent_comparison_matches_welch_from_scipy() -> None:
    from scipy.stats import ttest_ind

    a = [100.0, 104.0, 98.0, 101.0, 103.0]
    b = [90.0, 93.0, 88.0, 95.0]
    c = stats.independent_comparison(a, b, higher_is_better=True)
    la, lb = [math.log(x) for x in a], [math.log(x) for x in b]
    expected = ttest_ind(lb, la, equal_var=False)
    assert c.p_value == pytest.approx(expected.pvalue)
    ci = expected.confidence_interval(0.95)
    assert (c.lo, c.hi) == pytest.approx((math.exp(ci.low), math.exp(ci.high)))
    assert c.significant and c.ratio < 1


def test_planted_regression_is_flagged(planted: Path) -> None:
    result = compare.compare_runs("20260101", "20260102", planted)
    by = {(c.metric, c.identity.get("preset")): c for c in result.changes}
    rps = by[("throughput_rps", "balanced")]
    assert rps.comparison.significant and rps.comparison.ratio == pytest.approx(0.8, rel=0.03)
    assert rps.worse_pct == pytest.approx(20, abs=3)
    p99 = by[("latency_p99_ms", "performance")]
    assert p99.comparison.significant and p99.worse_pct == pytest.approx(30, abs=4)
    assert "slower" in p99.describe() and "%" not in p99.describe()
    # a count without a known direction is listed, never judged
    assert by[("events_created", "balanced")].comparison is None
    bad = compare.regressions(result, 10.0)
    assert len(bad) == 4 and all("worse" in line for line in bad)
    assert compare.regressions(result, 50.0) == []


def test_no_change_flags_nothing(planted: Path) -> None:
    result = compare.compare_runs("a" * 7, "c" * 7, planted)  # commits, by prefix
    assert compare.regressions(result, 1.0) == []
    assert "0 changed significantly" in compare.format_report(result)


def test_cli_gate_exits_non_zero_on_the_regression(
    planted: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["study", "compare", "20260101", "20260102", "--root", str(planted),
                 "--fail-above", "10"])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 1
    assert "WORSE" in out and "regression beyond 10%" in err
    ok = main(["study", "compare", "20260101", "20260102", "--root", str(planted),
               "--fail-above", "60"])  # fmt: skip
    assert ok == 0


def test_cli_unknown_ref_is_one_line(planted: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["study", "compare", "nope", "20260102", "--root", str(planted)])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "nope" in err


def test_direction_from_metric_and_unit() -> None:
    assert compare.direction("throughput_rps", "req/s") is True
    assert compare.direction("latency_p99_ms", "ms") is False
    assert compare.direction("ns_per_op", "ns") is False
    assert compare.direction("hit_ratio", "ratio") is True
    assert compare.direction("pool_created", "count") is None
