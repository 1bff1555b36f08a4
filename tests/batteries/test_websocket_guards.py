"""Middleware and hooks on WebSocket upgrades, on both transports, both executions.

h3 v2 runs a route's middleware before its WebSocket handler upgrades, so an
auth middleware can refuse the upgrade with a 401/403 (an HTTP answer, never
a 101) and the handler is never called. h3lab does the same for ``app.use``
layers (``h3lab.websocket.admit``), an async ``on_request`` hook is awaited,
and a mounted H3 sub-app's middleware runs after the parent's. A real
aiohttp client talks to the built-in server and to ``app.asgi`` under uvicorn.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import aiohttp
import pytest

from h3lab import H3, Config, HTTPError, Response, WebSocket
from h3lab.event import H3Event
from h3lab.utils import basic_auth

EXECUTIONS = ("fast", "legacy")


def build(execution: str, calls: dict[str, int], on_request: Any = None) -> H3:
    app = H3(Config().replace("middleware.execution", execution), on_request=on_request)

    async def trail(event: H3Event, next: Any) -> Any:
        event.context["trail"] = ["in"]
        result = await next()
        event.context["trail"].append("out")
        return result

    async def token_guard(event: H3Event) -> None:  # an async "before" middleware
        await asyncio.sleep(0)
        if event.headers.get("x-token") != "secret":
            raise HTTPError(403, "bad token", headers={"x-guard": "token"})

    def throttle(event: H3Event) -> Any:  # returns a value instead of going on
        if "slow" in event.query:
            return Response(b"slow down", 429, {"retry-after": "1"})
        return None

    def posts_only(event: H3Event) -> None:
        raise HTTPError(500, "a POST-only layer ran for an upgrade")

    app.use(trail)
    app.use(throttle)
    app.use("/private", basic_auth(username="ada", password="lovelace", realm="ws"))
    app.use("/token", token_guard)
    app.use(posts_only, method="POST")

    def handler(name: str) -> Any:
        async def serve(ws: WebSocket) -> None:
            calls[name] = calls.get(name, 0) + 1
            await ws.accept()
            await ws.send_json(
                {
                    "trail": ws.event.context.get("trail"),
                    "user": (ws.event.context.get("basic_auth") or {}).get("username"),
                    "hooked": ws.event.context.get("hooked"),
                }
            )
            await ws.receive()

        return serve

    app.ws("/private/chat", handler("private"))
    app.ws("/token/chat", handler("token"))
    app.ws("/open", handler("open"))

    sub = H3(Config().replace("middleware.execution", execution))

    def sub_guard(event: H3Event) -> None:
        if event.headers.get("x-sub") != "yes":
            raise HTTPError(401, "sub-app says no")

    sub.use(sub_guard)
    sub.ws("/room", handler("sub"))
    app.mount("/sub", sub)
    return app


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"authorization": f"Basic {token}"}


async def refused(live: Any, path: str, **kw: Any) -> aiohttp.WSServerHandshakeError:
    with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
        await live.session.ws_connect(live.url + path, **kw)
    return caught.value


@pytest.mark.parametrize("execution", EXECUTIONS)
async def test_basic_auth_middleware_refuses_an_upgrade_and_admits_the_right_user(
    transport: Any, execution: str
) -> None:
    calls: dict[str, int] = {}
    live = await transport(build(execution, calls))
    error = await refused(live, "/private/chat")
    assert error.status == 401
    assert error.headers is not None and error.headers["www-authenticate"].startswith(
        'Basic realm="ws"'
    )
    error = await refused(live, "/private/chat", headers=basic("ada", "wrong"))
    assert error.status == 401
    assert calls.get("private", 0) == 0  # the handler never ran
    async with live.session.ws_connect(
        live.url + "/private/chat", headers=basic("ada", "lovelace")
    ) as ws:
        hello = await ws.receive_json(timeout=5)
    # The onion layer finished (its "after" part too) before the handler was called.
    assert hello["trail"] == ["in", "out"] and hello["user"] == "ada"
    assert calls["private"] == 1


@pytest.mark.parametrize("execution", EXECUTIONS)
async def test_async_middleware_values_and_method_options_on_upgrades(
    transport: Any, execution: str
) -> None:
    calls: dict[str, int] = {}
    live = await transport(build(execution, calls))
    error = await refused(live, "/token/chat")
    assert error.status == 403 and error.headers is not None
    assert error.headers["x-guard"] == "token"
    # A value returned instead of calling next() is the answer to the upgrade.
    error = await refused(live, "/open?slow=1")
    assert error.status == 429 and error.headers is not None
    assert error.headers["retry-after"] == "1"
    assert calls == {}
    async with live.session.ws_connect(live.url + "/token/chat", headers={"x-token": "secret"}):
        pass
    # The POST-only layer (it would answer 500) does not run for the GET upgrade.
    async with live.session.ws_connect(live.url + "/open") as ws:
        assert (await ws.receive_json(timeout=5))["trail"] == ["in", "out"]
    assert calls == {"token": 1, "open": 1}


async def test_a_mounted_sub_apps_middleware_guards_its_websocket_routes(transport: Any) -> None:
    calls: dict[str, int] = {}
    live = await transport(build("fast", calls))
    error = await refused(live, "/sub/room")
    assert error.status == 401 and calls == {}
    async with live.session.ws_connect(live.url + "/sub/room", headers={"x-sub": "yes"}) as ws:
        assert (await ws.receive_json(timeout=5))["trail"] == ["in", "out"]  # the parent's too
    assert calls == {"sub": 1}


async def test_an_async_on_request_hook_is_awaited_and_may_refuse(transport: Any) -> None:
    async def hook(event: H3Event) -> None:
        await asyncio.sleep(0.01)  # really suspends: the built-in server must await it
        event.context["hooked"] = True
        if event.headers.get("x-key") == "bad":
            raise HTTPError(401, "hook says no")

    calls: dict[str, int] = {}
    live = await transport(build("fast", calls, on_request=hook))
    error = await refused(live, "/open", headers={"x-key": "bad"})
    assert error.status == 401 and calls == {}
    async with live.session.ws_connect(live.url + "/open") as ws:
        hello = await ws.receive_json(timeout=5)
    assert hello["hooked"] is True and hello["trail"] == ["in", "out"]
    # A path without a WebSocket route is still a 404.
    assert (await refused(live, "/nowhere")).status == 404
