"""Peers: every available peer starts, verifies and serves the three endpoints."""

from __future__ import annotations

import pytest

from h3lab.bench import peers as peers_mod
from h3lab.bench.load import verify
from h3lab.bench.load.wrk import wrk_available
from h3lab.bench.peers import (
    ENDPOINTS,
    PEERS,
    Peer,
    Target,
    available_peers,
    compare,
    endpoint_requests,
    format_ratio_table,
    load_once,
    missing_modules,
    ratio_table,
)

ENGINE = "wrk" if wrk_available() else "aiohttp"


def test_endpoint_requests() -> None:
    assert [r.path for r in endpoint_requests("plaintext")] == ["/plaintext"]
    assert endpoint_requests("json")[0].expect_body == b'{"message":"Hello, World!"}'
    params = endpoint_requests("params")
    assert len(params) == peers_mod.N_USER_IDS
    assert params[0].path == "/users/1" and params[0].expect_body == b'{"id":"1"}'
    with pytest.raises(ValueError, match="endpoint must be one of"):
        endpoint_requests("nope")


def test_peer_records_are_complete() -> None:
    assert set(PEERS) == {
        "aiohttp",
        "starlette-uvicorn",
        "starlette-granian",
        "falcon-uvicorn",
        "blacksheep-uvicorn",
        "raw",
        "framework-floor",
    }
    for peer in PEERS.values():
        assert "{port}" in peer.command and peer.modules and peer.description


def test_available_peers_skips_missing_with_a_message(monkeypatch: pytest.MonkeyPatch) -> None:
    ghost = Peer("ghost", ("x", "{port}"), ("no_such_module_h3lab",), "not installed")
    monkeypatch.setitem(PEERS, "ghost", ghost)
    messages: list[str] = []
    found = available_peers(["raw", "ghost"], on_skip=messages.append)
    assert [p.name for p in found] == ["raw"]
    assert messages == [
        "skipping peer 'ghost': missing module(s) ['no_such_module_h3lab'] (pip install h3lab[peers])"
    ]
    with pytest.raises(ValueError, match="unknown peer"):
        available_peers(["nginx"])


def test_ratio_table_medians_and_ratios() -> None:
    def row(server: str, endpoint: str, value: float, rep: int) -> dict:
        return {
            "metric": "throughput_rps",
            "server": server,
            "endpoint": endpoint,
            "value": value,
            "repetition": rep,
        }

    rows = [
        row("h3lab-performance", "json", 100, 0),
        row("aiohttp", "json", 50, 0),
        row("h3lab-performance", "json", 120, 1),
        row("aiohttp", "json", 40, 1),
        row("h3lab-performance", "json", 110, 2),
        row("aiohttp", "json", 55, 2),
        {"metric": "latency_p99_ms", "server": "aiohttp", "endpoint": "json", "value": 9.0},
        {"metric": "server_rss_mb", "server": "aiohttp", "value": 30.0},  # no endpoint: ignored
    ]
    table = ratio_table(rows)
    assert [(r["server"], r["rps"], r["n"]) for r in table] == [
        ("h3lab-performance", 110, 3),
        ("aiohttp", 50, 3),
    ]
    assert table[0]["ratio"] == pytest.approx(1.0)
    assert table[1]["ratio"] == pytest.approx(110 / 50)
    assert table[1]["min"] == 40 and table[1]["max"] == 55
    text = format_ratio_table(table)
    assert "aiohttp" in text and "2.20" in text
    assert ratio_table(rows, reference="aiohttp")[0]["ratio"] == pytest.approx(50 / 110)


@pytest.mark.slow
@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", list(PEERS))
def test_peer_starts_verifies_and_serves(name: str) -> None:
    peer = PEERS[name]
    missing = missing_modules(peer)
    if missing:
        pytest.skip(f"peer {name} needs {missing}")
    target = Target(name, peer=peer)
    with target.process(cpu=None, sample_interval=0.5) as srv:
        for ep in ENDPOINTS:
            verify(srv.url, endpoint_requests(ep), require_headers=target.require_headers)
        for ep in ENDPOINTS:
            result = load_once(
                srv.url,
                endpoint_requests(ep),
                engine=ENGINE,
                duration=1,
                connections=4,
                load_cpu=None,
                warmup=0,
            )
            assert result.errors_total == 0, (ep, result.errors)
            assert result.requests > 50, (ep, result.requests)
        assert srv.samples and srv.samples[-1]["rss_bytes"] > 0
    assert srv.returncode is not None  # stopped (uvicorn re-raises SIGTERM: -15)


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_compare_interleaves_and_produces_ratio_rows() -> None:
    progress: list[str] = []
    rows = compare(
        ("plaintext",),
        peers=["raw"],
        h3lab_presets=("performance",),
        duration=1,
        connections=4,
        engine=ENGINE,
        server_cpu=None,
        load_cpu=None,
        repetitions=2,
        warmup=0,
        progress=progress.append,
    )
    # run_rounds: the order rotates each round; every line names study, server and round
    assert [p.split(" | ")[1] for p in progress] == [
        "h3lab-performance",
        "raw",
        "raw",
        "h3lab-performance",
    ]
    assert progress[0].startswith("bench-peers | h3lab-performance | round 1/2 | plaintext: ")
    rps = [r for r in rows if r["metric"] == "throughput_rps"]
    assert {(r["server"], r["repetition"]) for r in rps} == {
        ("h3lab-performance", 0),
        ("raw", 0),
        ("h3lab-performance", 1),
        ("raw", 1),
    }
    h3 = next(r for r in rps if r["server"] == "h3lab-performance")
    assert (
        h3["router"] == "hybrid" and h3["preset"] == "performance" and h3["endpoint"] == "plaintext"
    )
    assert h3["engine"] == ENGINE
    assert any(r["metric"] == "server_rss_mb" for r in rows)
    table = ratio_table(rows)
    assert {r["server"] for r in table} == {"h3lab-performance", "raw"}
    assert all(r["n"] == 2 and r["rps"] > 0 for r in table)
    raw = next(r for r in table if r["server"] == "raw")
    assert raw["ratio_lo"] <= raw["ratio_hi"] and raw["significant"] in (True, False)
    assert any(r["metric"] == "phase_server_cpu_percent" for r in rows)


def test_compare_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="endpoint"):
        compare(("nope",), peers=[])
    with pytest.raises(ValueError, match="engine"):
        compare(("json",), peers=[], engine="ab")
    with pytest.raises(ValueError, match="repetitions"):
        compare(("json",), peers=[], repetitions=0)
