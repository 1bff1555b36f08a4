"""A mounted ASGI app (a real Starlette app) gets its lifespan and its WebSockets.

``app.mount("/star", starlette_app)``: the Starlette ``lifespan`` runs when
the H3 app's lifespan runs (the built-in server's start/shutdown, or the ASGI
lifespan protocol under uvicorn), its ``state`` reaches its requests, and an
upgrade under the prefix becomes Starlette's ``websocket`` scope, on both
transports, with a real aiohttp client.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket as StarletteWebSocket

from h3lab import H3, HTTPError, Server
from h3lab.event import H3Event
from h3lab.lifespan import StartupFailed, run_shutdown, run_startup
from tests.batteries.test_compose import uvicorn_serving

TRANSPORTS = ("builtin", "uvicorn")


def starlette_app(events: list[str], fail: bool = False) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        events.append("star startup")
        if fail:
            raise RuntimeError("database down")
        yield {"pool": "ready"}
        events.append("star shutdown")

    async def info(request: Request) -> JSONResponse:
        return JSONResponse(
            {
                "pool": getattr(request.state, "pool", None),
                "path": request.url.path,
                "root": request.scope["root_path"],
            }
        )

    async def echo(websocket: StarletteWebSocket) -> None:
        offered = websocket.scope["subprotocols"]
        await websocket.accept(subprotocol="v2" if "v2" in offered else None)
        await websocket.send_json(
            {
                "path": websocket.url.path,
                "root": websocket.scope["root_path"],
                "pool": getattr(websocket.state, "pool", None),
                "scheme": websocket.scope["scheme"],
            }
        )
        async for text in websocket.iter_text():
            await websocket.send_text(f"star: {text}")
        events.append("ws done")

    async def deny(websocket: StarletteWebSocket) -> None:
        await websocket.send_denial_response(PlainTextResponse("members only", status_code=401))

    async def shut(websocket: StarletteWebSocket) -> None:
        await websocket.close(code=1008)  # before accept: a 403

    return Starlette(
        routes=[
            Route("/info", info),
            WebSocketRoute("/echo", echo),
            WebSocketRoute("/deny", deny),
            WebSocketRoute("/shut", shut),
        ],
        lifespan=lifespan,
    )


def build(events: list[str], fail: bool = False) -> H3:
    app = H3()
    app.on_startup(lambda: events.append("h3 startup"))
    app.on_shutdown(lambda: events.append("h3 shutdown"))

    def guard(event: H3Event) -> None:
        if event.headers.get("x-banned"):
            raise HTTPError(403, "banned by the parent")

    app.use(guard)
    app.mount("/star", starlette_app(events, fail))
    return app


@contextlib.asynccontextmanager
async def serving(app: H3, transport: str) -> AsyncIterator[str]:
    if transport == "builtin":
        async with Server(app, "127.0.0.1", 0) as server:
            yield server.url
    else:
        async with uvicorn_serving(app.asgi) as url:
            yield url


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_the_mounted_apps_lifespan_runs_with_the_parents(transport: str) -> None:
    events: list[str] = []
    app = build(events)
    async with serving(app, transport) as url:
        assert events == ["h3 startup", "star startup"]
        async with aiohttp.ClientSession() as session, session.get(url + "/star/info") as resp:
            assert resp.status == 200
            assert await resp.json() == {"pool": "ready", "path": "/star/info", "root": "/star"}
    assert events == ["h3 startup", "star startup", "star shutdown", "h3 shutdown"]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_websockets_reach_the_mounted_app(transport: str) -> None:
    events: list[str] = []
    app = build(events)
    async with serving(app, transport) as url, aiohttp.ClientSession() as session:
        async with session.ws_connect(url + "/star/echo", protocols=["v1", "v2"]) as ws:
            assert ws.protocol == "v2"
            hello = await ws.receive_json(timeout=5)
            assert hello == {"path": "/star/echo", "root": "/star", "pool": "ready", "scheme": "ws"}
            await ws.send_str("hi")
            assert await ws.receive_str(timeout=5) == "star: hi"
        for _ in range(100):  # Starlette's loop ends once it sees our Close
            if "ws done" in events:
                break
            await asyncio.sleep(0.02)
        assert "ws done" in events
        with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
            await session.ws_connect(url + "/star/deny")
        assert caught.value.status == 401  # Starlette's denial response, as sent
        with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
            await session.ws_connect(url + "/star/shut")
        assert caught.value.status == 403
        # The parent's middleware runs first.
        with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
            await session.ws_connect(url + "/star/echo", headers={"x-banned": "1"})
        assert caught.value.status == 403
        with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
            await session.ws_connect(url + "/star/nowhere")
        assert caught.value.status == 403  # Starlette closes an unknown websocket path


async def test_a_failing_mounted_startup_stops_startup_with_one_line() -> None:
    events: list[str] = []
    app = build(events, fail=True)
    with pytest.raises(StartupFailed, match=r"mounted at /star failed to start: RuntimeError"):
        await run_startup(app)
    assert events == ["h3 startup", "star startup"]
    server = Server(build([], fail=True), "127.0.0.1", 0)
    with pytest.raises(StartupFailed, match="database down"):
        await server.start()


async def test_an_app_without_lifespan_support_is_served_anyway() -> None:
    async def plain(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http", "no lifespan here"
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"plain asgi"})

    app = H3()
    app.mount("/plain", plain)
    await run_startup(app)  # the app raised on the lifespan scope: served without it
    async with (
        Server(app, "127.0.0.1", 0) as server,
        aiohttp.ClientSession() as session,
        session.get(server.url + "/plain/x") as resp,
    ):
        assert await resp.text() == "plain asgi"
    assert await run_shutdown(app) == []
