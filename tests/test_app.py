"""The behavioural suite: a real server on 127.0.0.1, a real aiohttp client,
run over transport x strategy configuration.

The matrix (``MATRIX``): every strategy configuration (conftest.STRATEGY_CONFIGS)
on the built-in server, and the four presets plus both middleware executions
through ``app.asgi`` under uvicorn -- so a difference between the transports,
or between the executions, fails a test. The full cross product would add
little (the strategies live below the transport) and double the run time.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest

from h3lab import H3, Config, HTTPError, Response
from h3lab.config import strategy_names
from h3lab.event import H3Event
from h3lab.registry import FAMILIES
from tests.conftest import STRATEGY_CONFIGS, TRANSPORTS, strategy_id


def _on_asgi_too(ident: str) -> bool:
    return ident.startswith(("preset-", "middleware-"))


MATRIX = [("builtin", ident, config) for ident, config in STRATEGY_CONFIGS] + [
    ("uvicorn", ident, config) for ident, config in STRATEGY_CONFIGS if _on_asgi_too(ident)
]


def build_app(config: Config) -> H3:
    app = H3(config)
    trail: list[str] = []
    app.state_trail = trail  # type: ignore[attr-defined]

    @app.get("/text")
    def text(event: H3Event) -> str:
        return "hello"

    @app.get("/json")
    def as_json(event: H3Event) -> dict[str, Any]:
        return {"ok": True, "n": 1}

    @app.get("/list")
    def as_list(event: H3Event) -> list[int]:
        return [1, 2, 3]

    @app.get("/bytes")
    def as_bytes(event: H3Event) -> bytes:
        return b"\x00\x01"

    @app.get("/none")
    def nothing(event: H3Event) -> None:
        return None

    @app.post("/created")
    def created(event: H3Event) -> dict[str, str]:
        event.status = 201
        event.set_header("x-made", "yes")
        return {"made": "thing"}

    @app.get("/response")
    def explicit(event: H3Event) -> Response:
        event.set_cookie("flavour", "oat")
        return Response("<b>hi</b>", status=202, headers={"x-a": "1"}, media_type="text/html")

    @app.get("/users/:id")
    async def user(event: H3Event) -> dict[str, Any]:
        keys = sorted(event.params)
        event.params["mutated"] = "by handler"  # must never leak into the next request
        return {"id": event.params["id"], "keys": keys}

    @app.get("/users/me")
    def me(event: H3Event) -> str:
        return "static wins"

    @app.get("/files/**:path")
    def files(event: H3Event) -> dict[str, str]:
        return {"path": event.params["path"]}

    @app.get("/any/*/x")
    def star(event: H3Event) -> dict[str, str]:
        return dict(event.params)

    @app.all("/all")
    def anything(event: H3Event) -> str:
        return event.method

    @app.get("/query")
    def query(event: H3Event) -> dict[str, Any]:
        return {"a": event.query.get("a"), "all": event.query.getall("a"), "path": event.path}

    @app.get("/headers")
    def headers(event: H3Event) -> dict[str, Any]:
        return {
            "token": event.headers.get("X-Token"),
            "TOKEN": event.headers["x-token"],
            "cookies": event.cookies,
            "context": dict(event.context),
            "remote_is_loopback": bool(event.remote) and event.remote[0] == "127.0.0.1",
        }

    @app.post("/echo")
    async def echo(event: H3Event) -> Any:
        return {"json": await event.json(), "again": await event.json()}

    @app.post("/raw")
    async def raw(event: H3Event) -> bytes:
        return await event.body()

    @app.post("/form")
    async def form(event: H3Event) -> dict[str, Any]:
        data = await event.form()
        return {"fields": {k: data.getall(k) for k in data.fields}, "files": sorted(data.files)}

    @app.get("/boom")
    def boom(event: H3Event) -> None:
        raise RuntimeError("database password is hunter2")

    @app.get("/teapot")
    def teapot(event: H3Event) -> None:
        raise HTTPError(418, "I'm a teapot", {"short": True})

    @app.get("/sleep/:id")
    async def sleep(event: H3Event) -> dict[str, str]:
        await asyncio.sleep(0.01)
        return {"id": event.params["id"], "hdr": event.headers.get("x-id", "")}

    @app.get("/stream")
    async def stream(event: H3Event) -> Any:
        async def chunks() -> Any:
            for i in range(5):
                yield f"part{i};"
                await asyncio.sleep(0)

        return chunks()

    @app.get("/bad-header")
    def bad_header(event: H3Event) -> str:
        event.set_header("x-evil", "a\r\nset-cookie: pwned=1")
        return "never"

    # -- middleware ----------------------------------------------------------
    async def outer(event: H3Event, next: Any) -> Any:
        event.context["outer"] = True
        trail.append(f"outer>{event.path}")
        result = await next()
        trail.append(f"outer<{event.path}")
        return result

    def stamp(event: H3Event) -> None:  # "before" style: returns None, continues
        event.context["stamped"] = event.path

    async def guard(event: H3Event, next: Any) -> Any:
        if event.headers.get("x-deny"):
            return Response({"denied": True}, status=403)
        return await next()

    async def wrap(event: H3Event, next: Any) -> Any:
        value = await next()
        if isinstance(value, dict):
            return {**value, "wrapped": True}
        return value

    def short(event: H3Event) -> Any:
        return "short-circuited" if event.query.get("short") else None

    app.use(outer)
    app.use(stamp)
    app.use("/admin", guard)
    app.use("/mw", wrap)
    app.use("/mw", short)

    @app.get("/admin/:page")
    def admin(event: H3Event) -> dict[str, str]:
        return {"page": event.params["page"]}

    @app.get("/mw/value")
    def mw_value(event: H3Event) -> dict[str, Any]:
        return {"stamped": event.context.get("stamped"), "outer": event.context.get("outer")}

    async def route_only(event: H3Event, next: Any) -> Any:
        event.set_header("x-route-mw", "1")
        return await next()

    app.get("/route-mw", lambda e: "routed", middleware=[route_only])

    @app.get("/**")
    def fallback(event: H3Event) -> dict[str, str]:
        return {"fallback": event.params["_"]}

    return app


@pytest.fixture(params=MATRIX, ids=[f"{t}-{i}" for t, i, _ in MATRIX])
def target(request: pytest.FixtureRequest) -> tuple[str, Config]:
    """(transport, config): one cell of the matrix."""
    transport, _, config = request.param
    return transport, config


@pytest.fixture
async def live(target: tuple[str, Config], serve_on: Any) -> Any:
    transport, config = target
    return await serve_on(build_app(config), transport)


def test_matrix_covers_every_transport_and_execution() -> None:
    assert {t for t, _, _ in MATRIX} == set(TRANSPORTS)
    on_asgi = {i for t, i, _ in MATRIX if t == "uvicorn"}
    for name in strategy_names("middleware.execution"):
        assert f"middleware-{name}" in on_asgi


def test_strategy_fixture_covers_registries() -> None:
    ids = {ident for ident, _ in STRATEGY_CONFIGS}
    for strategy in FAMILIES:
        for name in strategy.names():
            assert strategy_id(strategy, name) in ids, f"{strategy.field}={name} is not run"


async def test_return_value_conversions(live: Any) -> None:
    status, headers, body = await live.fetch("GET", "/text")
    assert (status, headers["Content-Type"], body) == (200, "text/plain; charset=utf-8", b"hello")
    status, headers, body = await live.fetch("GET", "/json")
    assert headers["Content-Type"] == "application/json" and json.loads(body) == {
        "ok": True,
        "n": 1,
    }
    assert json.loads((await live.fetch("GET", "/list"))[2]) == [1, 2, 3]
    status, headers, body = await live.fetch("GET", "/bytes")
    assert headers["Content-Type"] == "application/octet-stream" and body == b"\x00\x01"
    status, headers, body = await live.fetch("GET", "/none")
    assert status == 204 and body == b"" and "Content-Length" not in headers


async def test_status_headers_cookies_and_explicit_response(live: Any) -> None:
    status, headers, body = await live.fetch("POST", "/created")
    assert status == 201 and headers["x-made"] == "yes" and json.loads(body) == {"made": "thing"}
    status, headers, body = await live.fetch("GET", "/response")
    assert status == 202 and body == b"<b>hi</b>"
    assert headers["Content-Type"] == "text/html" and headers["x-a"] == "1"
    assert headers["Set-Cookie"].startswith("flavour=oat")
    assert "Date" in headers
    if live.transport == "builtin":  # under uvicorn the Server header is uvicorn's business
        assert headers["Server"] == "h3lab"


async def test_routing_priority_params_and_wildcards(live: Any) -> None:
    assert json.loads((await live.fetch("GET", "/users/42"))[2]) == {"id": "42", "keys": ["id"]}
    # The handler mutated event.params: the next (possibly cached) match is clean.
    assert json.loads((await live.fetch("GET", "/users/42"))[2]) == {"id": "42", "keys": ["id"]}
    assert (await live.fetch("GET", "/users/me"))[2] == b"static wins"
    assert (await live.fetch("GET", "/users/me/"))[2] == b"static wins"
    assert json.loads((await live.fetch("GET", "/files/a/b/c.txt"))[2]) == {"path": "a/b/c.txt"}
    assert json.loads((await live.fetch("GET", "/any/thing/x"))[2]) == {"0": "thing"}
    assert json.loads((await live.fetch("GET", "/deep/er/path"))[2]) == {"fallback": "deep/er/path"}
    # %2F inside a param is a character of the param, never a separator: it
    # stays encoded when the param is decoded (h3 v2).
    assert json.loads((await live.fetch("GET", "/users/a%2Fb"))[2])["id"] == "a%2Fb"


async def test_any_method_route(live: Any) -> None:
    for method in ("GET", "POST", "DELETE", "PATCH"):
        assert (await live.fetch(method, "/all"))[2] == method.encode()


async def test_query_path_headers_cookies_context(live: Any) -> None:
    data = json.loads((await live.fetch("GET", "/query?a=1&a=2&b=&c=%20x"))[2])
    assert data == {"a": "1", "all": ["1", "2"], "path": "/query"}
    status, _, body = await live.fetch(
        "GET", "/headers", headers={"X-Token": "t0k", "Cookie": "a=1; b=two"}
    )
    assert status == 200
    data = json.loads(body)
    assert data["token"] == data["TOKEN"] == "t0k"
    assert data["cookies"] == {"a": "1", "b": "two"}
    assert data["context"] == {"outer": True, "stamped": "/headers"}
    assert data["remote_is_loopback"] is True


async def test_bodies_json_form_and_cache(live: Any) -> None:
    status, _, body = await live.fetch("POST", "/echo", json={"x": [1, 2]})
    assert status == 200 and json.loads(body) == {"json": {"x": [1, 2]}, "again": {"x": [1, 2]}}
    status, _, body = await live.fetch("POST", "/echo", data=b"{not json")
    assert status == 400 and json.loads(body)["message"] == "Invalid JSON body"
    payload = bytes(range(256)) * 300  # 76.8 KB: arrives in several pieces
    assert (await live.fetch("POST", "/raw", data=payload))[2] == payload
    status, _, body = await live.fetch("POST", "/form", data={"a": "1", "b": "two"})
    assert json.loads(body) == {"fields": {"a": ["1"], "b": ["two"]}, "files": []}
    form = aiohttp.FormData()
    form.add_field("name", "x")
    form.add_field(
        "upload", b"file-bytes", filename="f.bin", content_type="application/octet-stream"
    )
    status, _, body = await live.fetch("POST", "/form", data=form)
    assert status == 200 and json.loads(body) == {"fields": {"name": ["x"]}, "files": ["upload"]}


async def test_body_limit_413(target: tuple[str, Config], serve_on: Any) -> None:
    transport, config = target
    live = await serve_on(build_app(config.replace("limits.max_body_size", 1000)), transport)
    status, _, body = await live.fetch("POST", "/raw", data=b"x" * 1001)
    assert status == 413 and json.loads(body)["status"] == 413

    async def chunked() -> Any:  # no Content-Length: caught while streaming
        for _ in range(20):
            yield b"y" * 100

    status, _, _ = await live.fetch("POST", "/raw", data=chunked())
    assert status == 413
    assert (await live.fetch("POST", "/raw", data=b"z" * 1000))[2] == b"z" * 1000


async def test_errors_are_json_and_server_keeps_serving(live: Any, caplog: Any) -> None:
    status, _, body = await live.fetch("GET", "/boom")
    assert status == 500
    assert json.loads(body) == {
        "status": 500,
        "message": "Internal Server Error",
        "data": None,
        "unhandled": True,
    }
    assert b"hunter2" not in body and b"Traceback" not in body
    assert any("hunter2" in str(r.exc_info) for r in caplog.records if r.exc_info)
    status, _, body = await live.fetch("GET", "/teapot")
    assert status == 418
    assert json.loads(body) == {"status": 418, "message": "I'm a teapot", "data": {"short": True}}
    assert (await live.fetch("GET", "/text"))[2] == b"hello"


async def test_404_and_405(target: tuple[str, Config], serve_on: Any) -> None:
    transport, config = target
    app = H3(config)
    app.get("/only-get", lambda e: "g")
    app.put("/only-get", lambda e: "p")
    live = await serve_on(app, transport)
    status, headers, body = await live.fetch("GET", "/missing")
    assert status == 404 and json.loads(body)["status"] == 404
    status, headers, body = await live.fetch("POST", "/only-get")
    assert status == 405 and headers["Allow"] == "GET, HEAD, PUT"
    assert json.loads(body)["status"] == 405


async def test_head_falls_back_to_get_without_body(live: Any) -> None:
    status, headers, body = await live.fetch("HEAD", "/text")
    assert status == 200 and body == b"" and headers["Content-Length"] == "5"
    status, headers, body = await live.fetch("HEAD", "/users/7")
    assert status == 200 and body == b""


async def test_middleware_order_scope_and_short_circuit(live: Any) -> None:
    trail = live.app.state_trail
    trail.clear()
    await live.fetch("GET", "/text")
    assert trail == ["outer>/text", "outer</text"]
    data = json.loads((await live.fetch("GET", "/mw/value"))[2])
    assert data == {"stamped": "/mw/value", "outer": True, "wrapped": True}
    assert (await live.fetch("GET", "/mw/value?short=1"))[2] == b"short-circuited"
    status, _, body = await live.fetch("GET", "/admin/users", headers={"x-deny": "1"})
    assert status == 403 and json.loads(body) == {"denied": True}
    # The scope is a path prefix, decided on the decoded routing path.
    assert (await live.fetch("GET", "/%61dmin/users", headers={"x-deny": "1"}))[0] == 403
    assert json.loads((await live.fetch("GET", "/admin/users"))[2]) == {"page": "users"}
    # /administrator is not under /admin.
    status, _, body = await live.fetch("GET", "/administrator", headers={"x-deny": "1"})
    assert status == 200 and json.loads(body) == {"fallback": "administrator"}
    status, headers, body = await live.fetch("GET", "/route-mw")
    assert body == b"routed" and headers["x-route-mw"] == "1"
    # Global middleware also runs for 404s.
    trail.clear()
    app = live.app
    assert app.router.match("GET", "/nothing/here") is not None  # /** catches it


async def test_streaming_response(live: Any) -> None:
    status, headers, body = await live.fetch("GET", "/stream")
    assert status == 200 and headers["Transfer-Encoding"] == "chunked"
    assert body == b"part0;part1;part2;part3;part4;"


async def test_header_injection_is_a_500(live: Any) -> None:
    status, headers, body = await live.fetch("GET", "/bad-header")
    assert status == 500 and "x-evil" not in headers and "pwned" not in str(headers)
    assert json.loads(body)["message"] == "Internal Server Error"
    assert (await live.fetch("GET", "/text"))[2] == b"hello"


async def test_concurrent_requests_each_get_their_own_data(live: Any) -> None:
    async def one(i: int) -> None:
        status, _, body = await live.fetch("GET", f"/sleep/{i}", headers={"x-id": f"h{i}"})
        assert status == 200 and json.loads(body) == {"id": str(i), "hdr": f"h{i}"}

    await asyncio.gather(*(one(i) for i in range(40)))
    pool = live.app.stats()["pool"]
    assert pool["in_use"] == 0


async def test_stats_snapshot(live: Any) -> None:
    for _ in range(3):
        await live.fetch("GET", "/users/1")
    stats = live.app.stats()
    assert set(stats) >= {"router", "cache", "pool", "memory", "middleware", "server"}
    if live.transport == "builtin":
        assert stats["server"]["requests"] >= 3
    assert stats["pool"]["acquired"] >= 3
    json.dumps(stats)  # JSON-able
    if stats["cache"]["policy"] != "none":
        assert stats["cache"]["hits"] >= 1


async def test_hooks(transport: Any) -> None:
    seen: list[str] = []

    def on_request(event: H3Event) -> None:
        seen.append(f"req {event.path}")

    def on_response(event: H3Event, response: Response) -> None:
        seen.append(f"res {response.status}")

    def on_error(event: H3Event, error: HTTPError) -> None:
        seen.append(f"err {error.status}")

    app = H3(on_request=on_request, on_response=on_response, on_error=on_error)
    app.get("/ok", lambda e: "ok")
    live = await transport(app)
    await live.fetch("GET", "/ok")
    await live.fetch("GET", "/missing")
    # on_response also sees error responses, as in h3 v2.
    assert seen == ["req /ok", "res 200", "req /missing", "err 404", "res 404"]


async def test_stats_path_is_opt_in(transport: Any) -> None:
    off = await transport(build_app(Config()))
    assert json.loads((await off.fetch("GET", "/__stats"))[2]) == {"fallback": "__stats"}
    app = H3(Config().replace("server.stats_path", "/__stats"))
    app.get("/x", lambda e: "x")
    on = await transport(app)
    await on.fetch("GET", "/x")
    stats = json.loads((await on.fetch("GET", "/__stats"))[2])
    assert "cache" in stats and stats["pool"]["acquired"] >= 1
    if transport.name == "builtin":
        assert stats["server"]["requests"] >= 1


async def test_cache_stays_bounded_under_unique_paths(transport: Any) -> None:
    app = build_app(Config().replace(**{"cache.size": 64}))
    live = await transport(app)
    for i in range(500):
        await live.fetch("GET", f"/users/{i}")
    cache = app.stats()["cache"]
    assert cache["size"] <= 64 and cache["evictions"] >= 500 - 64
