"""aiohttp.web on aiohttp's own server (uvloop, access log off).

``python -m h3lab.bench.peer_apps.aiohttp_app --port 8000``
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable

from aiohttp import web

from h3lab.bench.peer_apps import (
    JSON_BODY,
    JSON_TYPE,
    N_FILLER,
    PLAINTEXT,
    resource_body,
    user_body,
)


async def plaintext(request: web.Request) -> web.Response:
    return web.Response(body=PLAINTEXT, content_type="text/plain", charset="utf-8")


async def json_hello(request: web.Request) -> web.Response:
    return web.Response(body=JSON_BODY, content_type=JSON_TYPE)


async def user(request: web.Request) -> web.Response:
    return web.Response(body=user_body(request.match_info["id"]), content_type=JSON_TYPE)


def _resource(i: int) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=resource_body(i, request.match_info["id"]), content_type=JSON_TYPE)

    return handler


def create_app() -> web.Application:
    app = web.Application()
    app.router.add_get("/plaintext", plaintext, allow_head=False)
    app.router.add_get("/json", json_hello, allow_head=False)
    for i in range(N_FILLER):
        app.router.add_get(f"/api/v1/resource{i}/{{id}}", _resource(i), allow_head=False)
    app.router.add_get("/users/{id}", user, allow_head=False)
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        uvloop = None  # type: ignore[assignment]  # optional: the default loop then
    web.run_app(
        create_app(),
        host=args.host,
        port=args.port,
        access_log=None,
        print=None,
        backlog=2048,
        shutdown_timeout=5.0,
        loop=uvloop.new_event_loop() if uvloop is not None else None,
    )


if __name__ == "__main__":
    main()
