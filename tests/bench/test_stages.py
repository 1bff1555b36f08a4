"""The ``stages`` micro target: every stage timed, each checked first, and its table."""

from __future__ import annotations

import statistics
import warnings
from pathlib import Path
from typing import Any

import pytest

from h3lab.bench.micro import BenchmarkError, run_micro, stage_table
from h3lab.bench.micro import stages as stages_target
from h3lab.bench.micro.stage_report import (
    ENDPOINTS,
    SEQUENCE,
    STAGES,
    UNATTRIBUTED,
    UNATTRIBUTED_METRIC,
    WHOLE,
)
from h3lab.bench.micro.stages import bench_stages

pytestmark = pytest.mark.filterwarnings("ignore::h3lab.bench.micro.BenchmarkStabilityWarning")

FAST = {"repetitions": 1, "warmups": 0, "min_time": 0.0005}


@pytest.fixture(autouse=True)
def _default_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ROUTES", "SEED", "MIDDLEWARES", "MIDDLEWARE_KIND"):
        monkeypatch.delenv(f"H3LAB_BENCH_{name}", raising=False)


def test_quick_run_times_every_stage_of_every_endpoint() -> None:
    rows = run_micro("stages", quick=True)
    timed = [r for r in rows if r["metric"] == "ns_per_op"]
    assert {r["strategy"] for r in rows} == {"performance"}  # quick: one preset
    seen = {(r["param"], r["stage"], r["repetition"]) for r in timed}
    every = (*STAGES, SEQUENCE, WHOLE)
    assert seen == {(e, s, rep) for e in ENDPOINTS for s in every for rep in (0, 1, 2)}
    for row in timed:
        assert row["target"] == "stages" and row["unit"] == "ns" and row["loops"] >= 1
        assert row["value"] > 0, row
        assert row["workload"] == "pipelined-keepalive" and row["preset"] == "performance"
        assert "warning" in row and row["sync_chain"] is True and "gc_enabled" in row
    # whole - the stages, per round: one derived row each, and the arithmetic holds.
    derived = [r for r in rows if r["metric"] == UNATTRIBUTED_METRIC]
    assert len(derived) == len(ENDPOINTS) * 3
    value = {(r["param"], r["stage"], r["repetition"]): r["value"] for r in timed}
    for row in derived:
        key = (row["param"], row["repetition"])
        parts = sum(value[(key[0], s, key[1])] for s in STAGES)
        assert row["stage"] == UNATTRIBUTED
        assert row["value"] == pytest.approx(value[(key[0], WHOLE, key[1])] - parts)
    # The stages are not all the same number (each loop really does its own work).
    medians = {s: statistics.median(value[("/json", s, rep)] for rep in (0, 1, 2)) for s in every}
    # (against the stages' median, not their max: one preempted sample of a short
    # quick loop can outgrow whole on a busy machine)
    assert medians[WHOLE] > statistics.median(medians[s] for s in STAGES)
    assert len({round(v) for v in medians.values()}) > 3


def test_baseline_is_measured_when_not_quick_and_its_stages_follow_its_strategies() -> None:
    rows = bench_stages(presets=("baseline",), endpoints=("/users/:id",), **FAST)
    timed = [r for r in rows if r["metric"] == "ns_per_op"]
    assert {r["stage"] for r in timed} == {*STAGES, SEQUENCE, WHOLE}
    assert {r["strategy"] for r in timed} == {"baseline"}
    assert bench_stages.__defaults__ is not None
    assert bench_stages.__defaults__[0] == ("performance", "baseline")


def test_a_wrong_body_encoder_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    # The encode stage must give the bytes the server sends.
    monkeypatch.setattr(stages_target, "_body_encoder", lambda app, value: lambda v: b'{"id":"4"}')
    with pytest.raises(BenchmarkError, match=r"/users/:id: encode"):
        bench_stages(presets=("performance",), endpoints=("/users/:id",), **FAST)


def test_a_wrong_handler_value_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    from h3lab.bench import apps

    monkeypatch.setattr(apps, "_json", lambda event: {"message": "Hello, World?"})
    with pytest.raises(BenchmarkError, match=r"/json: chain"):
        bench_stages(presets=("performance",), endpoints=("/json",), **FAST)


def test_a_wrong_target_split_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    # The head stage calls fill_target itself (the server's copy is untouched).
    from h3lab.server import head

    real = head.fill_target

    def off_by_one(event: object, target: bytes) -> None:
        real(event, target[:-1])  # type: ignore[arg-type]

    monkeypatch.setattr(head, "fill_target", off_by_one)
    with pytest.raises(BenchmarkError, match=r"/plaintext: head: event paths"):
        bench_stages(presets=("performance",), endpoints=("/plaintext",), **FAST)


def test_a_write_that_differs_from_the_server_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    from h3lab.server.state import ServerState

    real_init = ServerState.__init__

    def init(self: ServerState, *args: object, **kw: object) -> None:
        real_init(self, *args, **kw)  # type: ignore[arg-type]
        self.prefix_bytes = self.prefix_bytes.replace(b"200 OK", b"200 Fine")

    monkeypatch.setattr(ServerState, "__init__", init)
    with pytest.raises(BenchmarkError, match=r"/plaintext: write"):
        bench_stages(presets=("performance",), endpoints=("/plaintext",), **FAST)


def test_unknown_endpoints_are_refused() -> None:
    with pytest.raises(ValueError, match="endpoints must be among"):
        bench_stages(endpoints=("/nope",), **FAST)


def _rows(preset: str, endpoint: str, values: dict[str, list[float]]) -> list[dict]:
    return [
        {
            "target": "stages",
            "strategy": preset,
            "param": endpoint,
            "stage": stage,
            "metric": "ns_per_op",
            "value": value,
            "repetition": rep,
        }
        for stage, series in values.items()
        for rep, value in enumerate(series)
    ]


def test_stage_table_medians_shares_and_a_negative_remainder() -> None:
    plain = {s: [100.0, 300.0, 200.0] for s in STAGES} | {WHOLE: [2000.0, 1000.0, 3000.0]}
    plain[SEQUENCE] = [1500.0, 1400.0, 1600.0]  # head..task back to back
    # /json: the stages alone add up to more than the whole (negative remainder).
    json = {s: [150.0] for s in STAGES} | {WHOLE: [1000.0]}
    rows = _rows("performance", "/json", json) + _rows("performance", "/plaintext", plain)
    rows += _rows("baseline", "/plaintext", {"parse": [10.0], WHOLE: [40.0]})
    rows.append({"target": "protocol", "strategy": "raw", "param": "/json", "metric": "ns_per_op"})
    rows.append({**rows[0], "metric": UNATTRIBUTED_METRIC, "stage": UNATTRIBUTED, "value": 9e9})
    table = stage_table(rows)
    performance, baseline, note = table.split("\n\n**")[0], table.split("\n\n**")[1], table
    lines = performance.splitlines()
    assert lines[0].startswith("**performance**") and "median of 3" in lines[0]
    assert lines[2] == "| stage | `/plaintext` | `/json` |"  # the usual endpoint order
    assert "| parse | 200 (10%) | 150 (15%) |" in lines
    assert "| **sum of stages** | 1,600 (80%) | 1,200 (120%) |" in lines
    assert "| **whole** | 2,000 (100%) | 1,000 (100%) |" in lines
    assert "| unattributed | 400 (20%) | -200 (-20%) |" in lines
    # Split by the sequence: 1500 - (1600 - 200) back to back, 2000 - 200 - 1500 between.
    assert "| of which: the stages back to back | 100 (5%) |  |" in lines
    assert "| of which: server code between them | 300 (15%) |  |" in lines
    assert [line.split(" |")[0] for line in lines[4:]] == [
        *(f"| {s}" for s in STAGES),
        "| **sum of stages**",
        "| **whole**",
        "| unattributed",
        "| of which: the stages back to back",
        "| of which: server code between them",
    ]
    # baseline: one stage measured, the others simply absent from its column.
    assert baseline.startswith("baseline**") and "| parse | 10 (25%) |" in baseline
    assert "| unattributed | 30 (75%) |" in baseline and "| head |" not in baseline
    assert "negative when" in note and "whole - parse - that sequence" in note
    assert stage_table(rows[-2:]) == "(no stage rows)"


@pytest.mark.timeout(60)
def test_cli_prints_the_stage_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from h3lab.bench.results import load_run
    from h3lab.cli import main

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = main(["bench", "micro", "--target", "stages", "--quick", "--root", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0
    usual, _, rest = out.partition("**performance**")
    assert "endpoint=/json, route" in usual and "median ns" in usual
    assert "| **whole** |" in rest and "| unattributed |" in rest
    results = [line.removeprefix("results: ") for line in out.splitlines() if "results: " in line]
    frame = load_run(Path(results[0]))
    assert set(frame["stage"].dropna()) == {*STAGES, SEQUENCE, WHOLE, UNATTRIBUTED}


def test_a_wrong_route_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    # Every request routed to /json: the server still answers 200, the route check refuses.
    from h3lab.app import H3

    real = H3.resolve

    def to_json(self: H3, event: Any) -> Any:
        event.route_path = "/json"
        return real(self, event)

    monkeypatch.setattr(H3, "resolve", to_json)
    with pytest.raises(BenchmarkError, match=r"/plaintext: route: pattern is '/json'"):
        bench_stages(presets=("performance",), endpoints=("/plaintext",), **FAST)
