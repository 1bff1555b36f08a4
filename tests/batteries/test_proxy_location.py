"""``proxy_request`` rewrites redirects that point at the upstream (h3's
``locationRewrite``), with a real aiohttp upstream on 127.0.0.1, on both
transports (the conftest ``transport`` fixture)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from h3lab import H3
from h3lab.event import H3Event
from h3lab.utils import proxy_request
from h3lab.utils.proxy import rewrite_location


@pytest.fixture
async def upstream() -> AsyncIterator[str]:
    async def to_self(request: web.Request) -> web.Response:
        base = f"http://{request.host}"  # the upstream's own origin, as upstreams say it
        return web.Response(status=302, headers={"Location": base + "/login?next=%2Fa#top"})

    async def to_self_relative_scheme(request: web.Request) -> web.Response:
        return web.Response(status=301, headers={"Location": f"//{request.host}/moved"})

    async def to_other(request: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": "https://example.org/x"})

    async def relative(request: web.Request) -> web.Response:
        return web.Response(status=303, headers={"Location": "/elsewhere"})

    async def refresh(request: web.Request) -> web.Response:
        return web.Response(text="wait", headers={"Refresh": f"5; url='http://{request.host}/r'"})

    app = web.Application()
    app.router.add_get("/to-self", to_self)
    app.router.add_get("/to-self-pr", to_self_relative_scheme)
    app.router.add_get("/to-other", to_other)
    app.router.add_get("/relative", relative)
    app.router.add_get("/refresh", refresh)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


def build(upstream: str) -> H3:
    app = H3()

    @app.get("/p/:name")
    async def default(event: H3Event) -> Any:
        return await proxy_request(event, f"{upstream}/{event.params['name']}")

    @app.get("/off/:name")
    async def off(event: H3Event) -> Any:
        name = event.params["name"]
        return await proxy_request(event, f"{upstream}/{name}", location_rewrite=False)

    @app.get("/mapped/:name")
    async def mapped(event: H3Event) -> Any:
        return await proxy_request(
            event,
            f"{upstream}/{event.params['name']}",
            location_rewrite={f"{upstream}/login": "/auth/login"},
        )

    return app


async def location(live: Any, path: str, header: str = "location") -> str | None:
    async with live.request("GET", path, allow_redirects=False) as resp:
        return resp.headers.get(header)


async def test_redirects_to_the_upstream_come_back_to_the_proxy(
    transport: Any, upstream: str
) -> None:
    live = await transport(build(upstream))
    proxy = live.url  # http://127.0.0.1:<proxy port>, the Host the client sent
    assert await location(live, "/p/to-self") == proxy + "/login?next=%2Fa#top"
    assert await location(live, "/p/to-self-pr") == proxy + "/moved"
    assert await location(live, "/p/to-other") == "https://example.org/x"  # not ours
    assert await location(live, "/p/relative") == "/elsewhere"  # resolves to us already
    assert await location(live, "/p/refresh", "refresh") == f"5; url='{proxy}/r'"
    # Off: as the upstream sent it (and its address leaks).
    assert await location(live, "/off/to-self") == upstream + "/login?next=%2Fa#top"
    # A mapping: only its prefixes apply.
    assert await location(live, "/mapped/to-self") == "/auth/login?next=%2Fa#top"
    assert await location(live, "/mapped/to-self-pr") == f"//{upstream[7:]}/moved"


def test_rewrite_location_rules() -> None:
    target, me = "http://up:9000", "https://proxy.example"
    assert rewrite_location("http://UP:9000/a?b#c", True, target, me) == me + "/a?b#c"
    assert rewrite_location("http://up:9000", True, target, me) == me + "/"
    assert rewrite_location("http://up:9001/a", True, target, me) is None  # another port
    assert rewrite_location("https://up:9000/a", True, target, me) is None  # another scheme
    assert rewrite_location("http://up.evil:9000/a", True, target, me) is None
    assert rewrite_location("//up:9000/a", True, target, me) == me + "/a"
    assert rewrite_location("a/b", True, target, me) is None
    assert rewrite_location("http://[::1", True, target, me) is None  # unparsable: untouched
    assert rewrite_location("http://up:80/a", True, "http://up", me) == me + "/a"  # default port
    assert rewrite_location("http://up:9000/a", True, target, target) is None  # same origin
    assert rewrite_location("http://up:9000/x/y", {"http://up:9000/x/": "/"}, target, me) == "/y"


def test_a_bad_location_rewrite_is_a_value_error() -> None:
    from h3lab.testing import TestClient

    app = H3()

    @app.get("/")
    async def bad(event: H3Event) -> Any:
        try:  # refused before any connection is attempted
            await proxy_request(event, "http://127.0.0.1:9/x", location_rewrite="yes")  # type: ignore[arg-type]
        except ValueError as exc:
            return {"error": str(exc)}
        return {"error": None}

    with TestClient(app) as client:
        assert "location_rewrite must be" in client.get("/").json()["error"]
