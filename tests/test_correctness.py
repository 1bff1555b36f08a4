"""Framework correctness (issue 10): each case runs on both transports.

The built-in server and ``app.asgi`` under uvicorn (the ``transport``
fixture) must give the same answer; a few cases drive ``app.asgi`` in process
too, where what matters is that nothing escapes the adapter.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from h3lab import H3, Config, HTTPError, Response
from h3lab.event import H3Event
from h3lab.methods import ALLOW_ALL, METHODS
from h3lab.utils import cors, serve_static
from tests.conftest import asgi_request, raw_exchange, start_uvicorn, stop_uvicorn

ORIGIN = "https://app.example"


def _cyclic() -> dict[str, Any]:
    data: dict[str, Any] = {"name": "loop"}
    data["self"] = data
    return data


def _responses(data: bytes) -> list[bytes]:
    """The header blocks of the responses in a raw byte stream."""
    return [block.split(b"\r\n\r\n", 1)[0] for block in data.split(b"HTTP/1.1 ")[1:]]


# -- 1: a handler-returned Response is never mutated -----------------------------


async def test_returned_response_is_never_mutated(transport: Any) -> None:
    shared = Response("welcome", headers={"x-shared": "1"})
    before = list(shared.headers)
    app = H3()

    @app.get("/login/:user")
    def login(event: H3Event) -> Response:
        event.set_cookie("sid", event.params["user"])
        return shared

    live = await transport(app)
    for user in ("user1", "user2", "user3"):
        async with live.request("GET", f"/login/{user}") as resp:
            assert resp.headers.getall("Set-Cookie") == [f"sid={user}; Path=/"]
            assert resp.headers["x-shared"] == "1" and await resp.read() == b"welcome"
    assert shared.headers == before


# -- 2: an unencodable value is a 500, and the server keeps serving --------------


def _unencodable_app() -> H3:
    app = H3()
    app.get("/ok", lambda e: "ok")
    app.get("/cycle", lambda e: _cyclic())

    @app.get("/cycle-error")
    def cycle_error(event: H3Event) -> None:
        raise HTTPError(400, "bad", _cyclic())

    @app.get("/cycle-response")
    def cycle_response(event: H3Event) -> Any:
        event.status = 201  # off the server's fast path
        return _cyclic()

    return app


async def test_unencodable_value_is_a_500(transport: Any) -> None:
    live = await transport(_unencodable_app())
    for path in ("/cycle", "/cycle-error", "/cycle-response"):
        status, _, body = await live.fetch("GET", path)
        assert status == 500, path
        assert json.loads(body)["message"] == "Internal Server Error"
        assert (await live.fetch("GET", "/ok"))[2] == b"ok"


async def test_nothing_escapes_the_asgi_adapter() -> None:
    app = _unencodable_app()
    for path in ("/cycle", "/cycle-error", "/cycle-response"):
        status, _, body = await asgi_request(app, "GET", path)
        assert status == 500 and json.loads(body)["status"] == 500


# -- 3: the error path is the same on both transports ----------------------------


async def test_cors_headers_survive_an_http_error(transport: Any) -> None:
    app = H3()
    app.use(cors(origin=[ORIGIN]))

    @app.get("/private")
    def private(event: H3Event) -> None:
        raise HTTPError(403, "nope")

    live = await transport(app)
    status, headers, _ = await live.fetch("GET", "/private", headers={"Origin": ORIGIN})
    assert status == 403
    assert headers["Access-Control-Allow-Origin"] == ORIGIN and headers["Vary"] == "Origin"


async def test_a_handler_content_length_is_never_sent_twice(transport: Any) -> None:
    app = H3()
    app.get("/lying", lambda e: Response("abc", headers={"content-length": "999"}))
    live = await transport(app)
    data = await raw_exchange(
        live.port, b"GET /lying HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    (head,) = _responses(data)
    lengths = [line for line in head.lower().split(b"\r\n") if line.startswith(b"content-length")]
    assert lengths == [b"content-length: 3"] and data.endswith(b"\r\n\r\nabc")


async def test_on_error_sees_the_real_request_on_a_413(transport: Any) -> None:
    seen: list[tuple[str, str, int]] = []
    app = H3(
        Config().replace("limits.max_body_size", 100),
        on_error=lambda e, err: seen.append((e.method, e.path, err.status)),
    )
    app.post("/upload", lambda e: "stored")
    live = await transport(app)
    status, _, _ = await live.fetch("POST", "/upload", data=b"x" * 101)
    assert status == 413
    assert seen == [("POST", "/upload", 413)]  # both transports (tests/test_body_limit_hooks.py)


async def test_a_client_gone_mid_body_never_runs_the_handler(transport: Any) -> None:
    ran: list[int] = []
    app = H3()

    @app.post("/upload")
    async def upload(event: H3Event) -> str:
        ran.append(len(await event.body()))
        return "stored"

    live = await transport(app)
    _, writer = await asyncio.open_connection("127.0.0.1", live.port)
    writer.write(b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10)
    await writer.drain()
    await asyncio.sleep(0.1)
    writer.close()
    await asyncio.sleep(0.2)
    assert ran == []
    assert (await live.fetch("POST", "/upload", data=b"y" * 5))[2] == b"stored"
    assert ran == [5]


async def test_a_disconnect_mid_body_never_runs_the_handler_in_process() -> None:
    ran: list[bytes] = []
    app = H3()
    app.post("/upload", lambda e: ran.append(e._body) or "stored")
    status, _, _ = await asgi_request(
        app, "POST", "/upload", body=[b"part"], disconnect_after_body=True
    )
    assert ran == [] and status == 0  # nothing sent: nobody is there to read it


# -- 6: a preflight that echoes requested headers varies on them -----------------


async def test_preflight_varies_on_the_headers_it_echoes(transport: Any) -> None:
    app = H3()
    app.use(cors(origin=[ORIGIN]))
    app.put("/items", lambda e: "put")
    live = await transport(app)
    status, headers, _ = await live.fetch(
        "OPTIONS",
        "/items",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "x-trace",
        },
    )
    assert status == 204 and headers["Access-Control-Allow-Headers"] == "x-trace"
    vary = {token.strip().lower() for token in headers["Vary"].split(",")}
    assert vary == {"origin", "access-control-request-headers"}


# -- 7: one list of methods; CONNECT is never advertised --------------------------


def test_connect_is_not_a_method_and_allow_never_lists_it(monkeypatch: Any) -> None:
    assert "CONNECT" not in METHODS and "CONNECT" not in ALLOW_ALL
    app = H3()
    with pytest.raises(ValueError, match="method must be one of"):
        app.on("CONNECT", "/tunnel", lambda e: "no")
    app.all("/x/**", lambda e: "x")
    monkeypatch.setattr(app.router, "allowed_methods", lambda path: {"*", "GET"})
    event = H3Event(app)
    with pytest.raises(HTTPError) as caught:
        app._no_route(event)
    assert caught.value.status == 405
    assert caught.value.headers["allow"] == ", ".join(sorted(METHODS))


async def test_unknown_methods_are_501_on_both_transports(transport: Any) -> None:
    app = H3()
    app.all("/any", lambda e: e.method)
    live = await transport(app)
    assert (await live.fetch("PROPFIND", "/any"))[0] == 501
    assert (await live.fetch("PATCH", "/any"))[2] == b"PATCH"


async def test_connect_never_reaches_a_route_under_asgi() -> None:
    app = H3()
    app.all("/**", lambda e: "routed")
    status, _, body = await asgi_request(app, "CONNECT", "/example.com:443")
    assert status == 501 and json.loads(body)["status"] == 501


# -- 12: a JSON body nested 100,000 deep is a 400 --------------------------------


async def test_deeply_nested_json_is_a_400(transport: Any) -> None:
    app = H3()

    @app.post("/echo")
    async def echo(event: H3Event) -> Any:
        return {"type": type(await event.json()).__name__}

    live = await transport(app)
    status, _, body = await live.fetch("POST", "/echo", data=b"[" * 100_000 + b"]" * 100_000)
    assert status == 400
    assert json.loads(body)["data"] == {"reason": "nested too deeply"}
    assert json.loads((await live.fetch("POST", "/echo", data=b"[[1]]"))[2]) == {"type": "list"}


# -- 14: an async callable object is async middleware under every execution ------


class Auth:
    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, event: H3Event) -> Any:
        self.calls += 1
        await asyncio.sleep(0)
        if event.headers.get("authorization") != "Bearer ok":
            return Response({"error": "unauthorized"}, 401)
        event.context["user"] = "ok"
        return None


@pytest.mark.parametrize("execution", ["legacy", "fast"])
async def test_async_callable_before_middleware(transport: Any, execution: str) -> None:
    auth = Auth()
    app = H3(Config().replace("middleware.execution", execution))
    app.use(auth)
    app.get("/me", lambda e: {"user": e.context["user"]})
    live = await transport(app)
    status, _, body = await live.fetch("GET", "/me", headers={"Authorization": "Bearer ok"})
    assert (status, json.loads(body)) == (200, {"user": "ok"})
    assert (await live.fetch("GET", "/me"))[0] == 401
    assert auth.calls == 2


# -- 16: a stream stops when its client goes -------------------------------------


async def test_a_stream_stops_when_the_client_goes(transport: Any) -> None:
    state = {"sent": 0, "closed": False}
    app = H3()

    @app.get("/feed")
    async def feed(event: H3Event) -> Any:
        async def frames() -> Any:
            try:
                while True:
                    state["sent"] += 1
                    yield b"data: tick\n\n"
                    await asyncio.sleep(0.01)
            finally:
                state["closed"] = True

        return Response(frames(), headers={"content-type": "text/event-stream"})

    live = await transport(app)
    reader, writer = await asyncio.open_connection("127.0.0.1", live.port)
    writer.write(b"GET /feed HTTP/1.1\r\nHost: t\r\n\r\n")
    await writer.drain()
    assert b"data: tick" in await asyncio.wait_for(reader.read(4096), 5)
    writer.close()
    for _ in range(200):
        if state["closed"]:
            break
        await asyncio.sleep(0.01)
    assert state["closed"], "the generator ran on after its client left"
    sent = state["sent"]
    await asyncio.sleep(0.1)
    assert state["sent"] == sent


# -- 18: whatever static files cannot serve is a 404 -----------------------------


async def test_static_answers_404_for_what_it_cannot_serve(transport: Any, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("A")
    app = H3()
    app.get("/static/**", serve_static(tmp_path))
    live = await transport(app)
    assert (await live.fetch("GET", "/static/a.txt"))[2] == b"A"
    for rel in ("x" * 300, "sub/" + "y" * 256 + "/z.txt", "%00", "a.txt/" + "q" * 4096):
        status, _, body = await live.fetch("GET", f"/static/{rel}")
        assert status == 404, (rel[:20], status, body[:200])


# -- 19: text() with an unknown charset is a 400 ---------------------------------


async def test_text_with_an_unknown_charset_is_a_400(transport: Any) -> None:
    app = H3()

    @app.post("/text")
    async def text(event: H3Event) -> str:
        return await event.text()

    live = await transport(app)
    for charset in ("x-no-such-charset", "rot13"):
        status, _, body = await live.fetch(
            "POST", "/text", data=b"hi", headers={"Content-Type": f"text/plain; charset={charset}"}
        )
        assert status == 400, charset
        assert json.loads(body)["message"] == "Invalid text body"
    headers = {"Content-Type": "text/plain; charset=latin-1"}
    assert (await live.fetch("POST", "/text", data=b"caf\xe9", headers=headers))[
        2
    ] == "café".encode()


# -- 0b, ASGI side: wait_until work is waited for at lifespan shutdown ------------


async def test_asgi_lifespan_shutdown_waits_for_wait_until_work() -> None:
    done: list[str] = []
    app = H3()

    @app.get("/audit")
    def audit(event: H3Event) -> str:
        path = event.path

        async def later() -> None:
            await asyncio.sleep(0.2)
            done.append(path)  # read before: the event may be recycled by now

        event.wait_until(later())
        return "accepted"

    server, port = await start_uvicorn(app.asgi)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /audit HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        assert (await reader.read()).endswith(b"accepted")
        writer.close()
        assert done == []  # answered before the work finished
    finally:
        await stop_uvicorn(server)
    assert done == ["/audit"]


# -- 15, both transports: non-Latin-1 headers ------------------------------------


async def test_non_latin1_headers_are_a_500_or_rfc8187(transport: Any) -> None:
    app = H3()

    @app.get("/name")
    async def name(event: H3Event) -> str:
        await asyncio.sleep(0)
        event.set_header("x-name", "日本")
        return "never"

    @app.get("/download")
    def download(event: H3Event) -> Response:
        return Response(b"x", headers={"content-disposition": 'attachment; filename="日本.txt"'})

    app.get("/ok", lambda e: "ok")
    live = await transport(app)
    status, headers, _ = await live.fetch("GET", "/name")
    assert status == 500 and "x-name" not in headers
    status, headers, _ = await live.fetch("GET", "/download")
    assert status == 200
    assert headers["Content-Disposition"] == (
        "attachment; filename=\"??.txt\"; filename*=UTF-8''%E6%97%A5%E6%9C%AC.txt"
    )
    assert (await live.fetch("GET", "/ok"))[2] == b"ok"


# -- 17, ASGI side: a dropped body (HEAD) is closed -------------------------------


async def test_a_head_request_closes_the_event_stream(transport: Any) -> None:
    from h3lab.utils import EventStream

    state = {"closed": 0}
    app = H3()

    @app.get("/events")
    async def events(event: H3Event) -> Response:
        stream = EventStream(event)
        stream.on_closed(lambda: state.__setitem__("closed", state["closed"] + 1))
        await stream.push_comment("open")
        return stream.response()

    live = await transport(app)
    status, headers, body = await live.fetch("HEAD", "/events")
    assert status == 200 and body == b"" and headers["Content-Type"] == "text/event-stream"
    for _ in range(100):
        if state["closed"]:
            break
        await asyncio.sleep(0.01)
    assert state["closed"] == 1
