"""The ``dispatch`` target: a full in-process dispatch per preset, without parsing."""

from __future__ import annotations

from collections.abc import Sequence
from types import CoroutineType
from typing import Any

from h3lab.bench.micro.harness import BenchmarkError, Case, Op, Stream, null_stream, run_cases
from h3lab.bench.workloads import BenchRequest
from h3lab.routing import routing_path


def _dispatch_requests(endpoint: str, n_ids: int) -> list[BenchRequest]:
    from h3lab.bench.apps import BENCHMARK_ENDPOINTS, user_request

    if endpoint not in BENCHMARK_ENDPOINTS:
        raise ValueError(f"endpoint must be one of {list(BENCHMARK_ENDPOINTS)}, got {endpoint!r}")
    if endpoint == "/users/:id":
        return [user_request(i) for i in range(n_ids)]
    return [BENCHMARK_ENDPOINTS[endpoint]()]


def _verify_dispatch(app: Any, request: BenchRequest, label: str) -> None:
    from h3lab.bench.apps import check_in_process

    problem = check_in_process(app, request)
    if problem is not None:
        raise BenchmarkError(f"{label}: {problem}")


def _dispatch_loop(app: Any, requests: Sequence[BenchRequest]) -> Op:
    stream = Stream([(r.path, routing_path(r.path)) for r in requests])
    acquire = app.pool.acquire
    release = app.pool.release
    handle = app.handle
    response_for = app.response_for

    def run(loops: int) -> int:
        for chunk in stream.chunks(loops):
            for raw, route_path in chunk:
                event = acquire()
                event.method = "GET"
                event.raw_path = event.path = raw
                event.route_path = route_path
                value = handle(event)
                if type(value) is CoroutineType:
                    try:
                        value.send(None)
                    except StopIteration as stop:
                        value = stop.value
                    else:
                        value.close()
                        raise BenchmarkError("dispatch suspended")
                response_for(event, value)
                release(event)
                del event  # nothing may reference it at its next acquire (h3lab.pool)
        return loops

    return run


def bench_dispatch(
    presets: Sequence[str] | None = None,
    endpoints: Sequence[str] = ("/plaintext", "/json", "/users/:id"),
    *,
    n_ids: int = 64,
    **timing: Any,
) -> list[dict[str, Any]]:
    """Full in-process dispatch per preset (no parsing): pool, route, chain, response, release.

    The bench app (``h3lab.bench.apps.build_app``) under each preset; the
    preset's memory strategy is installed around each sample, as the server
    installs it for its lifetime. ``/users/:id`` rotates over ``n_ids`` ids.
    """
    from h3lab.bench.apps import build_app
    from h3lab.bench.results import config_columns
    from h3lab.config import PRESETS, Config

    presets = tuple(PRESETS if presets is None else presets)
    cases = []
    for preset in presets:
        config = Config.preset(preset)
        app = build_app(config)
        app.prepare()
        for endpoint in endpoints:
            requests = _dispatch_requests(endpoint, n_ids)
            for request in requests[:4]:
                _verify_dispatch(app, request, f"dispatch {preset}")
            cases.append(
                Case(
                    "dispatch",
                    preset,
                    endpoint,
                    "single-endpoint",
                    _dispatch_loop(app, requests),
                    config_columns(config),
                    setup=app.memory.install,
                    teardown=app.memory.close,
                    null=null_stream(requests),
                )
            )
    return run_cases(cases, **timing)
