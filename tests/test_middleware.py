"""Middleware execution: legacy and fast must behave identically."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from h3lab import H3, Config, HTTPError, Response
from h3lab.event import H3Event
from h3lab.middleware import MIDDLEWARE_EXECUTIONS, Layer, NextCalledTwice, prefix_relation
from h3lab.routing import routing_path
from tests.test_routing_properties import patterns as property_patterns
from tests.test_routing_properties import raw_paths as property_paths


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


async def test_next_belongs_to_the_run_of_its_own_request(execution: str) -> None:
    # The chain's position lives with one run of the chain, not on the (pooled)
    # event: a next() kept past its request never runs another request's chain,
    # and two requests in flight on one app each go their own way.
    app = make_app(execution)
    kept: list[Any] = []
    gate = asyncio.Event()

    async def keep(event: H3Event, next: Any) -> Any:
        kept.append(next)
        if event.path == "/slow":
            await gate.wait()
        return await next()

    async def tag(event: H3Event, next: Any) -> Any:
        event.set_header("x-path", event.path)
        return await next()

    app.use(keep)
    app.use(tag)
    app.get("/slow", lambda e: "slow")
    app.get("/fast", lambda e: "fast")
    slow = asyncio.ensure_future(call(app, "GET", "/slow"))
    await asyncio.sleep(0)
    fast = await call(app, "GET", "/fast")
    gate.set()
    slow_response = await slow
    assert (fast.body, fast.header("x-path")) == (b"fast", "/fast")
    assert (slow_response.body, slow_response.header("x-path")) == (b"slow", "/slow")
    assert len(kept) == 2
    for next in kept:
        with pytest.raises(NextCalledTwice):
            await next()


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
        # Compared in routing form: decoded static segments, not raw text.
        ("/admin", "/%61dmin/users", True),
        ("/café", "/caf%C3%A9/menu", True),
        ("/admin", "/%62dmin/users", False),
        ("/a%2Fb", "/a/b", False),
        ("/a%2Fb", "/a%2fb/c", True),
        # The new syntax: decided only when every variant agrees.
        ("/api", "/api/:id(\\d+)", True),
        ("/api", "/api/:id?", True),
        ("/api/v1", "/api/:v?", None),
        ("/api", "/:v(api)/x", None),
        ("/api", "/ap:x", None),
        ("/api", "/{api}?/x", None),
        ("/api", "/api{s}?/x", None),
        ("/apis", "/api{s}?/x", None),
        ("/web", "/api{s}?/x", False),
        ("/api/x", "/api/*", None),
        ("/api", "/api\\:v/x", False),
        ("/api:v", "/api\\:v/x", True),
        ("/api", "/(", None),  # refused by the router: never guessed
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


GUARDED = {"status": 401, "message": "guarded"}


def guard_before(event: H3Event) -> Any:
    raise HTTPError(401, "guarded")


async def guard_onion(event: H3Event, next: Any) -> Any:
    raise HTTPError(401, "guarded")


@pytest.mark.parametrize("guard", [guard_before, guard_onion])
@pytest.mark.parametrize(
    ("prefix", "pattern", "path"),
    [
        ("/admin", "/%61dmin/users", "/admin/users"),
        ("/admin", "/%61dmin/users", "/%61dmin/users"),
        ("/café", "/caf%C3%A9/menu", "/caf%C3%A9/menu"),
        ("/caf%C3%A9", "/café/menu", "/caf%c3%a9/menu"),
        ("/admin", "/:section(admin)/users", "/admin/users"),
        ("/admin", "/{admin}?/x", "/admin/x"),
    ],
)
async def test_percent_encoded_pattern_cannot_skip_a_guard(
    execution: str, guard: Any, prefix: str, pattern: str, path: str
) -> None:
    """Issue 10 item 13: the scope is decided on decoded segments."""
    app = make_app(execution)
    app.use(prefix, guard)
    app.get(pattern, lambda e: {"secret": True})
    response = await call(app, "GET", path)
    assert response.status == 401
    assert json.loads(response.body)["message"] == "guarded"


PREFIX_SEGMENTS = ["a", "%61", "b", "ab", "café", "caf%C3%A9", "c%2Fd", "1"]
ROUTE_SEGMENTS = [
    "a",
    "%61",
    "b",
    "caf%C3%A9",
    "café",
    ":p",
    "*",
    ":n(\\d+)",
    "@:m",
    ":o?",
    "{a}?b",
]


@st.composite
def prefixes(draw: st.DrawFn) -> str:
    segments = draw(st.lists(st.sampled_from(PREFIX_SEGMENTS), min_size=1, max_size=2))
    return "/" + "/".join(segments) + draw(st.sampled_from(["", "/"]))


@st.composite
def scoped_patterns(draw: st.DrawFn) -> str:
    if draw(st.booleans()):
        return draw(property_patterns())
    segments = draw(st.lists(st.sampled_from(ROUTE_SEGMENTS), max_size=3, unique=True))
    last = draw(st.sampled_from(["", "/**", "/**:rest", "/x"]))
    return "/" + "/".join(segments) + last


@st.composite
def request_paths(draw: st.DrawFn) -> str:
    if draw(st.booleans()):
        return draw(property_paths())
    segments = draw(st.lists(st.sampled_from([*PREFIX_SEGMENTS, "x", "12", "@a", ""]), max_size=4))
    return "/" + "/".join(segments)


EXAMPLE_VALUES = {
    ":n(\\d+)": "12",
    "@:m": "@a",
    ":o?": "o",
    "{a}?b": "ab",
    "**:rest": "r/s",
    "**": "r",
    ":p": "x",
    "*": "x",
}


def example_path(pattern: str) -> str:
    """One path a generated pattern matches (or a near miss for the others)."""
    segments = pattern.rstrip("/").split("/")
    return "/".join(EXAMPLE_VALUES.get(segment, segment) for segment in segments) or "/"


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    prefix=prefixes(),
    table=st.lists(scoped_patterns(), min_size=1, max_size=5),
    paths=st.lists(request_paths(), min_size=1, max_size=6),
)
def test_legacy_and_fast_agree_on_scopes(prefix: str, table: list[str], paths: list[str]) -> None:
    """Differential: the same app under both executions answers the same, and
    a scope the fast chain decided at compile time agrees with the per-request
    test that legacy runs."""
    layer_prefix = Layer.of(guard_before, routing_path(prefix)).prefix

    async def run() -> None:
        apps = {name: make_app(name) for name in MIDDLEWARE_EXECUTIONS.names()}
        for app in apps.values():
            app.use(prefix, guard_before)
        for pattern in table:
            outcomes = set()
            for app in apps.values():
                try:
                    app.get(pattern, lambda e: {"route": e.route.pattern if e.route else None})
                    outcomes.add("ok")
                except ValueError:
                    outcomes.add("refused")
            assert len(outcomes) == 1, pattern
        # Paths the routes do match, so that scoped routes really get requests.
        derived = [prefix, prefix + "/x"] + [example_path(pattern) for pattern in table]
        for path in paths + derived:
            answers = {}
            for name, app in apps.items():
                response = await call(app, "GET", path)
                answers[name] = (response.status, response.body)
            assert len(set(answers.values())) == 1, (prefix, table, path, answers)
            route_path = routing_path(path)
            match = apps["legacy"].router.match("GET", route_path)
            if match is not None:
                relation = prefix_relation(layer_prefix, match[0].pattern)
                applies = Layer.of(guard_before, layer_prefix).applies(route_path)
                if relation is not None:
                    assert relation is applies, (prefix, match[0].pattern, path)

    asyncio.run(run())


# -- options (method=, match=): both executions, every shape ---------------------------

OPTION_METHODS = ["GET", "HEAD", "POST", "QUERY", "DELETE"]


@st.composite
def option_layers(draw: st.DrawFn) -> list[tuple[str, Any, Any, str]]:
    """(prefix, method option, match flag, shape) for a few layers."""
    layers = []
    for _ in range(draw(st.integers(1, 4))):
        prefix = draw(st.sampled_from(["", "/a", "/a/b", "/c"]))
        method = draw(
            st.one_of(
                st.none(),
                st.sampled_from(OPTION_METHODS),
                st.lists(st.sampled_from(OPTION_METHODS), min_size=1, max_size=3),
            )
        )
        flag = draw(st.sampled_from([None, "x", "y"]))
        shape = draw(st.sampled_from(["before", "async-before", "onion"]))
        layers.append((prefix, method, flag, shape))
    return layers


def option_layer(name: str, shape: str) -> Any:
    if shape == "before":

        def before(event: H3Event) -> None:
            event.append_header("x-trail", name)

        return before
    if shape == "async-before":

        async def async_before(event: H3Event) -> None:
            event.append_header("x-trail", name)

        return async_before

    async def onion(event: H3Event, next: Any) -> Any:
        event.append_header("x-trail", name)
        return await next()

    return onion


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    layers=option_layers(),
    routes=st.lists(
        st.tuples(
            st.sampled_from(["GET", "POST", "HEAD", "QUERY", "*"]),
            st.sampled_from(["/a", "/a/b", "/a/:p", "/c/**", "/d"]),
        ),
        min_size=1,
        max_size=5,
        unique=True,
    ),
    requests=st.lists(
        st.tuples(
            st.sampled_from(["GET", "HEAD", "POST", "QUERY", "DELETE", "PUT"]),
            st.sampled_from(["/a", "/a/b", "/a/z", "/c/q/r", "/d", "/nowhere"]),
            st.sampled_from(["", "x", "y", "x&y"]),
        ),
        min_size=1,
        max_size=6,
    ),
)
# The cases each compile-time shortcut of ``fast`` must get right, always tried.
@example(
    layers=[("", "HEAD", None, "before"), ("", "GET", None, "onion")],
    routes=[("GET", "/a"), ("*", "/d")],
    requests=[("GET", "/a", ""), ("HEAD", "/a", ""), ("HEAD", "/d", ""), ("GET", "/d", "")],
)
@example(
    layers=[("/a", ["POST", "QUERY"], "x", "async-before"), ("", "DELETE", None, "before")],
    routes=[("POST", "/a/:p"), ("*", "/c/**")],
    requests=[("POST", "/a/z", "x"), ("POST", "/a/z", ""), ("QUERY", "/c/q/r", "x")],
)
def test_legacy_and_fast_agree_on_options(
    layers: list[tuple[str, Any, Any, str]],
    routes: list[tuple[str, str]],
    requests: list[tuple[str, str, str]],
) -> None:
    """Differential: method/match options (with prefixes, every layer shape,
    routes of every method) run the same layers under both executions, and
    exactly the layers the options select (checked against a direct model)."""

    async def run() -> None:
        apps = {name: make_app(name) for name in MIDDLEWARE_EXECUTIONS.names()}
        for app in apps.values():
            for i, (prefix, method, flag, shape) in enumerate(layers):
                fn = option_layer(str(i), shape)
                match = None if flag is None else (lambda e, f=flag: f in e.query)
                if prefix:
                    app.use(prefix, fn, method=method, match=match)
                else:
                    app.use(fn, method=method, match=match)
            for method, pattern in routes:
                with contextlib.suppress(ValueError):  # duplicate shapes: refused by both
                    app.on(method, pattern, lambda e: "ok")
        for method, path, query in requests:
            answers = {}
            for name, app in apps.items():
                event_path = f"{path}?{query}" if query else path
                response = await call_with_query(app, method, event_path)
                trail = [v for k, v in response.headers if k == "x-trail"]
                answers[name] = (response.status, response.body, tuple(trail))
            assert len(set(answers.values())) == 1, (layers, routes, method, path, answers)
            expected = [
                str(i)
                for i, (prefix, option, flag, _) in enumerate(layers)
                if Layer.of(guard_before, prefix).applies(path)
                and (
                    option is None
                    or method in ({option} if isinstance(option, str) else set(option))
                    or (
                        method == "HEAD"
                        and "GET" in ({option} if isinstance(option, str) else set(option))
                    )
                )
                and (flag is None or flag in query.split("&"))
            ]
            assert list(answers["fast"][2]) == expected, (layers, method, path, query)

    asyncio.run(run())


async def call_with_query(app: H3, method: str, target: str) -> Response:
    path, _, query = target.partition("?")
    event = app.pool.acquire()
    event.method = method
    event.raw_path = event.path = path
    event.route_path = routing_path(path)
    event.query_string = query
    try:
        try:
            result = app.handle(event)
            if asyncio.iscoroutine(result):
                result = await result
            return app.response_for(event, result)
        except Exception as exc:
            response = app.error_response(event, exc)
            # error responses carry no staged headers before issue 10's merge: add the trail
            staged = [(k, v) for k, v in event._resp_headers or () if k == "x-trail"]
            if not any(k == "x-trail" for k, _ in response.headers):
                response.headers += staged
            return response
    finally:
        app.pool.release(event)
