"""WebSocket routes of a mounted H3 sub-app (issue 12, items 1 and 7), on the
built-in server and under uvicorn, with aiohttp's client; and through a clone."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from h3lab import H3, Config, Server, WebSocket
from tests.batteries.test_compose import uvicorn_serving


def build() -> H3:
    sub = H3()

    @sub.ws("/chat/:room")
    async def chat(ws: WebSocket) -> None:
        await ws.accept()
        await ws.send_json({"room": ws.params["room"], "path": ws.path, "full": ws.event.full_path})
        async for message in ws:
            await ws.send(message)

    sub.get("/plain", lambda e: "http")
    app = H3()
    app.mount("/api", sub)
    return app


@pytest.mark.parametrize("transport", ["builtin", "uvicorn"])
@pytest.mark.parametrize("cloned", [False, True])
async def test_mounted_websocket_routes(transport: str, cloned: bool) -> None:
    app = build()
    if cloned:
        app = app.clone(Config.preset("performance"))

    async def talk(url: str) -> None:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(url + "/api/chat/7") as ws:
                hello = await ws.receive_json(timeout=5)
                assert hello == {"room": "7", "path": "/chat/7", "full": "/api/chat/7"}
                await ws.send_str("ping")
                assert await ws.receive_str(timeout=5) == "ping"
            async with session.get(url + "/api/plain") as resp:
                assert await resp.text() == "http"
            with pytest.raises(aiohttp.WSServerHandshakeError) as info:
                await session.ws_connect(url + "/api/nochat")
            assert info.value.status == 404

    if transport == "builtin":
        async with Server(app, "127.0.0.1", 0) as server:
            await asyncio.wait_for(talk(server.url), 20)
    else:
        async with uvicorn_serving(app.asgi) as url:
            await asyncio.wait_for(talk(url), 20)


def test_an_app_with_a_mount_lists_no_extra_plain_ws_route() -> None:
    app: Any = build()
    assert [route.meta.get("mount") is not None for route in app.ws_routes()] == [True]
