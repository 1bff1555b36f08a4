"""h3 v2's defaults, on both transports: the built-in server and the ASGI
adapter under uvicorn, each on 127.0.0.1 with a real HTTP client.

Cookies replace by (name, domain, path), unhandled errors say so in their
JSON, ``cors()`` answers as h3 v2's ``handleCors``, params never gain a
separator from decoding, routes use rou3's syntax, and (a documented
difference from h3 v2) a handler returning ``None`` gives a 204.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from h3lab import H3, Config, HTTPError
from h3lab.event import H3Event
from h3lab.utils import cors

ORIGIN = "https://a.example"


def build() -> H3:
    app = H3(Config())
    app.use("/api", cors())

    @app.get("/cookies")
    def cookies(event: H3Event) -> str:
        event.set_cookie("sid", "first")
        event.set_cookie("theme", "dark")
        event.set_cookie("sid", "second", httponly=True)
        event.set_cookie("sid", "admin", path="/admin")
        return "ok"

    @app.get("/cookies/error")
    def cookies_then_error(event: H3Event) -> None:
        event.set_cookie("sid", "first")
        event.set_cookie("sid", "second")
        raise HTTPError(409, "conflict")

    @app.get("/boom")
    def boom(event: H3Event) -> None:
        raise RuntimeError("internal detail")

    @app.get("/teapot")
    def teapot(event: H3Event) -> None:
        raise HTTPError(418, "teapot", {"brew": "no"})

    app.get("/api/data", lambda e: {"ok": True})
    app.get("/files/:name", lambda e: e.params)
    app.get("/raw/**:rest", lambda e: e.params)
    app.get("/users/:id(\\d+)", lambda e: {"id": e.params["id"]})
    app.get("/users/:slug", lambda e: {"slug": e.params["slug"]})
    app.get("/blog/*", lambda e: e.params)
    app.get("/nothing", lambda e: None)
    return app


@pytest.fixture(params=["builtin", "uvicorn"])
async def base_url(request: pytest.FixtureRequest, serve_on: Any) -> str:
    """The same app on the built-in server and under uvicorn (tests/conftest.py)."""
    return (await serve_on(build(), request.param)).url


async def fetch(url: str, method: str = "GET", **kw: Any) -> tuple[int, Any, bytes]:
    async with aiohttp.ClientSession() as session, session.request(method, url, **kw) as response:
        return response.status, response.headers, await response.read()


async def test_set_cookie_replaces_same_name_domain_and_path(base_url: str) -> None:
    status, headers, _ = await fetch(base_url + "/cookies")
    assert status == 200
    assert headers.getall("set-cookie") == [
        "theme=dark; Path=/",
        "sid=second; Path=/; HttpOnly",
        "sid=admin; Path=/admin",
    ]


async def test_replaced_cookies_stay_replaced_on_an_error(base_url: str) -> None:
    status, headers, _ = await fetch(base_url + "/cookies/error")
    assert status == 409
    assert headers.getall("set-cookie", []) in ([], ["sid=second; Path=/"])


async def test_unhandled_error_json_says_unhandled(base_url: str) -> None:
    status, headers, body = await fetch(base_url + "/boom")
    assert status == 500
    assert headers["content-type"].startswith("application/json")
    assert json.loads(body) == {
        "status": 500,
        "message": "Internal Server Error",
        "data": None,
        "unhandled": True,
    }
    assert b"internal detail" not in body


async def test_http_error_json_has_no_unhandled_key(base_url: str) -> None:
    status, _, body = await fetch(base_url + "/teapot")
    assert status == 418
    assert json.loads(body) == {"status": 418, "message": "teapot", "data": {"brew": "no"}}


async def test_cors_defaults_are_h3_v2s(base_url: str) -> None:
    preflight = {
        "Origin": ORIGIN,
        "Access-Control-Request-Method": "PUT",
        "Access-Control-Request-Headers": "authorization",
    }
    status, headers, body = await fetch(base_url + "/api/data", "OPTIONS", headers=preflight)
    assert (status, body) == (204, b"")
    assert headers["access-control-allow-origin"] == "*"
    assert headers["access-control-allow-methods"] == "*"
    assert headers["access-control-allow-headers"] == "authorization"
    assert "access-control-max-age" not in headers
    assert "access-control-allow-credentials" not in headers

    status, headers, body = await fetch(base_url + "/api/data", headers={"Origin": ORIGIN})
    assert status == 200 and json.loads(body) == {"ok": True}
    assert headers["access-control-allow-origin"] == "*"
    assert headers["access-control-expose-headers"] == "*"
    assert "access-control-allow-credentials" not in headers


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/files/%2E%2E%2Fetc", {"name": "..%2Fetc"}),
        ("/files/a%5Cb", {"name": "a%5Cb"}),
        ("/files/%252F", {"name": "%252F"}),
        ("/files/caf%C3%A9", {"name": "café"}),
        ("/files/100%25", {"name": "100%"}),
        ("/raw/a%2Fb/c", {"rest": "a%2Fb/c"}),
    ],
)
async def test_params_never_gain_a_separator(
    base_url: str, path: str, params: dict[str, str]
) -> None:
    status, _, body = await fetch(base_url + path)
    assert status == 200
    assert json.loads(body) == params


async def test_rou3_syntax_on_the_wire(base_url: str) -> None:
    assert json.loads((await fetch(base_url + "/users/42"))[2]) == {"id": "42"}
    assert json.loads((await fetch(base_url + "/users/abc"))[2]) == {"slug": "abc"}
    assert json.loads((await fetch(base_url + "/blog"))[2]) == {}
    assert json.loads((await fetch(base_url + "/blog/x"))[2]) == {"0": "x"}
    assert (await fetch(base_url + "/blog/x/y"))[0] == 404


async def test_none_is_204_a_documented_difference(base_url: str) -> None:
    status, _, body = await fetch(base_url + "/nothing")
    assert (status, body) == (204, b"")
