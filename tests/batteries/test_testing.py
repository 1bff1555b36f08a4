"""``h3lab.testing.TestClient`` (issue 12 item 9): in-process, cookies, lifespan."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest

from h3lab import H3, Response
from h3lab.event import H3Event
from h3lab.testing import TestClient
from h3lab.utils import redirect, use_session

SECRET = "t" * 40


def build() -> H3:
    app = H3()

    @app.on("*", "/method")
    async def method(event: H3Event) -> dict[str, Any]:
        body = await event.body()
        return {"method": event.method, "body": body.decode(), "q": dict(event.query)}

    @app.get("/set")
    def set_cookies(event: H3Event) -> str:
        event.set_cookie("root", "r")
        event.set_cookie("scoped", "s", path="/a")
        event.set_cookie("secure", "x", secure=True)
        event.set_cookie("gone", "g", expires="Thu, 01 Jan 1970 00:00:00 GMT")
        return "set"

    @app.get("/a/echo")
    def a_echo(event: H3Event) -> dict[str, str]:
        return dict(event.cookies)

    @app.get("/b/echo")
    def b_echo(event: H3Event) -> dict[str, str]:
        return dict(event.cookies)

    @app.get("/drop")
    def drop(event: H3Event) -> str:
        event.delete_cookie("root")
        return "dropped"

    @app.get("/hop")
    def hop(event: H3Event) -> Any:
        return redirect("/method?from=hop", 302)

    @app.get("/stream")
    async def stream(event: H3Event) -> Any:
        async def chunks() -> AsyncIterator[str]:
            for i in range(3):
                yield f"{i};"

        return chunks()

    @app.get("/session")
    async def session(event: H3Event) -> dict[str, Any]:
        current = await use_session(event, password=SECRET)  # Secure by default
        await current.update({"n": current.data.get("n", 0) + 1})
        return current.data

    @app.get("/teapot")
    def teapot(event: H3Event) -> Response:
        return Response("short and stout", 418, {"x-kind": "teapot"})

    return app


def test_verbs_and_response_api() -> None:
    with TestClient(build()) as client:
        for verb in ("get", "delete"):
            reply = getattr(client, verb)("/method", params={"q": "1"})
            assert reply.status_code == 200
            assert reply.json() == {"method": verb.upper(), "body": "", "q": {"q": "1"}}
        for verb in ("post", "put", "patch"):
            reply = getattr(client, verb)("/method", json={"v": verb})
            assert json.loads(reply.json()["body"]) == {"v": verb}
        assert client.request("OPTIONS", "/method").json()["method"] == "OPTIONS"
        teapot = client.get("/teapot")
        assert teapot.status_code == 418 and teapot.text == "short and stout"
        assert teapot.headers["x-kind"] == "teapot"
        assert client.head("/teapot").content == b""
        assert client.get("/stream").text == "0;1;2;"
        assert client.get("/nowhere").status_code == 404


def test_cookie_jar_respects_path_expiry_and_secure() -> None:
    with TestClient(build()) as client:
        reply = client.get("/set")
        assert reply.cookies["root"] == "r"
        assert client.get("/a/echo").json() == {"root": "r", "scoped": "s"}
        assert client.get("/b/echo").json() == {"root": "r"}  # Path=/a stays on /a
        client.get("/drop")  # Max-Age=0 removes it from the jar
        assert client.get("/b/echo").json() == {}
    with TestClient(build(), base_url="https://testserver") as secure_client:
        secure_client.get("/set")
        assert secure_client.get("/b/echo").json() == {"root": "r", "secure": "x"}


def test_secure_session_cookie_over_https_base_url() -> None:
    with TestClient(build(), base_url="https://testserver") as client:
        assert client.get("/session").json() == {"n": 1}
        assert client.get("/session").json() == {"n": 2}
    with TestClient(build()) as plain:  # http: the Secure cookie is never sent back
        assert plain.get("/session").json() == {"n": 1}
        assert plain.get("/session").json() == {"n": 1}


def test_redirects_followed_by_default() -> None:
    with TestClient(build()) as client:
        reply = client.get("/hop")
        assert reply.json()["q"] == {"from": "hop"}
        assert client.get("/hop", follow_redirects=False).status_code == 302


def test_without_with_each_request_runs_on_its_own_loop() -> None:
    app = build()
    client = TestClient(app)
    try:
        assert client.get("/method").json()["method"] == "GET"
        assert client.post("/method", content=b"raw").json()["body"] == "raw"
    finally:
        client.close()
        app.memory.close()  # no lifespan shutdown without `with`: undo the GC policy here


def test_no_network_socket_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the TestClient opened a network connection")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    with TestClient(build()) as client:
        assert client.get("/method").status_code == 200


async def test_usable_from_an_async_test() -> None:
    with TestClient(build()) as client:
        assert client.get("/method").json()["method"] == "GET"


class LifespanRecorder:
    """A raw ASGI app that records the lifespan protocol it is driven through."""

    def __init__(self, fail_startup: bool = False, supported: bool = True) -> None:
        self.events: list[str] = []
        self.fail_startup = fail_startup
        self.supported = supported

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            if not self.supported:
                return
            assert scope["asgi"]["version"] == "3.0"
            while True:
                message = await receive()
                self.events.append(message["type"])
                if message["type"] == "lifespan.startup":
                    if self.fail_startup:
                        await send({"type": "lifespan.startup.failed", "message": "no db"})
                        return
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        assert scope["type"] == "http"
        self.events.append(f"http {scope['method']} {scope['path']}")
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def test_context_manager_drives_the_lifespan_protocol() -> None:
    app = LifespanRecorder()
    with TestClient(app) as client:
        assert app.events == ["lifespan.startup"]
        assert client.get("/x").text == "ok"
    assert app.events == ["lifespan.startup", "http GET /x", "lifespan.shutdown"]


def test_failed_startup_raises() -> None:
    with (
        pytest.raises(RuntimeError, match="startup failed: no db"),
        TestClient(LifespanRecorder(fail_startup=True)),
    ):
        pass  # pragma: no cover - never entered


def test_app_without_lifespan_support_still_works() -> None:
    app = LifespanRecorder(supported=False)
    with TestClient(app) as client:
        assert client.get("/y").text == "ok"
    assert app.events == ["http GET /y"]


def test_h3_app_lifespan_runs_through_the_adapter() -> None:
    app = build()
    client = TestClient(app)
    adapter = client.app
    assert not app.memory._installed
    with client:
        # lifespan.startup reached the app before any request...
        assert adapter._started and app.memory._installed  # type: ignore[attr-defined]
    assert not app.memory._installed  # ...and lifespan.shutdown on exit


def test_websocket_connect_to_a_path_without_a_websocket_route_is_refused() -> None:
    from h3lab.testing import WebSocketRejected

    with TestClient(build()) as client, pytest.raises(WebSocketRejected) as refused:
        client.websocket_connect("/chat").__enter__()
    assert refused.value.status_code == 404  # sessions: tests/batteries/test_websocket.py


def test_app_exceptions_propagate() -> None:
    async def broken(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            raise LookupError("adapter bug")

    with TestClient(broken) as client, pytest.raises(LookupError, match="adapter bug"):
        client.get("/")
