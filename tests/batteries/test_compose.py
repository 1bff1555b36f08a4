"""Composition (issue 12, item 1): mount, remove_route, middleware options, QUERY.

Every behaviour runs on both transports (``connect``: the built-in server on
127.0.0.1 and ``app.asgi`` in-process); a real Starlette app is mounted.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import aiohttp
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route

from h3lab import H3, Config, HTTPError, Response, Server
from h3lab.event import H3Event
from h3lab.middleware import MIDDLEWARE_EXECUTIONS
from h3lab.routing import ROUTERS

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


# -- mounting an H3 app -----------------------------------------------------------


def sub_app(trail: list[str]) -> H3:
    sub = H3()

    async def sub_mw(event: H3Event, next: Any) -> Any:
        trail.append(f"sub-mw {event.path}")
        return await next()

    sub.use(sub_mw)

    @sub.get("/")
    def root(event: H3Event) -> dict[str, str]:
        return {"at": "sub root", "path": event.path, "full": event.full_path}

    @sub.get("/users/:id")
    def user(event: H3Event) -> dict[str, str]:
        return {
            "id": event.params["id"],
            "path": event.path,
            "raw": event.raw_path,
            "full": event.full_path,
        }

    @sub.post("/users")
    def create(event: H3Event) -> str:
        return "created"

    @sub.get("/**:rest")
    def rest(event: H3Event) -> dict[str, str]:
        return {"rest": event.params["rest"], "path": event.path}

    return sub


async def test_mounted_h3_app_sees_relative_paths(connect: Any) -> None:
    trail: list[str] = []
    app = H3()

    async def outer(event: H3Event, next: Any) -> Any:
        trail.append(f"outer> {event.path}")
        try:
            return await next()
        finally:
            trail.append(f"<outer {event.path}")

    app.use(outer)
    app.mount("/api", sub_app(trail))
    app.get("/api/health", lambda e: "parent wins")
    app.get("/apiary", lambda e: "not under the mount")
    client = await connect(app)

    reply = await client.request("GET", "/api/users/7")
    assert reply.status == 200
    assert reply.json() == {
        "id": "7",
        "path": "/users/7",
        "raw": "/users/7",
        "full": "/api/users/7",
    }
    # the parent's middleware sees the whole path before and after the sub-app
    assert trail == ["outer> /api/users/7", "sub-mw /users/7", "<outer /api/users/7"]

    assert (await client.request("GET", "/api")).json()["path"] == "/"
    assert (await client.request("GET", "/api/")).json()["at"] == "sub root"
    assert (await client.request("GET", "/api/health")).text == "parent wins"
    assert (await client.request("GET", "/apiary")).text == "not under the mount"
    # a percent-encoded prefix is the prefix; a slash run never becomes '//host'
    assert (await client.request("GET", "/%61pi/users/8")).json()["id"] == "8"
    deep = (await client.request("GET", "/api//evil.com/x")).json()
    assert deep == {"rest": "evil.com/x", "path": "/evil.com/x"}
    trail.clear()
    assert (await client.request("GET", "/other")).status == 404
    assert trail == ["outer> /other", "<outer /other"]  # the sub-app's middleware never ran


async def test_mounted_h3_app_answers_its_own_404_405_and_hooks(connect: Any) -> None:
    seen: list[str] = []

    def on_error(event: H3Event, error: HTTPError) -> Response:
        seen.append(event.path)
        return Response({"sub_error": error.status, "path": event.path}, status=error.status)

    sub = H3(on_error=on_error, on_request=lambda e: seen.append(f"req {e.path}"))
    sub.get("/only-get", lambda e: "ok")
    sub.get("/boom", lambda e: 1 / 0)
    plain = H3()
    plain.get("/x", lambda e: "x")
    app = H3()
    app.mount("/hooked", sub)
    app.mount("/plain/", plain)  # a trailing slash is the same prefix
    client = await connect(app)

    reply = await client.request("POST", "/hooked/only-get")
    assert reply.status == 405 and reply.json() == {"sub_error": 405, "path": "/only-get"}
    assert (await client.request("GET", "/hooked/boom")).json()["sub_error"] == 500
    assert seen == ["req /only-get", "/only-get", "req /boom", "/boom"]

    reply = await client.request("DELETE", "/plain/x")
    assert reply.status == 405 and reply.header("allow") == "GET, HEAD"
    reply = await client.request("GET", "/plain/nope")
    assert reply.status == 404 and reply.json()["message"].endswith("[GET] /nope")
    assert (await client.request("HEAD", "/plain/x")).status == 200


async def test_nested_mounts_and_use_with_an_app(connect: Any) -> None:
    deep = H3()
    deep.use("/endpoint", lambda e: e.set_header("x-deep", e.path))
    deep.get("/endpoint", lambda e: {"path": e.path, "full": e.full_path})
    middle = H3()
    middle.mount("/v1", deep)
    app = H3()
    app.use("/api", middle)  # h3: use(route, app) mounts it
    client = await connect(app)
    reply = await client.request("GET", "/api/v1/endpoint")
    assert reply.json() == {"path": "/endpoint", "full": "/api/v1/endpoint"}
    assert reply.header("x-deep") == "/endpoint"


def test_mount_arguments_are_checked() -> None:
    app = H3()
    with pytest.raises(ValueError, match="start with '/'"):
        app.mount("api", H3())
    with pytest.raises(ValueError, match="plain path"):
        app.mount("/api/:v", H3())
    with pytest.raises(TypeError, match="H3 app or an ASGI application"):
        app.mount("/x", object())
    with pytest.raises(ValueError, match="in itself"):
        app.mount("/self", app)
    app.mount("/once", H3())
    with pytest.raises(ValueError, match="duplicate"):
        app.mount("/once", H3())


# -- mounting an ASGI app (Starlette) ---------------------------------------------


def starlette_app(events: list[str]) -> Starlette:
    async def hello(request: Request) -> JSONResponse:
        return JSONResponse(
            {
                "path": request.url.path,
                "root_path": request.scope["root_path"],
                "query": dict(request.query_params),
                "client_header": request.headers.get("x-client"),
            },
            headers={"x-from": "starlette"},
        )

    async def echo(request: Request) -> PlainTextResponse:
        body = await request.body()
        return PlainTextResponse(
            body.decode().upper(),
            status_code=201,
            background=BackgroundTask(lambda: events.append("background ran")),
        )

    async def stream(request: Request) -> StreamingResponse:
        async def chunks() -> Any:
            for i in range(3):
                yield f"chunk{i};"
                await asyncio.sleep(0)

        return StreamingResponse(chunks(), media_type="text/plain")

    async def fail(request: Request) -> None:
        raise RuntimeError("starlette handler broke")

    return Starlette(
        routes=[
            Route("/hello", hello),
            Route("/echo", echo, methods=["POST"]),
            Route("/stream", stream),
            Route("/fail", fail),
        ]
    )


async def test_mounted_starlette_app(connect: Any) -> None:
    events: list[str] = []
    app = H3()
    app.use(lambda e: e.set_header("x-parent", "1"))
    app.mount("/star", starlette_app(events))
    client = await connect(app)

    reply = await client.request("GET", "/star/hello?a=1", headers={"x-client": "c"})
    assert reply.status == 200
    assert reply.json() == {
        "path": "/star/hello",
        "root_path": "/star",
        "query": {"a": "1"},
        "client_header": "c",
    }
    assert reply.header("x-from") == "starlette" and reply.header("x-parent") == "1"
    assert reply.header("content-type") == "application/json"
    assert reply.header_all("content-length") == [str(len(reply.body))]

    reply = await client.request("POST", "/star/echo", data=b"body through receive")
    assert reply.status == 201 and reply.text == "BODY THROUGH RECEIVE"
    for _ in range(100):
        if events:
            break
        await asyncio.sleep(0.01)
    assert events == ["background ran"]

    reply = await client.request("GET", "/star/stream")
    assert reply.status == 200 and reply.text == "chunk0;chunk1;chunk2;"
    reply = await client.request("HEAD", "/star/hello")
    assert reply.status == 200 and reply.body == b""
    assert (await client.request("GET", "/star/nothing")).status == 404  # Starlette's 404
    assert (await client.request("PUT", "/star/echo")).status == 405  # Starlette's 405
    # Starlette answers its own 500, then re-raises (logged, as uvicorn would)
    reply = await client.request("GET", "/star/fail")
    assert reply.status == 500 and reply.text == "Internal Server Error"


async def test_starlette_inside_an_h3_sub_app_gets_both_prefixes(connect: Any) -> None:
    sub = H3()
    sub.mount("/star", starlette_app([]))
    app = H3()
    app.mount("/v2", sub)
    client = await connect(app)
    reply = await client.request("GET", "/v2/star/hello")
    assert reply.json()["path"] == "/v2/star/hello"
    assert reply.json()["root_path"] == "/v2/star"


def endless_app(stopped: asyncio.Event) -> Any:
    async def forever(request: Request) -> StreamingResponse:
        async def ticks() -> Any:
            while True:
                yield b"tick\n"
                await asyncio.sleep(0.01)

        return StreamingResponse(ticks())

    inner = Starlette(routes=[Route("/forever", forever)])

    async def watched(scope: Any, receive: Any, send: Any) -> None:
        try:
            await inner(scope, receive, send)
        finally:  # Starlette returns (or raises) once it sees the disconnect
            stopped.set()

    return watched


@contextlib.asynccontextmanager
async def uvicorn_serving(asgi: Any) -> Any:
    config = uvicorn.Config(asgi, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


@pytest.mark.parametrize("transport", ["builtin", "uvicorn"])
async def test_a_client_that_leaves_stops_the_mounted_stream(transport: str) -> None:
    stopped = asyncio.Event()
    app = H3()
    app.mount("/live", endless_app(stopped))

    async def read_a_little(url: str) -> None:
        async with (
            aiohttp.ClientSession() as session,
            session.get(url + "/live/forever") as resp,
        ):
            assert resp.status == 200
            assert await resp.content.readline() == b"tick\n"
        # leaving the block closes the connection mid-stream

    if transport == "builtin":
        async with Server(app, "127.0.0.1", 0) as server:
            await read_a_little(server.url)
            await asyncio.wait_for(stopped.wait(), 5)
    else:
        async with uvicorn_serving(app.asgi) as url:
            await read_a_little(url)
            await asyncio.wait_for(stopped.wait(), 5)


# -- remove_route ----------------------------------------------------------------


@pytest.mark.parametrize("matching", ROUTERS.names())
async def test_remove_route(connect: Any, matching: str) -> None:
    config = Config().replace("router.matching", matching).replace("cache.policy", "lru")
    app = H3(config)
    app.get("/users/:id", lambda e: f"user {e.params['id']}")
    app.post("/users/:id", lambda e: "posted")
    app.get("/static", lambda e: "static")
    client = await connect(app)
    assert (await client.request("GET", "/users/1")).text == "user 1"  # now in the cache
    removed = app.remove_route("get", "/users/:name")  # same shape, another param name
    assert removed.pattern == "/users/:id" and removed.method == "GET"
    reply = await client.request("GET", "/users/1")
    assert reply.status == 405 and reply.header("allow") == "POST"
    app.remove_route("GET", "/static")
    assert (await client.request("GET", "/static")).status == 404
    assert (await client.request("POST", "/users/1")).text == "posted"
    with pytest.raises(ValueError, match=r"no route GET /static to remove"):
        app.remove_route("GET", "/static")
    app.get("/users/:id", lambda e: "back")  # may be registered again
    assert (await client.request("GET", "/users/2")).text == "back"


# -- middleware options ------------------------------------------------------------


def options_app(execution: str) -> H3:
    app = H3(Config().replace("middleware.execution", execution))

    def mark(name: str) -> Any:
        def before(event: H3Event) -> None:
            event.append_header("x-ran", name)

        return before

    async def onion(event: H3Event, next: Any) -> Any:
        event.append_header("x-ran", "onion-put-patch")
        return await next()

    app.use(mark("post"), method="POST")
    app.use(mark("get"), method="get")  # also HEAD
    app.use(onion, method=["PUT", "PATCH"])
    app.use("/api", mark("api-delete"), method="DELETE")
    app.use(mark("flagged"), match=lambda e: e.headers.get("x-flag") == "1")
    app.use("/api", mark("api-query-flag"), method="QUERY", match=lambda e: "f" in e.query)
    app.all("/api/x", lambda e: "api")
    app.all("/other", lambda e: "other")
    app.get("/get-only", lambda e: "g")
    return app


@pytest.mark.parametrize("execution", MIDDLEWARE_EXECUTIONS.names())
async def test_middleware_options(connect: Any, execution: str) -> None:
    client = await connect(options_app(execution))

    async def ran(method: str, path: str, **kw: Any) -> list[str]:
        reply = await client.request(method, path, **kw)
        return [v.strip() for value in reply.header_all("x-ran") for v in value.split(",")]

    assert await ran("POST", "/api/x") == ["post"]
    assert await ran("GET", "/api/x") == ["get"]
    assert await ran("HEAD", "/get-only") == ["get"]
    assert await ran("PUT", "/other") == ["onion-put-patch"]
    assert await ran("PATCH", "/api/x") == ["onion-put-patch"]
    assert await ran("DELETE", "/api/x") == ["api-delete"]
    assert await ran("DELETE", "/other") == []
    assert await ran("GET", "/other", headers={"x-flag": "1"}) == ["get", "flagged"]
    assert await ran("QUERY", "/api/x?f") == ["api-query-flag"]
    assert await ran("QUERY", "/api/x") == []
    assert await ran("POST", "/nowhere") == ["post"]  # the 404 chain honours them too


def test_middleware_option_errors_name_the_field() -> None:
    app = H3()
    with pytest.raises(
        ValueError, match=r"middleware method must be among \[.*'QUERY'.*got 'FETCH'"
    ):
        app.use(lambda e: None, method="fetch")
    with pytest.raises(ValueError, match="method name or a list"):
        app.use(lambda e: None, method=[])
    with pytest.raises(TypeError, match="match must be callable"):
        app.use(lambda e: None, match="yes")


# -- QUERY -------------------------------------------------------------------------


async def test_query_method(connect: Any) -> None:
    app = H3()

    @app.query("/search")
    async def search(event: H3Event) -> dict[str, Any]:
        return {"method": event.method, "body": (await event.json())["q"]}

    app.all("/any", lambda e: e.method)
    client = await connect(app)
    reply = await client.request("QUERY", "/search", json={"q": "h3"})
    assert reply.status == 200 and reply.json() == {"method": "QUERY", "body": "h3"}
    reply = await client.request("GET", "/search")
    assert reply.status == 405 and reply.header("allow") == "QUERY"
    assert (await client.request("QUERY", "/any")).text == "QUERY"
    reply = await client.request("POST", "/nowhere/but/405?")
    assert reply.status == 404


def test_the_demo_uses_query_and_lifespan() -> None:
    from h3lab.examples.demo import build
    from h3lab.testing import TestClient

    with TestClient(build()) as client:
        assert client.get("/health").json()["uptime_s"] >= 0  # the startup hook ran
        reply = client.request("QUERY", "/api/items", json={"name": "item 4"})
        assert reply.status_code == 200
        assert [item["id"] for item in reply.json()] == [4, 40, 41, 42, 43, 44, 45, 46, 47, 48]
    assert TestClient(build()).get("/health").json()["uptime_s"] is None  # no lifespan run


async def test_an_app_used_at_the_root_takes_what_the_parent_does_not(connect: Any) -> None:
    sub = H3()
    sub.get("/", lambda e: "sub root")
    sub.get("/x/:id", lambda e: {"id": e.params["id"], "path": e.path})
    app = H3()
    app.get("/mine", lambda e: "parent")
    app.use(sub)  # h3 v1 compat: app.use(router)
    client = await connect(app)
    assert (await client.request("GET", "/mine")).text == "parent"
    assert (await client.request("GET", "/")).text == "sub root"
    assert (await client.request("GET", "/x/1")).json() == {"id": "1", "path": "/x/1"}
    assert (await client.request("GET", "/none")).status == 404
