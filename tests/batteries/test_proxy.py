"""``proxy_request`` (issue 12 item 6): a real upstream on 127.0.0.1, both transports.

The upstream is an ``aiohttp.web`` app; the proxy app runs on h3lab's own
server and, for the ASGI path, under uvicorn (a socket on both sides, so
that streaming can be observed chunk by chunk -- the in-process TestClient
reads whole bodies).
"""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import uvicorn
from aiohttp import web

from h3lab import H3, Server
from h3lab.event import H3Event
from h3lab.utils import get_request_path, proxy_request
from tests.conftest import free_port


class Upstream:
    """The upstream service and what it observed."""

    def __init__(self) -> None:
        self.release_stream = asyncio.Event()
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/echo/{tail:.*}", self.echo)
        app.router.add_get("/stream", self.stream)
        app.router.add_get("/slow", self.slow)
        app.router.add_get("/gzip", self.gzipped)
        app.router.add_get("/redirect", self.redirect)
        app.router.add_get("/cached", self.cached)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    async def echo(self, request: web.Request) -> web.Response:
        body = await request.read()
        seen = {
            "method": request.method,
            "target": request.raw_path,
            "headers": [
                [k.decode("latin-1").lower(), v.decode("latin-1")] for k, v in request.raw_headers
            ],
            "body": body.decode(),
        }
        response = web.json_response(seen, status=201 if request.method == "POST" else 200)
        response.headers["X-Upstream"] = "yes"
        response.headers["Connection"] = "x-private-hop"  # nominates a hop-by-hop field
        response.headers["X-Private-Hop"] = "secret"
        response.headers["Keep-Alive"] = "timeout=5"
        response.headers.add("Set-Cookie", "sid=1; Domain=upstream.internal; Path=/api; HttpOnly")
        response.headers.add("Set-Cookie", "theme=dark; Path=/")
        return response

    async def stream(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.content_type = "text/plain"
        await response.prepare(request)
        await response.write(b"first;")
        # The rest only once the *client* has seen the first chunk through the
        # proxy: a proxy that buffered the whole body would wait here forever.
        await asyncio.wait_for(self.release_stream.wait(), 10)
        await response.write(b"second;")
        await response.write_eof(b"")
        return response

    async def slow(self, request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response(text="too late")

    async def gzipped(self, request: web.Request) -> web.Response:
        return web.Response(
            body=gzip.compress(b"zipped body"),
            headers={"Content-Encoding": "gzip", "Content-Type": "text/plain"},
        )

    async def redirect(self, request: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": "/elsewhere"})

    async def cached(self, request: web.Request) -> web.Response:
        if request.headers.get("If-None-Match") == '"v1"':
            return web.Response(status=304, headers={"ETag": '"v1"'})
        return web.Response(text="fresh", headers={"ETag": '"v1"'})

    async def close(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


def build(upstream: Upstream) -> H3:
    app = H3()

    @app.all("/api/**")
    async def api(event: H3Event) -> Any:
        target = upstream.url + "/echo" + get_request_path(event).removeprefix("/api")
        return await proxy_request(
            event,
            target,
            headers={"x-added": "by-proxy"},
            cookie_domain_rewrite={"upstream.internal": "proxy.example"},
            cookie_path_rewrite={"/api": "/"},
        )

    @app.get("/stream")
    async def stream(event: H3Event) -> Any:
        return await proxy_request(event, upstream.url + "/stream")

    @app.get("/slow")
    async def slow(event: H3Event) -> Any:
        return await proxy_request(event, upstream.url + "/slow", timeout=0.3)

    @app.get("/down")
    async def down(event: H3Event) -> Any:
        return await proxy_request(event, f"http://127.0.0.1:{free_port()}/x", timeout=5)

    @app.get("/gzip")
    async def gzipped(event: H3Event) -> Any:
        return await proxy_request(event, upstream.url + "/gzip")

    @app.get("/redirect")
    async def redirect(event: H3Event) -> Any:
        return await proxy_request(event, upstream.url + "/redirect")

    @app.get("/cached")
    async def cached(event: H3Event) -> Any:
        return await proxy_request(event, upstream.url + "/cached")

    return app


@pytest.fixture(
    params=["builtin", "asgi-uvicorn"],
)
async def proxied(request: pytest.FixtureRequest) -> AsyncIterator[tuple[str, Upstream]]:
    """(proxy base URL, upstream): the proxy app served on the parametrized transport."""
    upstream = Upstream()
    await upstream.start()
    app = build(upstream)
    if request.param == "builtin":
        server = Server(app, "127.0.0.1", 0)
        await server.start()
        try:
            yield server.url, upstream
        finally:
            await server.shutdown(grace=1.0)
            await upstream.close()
        return
    port = free_port()
    config = uvicorn.Config(
        app.asgi,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
        loop="asyncio",
        proxy_headers=False,  # else uvicorn itself trusts X-Forwarded-For from 127.0.0.1
    )
    server_uv = uvicorn.Server(config)
    task = asyncio.create_task(server_uv.serve())
    for _ in range(500):
        if server_uv.started:
            break
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}", upstream
    finally:
        upstream.release_stream.set()
        server_uv.should_exit = True
        await asyncio.wait_for(task, 10)
        await upstream.close()


def client() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15), auto_decompress=False)


async def test_forwards_method_path_query_headers_and_body(proxied: Any) -> None:
    url, _ = proxied
    async with (
        client() as session,
        session.post(
            url + "/api/items/a%2Fb?q=1&r=%20x&q=2",
            data=b'{"n": 1}',
            headers={
                "content-type": "application/json",
                "authorization": "Bearer t",
                "cookie": "a=1",
                "x-forwarded-for": "10.0.0.1",
                "x-forwarded-host": "spoofed.example",
                "connection": "keep-alive, x-hop",
                "x-hop": "dropped",
                "te": "trailers",
                "proxy-authorization": "Basic c2VjcmV0",
            },
        ) as resp,
    ):
        assert resp.status == 201
        seen = json.loads(await resp.read())
        headers = resp.headers
    assert seen["method"] == "POST"
    assert seen["target"] == "/echo/items/a%2Fb?q=1&r=%20x&q=2"  # raw, not re-encoded
    assert seen["body"] == '{"n": 1}'
    sent = dict(seen["headers"])
    assert sent["content-type"] == "application/json"
    assert sent["authorization"] == "Bearer t" and sent["cookie"] == "a=1"
    assert sent["content-length"] == "8"
    assert sent["host"] == _host_of(proxied[1].url)  # the target's, not ours
    for hop in ("x-hop", "te", "proxy-authorization", "upgrade", "keep-alive"):
        assert hop not in sent
    assert sent["x-forwarded-for"] == "10.0.0.1, 127.0.0.1"  # appended to the chain
    assert sent["x-forwarded-host"] == _host_of(url)  # this hop's, not the client's
    assert sent["x-forwarded-proto"] == "http"
    assert sent["x-forwarded-port"] == url.rsplit(":", 1)[1]
    assert sent["x-added"] == "by-proxy"
    # The answer: upstream headers minus the hop-by-hop ones, cookies rewritten.
    assert headers["x-upstream"] == "yes"
    assert "x-private-hop" not in headers and "keep-alive" not in headers
    cookies = headers.getall("set-cookie")
    assert "sid=1; Domain=proxy.example; Path=/; HttpOnly" in cookies
    assert "theme=dark; Path=/" in cookies


def _host_of(url: str) -> str:
    return url.split("://", 1)[1]


async def test_get_sends_no_body_and_query_survives(proxied: Any) -> None:
    url, _ = proxied
    async with client() as session, session.get(url + "/api/x?only=1") as resp:
        seen = json.loads(await resp.read())
    assert seen["method"] == "GET" and seen["target"] == "/echo/x?only=1"
    assert seen["body"] == "" and "content-length" not in dict(seen["headers"])


async def test_body_is_streamed_not_buffered(proxied: Any) -> None:
    url, upstream = proxied
    async with client() as session, session.get(url + "/stream") as resp:
        assert resp.status == 200
        first = await asyncio.wait_for(resp.content.readuntil(b";"), 5)
        assert first == b"first;"  # arrived while the upstream is still mid-body
        upstream.release_stream.set()
        rest = await asyncio.wait_for(resp.content.read(), 5)
    assert rest == b"second;"


async def test_unreachable_upstream_is_502(proxied: Any) -> None:
    url, _ = proxied
    async with client() as session, session.get(url + "/down") as resp:
        assert resp.status == 502
        body = await resp.json()
    assert body["message"] == "Bad Gateway" and "127.0.0.1" not in json.dumps(body)


async def test_slow_upstream_is_504(proxied: Any) -> None:
    url, _ = proxied
    async with client() as session:
        started = asyncio.get_running_loop().time()
        async with session.get(url + "/slow") as resp:
            assert resp.status == 504
        assert asyncio.get_running_loop().time() - started < 3


async def test_compression_passes_through(proxied: Any) -> None:
    url, _ = proxied
    headers = {"accept-encoding": "gzip"}
    async with client() as session, session.get(url + "/gzip", headers=headers) as resp:
        assert resp.headers["content-encoding"] == "gzip"
        assert gzip.decompress(await resp.read()) == b"zipped body"


async def test_redirects_and_304_are_passed_through(proxied: Any) -> None:
    url, _ = proxied
    async with client() as session:
        async with session.get(url + "/redirect", allow_redirects=False) as resp:
            assert resp.status == 302 and resp.headers["location"] == "/elsewhere"
        async with session.get(url + "/cached", headers={"if-none-match": '"v1"'}) as resp:
            assert resp.status == 304 and resp.headers["etag"] == '"v1"'
            assert await resp.read() == b""
        async with session.head(url + "/api/x") as resp:
            assert resp.status == 200 and await resp.read() == b""
            assert int(resp.headers["content-length"]) > 0  # the upstream's length


async def test_proxy_request_rejects_bad_arguments() -> None:
    from h3lab.event import H3Event

    with pytest.raises(ValueError, match="target_url"):
        await proxy_request(H3Event(), "ftp://example.com/")
    with pytest.raises(ValueError, match="timeout"):
        await proxy_request(H3Event(), "http://127.0.0.1:1/", timeout=0)


async def test_a_response_never_sent_still_releases_the_upstream(caplog: Any) -> None:
    """The client left while the upstream answered: the body is never iterated."""
    import gc
    import warnings

    upstream = Upstream()
    await upstream.start()
    try:
        event = H3Event()
        event._raw_headers = [(b"host", b"proxy.test")]
        response = await proxy_request(event, upstream.url + "/echo/x")
        assert response.status == 200 and response.streaming
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            del response
            gc.collect()
            await asyncio.sleep(0)
        assert not [w for w in caught if "Unclosed" in str(w.message)]
        assert "Unclosed" not in caplog.text
        # Sent and finished: the upstream connection is closed by aclose.
        response = await proxy_request(event, upstream.url + "/echo/y")
        chunks = [chunk async for chunk in response.body]  # type: ignore[union-attr]
        assert json.loads(b"".join(chunks))["target"] == "/echo/y"
        assert response.body._closed  # type: ignore[union-attr]
    finally:
        await upstream.close()
