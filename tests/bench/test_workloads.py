"""Route tables and workloads: determinism, distributions, traces, registrability."""

from __future__ import annotations

import collections
import csv
from pathlib import Path

import pytest

from h3lab import H3, Config
from h3lab.bench.workloads import (
    JSON_TYPE,
    KINDS,
    RESERVED_FIRST,
    WORKLOADS,
    BenchRequest,
    adversarial,
    default_table,
    make_workload,
    mixed,
    padded_json,
    route_table,
    scan,
    trace,
    uniform,
    zipf,
    zipf_cum_weights,
)
from h3lab.config import CacheConfig, RouterConfig
from h3lab.routing import ROUTERS, Route, make_router, parse_pattern

TABLE = route_table(120, seed=3)


def first_requests(workload, n: int = 300) -> list[BenchRequest]:
    return list(workload.requests(n))


# -- route tables ---------------------------------------------------------------


@pytest.mark.parametrize("n", [10, 100, 1000, 10_000])
def test_route_table_size_shares_and_unique_shapes(n: int) -> None:
    table = route_table(n, seed=1)
    assert len(table) == n
    counts = collections.Counter(spec.kind for spec in table)
    assert set(counts) <= set(KINDS)
    assert abs(counts["static"] - 0.5 * n) <= 1
    assert abs(counts["param"] - 0.4 * n) <= 2
    assert abs(counts["wildcard"] + counts["catchall"] - 0.1 * n) <= 1
    shapes = [parse_pattern(spec.pattern)[0].signature for spec in table]
    assert len(set(shapes)) == n, "two routes of one shape"
    assert len({spec.pattern for spec in table}) == n
    assert [spec.index for spec in table] == list(range(n))
    for spec in table:
        depth = len(spec.segments)
        assert 1 <= depth <= 4
        assert spec.segments[0] not in RESERVED_FIRST


def test_route_table_kinds_have_the_right_segments() -> None:
    for spec in route_table(400, seed=9):
        kinds = {kind for _, kind, _ in spec.dynamic}
        if spec.kind == "static":
            assert not spec.dynamic and ":" not in spec.pattern and "*" not in spec.pattern
        elif spec.kind == "param":
            assert kinds == {"param"} and ":" in spec.pattern and "*" not in spec.pattern
        elif spec.kind == "wildcard":
            assert kinds == {"wildcard"} and "/*" in spec.pattern and "**" not in spec.pattern
        else:
            assert kinds == {"catchall"} and spec.pattern.endswith("/**:path")


def test_route_table_is_deterministic_and_seeded() -> None:
    assert route_table(200, seed=5) == route_table(200, seed=5)
    assert [s.pattern for s in route_table(200, seed=5)] != [
        s.pattern for s in route_table(200, seed=6)
    ]


def test_route_table_custom_shares_and_errors() -> None:
    table = route_table(50, static_share=1.0, param_share=0.0, wildcard_share=0.0, depth=(1, 3))
    assert all(spec.kind == "static" for spec in table)
    with pytest.raises(ValueError, match="must be 1"):
        route_table(10, static_share=0.5, param_share=0.2, wildcard_share=0.1)
    with pytest.raises(ValueError, match="depth"):
        route_table(10, depth=(1, 1))
    with pytest.raises(ValueError, match="n must be"):
        route_table(0)
    with pytest.raises(ValueError, match="cannot generate"):
        route_table(500, static_share=1.0, param_share=0.0, wildcard_share=0.0, depth=(1, 1))


@pytest.mark.parametrize("strategy", ROUTERS.names())
def test_every_route_registers_and_matches_its_paths(strategy: str) -> None:
    """Each route's concrete paths match that route with its params, on every strategy."""
    table = route_table(300, seed=11)
    for cache in ("lru",) if ROUTERS.get(strategy).requires_cache else ("none", "lru"):
        router = make_router(RouterConfig(strategy), CacheConfig(cache, 64))
        for spec in table:
            router.add(Route(spec.method, spec.pattern, spec.handler(), index=spec.index))
        for spec in table:
            for k in (0, 1, 42, 1234):
                found = router.match(spec.method, spec.path(k))
                assert found is not None, spec.path(k)
                assert found[0].pattern == spec.pattern, (spec.path(k), found[0].pattern)
                assert found[1] == spec.params(k)


@pytest.mark.parametrize("strategy", ROUTERS.names())
def test_table_registers_on_an_app(strategy: str) -> None:
    cache = "lru" if ROUTERS.get(strategy).requires_cache else "none"
    app = H3(Config().replace(**{"router.matching": strategy, "cache.policy": cache}))
    for spec in route_table(1000, seed=2):
        app.on(spec.method, spec.pattern, spec.handler())
    assert len(app.routes()) == 1000


def test_route_spec_paths_and_expectations() -> None:
    spec = next(s for s in TABLE if s.kind == "param")
    assert spec.path(7) != spec.path(8)
    request = spec.request(7)
    assert request.route == spec.pattern and dict(request.params) == spec.params(7)
    assert request.expect_content_type == JSON_TYPE
    static = next(s for s in TABLE if s.kind == "static")
    assert static.path(0) == static.path(99) == static.pattern
    assert static.request().expect_body == static.pattern.encode()
    with pytest.raises(ValueError):
        spec.path(-1)


# -- determinism ----------------------------------------------------------------

FACTORIES = {
    "uniform": lambda seed: uniform(TABLE, seed=seed),
    "zipf": lambda seed: zipf(TABLE, s=1.1, seed=seed),
    "scan": lambda seed: scan(TABLE, seed=seed),
    "adversarial": lambda seed: adversarial(seed=seed),
    "mixed": lambda seed: mixed(seed, table=TABLE),
}


@pytest.mark.parametrize("name", list(FACTORIES))
def test_same_seed_same_sequence_different_seed_differs(name: str) -> None:
    a = first_requests(FACTORIES[name](1))
    assert a == first_requests(FACTORIES[name](1))
    assert a == first_requests(FACTORIES[name](1)), "requests() must restart on every call"
    assert a != first_requests(FACTORIES[name](2))
    workload = FACTORIES[name](1)
    assert workload.keys(300) == [request.key for request in a]


def test_workload_is_deterministic_across_processes() -> None:
    """No salted hash() anywhere: a fresh interpreter gives the same keys."""
    import subprocess
    import sys

    code = (
        "from h3lab.bench.workloads import zipf, route_table;"
        "print(zipf(route_table(50, seed=1), seed=4).keys(20))"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": str(i)},
        ).stdout
        for i in (1, 2)
    }
    assert len(outputs) == 1
    assert str(zipf(route_table(50, seed=1), seed=4).keys(20)) == outputs.pop().strip()


# -- distributions --------------------------------------------------------------


def top_share(keys: list, fraction: float, universe: int) -> float:
    counts = collections.Counter(keys)
    top = max(1, int(universe * fraction))
    return sum(c for _, c in counts.most_common(top)) / len(keys)


def test_zipf_concentrates_on_a_hot_set_uniform_does_not() -> None:
    n_keys = 2000
    z = zipf(TABLE, s=1.2, seed=0, n_keys=n_keys)
    u = uniform(TABLE, seed=0, n_keys=n_keys)
    assert z.working_set() == u.working_set() == n_keys
    z_share = top_share(z.keys(20_000), 0.01, n_keys)
    u_share = top_share(u.keys(20_000), 0.01, n_keys)
    assert z_share > 0.5  # theory: ~0.63 of the mass on the top 1% for s=1.2, n=2000
    assert u_share < 0.05
    assert z_share > 5 * u_share


def test_zipf_s0_is_uniform_and_cdf_is_explicit() -> None:
    cum = zipf_cum_weights(4, 0.0)
    assert cum == [1.0, 2.0, 3.0, 4.0]
    cum = zipf_cum_weights(3, 1.0)
    assert cum == pytest.approx([1.0, 1.5, 1.5 + 1 / 3])
    with pytest.raises(ValueError):
        zipf_cum_weights(3, -1)


def test_zipf_key_space_is_larger_than_the_table() -> None:
    workload = zipf(TABLE, seed=0)
    dynamic = sum(1 for s in TABLE if not s.is_static)
    assert workload.working_set() == len(TABLE) - dynamic + 10 * dynamic > len(TABLE)
    assert workload.working_set(5000) > len(TABLE)


def test_scan_never_repeats_within_its_key_space() -> None:
    workload = scan(TABLE, seed=4)
    n = workload.working_set()
    keys = workload.keys(n)
    assert len(set(keys)) == n
    assert workload.keys(n + 1)[-1] == keys[0]  # a second pass starts over


def test_adversarial_never_repeats_and_defines_its_404s() -> None:
    workload = adversarial(seed=3, junk_share=0.2)
    requests = first_requests(workload, 5000)
    assert len({r.path for r in requests}) == 5000
    statuses = collections.Counter(r.expect_status for r in requests)
    assert set(statuses) == {200, 404}
    assert 0.1 < statuses[404] / 5000 < 0.3
    for r in requests[:50]:
        if r.expect_status == 200:
            assert r.path.startswith("/users/") and r.route == "/users/:id"
            assert r.expect_body == b'{"id":"' + r.path.rsplit("/", 1)[1].encode() + b'"}'
    assert all(
        r.expect_status == 200 for r in first_requests(adversarial(seed=1, junk_share=0.0), 200)
    )


def test_mixed_has_every_kind_and_exact_post_bodies() -> None:
    workload = mixed(0, (64, 1024, 16384), table=TABLE, post_share=0.2)
    requests = first_requests(workload, 2000)
    posts = [r for r in requests if r.method == "POST"]
    assert 0.1 < len(posts) / 2000 < 0.3
    assert {len(r.body) for r in posts} == {64, 1024, 16384}
    for r in posts:
        assert r.path == "/echo" and r.expect_body == r.body and r.content_type == JSON_TYPE
    kinds = {spec.pattern: spec.kind for spec in TABLE}
    seen = {kinds[r.route] for r in requests if r.method == "GET"}
    assert seen == set(KINDS)


def test_padded_json_has_the_exact_size() -> None:
    import json

    for size in (1, 20, 64, 1000, 16384):
        body = padded_json(size, seq=7)
        assert len(body) == max(size, len(padded_json(1, 7)))
        assert json.loads(body)["seq"] == 7


# -- traces ---------------------------------------------------------------------


def write_csv(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    return path


def test_trace_csv_round_trip_with_and_without_header(tmp_path: Path) -> None:
    rows = [["GET", "/plaintext"], ["POST", "/echo", "100"], ["GET", "/missing", "", "404"]]
    plain = trace(write_csv(tmp_path / "t.csv", rows))
    headed = trace(
        write_csv(tmp_path / "h.csv", [["method", "path", "body_size", "status"], *rows])
    )
    for workload in (plain, headed):
        requests = first_requests(workload, 3)
        assert [(r.method, r.path, len(r.body), r.expect_status) for r in requests] == [
            ("GET", "/plaintext", 0, 200),
            ("POST", "/echo", 100, 200),
            ("GET", "/missing", 0, 404),
        ]
        assert requests[1].expect_body == requests[1].body
        assert workload.keys(4)[3] == ("GET", "/plaintext")  # replay loops
        assert workload.working_set() == 3


def test_trace_header_columns_in_any_order(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "o.csv", [["path", "method"], ["/a", "get"]])
    assert first_requests(trace(path), 1)[0].method == "GET"


def test_trace_parquet_round_trip(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    path = tmp_path / "t.parquet"
    pd.DataFrame(
        {"method": ["GET", "POST"], "path": ["/users/1", "/echo"], "body_size": [None, 64]}
    ).to_parquet(path)
    requests = first_requests(trace(path), 2)
    assert [(r.method, r.path, len(r.body)) for r in requests] == [
        ("GET", "/users/1", 0),
        ("POST", "/echo", 64),
    ]
    assert make_workload("trace", path=str(path)).keys(2) == [r.key for r in requests]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.csv", "", "empty"),
        ("method.csv", "FETCH,/a\n", "method"),
        ("path.csv", "GET,nope\n", "path must start"),
        ("size.csv", "GET,/a,big\n", "body_size"),
        ("cols.csv", "method,path\nGET,/a,1\n", "columns"),
        ("nocol.csv", "method,verb\n", "missing column"),
        ("bad.txt", "GET,/a\n", "unsupported"),
        ("bad.parquet", "not parquet", "Parquet"),
    ],
)
def test_trace_bad_files_name_the_file_and_problem(
    tmp_path: Path, name: str, content: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(ValueError, match=message) as info:
        trace(path)
    assert name in str(info.value)


def test_trace_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no such file"):
        trace(tmp_path / "absent.csv")


# -- registry -------------------------------------------------------------------


def test_make_workload_validates_names_and_params() -> None:
    assert set(WORKLOADS) == {"uniform", "zipf", "scan", "adversarial", "mixed", "trace"}
    with pytest.raises(ValueError, match="uniform"):
        make_workload("nope")
    with pytest.raises(ValueError, match="does not take"):
        make_workload("zipf", alpha=1.0)
    workload = make_workload("zipf", routes=30, table_seed=2, s=0.8, seed=1)
    assert workload.name == "zipf" and workload.params["s"] == 0.8
    assert workload.keys(50) == zipf(route_table(30, seed=2), s=0.8, seed=1).keys(50)


def test_default_table_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("H3LAB_BENCH_ROUTES", raising=False)
    monkeypatch.delenv("H3LAB_BENCH_SEED", raising=False)
    assert default_table() == route_table(200, seed=0)
    monkeypatch.setenv("H3LAB_BENCH_ROUTES", "40")
    monkeypatch.setenv("H3LAB_BENCH_SEED", "3")
    assert default_table() == route_table(40, seed=3)
    monkeypatch.setenv("H3LAB_BENCH_ROUTES", "lots")
    with pytest.raises(ValueError, match="H3LAB_BENCH_ROUTES"):
        default_table()


def test_check_compares_status_media_type_and_body() -> None:
    request = BenchRequest("GET", "/json", expect_content_type=JSON_TYPE, expect_body=b'{"a":1}')
    assert request.check(200, "application/json", b'{"a":1}') is None
    assert request.check(200, "application/json; charset=utf-8", b'{"a": 1}') is None
    assert "status" in request.check(500, "application/json", b'{"a":1}')
    assert "content-type" in request.check(200, "text/plain", b'{"a":1}')
    assert "body" in request.check(200, "application/json", b'{"a":2}')
    text = BenchRequest(
        "GET", "/t", expect_content_type="text/plain; charset=utf-8", expect_body=b"x"
    )
    assert "body" in text.check(200, "text/plain", b"x ")
