"""Server apps the studies load beyond the bench app: handlers that await, request bodies.

``create_app`` is the bench app (``h3lab.bench.apps``) plus:

* ``GET /await``: a handler that suspends for ``H3LAB_STUDY_AWAIT_US``
  microseconds (default 1000) before answering "ok". Synchronous handlers run
  inline, so under load only one event is ever alive and a pool can only show
  100% reuse; with a handler that awaits, events overlap (up to the number of
  connections) and the pool's high-water mark, creations and reuse mean
  something.
* ``POST /body``: reads the request body (``H3LAB_STUDY_BODY`` bytes are sent
  by the study) and answers its length: the request path that exercises the
  memory strategy's buffers and arenas.
"""

from __future__ import annotations

import asyncio
import os

from h3lab.app import H3
from h3lab.bench.apps import create_app as bench_app
from h3lab.bench.route_tables import BenchRequest
from h3lab.config import Config
from h3lab.event import H3Event

AWAIT_ENV = "H3LAB_STUDY_AWAIT_US"
AWAIT_PATH = "/await"
BODY_PATH = "/body"


def _await_us() -> int:
    raw = os.environ.get(AWAIT_ENV, "").strip() or "1000"
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{AWAIT_ENV} must be an integer >= 0, got {raw!r}") from None
    if value < 0:
        raise ValueError(f"{AWAIT_ENV} must be an integer >= 0, got {raw!r}")
    return value


def create_app(config: Config | None = None) -> H3:
    app = bench_app(config)
    delay = _await_us() / 1e6

    async def awaiting(event: H3Event) -> str:
        await asyncio.sleep(delay)
        return "ok"

    async def body_length(event: H3Event) -> str:
        body = await event.body()
        return str(len(body or b""))

    app.get(AWAIT_PATH, awaiting)
    app.post(BODY_PATH, body_length)
    return app


APP = "h3lab.studies.study_apps:create_app"


def await_request() -> BenchRequest:
    return BenchRequest("GET", AWAIT_PATH, expect_body=b"ok", route=AWAIT_PATH)


def body_request(size: int) -> BenchRequest:
    body = bytes((i * 31) % 251 for i in range(size))
    return BenchRequest(
        "POST", BODY_PATH, body=body, expect_body=str(size).encode(), route=BODY_PATH
    )
