"""The apps the benchmarks target: ``h3lab serve h3lab.bench.apps:create_app --preset X``.

``create_app(config)`` registers

* the demo's benchmark endpoints, answered exactly as ``h3lab.examples.demo``
  answers them: ``GET /plaintext`` -> ``Hello, World!``, ``GET /json`` ->
  ``{"message":"Hello, World!"}``, 50 filler routes
  ``/api/v1/resource<i>/:id`` and then ``GET /users/:id`` -> ``{"id": id}``
  (the adversarial workload's target);
* the workload route table, ``h3lab.bench.route_tables.default_table()``: every
  route's handler returns what ``RouteSpec.request(k).expect_body`` predicts;
* ``POST /echo``, returning the JSON request body (re-encoded compactly, so a
  compact JSON body comes back byte for byte).

Environment variables (read when the app is built, so a server started with
them and a load generator sharing the environment agree on the routes):

=============================  =============================================
``H3LAB_BENCH_ROUTES``         route table size (default 200)
``H3LAB_BENCH_SEED``           route table seed (default 0)
``H3LAB_BENCH_MIDDLEWARES``    no-op middlewares added with ``app.use`` (default 0)
``H3LAB_BENCH_MIDDLEWARE_KIND`` ``onion`` (default) or ``before``
=============================  =============================================
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from types import CoroutineType
from typing import Any
from urllib.parse import unquote

from h3lab.app import H3
from h3lab.bench.route_tables import (
    ECHO_PATH,
    JSON_TYPE,
    TEXT_TYPE,
    BenchRequest,
    RouteSpec,
    default_table,
    env_int,
    json_body,
)
from h3lab.config import Config
from h3lab.event import H3Event
from h3lab.response import Response

PLAINTEXT = "Hello, World!"
N_FILLER = 50

MIDDLEWARES_ENV = "H3LAB_BENCH_MIDDLEWARES"
MIDDLEWARE_KIND_ENV = "H3LAB_BENCH_MIDDLEWARE_KIND"
MIDDLEWARE_KINDS = ("onion", "before")


# -- no-op middleware ---------------------------------------------------------


async def noop_onion(event: H3Event, next: Callable[[], Any]) -> Any:
    """Onion middleware doing nothing but passing the request on."""
    return await next()


def noop_before(event: H3Event) -> None:
    """h3 v1 "before" middleware doing nothing (None continues the chain)."""
    return None


def noop_middleware(kind: str) -> Callable[..., Any]:
    if kind == "onion":
        return noop_onion
    if kind == "before":
        return noop_before
    raise ValueError(f"middleware kind must be one of {list(MIDDLEWARE_KINDS)}, got {kind!r}")


# -- registration ---------------------------------------------------------------


def _plaintext(event: H3Event) -> str:
    return PLAINTEXT


def _json(event: H3Event) -> dict[str, str]:
    return {"message": PLAINTEXT}


def _user(event: H3Event) -> dict[str, str]:
    return {"id": event.params["id"]}


def _resource_handler(i: int) -> Callable[[H3Event], Any]:
    def handler(event: H3Event) -> dict[str, Any]:
        return {"resource": i, "id": event.params["id"]}

    handler.__name__ = f"resource{i}"
    return handler


async def _echo(event: H3Event) -> Any:
    return await event.json()


def add_benchmark_endpoints(app: H3) -> H3:
    """The demo's /plaintext, /json, 50 filler routes, then /users/:id."""
    app.get("/plaintext", _plaintext)
    app.get("/json", _json)
    for i in range(N_FILLER):
        app.get(f"/api/v1/resource{i}/:id", _resource_handler(i))
    app.get("/users/:id", _user)
    return app


def add_route_table(app: H3, table: Sequence[RouteSpec]) -> H3:
    for spec in table:
        app.on(spec.method, spec.pattern, spec.handler())
    return app


def build_app(
    config: Config | None = None,
    *,
    table: Sequence[RouteSpec] | None = None,
    n_middlewares: int = 0,
    kind: str = "onion",
) -> H3:
    """The bench app with an explicit table and middleware count (no env vars read
    except by ``default_table()`` when ``table`` is None)."""
    if isinstance(n_middlewares, bool) or not isinstance(n_middlewares, int) or n_middlewares < 0:
        raise ValueError(f"n_middlewares must be an int >= 0, got {n_middlewares!r}")
    middleware = noop_middleware(kind)
    app = H3(config)
    for _ in range(n_middlewares):
        app.use(middleware)
    add_benchmark_endpoints(app)
    add_route_table(app, default_table() if table is None else table)
    app.post(ECHO_PATH, _echo)
    return app


def create_app(config: Config | None = None) -> H3:
    """The bench app, configured by the ``H3LAB_BENCH_*`` environment variables."""
    n = env_int(MIDDLEWARES_ENV, 0, 0)
    kind = os.environ.get(MIDDLEWARE_KIND_ENV, "").strip() or "onion"
    if kind not in MIDDLEWARE_KINDS:
        raise ValueError(
            f"{MIDDLEWARE_KIND_ENV} must be one of {list(MIDDLEWARE_KINDS)}, got {kind!r}"
        )
    return build_app(config, n_middlewares=n, kind=kind)


def middleware_app(config: Config | None, n_middlewares: int, kind: str = "onion") -> H3:
    """The bench app behind ``n_middlewares`` no-op middlewares of ``kind``."""
    return build_app(config, n_middlewares=n_middlewares, kind=kind)


# -- in-process dispatch ----------------------------------------------------------


def dispatch(app: H3, request: BenchRequest) -> Response:
    """Serve ``request`` in-process, as the server would after parsing it.

    Fills a pooled event, runs ``app.handle``, drives a coroutine with
    ``send(None)`` (raising if the chain really suspends: the bench handlers
    never do), converts the value or the exception to a ``Response`` and
    releases the event. For tests and correctness checks, not for timing.
    """
    from h3lab.routing import routing_path

    event = app.pool.acquire()
    try:
        raw, _, query = request.path.partition("?")
        event.method = request.method
        event.raw_path = raw
        event.route_path = routing_path(raw)
        event.path = unquote(raw) if "%" in raw else raw
        event.query_string = query
        event._body = request.body
        if request.content_type is not None:
            event._raw_headers = [(b"content-type", request.content_type.encode("latin-1"))]
        suspended = None
        try:
            value = app.handle(event)
            if type(value) is CoroutineType:
                try:
                    value.send(None)
                except StopIteration as stop:
                    value = stop.value
                else:
                    suspended = value
            if suspended is None:
                return app.response_for(event, value)
        except Exception as exc:  # what the server does: the error as a response
            return app.error_response(event, exc)
        suspended.close()
        raise RuntimeError(f"{request.method} {request.path}: the handler suspended")
    finally:
        app.pool.release(event)


def check_in_process(app: H3, request: BenchRequest) -> str | None:
    """``request.check`` applied to ``dispatch(app, request)``."""
    response = dispatch(app, request)
    body = response.body if isinstance(response.body, bytes) else None
    return request.check(response.status, response.header("content-type"), body)


# -- expected answers of the fixed endpoints --------------------------------------


def plaintext_request() -> BenchRequest:
    return BenchRequest(
        "GET",
        "/plaintext",
        expect_content_type=TEXT_TYPE,
        expect_body=PLAINTEXT.encode(),
        route="/plaintext",
    )


def json_request() -> BenchRequest:
    return BenchRequest(
        "GET",
        "/json",
        expect_content_type=JSON_TYPE,
        expect_body=json_body({"message": PLAINTEXT}),
        route="/json",
    )


def user_request(user_id: int | str = 42) -> BenchRequest:
    uid = str(user_id)
    return BenchRequest(
        "GET",
        f"/users/{uid}",
        expect_content_type=JSON_TYPE,
        expect_body=json_body({"id": uid}),
        route="/users/:id",
        params=(("id", uid),),
    )


BENCHMARK_ENDPOINTS: dict[str, Callable[[], BenchRequest]] = {
    "/plaintext": plaintext_request,
    "/json": json_request,
    "/users/:id": user_request,
}
