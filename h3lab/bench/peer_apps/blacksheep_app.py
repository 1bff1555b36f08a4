"""BlackSheep (served by uvicorn).

``uvicorn h3lab.bench.peer_apps.blacksheep_app:app --loop uvloop --http httptools``
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from blacksheep import Application, Content, Request, Response

from h3lab.bench.peer_apps import (
    JSON_BODY,
    JSON_TYPE,
    N_FILLER,
    PLAINTEXT,
    TEXT_TYPE,
    resource_body,
    user_body,
)

_TEXT = TEXT_TYPE.encode()
_JSON = JSON_TYPE.encode()


async def plaintext(request: Request) -> Response:
    return Response(200, None, Content(_TEXT, PLAINTEXT))


async def json_hello(request: Request) -> Response:
    return Response(200, None, Content(_JSON, JSON_BODY))


async def user(request: Request) -> Response:
    return Response(200, None, Content(_JSON, user_body(request.route_values["id"])))  # type: ignore[arg-type]  # the pattern binds id


def _resource(i: int) -> Callable[[Request], Awaitable[Response]]:
    async def handler(request: Request) -> Response:
        return Response(200, None, Content(_JSON, resource_body(i, request.route_values["id"])))  # type: ignore[arg-type]  # the pattern binds id

    return handler


def create_app() -> Application:
    app = Application()
    app.router.add_get("/plaintext", plaintext)
    app.router.add_get("/json", json_hello)
    for i in range(N_FILLER):
        app.router.add_get(f"/api/v1/resource{i}/:id", _resource(i))
    app.router.add_get("/users/:id", user)
    return app


app = create_app()
