"""An app using composition and lifespan, for ``h3lab serve`` subprocess tests.

``h3lab serve tests.apps.composed:app --preset performance`` serves a clone
(``H3.clone``): the mount, the removed route, the middleware options and the
lifespan hooks must all have survived it. ``H3LAB_TEST_LIFESPAN_LOG`` names a
file each hook appends a line to (pid and hook); ``H3LAB_TEST_FAIL_STARTUP``
makes a startup hook raise.
"""

from __future__ import annotations

import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from h3lab import H3
from h3lab.event import H3Event

app = H3()
sub = H3()
state: dict[str, object] = {}


def _log(line: str) -> None:
    path = os.environ.get("H3LAB_TEST_LIFESPAN_LOG")
    if path:
        with open(path, "a") as f:
            f.write(f"{os.getpid()} {line}\n")


@app.on_startup
async def open_things(served: H3) -> None:
    if os.environ.get("H3LAB_TEST_FAIL_STARTUP"):
        raise RuntimeError("database unreachable\nsecond line never shown")
    state["started"] = served.config.preset_name
    _log("startup app")


@app.on_shutdown
def close_things() -> None:
    _log("shutdown app")


@sub.on_startup
def sub_started() -> None:
    _log("startup sub")


@sub.on_shutdown
def sub_stopped() -> None:
    _log("shutdown sub")


@sub.get("/where")
def where(event: H3Event) -> dict[str, object]:
    return {"path": event.path, "full_path": event.full_path, "preset": event.app.config.label}


def tag(event: H3Event) -> None:
    event.set_header("x-post-only", "1")


app.use(tag, method="POST")
app.use(lambda event: event.set_header("x-matched", "1"), match=lambda e: "m" in e.query)


@app.get("/state")
def get_state(event: H3Event) -> dict[str, object]:
    return {"state": state, "preset": event.app.config.label}


@app.post("/echo")
async def echo(event: H3Event) -> bytes:
    return await event.body()


@app.get("/gone")
def gone(event: H3Event) -> str:
    return "should have been removed"


@app.query("/search")
async def search(event: H3Event) -> dict[str, object]:
    return {"query": (await event.body()).decode()}


async def star(request: Request) -> JSONResponse:
    return JSONResponse({"path": request.url.path, "root_path": request.scope["root_path"]})


app.mount("/sub", sub)
app.mount("/star", Starlette(routes=[Route("/hello", star)]))
app.remove_route("GET", "/gone")
