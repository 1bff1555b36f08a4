"""Lifespan (issue 12, item 2): ``@app.on_startup`` / ``@app.on_shutdown``.

On both transports (the built-in server runs the hooks around serving, the
ASGI adapter through the lifespan protocol), and through ``h3lab serve`` in
subprocesses: a failing startup hook is one line on stderr and exit status 1,
and a cloned app (``--preset``, ``--workers``) keeps its hooks, mounts,
removed routes and middleware options.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from h3lab import H3, Server
from h3lab.lifespan import StartupFailed
from h3lab.testing import TestClient
from tests.test_serve_cli import ROOT, Served, env


def lifespan_app(calls: list[str]) -> H3:
    app = H3()
    sub = H3()

    @app.on_startup
    def first() -> None:
        calls.append("startup 1")

    @app.on_startup
    async def second(served: H3) -> None:
        await asyncio.sleep(0)
        calls.append(f"startup 2 {served is app}")

    @app.on_shutdown
    async def close_first() -> None:
        calls.append("shutdown 1")

    @app.on_shutdown
    def close_second() -> None:
        calls.append("shutdown 2")

    sub.on_startup(lambda: calls.append("sub startup"))
    sub.on_shutdown(lambda: calls.append("sub shutdown"))
    app.mount("/sub", sub)
    app.get("/calls", lambda e: list(calls))
    return app


async def test_hooks_run_around_serving(connect: Any) -> None:
    calls: list[str] = []
    client = await connect(lifespan_app(calls))
    reply = await client.request("GET", "/calls")
    assert reply.json() == ["startup 1", "startup 2 True", "sub startup"]
    await client.close()
    assert calls[3:] == ["sub shutdown", "shutdown 2", "shutdown 1"]


def test_hook_signatures_are_checked() -> None:
    app = H3()
    with pytest.raises(TypeError, match="no argument or one"):
        app.on_startup(lambda a, b: None)
    with pytest.raises(TypeError, match="must be callable"):
        app.on_shutdown("close")  # type: ignore[arg-type]


def failing_app(calls: list[str]) -> H3:
    app = H3()
    app.on_startup(lambda: calls.append("ran"))

    @app.on_startup
    async def connect_db() -> None:
        raise ConnectionError("db at 10.0.0.1 refused\nmore detail")

    app.on_startup(lambda: calls.append("never"))
    app.on_shutdown(lambda: calls.append("shutdown never"))
    return app


async def test_failing_startup_on_the_builtin_server() -> None:
    calls: list[str] = []
    server = Server(failing_app(calls), "127.0.0.1", 0)
    with pytest.raises(StartupFailed) as info:
        await server.start()
    assert str(info.value) == (
        "startup hook failing_app.<locals>.connect_db failed: "
        "ConnectionError: db at 10.0.0.1 refused"
    )
    assert calls == ["ran"] and server._listener is None  # nothing listens


def test_failing_startup_under_asgi() -> None:
    calls: list[str] = []
    messages: list[dict[str, Any]] = []

    async def drive() -> None:
        inbox = [{"type": "lifespan.startup"}]

        async def receive() -> dict[str, Any]:
            return inbox.pop(0)

        async def send(message: dict[str, Any]) -> None:
            messages.append(message)

        await failing_app(calls).asgi({"type": "lifespan"}, receive, send)

    asyncio.run(drive())
    assert messages == [
        {
            "type": "lifespan.startup.failed",
            "message": "startup hook failing_app.<locals>.connect_db failed: "
            "ConnectionError: db at 10.0.0.1 refused",
        }
    ]
    with pytest.raises(RuntimeError, match="lifespan startup failed: startup hook"):
        TestClient(failing_app([])).__enter__()


def test_failing_shutdown_runs_the_others_and_reports() -> None:
    calls: list[str] = []
    app = H3()
    app.on_shutdown(lambda: calls.append("last"))
    app.on_shutdown(lambda: 1 / 0)
    app.on_shutdown(lambda: calls.append("first"))
    client = TestClient(app)
    client.__enter__()
    with pytest.raises(
        RuntimeError, match=r"lifespan shutdown failed: shutdown hook .* ZeroDivision"
    ):
        client.__exit__(None, None, None)
    assert calls == ["first", "last"]


# -- through ``h3lab serve`` (subprocesses) ------------------------------------------


@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_stops_on_a_failing_startup_hook(workers: str, tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "h3lab.cli", "serve", "tests.apps.composed:app"),
            *("--port", "0", "--preset", "performance", "--workers", workers),
        ],
        cwd=ROOT,
        env={**env(), "H3LAB_TEST_FAIL_STARTUP": "1"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stderr.splitlines() == [
        "h3lab serve: error: startup hook open_things failed: RuntimeError: database unreachable"
    ]
    assert "serving on" not in proc.stdout


@pytest.fixture
def servers() -> Iterator[list[Served]]:
    started: list[Served] = []
    yield started
    for served in started:
        served.kill()


def request(port: int, method: str, path: str, body: bytes | None = None) -> tuple[int, Any, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body)
        resp = conn.getresponse()
        return resp.status, resp.headers, resp.read()
    finally:
        conn.close()


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_cloned_app_keeps_mounts_hooks_options_and_removals(
    workers: str, tmp_path: Path, servers: list[Served], monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "lifespan.log"
    monkeypatch.setenv("H3LAB_TEST_LIFESPAN_LOG", str(log))
    served = Served(
        "tests.apps.composed:app", "--port", "0", "--preset", "performance", "--workers", workers
    )
    servers.append(served)
    served.ready()
    port = served.port

    status, _, body = request(port, "GET", "/state")
    assert status == 200
    # the startup hook received the clone (the performance preset), not the module's app
    assert json.loads(body)["state"] == {"started": "performance"}
    status, _, body = request(port, "GET", "/sub/where")
    assert json.loads(body) == {
        "path": "/where",
        "full_path": "/sub/where",
        "preset": "performance",
    }
    status, _, body = request(port, "GET", "/star/hello")
    assert json.loads(body) == {"path": "/star/hello", "root_path": "/star"}
    assert request(port, "GET", "/gone")[0] == 404  # removed before the clone, still removed
    status, headers, body = request(port, "POST", "/echo", b"abc")
    assert body == b"abc" and headers["x-post-only"] == "1" and "x-matched" not in headers
    assert request(port, "GET", "/state?m")[1]["x-matched"] == "1"
    assert "x-post-only" not in request(port, "GET", "/state")[1]
    status, _, body = request(port, "QUERY", "/search", b"needle")
    assert status == 200 and json.loads(body) == {"query": "needle"}

    code, _, _, err = served.stop()
    assert code == 0, err
    lines = log.read_text().splitlines()
    pids = {line.split()[0] for line in lines}
    assert len(pids) == int(workers)  # every worker ran the hooks
    for pid in pids:
        mine = [line.split(" ", 1)[1] for line in lines if line.startswith(pid + " ")]
        assert mine == ["startup app", "startup sub", "shutdown sub", "shutdown app"]
