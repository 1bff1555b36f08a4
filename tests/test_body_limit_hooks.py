"""A body over ``limits.max_body_size`` (413) goes through the app's error hooks
on both transports (issue 10's leftover).

h3 v2 has no server-level body limit: a 413 is an ``HTTPError`` raised while
the request is handled, so ``onError`` sees it and ``onResponse`` sees the
answer. The ASGI adapter does so; the built-in server, which refuses the body
in its parser, now does the same (``h3lab.server.app_refusal``), whether the
length was announced (``Content-Length``) or the body was chunked. The
connection is closed after the answer either way (the body is not read).
"""

from __future__ import annotations

from typing import Any

import pytest

from h3lab import H3, Config, HTTPError, Response
from h3lab.event import H3Event
from tests.conftest import raw_exchange

LIMIT = 100


def build(seen: list[Any], replace: bool) -> H3:
    def on_error(event: H3Event, error: HTTPError) -> Response | None:
        seen.append(("error", event.method, event.path, event.query.get("q"), error.status))
        if replace:
            return Response({"too_big": True, "limit": LIMIT}, error.status, {"x-hook": "on_error"})
        return None

    def on_response(event: H3Event, response: Response) -> None:
        seen.append(("response", response.status))

    app = H3(
        Config().replace("limits.max_body_size", LIMIT),
        on_error=on_error,
        on_response=on_response,
    )
    app.post("/upload", lambda e: "stored")
    return app


@pytest.mark.parametrize("replace", [False, True], ids=["default-answer", "hook-answer"])
async def test_a_413_calls_on_error_and_on_response(transport: Any, replace: bool) -> None:
    seen: list[Any] = []
    live = await transport(build(seen, replace))
    status, headers, body = await live.fetch("POST", "/upload?q=1", data=b"x" * (LIMIT + 1))
    assert status == 413
    assert seen == [("error", "POST", "/upload", "1", 413), ("response", 413)]
    if replace:
        assert headers["x-hook"] == "on_error"
        assert body == b'{"too_big":true,"limit":100}'
    else:
        assert body.startswith(b'{"status":413')


async def test_a_chunked_body_over_the_limit_too(transport: Any) -> None:
    seen: list[Any] = []
    live = await transport(build(seen, replace=True))
    chunk = b"x" * 60
    request = (
        b"POST /upload?q=2 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
        + (b"%x\r\n%s\r\n" % (len(chunk), chunk)) * 3
        + b"0\r\n\r\n"
    )
    data = await raw_exchange(live.port, request)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413")
    assert b"x-hook: on_error" in head.lower()
    assert body.startswith(b'{"too_big":true')
    assert seen == [("error", "POST", "/upload", "2", 413), ("response", 413)]


async def test_without_hooks_the_servers_own_413_is_unchanged() -> None:
    from h3lab import Server

    app = H3(Config().replace("limits.max_body_size", LIMIT))
    app.post("/upload", lambda e: "stored")
    async with Server(app, "127.0.0.1", 0) as server:
        data = await raw_exchange(
            server.port,
            b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 101\r\n\r\n" + b"x" * 101,
        )
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413") and b"connection: close" in head.lower()
    assert body == b'{"status":413,"message":"Request body too large","data":null}'
