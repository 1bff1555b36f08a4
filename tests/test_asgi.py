"""The same app served through the ASGI adapter by uvicorn."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import uvicorn

from h3lab import H3, Config, HTTPError
from h3lab.event import H3Event
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent


def build() -> H3:
    app = H3(Config.preset("performance"))
    app.get("/text", lambda e: "hello")
    app.get("/users/:id", lambda e: {"id": e.params["id"], "q": e.query.get("q")})

    @app.post("/echo")
    async def echo(event: H3Event) -> Any:
        return await event.json()

    @app.get("/stream")
    async def stream(event: H3Event) -> Any:
        async def gen() -> Any:
            for i in range(3):
                yield f"{i},"

        return gen()

    @app.get("/teapot")
    def teapot(event: H3Event) -> None:
        raise HTTPError(418, "teapot")

    @app.get("/boom")
    def boom(event: H3Event) -> None:
        raise RuntimeError("secret")

    app.get("/evil", lambda e: e.set_header("x", "a\r\nb") or "no")
    return app


@pytest.fixture
async def uvicorn_url() -> Any:
    port = free_port()
    config = uvicorn.Config(
        build().asgi,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
        loop="asyncio",
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(200):
        if server.started:
            break
        await asyncio.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await asyncio.wait_for(task, 5)


async def test_asgi_under_uvicorn(uvicorn_url: str) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.get(uvicorn_url + "/text") as r:
            assert r.status == 200 and await r.text() == "hello"
            assert r.headers["content-type"] == "text/plain; charset=utf-8"
        async with s.get(uvicorn_url + "/users/a%2Fb?q=1") as r:
            assert json.loads(await r.read()) == {"id": "a%2Fb", "q": "1"}
        async with s.post(uvicorn_url + "/echo", json={"x": 1}) as r:
            assert await r.json() == {"x": 1}
        async with s.post(uvicorn_url + "/echo", data=b"nope") as r:
            assert r.status == 400
        async with s.get(uvicorn_url + "/stream") as r:
            assert await r.text() == "0,1,2,"
        async with s.get(uvicorn_url + "/teapot") as r:
            assert r.status == 418 and (await r.json())["message"] == "teapot"
        async with s.get(uvicorn_url + "/boom") as r:
            assert r.status == 500 and "secret" not in await r.text()
        async with s.get(uvicorn_url + "/evil") as r:
            assert r.status == 500 and "x" not in r.headers
        async with s.get(uvicorn_url + "/nowhere") as r:
            assert r.status == 404
        async with s.head(uvicorn_url + "/text") as r:
            assert r.status == 200 and await r.read() == b""


async def test_asgi_body_limit() -> None:
    app = H3(Config().replace("limits.max_body_size", 10))
    app.post("/x", lambda e: "ok")
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"y" * 11, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/x",
        "raw_path": b"/x",
        "query_string": b"",
        "headers": [],
    }
    await app.asgi(scope, receive, send)
    assert sent[0]["status"] == 413


def test_uvicorn_exits_promptly_on_sigterm_after_a_stream_client_left() -> None:
    """A stream whose client left is stopped, so uvicorn's graceful shutdown
    (which waits for every request task) ends at once on SIGTERM."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "tests.apps.feed:asgi", "--port", "0"],
        cwd=ROOT,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        port = _uvicorn_port(proc)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"GET /feed HTTP/1.1\r\nHost: t\r\n\r\n")
            received = b""
            while b"data: tick" not in received:
                chunk = sock.recv(4096)
                assert chunk, received
                received += chunk
        time.sleep(0.3)  # the disconnect reaches the app
        proc.send_signal(signal.SIGTERM)
        # uvicorn re-raises the signal once it has shut down gracefully.
        assert proc.wait(timeout=5) in (0, -signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()  # type: ignore[union-attr]


def _uvicorn_port(proc: subprocess.Popen[str]) -> int:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = proc.stderr.readline()  # type: ignore[union-attr]
        if not line:
            break
        match = re.search(r"running on http://127\.0\.0\.1:(\d+)", line)
        if match:
            return int(match[1])
    raise AssertionError("uvicorn did not announce its port")
