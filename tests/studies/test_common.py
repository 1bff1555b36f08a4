"""Shared study helpers: summaries, formatting, paired comparisons, TOST degradation, plans."""

from __future__ import annotations

import math
import random
from typing import Any

import pandas as pd
import pytest

from h3lab.studies import common, notebook


def frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(rows)


def test_summarize_medians_intervals_and_counts() -> None:
    rows = [{"k": "a", "metric": "m", "value": v} for v in (1, 2, 3, 4, 100)] + [
        {"k": "b", "metric": "m", "value": 5}
    ]
    s = common.summarize(frame(rows), ["k"]).set_index("k")
    assert s.loc["a", "median"] == 3 and s.loc["a", "n"] == 5
    assert s.loc["a", "lo"] <= 3 <= s.loc["a", "hi"]
    assert s.loc["b", "lo"] == s.loc["b", "hi"] == 5
    assert common.summarize(frame(rows).iloc[0:0], ["k"]).empty


def test_slopes() -> None:
    xs = [10, 100, 1000]
    assert common.loglog_slope(xs, [x * 3 for x in xs]) == pytest.approx(1.0)
    assert common.loglog_slope(xs, [7, 7, 7]) == pytest.approx(0.0)
    assert common.loglog_slope([10], [1]) is None
    assert common.linear_slope([0, 1, 2], [5, 7, 9]) == pytest.approx(2.0)


def test_formatting() -> None:
    assert common.fmt_pct(0.213) == "21.3%"
    assert common.fmt_pct(0.05, signed=True) == "+5.0%"
    assert common.fmt_num(1234567) == "1,234,567"
    assert common.fmt_num(0.00123) == "0.00123"
    assert common.fmt_num(None) == "n/a"
    table = common.markdown_table(pd.DataFrame({"a": [1], "b": ["x|y"]}))
    assert table.splitlines() == ["| a | b |", "|---|---|", "| 1 | x/y |"]


def test_speedup_is_a_ratio_of_times_never_a_percentage() -> None:
    base = [200.0, 201, 199, 200, 202]
    s = common.speedup(base, [100.0, 101, 99, 100, 100])
    assert s["ratio"] == pytest.approx(2.0, rel=0.02) and s["significant"]
    assert (
        s["text"].startswith("2x faster [")
        or s["text"].startswith("2.0")
        or "x faster [" in s["text"]
    )
    assert "%" not in s["text"]
    slower = common.speedup(base, [400.0, 401, 399, 400, 402])
    assert "x slower [" in slower["text"]
    noisy = common.speedup([100.0, 300, 120, 280], [110.0, 290, 130, 260])
    assert noisy["text"].startswith("no measurable difference")
    assert common.speedup([], [1.0])["text"] == "not measured"


def rounds_frame(arms: dict[str, list[float]]) -> pd.DataFrame:
    return frame([
        {"metric": "throughput_rps", "arm": arm, "round": r, "value": v}
        for arm, values in arms.items() for r, v in enumerate(values)
    ])  # fmt: skip


def test_compare_arms_pairs_by_round_and_corrects_for_several() -> None:
    rng = random.Random(1)
    drift = [1000.0 * (1 + 0.3 * rng.random()) for _ in range(5)]  # shared by each round
    f = rounds_frame({
        "base": drift,
        "double": [2 * d * (1 + 0.01 * rng.random()) for d in drift],
        "same": [d * (1 + 0.01 * (rng.random() - 0.5)) for d in drift],
    })  # fmt: skip
    out = common.compare_arms(f, "throughput_rps", "base").set_index("arm")
    assert out.loc["double", "ratio"] == pytest.approx(2.0, rel=0.02)
    assert out.loc["double", "significant"] and out.loc["double", "n"] == 5
    assert (
        out.loc["double", "text"].startswith("2") and "more throughput" in out.loc["double", "text"]
    )
    assert not out.loc["same", "significant"]
    assert out.loc["same", "text"].startswith("no significant difference")
    # pairing: the round-to-round drift (30%) would hide a 2% difference between unpaired samples
    small = rounds_frame({"base": drift, "plus2": [d * 1.02 for d in drift]})
    c = common.compare_arms(small, "throughput_rps", "base").iloc[0]
    assert c["significant"] and c["lo"] > 1.0
    # time-like metric: lower is better
    t = common.compare_arms(rounds_frame({"a": [10.0, 11, 10.5], "b": [5.0, 5.5, 5.2]}),
                            "throughput_rps", "a", higher_is_better=False).iloc[0]  # fmt: skip
    assert t["ratio"] == pytest.approx(2.0, rel=0.05) and "faster" in t["text"]
    assert common.compare_arms(f.iloc[0:0], "throughput_rps", "base").empty


def test_window_change_says_no_degradation_only_by_equivalence() -> None:
    rng = random.Random(0)
    flat = [1000.0 * (1 + 0.005 * (rng.random() - 0.5)) for _ in range(60)]
    eq = common.window_change(flat, 15, margin_pct=2.0)
    assert eq.verdict == "equivalent" and -2 < eq.lo <= eq.hi < 2
    assert common.describe_change(eq).startswith("no degradation")
    falling = [1000.0] * 30 + [955.0] * 30
    deg = common.window_change(falling, 15)
    assert deg.verdict == "different" and deg.estimate == pytest.approx(-4.5)
    assert common.describe_change(deg).startswith("degrades 4.5%")
    noisy = [1000.0 * (1 + 0.2 * (rng.random() - 0.5)) for _ in range(12)]
    assert common.window_change(noisy, 4).verdict in ("inconclusive", "different")
    assert common.describe_change(common.window_change(noisy, 4)).split()[0] != "no"
    assert common.window_change([1.0, 2.0], 3) is None
    assert common.describe_change(None).startswith("not measured")


def test_make_plan_and_notebook_overrides() -> None:
    full, quick = {"a": 1, "b": [1, 2]}, {"b": [1]}
    assert common.make_plan("s", full, quick, True, {}) == {"a": 1, "b": [1]}
    assert common.make_plan("s", full, quick, True, {"b": [5], "a": None}) == {"a": 1, "b": [5]}
    with pytest.raises(ValueError, match="no parameter"):
        common.make_plan("s", full, quick, False, {"c": 1})
    # a notebook's parameters cell holds the full defaults: only changed values override
    assert notebook.overrides(full, {"a": 1, "b": [1, 2], "quick": True}) == {}
    assert notebook.overrides(full, {"a": 3, "b": [1, 2]}) == {"a": 3}


def test_ecdf_frame() -> None:
    rows = [{"metric": "gc_pause_us", "s": "a", "value": float(v)} for v in range(1000)]
    ecdf = common.ecdf_frame(frame(rows), "gc_pause_us", "s", max_points=100)
    assert len(ecdf) <= 101 and ecdf["fraction"].iloc[-1] == 1.0
    assert ecdf["value"].is_monotonic_increasing


def test_percentile_table() -> None:
    f = frame([{"metric": "latency_quantile_ms", "preset": "p", "quantile": q, "value": q * 10}
               for q in (0.5, 0.99)])  # fmt: skip
    pct = common.percentile_table(f, "preset")
    assert pct["nines"].iloc[1] == pytest.approx(2.0)
    assert not math.isnan(pct["latency_ms"].iloc[0])


def test_an_invalid_run_claims_nothing(tmp_path: Any) -> None:
    from h3lab.studies import validity

    run = notebook.start("unit", root=tmp_path, quick=True)
    validity.current().server_cpu(35.0, label="performance round 1")
    validity.current().warn("router/trie/10: unstable (cv=40%)")
    run.conclude("performance is 3.0x faster [2.8, 3.2] than baseline.")
    text = (run.out_dir / "conclusion.md").read_text()
    assert text.startswith("**Invalid run:** performance round 1: the server used 35%")
    assert "faster" not in text and "No difference is claimed" in text
    assert "**Unstable samples:**" in text and "cv=40%" in text
    assert (run.out_dir / "validity.json").is_file()
    assert "run " + run.run_id in run.caption and "quick" in run.caption
    # a clean run keeps its computed conclusion
    ok = notebook.start("unit", root=tmp_path, quick=True)
    validity.current().server_cpu(97.0, label="x")
    ok.conclude("performance is 3.0x faster [2.8, 3.2].")
    assert (ok.out_dir / "conclusion.md").read_text().startswith("performance is 3.0x faster")
