"""Middleware execution: legacy and fast must behave identically."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from h3lab import H3, Config, HTTPError, Response
from h3lab.event import H3Event
from h3lab.middleware import MIDDLEWARE_EXECUTIONS, Layer, NextCalledTwice, prefix_relation
from h3lab.routing import routing_path


@pytest.fixture(params=MIDDLEWARE_EXECUTIONS.names())
def execution(request: pytest.FixtureRequest) -> str:
    return request.param


def make_app(execution: str) -> H3:
    return H3(Config().replace("middleware.execution", execution))


async def call(app: H3, method: str, path: str, headers: dict[str, str] | None = None) -> Response:
    event = app.pool.acquire()
    event.method = method
    event.raw_path = event.path = path
    event.route_path = routing_path(path)
    event._raw_headers = [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    try:
        try:
            result = app.handle(event)
            if asyncio.iscoroutine(result):
                result = await result
            return app.response_for(event, result)
        except Exception as exc:
            return app.error_response(event, exc)
    finally:
        app.pool.release(event)


async def test_onion_order_and_post_processing(execution: str) -> None:
    app = make_app(execution)
    trail: list[str] = []

    def tracer(name: str) -> Any:
        async def mw(event: H3Event, next: Any) -> Any:
            trail.append(f"{name}>")
            value = await next()
            trail.append(f"<{name}")
            return value

        return mw

    for name in "abc":
        app.use(tracer(name))

    async def upper(event: H3Event, next: Any) -> Any:
        return (await next()).upper()

    app.use(upper)
    app.get("/x", lambda e: trail.append("handler") or "done")
    response = await call(app, "GET", "/x")
    assert response.body == b"DONE"
    assert trail == ["a>", "b>", "c>", "handler", "<c", "<b", "<a"]


async def test_short_circuit_skips_the_rest(execution: str) -> None:
    app = make_app(execution)
    ran: list[str] = []

    async def gate(event: H3Event, next: Any) -> Any:
        if event.headers.get("x-stop"):
            return Response("stopped", status=401)
        return await next()

    def later(event: H3Event) -> None:
        ran.append("later")

    app.use(gate).use(later)
    app.get("/x", lambda e: ran.append("handler") or "ok")
    assert (await call(app, "GET", "/x", {"x-stop": "1"})).status == 401
    assert ran == []
    assert (await call(app, "GET", "/x")).body == b"ok" and ran == ["later", "handler"]


async def test_before_style_middleware_sync_and_async(execution: str) -> None:
    app = make_app(execution)

    def sync_before(event: H3Event) -> Any:
        event.context["sync"] = True
        return "blocked" if event.path == "/blocked" else None

    async def async_before(event: H3Event) -> Any:
        await asyncio.sleep(0)
        event.context["async"] = True
        return None

    app.use(sync_before).use(async_before)
    app.get("/x", lambda e: dict(e.context))
    app.get("/blocked", lambda e: "reached")
    assert (await call(app, "GET", "/x")).body == b'{"sync":true,"async":true}'
    assert (await call(app, "GET", "/blocked")).body == b"blocked"


async def test_errors_propagate_through_the_onion(execution: str) -> None:
    app = make_app(execution)

    async def catcher(event: H3Event, next: Any) -> Any:
        try:
            return await next()
        except HTTPError as err:
            return {"caught": err.status}

    app.use(catcher)

    def fail(event: H3Event) -> None:
        raise HTTPError(409, "conflict")

    app.get("/x", fail)
    assert (await call(app, "GET", "/x")).body == b'{"caught":409}'
    # The not-found endpoint runs inside the middleware too.
    assert (await call(app, "GET", "/missing")).body == b'{"caught":404}'


async def test_next_called_twice_is_an_error(execution: str) -> None:
    app = make_app(execution)

    async def twice(event: H3Event, next: Any) -> Any:
        await next()
        return await next()

    app.use(twice)
    app.get("/x", lambda e: "x")
    response = await call(app, "GET", "/x")
    assert response.status == 500


async def test_prefix_scope_and_route_middleware(execution: str) -> None:
    app = make_app(execution)

    async def tag(event: H3Event, next: Any) -> Any:
        event.set_header("x-api", "1")
        return await next()

    async def route_level(event: H3Event, next: Any) -> Any:
        event.set_header("x-route", "1")
        return await next()

    app.use("/api", tag)
    app.get("/api/:thing", lambda e: "api")
    app.get("/apiary", lambda e: "bees")
    app.get("/**", lambda e: "any")
    app.get("/special", lambda e: "s", middleware=[route_level])
    api = await call(app, "GET", "/api/x")
    assert api.header("x-api") == "1"
    assert (await call(app, "GET", "/apiary")).header("x-api") is None
    # /** may or may not be under /api: decided per request.
    assert (await call(app, "GET", "/api")).header("x-api") == "1"
    assert (await call(app, "GET", "/other/api")).header("x-api") is None
    special = await call(app, "GET", "/special")
    assert special.header("x-route") == "1" and special.header("x-api") is None


async def test_middleware_added_later_is_applied(execution: str) -> None:
    app = make_app(execution)
    app.get("/x", lambda e: "x")
    assert (await call(app, "GET", "/x")).body == b"x"

    async def late(event: H3Event, next: Any) -> Any:
        return "late"

    app.use(late)
    assert (await call(app, "GET", "/x")).body == b"late"


async def test_params_visible_in_middleware(execution: str) -> None:
    app = make_app(execution)

    async def peek(event: H3Event, next: Any) -> Any:
        event.context["seen"] = dict(event.params)
        return await next()

    app.use(peek)
    app.get("/u/:id", lambda e: e.context["seen"])
    assert (await call(app, "GET", "/u/7")).body == b'{"id":"7"}'


def test_fast_compiles_a_bare_route_to_its_handler() -> None:
    app = make_app("fast")

    def handler(event: H3Event) -> str:
        return "x"

    app.get("/x", handler)
    app.prepare()
    route = app.router.match("GET", "/x")[0]  # type: ignore[index]
    assert route.chain is handler


def test_fast_resolves_scopes_at_compile_time() -> None:
    app = make_app("fast")

    async def mw(event: H3Event, next: Any) -> Any:
        return await next()

    app.use("/api", mw)
    app.get("/api/users", lambda e: "u")
    app.get("/web/page", lambda e: "p")
    app.get("/:anything/x", lambda e: "a")
    app.prepare()
    assert app.execution.stats()["scopes_resolved_at_compile_time"] == 2
    assert app.router.match("GET", "/web/page")[0].chain is not None  # type: ignore[index]


@pytest.mark.parametrize(
    ("prefix", "pattern", "expected"),
    [
        ("", "/x", True),
        ("/api", "/api/users", True),
        ("/api", "/api", True),
        ("/api", "/web", False),
        ("/api", "/apiary", False),
        ("/api/v1", "/api", False),
        ("/api", "/:x/users", None),
        ("/api", "/**", None),
        ("/api", None, None),
    ],
)
def test_prefix_relation(prefix: str, pattern: str | None, expected: bool | None) -> None:
    assert prefix_relation(prefix, pattern) is expected


def test_layer_shapes_are_checked() -> None:
    assert Layer.of(lambda e, n: n()).kind == "onion"
    assert Layer.of(lambda e: None).kind == "before"
    with pytest.raises(TypeError, match="must take"):
        Layer.of(lambda: None)
    with pytest.raises(ValueError, match="prefix must start"):
        Layer.of(lambda e: None, "api")


def test_next_called_twice_error_message() -> None:
    assert "more than once" in str(NextCalledTwice())
