"""Starlette (served by uvicorn or granian).

``uvicorn h3lab.bench.peer_apps.starlette_app:app --loop uvloop --http httptools``
``granian --interface asgi --loop uvloop h3lab.bench.peer_apps.starlette_app:app``
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from h3lab.bench.peer_apps import (
    JSON_BODY,
    JSON_TYPE,
    N_FILLER,
    PLAINTEXT,
    TEXT_TYPE,
    resource_body,
    user_body,
)


async def plaintext(request: Request) -> Response:
    return Response(PLAINTEXT, media_type=TEXT_TYPE)


async def json_hello(request: Request) -> Response:
    return Response(JSON_BODY, media_type=JSON_TYPE)


async def user(request: Request) -> Response:
    return Response(user_body(request.path_params["id"]), media_type=JSON_TYPE)


def _resource(i: int) -> Callable[[Request], Awaitable[Response]]:
    async def handler(request: Request) -> Response:
        return Response(resource_body(i, request.path_params["id"]), media_type=JSON_TYPE)

    return handler


routes = [
    Route("/plaintext", plaintext, methods=["GET"]),
    Route("/json", json_hello, methods=["GET"]),
    *(Route(f"/api/v1/resource{i}/{{id}}", _resource(i), methods=["GET"]) for i in range(N_FILLER)),
    Route("/users/{id}", user, methods=["GET"]),
]

app = Starlette(routes=routes)
