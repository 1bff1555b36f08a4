"""Falcon, ASGI flavour (served by uvicorn).

``uvicorn h3lab.bench.peer_apps.falcon_app:app --loop uvloop --http httptools``
"""

from __future__ import annotations

import falcon
import falcon.asgi

from h3lab.bench.peer_apps import (
    JSON_BODY,
    JSON_TYPE,
    N_FILLER,
    PLAINTEXT,
    TEXT_TYPE,
    resource_body,
    user_body,
)


class Plaintext:
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.content_type = TEXT_TYPE
        resp.data = PLAINTEXT


class JsonHello:
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.content_type = JSON_TYPE
        resp.data = JSON_BODY


class User:
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, id: str) -> None:
        resp.content_type = JSON_TYPE
        resp.data = user_body(id)


class Resource:
    def __init__(self, i: int) -> None:
        self.i = i

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, id: str) -> None:
        resp.content_type = JSON_TYPE
        resp.data = resource_body(self.i, id)


def create_app() -> falcon.asgi.App:
    app = falcon.asgi.App()
    app.add_route("/plaintext", Plaintext())
    app.add_route("/json", JsonHello())
    for i in range(N_FILLER):
        app.add_route(f"/api/v1/resource{i}/{{id}}", Resource(i))
    app.add_route("/users/{id}", User())
    return app


app = create_app()
