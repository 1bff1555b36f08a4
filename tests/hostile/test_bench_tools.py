"""``h3lab bench soak`` and ``h3lab bench conformance``, end to end but short.

The conformance run against a real ``h3lab serve`` process also checks the
case table under uvloop (the in-process tests run on asyncio's loop).
"""

from __future__ import annotations

import argparse
import importlib.util

import pytest

from h3lab.bench.hardening import conformance, soak
from h3lab.bench.hardening.hostile import CASES


def test_register_adds_the_commands() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    soak.register(sub)
    conformance.register(sub)
    args = parser.parse_args(["soak", "--duration", "5", "--connections", "8"])
    assert args.func is soak.cmd_soak and args.duration == 5 and args.connections == 8
    assert parser.parse_args(["soak"]).duration == 600
    args = parser.parse_args(["conformance", "--servers", "h3lab", "--timeout", "1"])
    assert args.func is conformance.cmd_conformance and args.servers == ["h3lab"]


@pytest.mark.slow
def test_h3lab_serve_answers_the_whole_table_under_uvloop() -> None:
    rows = conformance.run_conformance(["h3lab"], CASES, timeout=1.0)
    mismatches = {
        row["case"]: (row.get("h3lab"), conformance.expected_text(case))
        for row, case in zip(rows, CASES, strict=True)
        if row.get("h3lab") != conformance.expected_text(case)
    }
    assert mismatches == {}
    table = conformance.format_table(rows)
    assert "cl+te" in table and "h3lab" in table.splitlines()[0]


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("uvicorn") is None, reason="uvicorn not installed")
def test_conformance_compares_a_peer() -> None:
    cases = [c for c in CASES if c.name in ("cl+te", "no-host-http11", "absolute-form")]
    rows = conformance.run_conformance(["h3lab", "uvicorn-h11"], cases, timeout=1.0)
    assert [r["h3lab"] for r in rows] == ["400", "400", "200+"]
    assert all(r.get("uvicorn-h11") for r in rows)
    assert "uvicorn-h11" in conformance.summarize(rows)


def test_conformance_skips_missing_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    messages: list[str] = []
    monkeypatch.setattr(conformance, "available", lambda name: False)
    rows = conformance.run_conformance(["gunicorn-sync"], CASES[:2], log=messages.append)
    assert "gunicorn-sync" not in rows[0] and "skipping gunicorn-sync" in messages[0]
    with pytest.raises(ValueError, match="unknown server"):
        conformance.run_conformance(["nginx"], CASES[:1])


@pytest.mark.slow
def test_soak_runs_end_to_end() -> None:
    lines: list[str] = []
    report = soak.run_soak(
        5.0, warmup=1.0, connections=8, sample_interval=1.0, progress=lines.append
    )
    assert report["server_exit_code"] == 0
    assert report["requests_served"] > 100
    assert report["outcomes"].get("valid 2xx", 0) > 100
    assert report["outcomes"].get("aborted", 0) > 0
    assert any(k.startswith("hostile 4") for k in report["outcomes"])
    assert report["unexpected"] == {}, report["unexpected"]
    assert report["samples"] and report["rss_mb_first"] > 0
    assert "requests served" in soak.format_report(report)
