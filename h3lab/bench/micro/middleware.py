"""The ``middleware`` target: ns per request through ``n`` no-op middlewares per execution."""

from __future__ import annotations

from collections.abc import Sequence
from types import CoroutineType
from typing import Any

from h3lab.bench.micro.harness import BenchmarkError, Case, Op, drive, null_loop, run_cases
from h3lab.registry import family

_MW_PATH = "/mw"
_MW_BODY = "ok"


def _middleware_app(execution: str, n: int, kind: str) -> Any:
    from h3lab.app import H3
    from h3lab.bench.apps import noop_middleware
    from h3lab.config import Config

    app = H3(Config().replace("middleware.execution", execution))
    middleware = noop_middleware(kind)
    for _ in range(n):
        app.use(middleware)
    app.get(_MW_PATH, lambda event: _MW_BODY)
    app.prepare()
    return app


def _middleware_loop(app: Any) -> Op:
    from h3lab.event import H3Event

    event = H3Event(app)
    event.method = "GET"
    event.raw_path = event.route_path = event.path = _MW_PATH
    handle = app.handle
    if drive(handle(event)) != _MW_BODY:
        raise BenchmarkError("middleware chain returned a wrong value")

    def run(loops: int) -> int:
        for _ in range(loops):
            value = handle(event)
            if type(value) is CoroutineType:
                try:
                    value.send(None)
                except StopIteration:
                    continue
                value.close()
                raise BenchmarkError("the middleware chain suspended")
        return loops

    return run


def bench_middleware(
    executions: Sequence[str] | None = None,
    counts: Sequence[int] = (0, 1, 2, 4, 8, 16, 32),
    kinds: Sequence[str] = ("onion", "before"),
    **timing: Any,
) -> list[dict[str, Any]]:
    """ns per request through ``n`` no-op middlewares (+ ``overhead_ns`` = ns(n) - ns(0))."""
    cases = []
    for execution in family("middleware.execution").names() if executions is None else executions:
        for kind in kinds:
            for n in counts:
                app = _middleware_app(execution, n, kind)
                cases.append(
                    Case(
                        "middleware",
                        execution,
                        n,
                        f"noop-{kind}",
                        _middleware_loop(app),
                        {
                            "middleware": execution,
                            "kind": kind,
                            "router": app.config.router.matching,
                        },
                        null=null_loop(),
                    )
                )
    rows = run_cases(cases, **timing)
    return rows + _overhead_rows(rows)


def _overhead_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """ns(n) - ns(0) per execution, kind and repetition (samples of one round are adjacent in time)."""
    base = {
        (r["middleware"], r["kind"], r["repetition"]): r["value"]
        for r in rows
        if r["metric"] == "ns_per_op" and r["param"] == 0
    }
    out = []
    for row in rows:
        if row["metric"] != "ns_per_op":
            continue
        zero = base.get((row["middleware"], row["kind"], row["repetition"]))
        if zero is not None:
            out.append(
                {
                    **row,
                    "metric": "overhead_ns",
                    "value": row["value"] - zero,
                    "unit": "ns",
                    "warning": None,
                }
            )
    return out
