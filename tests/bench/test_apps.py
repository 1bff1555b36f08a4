"""The bench app answers every workload request exactly as the workload predicts."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from h3lab import H3, Config
from h3lab.bench.apps import (
    BENCHMARK_ENDPOINTS,
    build_app,
    check_in_process,
    create_app,
    dispatch,
    middleware_app,
)
from h3lab.bench.workloads import (
    BenchRequest,
    adversarial,
    default_table,
    mixed,
    route_table,
    scan,
    trace,
    uniform,
    zipf,
)
from h3lab.config import PRESETS
from h3lab.routing import ROUTERS

N = 250


@pytest.fixture(autouse=True)
def _default_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ROUTES", "SEED", "MIDDLEWARES", "MIDDLEWARE_KIND"):
        monkeypatch.delenv(f"H3LAB_BENCH_{name}", raising=False)


def configs() -> list[tuple[str, Config]]:
    out = [(f"preset-{name}", Config.preset(name)) for name in PRESETS]
    for name in ROUTERS.names():
        cache = "lru" if ROUTERS.get(name).requires_cache else "none"
        out.append(
            (f"router-{name}", Config().replace(**{"router.matching": name, "cache.policy": cache}))
        )
    return out


CONFIGS = configs()


def workloads(tmp_path: Path) -> dict[str, object]:
    path = tmp_path / "trace.csv"
    with path.open("w", newline="") as f:
        csv.writer(f).writerows(
            [
                ["method", "path", "body_size", "status"],
                ["GET", "/plaintext", "", ""],
                ["GET", "/users/77", "", "200"],
                ["POST", "/echo", "300", "200"],
                ["GET", "/not/a/route", "", "404"],
                ["DELETE", "/plaintext", "", "405"],
            ]
        )
    return {
        "uniform": uniform(seed=1),
        "zipf": zipf(s=1.2, seed=2),
        "scan": scan(seed=3),
        "adversarial": adversarial(seed=4, junk_share=0.3),
        "mixed": mixed(seed=5, post_share=0.2),
        "trace": trace(path),
    }


@pytest.mark.parametrize(("label", "config"), CONFIGS, ids=[label for label, _ in CONFIGS])
def test_every_generated_request_gets_the_expected_answer(
    label: str, config: Config, tmp_path: Path
) -> None:
    app = create_app(config)
    problems = []
    statuses = set()
    for name, workload in workloads(tmp_path).items():
        for request in workload.requests(N if name != "trace" else 5):
            statuses.add(request.expect_status)
            problem = check_in_process(app, request)
            if problem is not None:
                problems.append(f"{name}: {problem}")
    assert not problems, problems[:5]
    assert statuses == {200, 404, 405}


def test_benchmark_endpoints_match_the_demo() -> None:
    from h3lab.examples.demo import build

    demo = build(H3())
    bench = create_app()
    for make in BENCHMARK_ENDPOINTS.values():
        request = make()
        assert check_in_process(bench, request) is None
        assert check_in_process(demo, request) is None, "the demo and the bench app differ"
        assert dispatch(bench, request).body == dispatch(demo, request).body


def test_every_table_route_is_served() -> None:
    app = create_app()
    table = default_table()
    for spec in table:
        for k in (0, 3):
            assert check_in_process(app, spec.request(k)) is None
    # 2 benchmark endpoints + 50 fillers + /users/:id + the table + /echo
    assert len(app.routes()) == 53 + len(table) + 1


def test_a_wrong_answer_is_caught() -> None:
    app = create_app()
    spec = next(s for s in default_table() if s.kind == "param")
    good = spec.request(5)
    wrong_body = BenchRequest(
        good.method, good.path, expect_content_type=good.expect_content_type, expect_body=b"{}"
    )
    assert check_in_process(app, wrong_body) is not None
    other = BenchRequest(good.method, spec.path(6), expect_body=good.expect_body)
    assert check_in_process(app, other) is not None


def test_env_vars_choose_table_and_middleware(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("H3LAB_BENCH_ROUTES", "30")
    monkeypatch.setenv("H3LAB_BENCH_SEED", "7")
    monkeypatch.setenv("H3LAB_BENCH_MIDDLEWARES", "3")
    monkeypatch.setenv("H3LAB_BENCH_MIDDLEWARE_KIND", "before")
    app = create_app(Config.preset("performance"))
    assert len(app.routes()) == 53 + 30 + 1
    assert len(app._layers) == 3 and all(layer.kind == "before" for layer in app._layers)
    for request in zipf(seed=1).requests(100):  # built from the same env
        assert check_in_process(app, request) is None
    assert {r.pattern for r in app.routes()} >= {s.pattern for s in route_table(30, seed=7)}
    monkeypatch.setenv("H3LAB_BENCH_MIDDLEWARE_KIND", "sideways")
    with pytest.raises(ValueError, match="H3LAB_BENCH_MIDDLEWARE_KIND"):
        create_app()
    monkeypatch.setenv("H3LAB_BENCH_MIDDLEWARE_KIND", "onion")
    monkeypatch.setenv("H3LAB_BENCH_MIDDLEWARES", "-1")
    with pytest.raises(ValueError, match="H3LAB_BENCH_MIDDLEWARES"):
        create_app()


@pytest.mark.parametrize("execution", ["legacy", "fast"])
@pytest.mark.parametrize("kind", ["onion", "before"])
def test_middleware_app_answers_through_noop_middleware(execution: str, kind: str) -> None:
    config = Config().replace("middleware.execution", execution)
    app = middleware_app(config, 4, kind)
    assert len(app._layers) == 4
    for request in mixed(seed=2).requests(60):
        assert check_in_process(app, request) is None
    with pytest.raises(ValueError, match="kind"):
        middleware_app(config, 1, "sideways")
    with pytest.raises(ValueError, match="n_middlewares"):
        build_app(config, n_middlewares=-1)


def test_create_app_is_a_serve_factory() -> None:
    from h3lab.cli import load_app

    app = load_app("h3lab.bench.apps:create_app", Config.preset("minimal"))
    assert app.config.preset_name == "minimal"
    assert check_in_process(app, BENCHMARK_ENDPOINTS["/json"]()) is None
