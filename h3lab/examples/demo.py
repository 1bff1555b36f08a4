"""A realistic demo app: ``h3lab serve h3lab.examples.demo:app`` (or ``make serve``).

Static, param and wildcard routes, a JSON echo, a form endpoint, cookies, a
streaming endpoint and Server-Sent Events, CORS on ``/api``, static files,
validated query input, a sealed session, Basic auth, conditional GETs, a
``QUERY`` search, startup/shutdown hooks (``/health`` shows uptime), a
WebSocket echo (``/ws/echo``), and
the benchmark endpoints every study and peer comparison uses
(``/plaintext``, ``/json``, ``/users/:id`` behind 50 other routes).

Secrets come from the environment: ``H3LAB_DEMO_SESSION_SECRET`` (else a
random one per process, so sessions do not survive a restart or cross
``--workers``) and ``H3LAB_DEMO_ADMIN_PASSWORD`` (else ``demo``: the demo
listens on 127.0.0.1).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from h3lab import H3, WebSocket
from h3lab.event import H3Event
from h3lab.utils import (
    EventStream,
    InvalidInput,
    basic_auth,
    cors,
    get_request_ip,
    get_validated_query,
    handle_cache_headers,
    html,
    not_modified,
    redirect,
    serve_static,
    use_session,
)

PLAINTEXT = "Hello, World!"
SESSION_SECRET = os.environ.get("H3LAB_DEMO_SESSION_SECRET") or secrets.token_urlsafe(32)
ADMIN_PASSWORD = os.environ.get("H3LAB_DEMO_ADMIN_PASSWORD") or "demo"
CACHED_ETAG = f'"demo-{int(time.time())}"'


def item_limit(query: dict[str, Any]) -> int:
    """The ``limit`` query parameter: an int in 1..100 (anything else is a 400)."""
    raw = query.get("limit", "3")
    limit = int(raw) if isinstance(raw, str) and raw.strip().isdigit() else 0
    if not 0 < limit <= 100:
        raise InvalidInput(limit="must be an integer in 1..100")
    return limit


def build(app: H3 | None = None) -> H3:
    """Register the demo routes on ``app`` (a new default app when None)."""
    app = app if app is not None else H3()

    # -- the benchmark endpoints (TechEmpower-style) --------------------------
    @app.get("/plaintext")
    def plaintext(event: H3Event) -> str:
        return PLAINTEXT

    @app.get("/json")
    def json_hello(event: H3Event) -> dict[str, str]:
        return {"message": PLAINTEXT}

    # 50 routes registered before /users/:id, as in the peers comparison.
    for i in range(50):
        app.get(f"/api/v1/resource{i}/:id", _resource_handler(i))

    @app.get("/users/:id")
    def get_user(event: H3Event) -> dict[str, str]:
        return {"id": event.params["id"]}

    # -- a small realistic API ------------------------------------------------
    app.use("/api", cors(origin="*"))

    @app.get("/")
    def index(event: H3Event) -> str:
        return (
            "h3lab demo: try /plaintext, /json, /users/42, /api/items?limit=2, /stream, "
            "/events, /visits, /whoami, /cached, /admin (user admin), /health"
        )

    @app.get("/api/items")
    def list_items(event: H3Event) -> list[dict[str, Any]]:
        # A plain callable validator: ?limit=abc is a 400 listing the reason,
        # never a 500 (pydantic models work the same way when installed).
        limit = get_validated_query(event, item_limit)
        return [{"id": i, "name": f"item {i}"} for i in range(limit)]

    @app.post("/api/echo")
    async def echo(event: H3Event) -> Any:
        return await event.json()

    @app.query("/api/items")
    async def search_items(event: H3Event) -> list[dict[str, Any]]:
        # QUERY: a search whose criteria travel in the body, safely repeatable.
        text = str((await event.json()).get("name", ""))
        return [{"id": i, "name": f"item {i}"} for i in range(100) if text in f"item {i}"][:10]

    started: dict[str, float] = {}

    @app.on_startup
    def record_start() -> None:
        started["at"] = time.monotonic()

    @app.on_shutdown
    def forget_start() -> None:
        started.clear()

    @app.get("/health")
    def health(event: H3Event) -> dict[str, Any]:
        at = started.get("at")
        return {"ok": True, "uptime_s": None if at is None else round(time.monotonic() - at, 3)}

    @app.post("/api/form")
    async def form(event: H3Event) -> dict[str, Any]:
        data = await event.form()
        return {"fields": dict(data.fields), "files": sorted(data.files)}

    @app.get("/api/files/**:path")
    def file_path(event: H3Event) -> dict[str, str]:
        return {"path": event.params["path"]}

    @app.get("/login")
    def login(event: H3Event) -> Any:
        event.set_cookie("session", "demo", httponly=True, samesite="lax")
        return redirect("/", 303)

    @app.get("/whoami")
    def whoami(event: H3Event) -> dict[str, Any]:
        remote = event.remote
        port = remote[1] if isinstance(remote, tuple) and len(remote) > 1 else None
        return {
            "session": event.cookies.get("session"),
            "remote": {"ip": get_request_ip(event), "port": port},
            "url": event.url,
        }

    @app.get("/visits")
    async def visits(event: H3Event) -> dict[str, Any]:
        # secure=False: the demo is served over plain http.
        session = await use_session(event, password=SESSION_SECRET, max_age=86400, secure=False)
        count = session.data.get("visits", 0) + 1
        await session.update({"visits": count})
        return {"session": session.id, "visits": count}

    @app.get("/admin", middleware=[basic_auth(username="admin", password=ADMIN_PASSWORD)])
    def admin(event: H3Event) -> Any:
        user = event.context["basic_auth"]["username"]
        return html("<!DOCTYPE html><h1>Admin</h1><p>Signed in as {user}.</p>", user=user)

    @app.get("/cached")
    def cached(event: H3Event) -> Any:
        if handle_cache_headers(event, etag=CACHED_ETAG, max_age=60):
            return not_modified()
        return {"etag": CACHED_ETAG, "note": "send If-None-Match to get a 304"}

    @app.get("/slow")
    async def slow(event: H3Event) -> dict[str, float]:
        delay = min(float(event.query.get("ms", "10")), 1000.0) / 1000
        await asyncio.sleep(delay)
        return {"slept_ms": delay * 1000}

    @app.get("/stream")
    async def stream(event: H3Event) -> AsyncIterator[bytes]:
        count = min(int(event.query.get("n", "5")), 1000)

        async def chunks() -> AsyncIterator[bytes]:
            for i in range(count):
                yield f"chunk {i}\n".encode()
                await asyncio.sleep(0)

        return chunks()

    @app.get("/events")
    def events(event: H3Event) -> Any:
        stream = EventStream(event)

        async def produce() -> None:
            for i in range(3):
                await stream.push({"id": str(i), "event": "tick", "data": str(time.time())})
                await asyncio.sleep(0.01)
            await stream.close()

        task = asyncio.ensure_future(produce())
        stream.on_closed(task.cancel)
        return stream.response()

    @app.ws("/ws/echo")
    async def ws_echo(ws: WebSocket) -> None:
        await ws.accept()
        async for message in ws:  # text back as text, binary as binary
            await ws.send(message)

    static_dir = Path(__file__).with_name("static")
    if static_dir.is_dir():
        app.get("/static/**", serve_static(static_dir))
    return app


def _resource_handler(i: int) -> Any:
    def handler(event: H3Event) -> dict[str, Any]:
        return {"resource": i, "id": event.params["id"]}

    handler.__name__ = f"resource{i}"
    return handler


app = build()
