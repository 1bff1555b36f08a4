"""WebSockets (issue 12 item 7) on both transports, with a real client over 127.0.0.1.

``builtin``: the app on h3lab's own server (wsproto frames on the raw
connection); ``uvicorn``: the app through ``app.asgi`` under a real uvicorn
(ASGI ``websocket.*`` messages). The client is aiohttp's ``ws_connect``
on both; raw-socket cases live in ``tests/hostile/test_websocket.py``.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import uvicorn

from h3lab import H3, Config, HTTPError, Server, WebSocket, WebSocketDisconnect
from h3lab.event import H3Event
from h3lab.testing import TestClient, WebSocketRejected
from tests.conftest import free_port

LIMIT = 4096  # limits.max_websocket_message_size for these tests
BURST = 64 * 1024  # bytes per message of the backpressure test
BURSTS = 200


def guard(event: H3Event) -> None:
    """An on_request hook: it runs for upgrades too, and can refuse them."""
    event.context["hooked"] = True
    if event.path == "/guarded" and event.headers.get("x-token") != "t":
        raise HTTPError(401, "token please", headers={"www-authenticate": "Token"})


def build(state: dict[str, Any], config: Config | None = None) -> H3:
    app = H3(
        config or Config().replace("limits.max_websocket_message_size", LIMIT), on_request=guard
    )

    @app.ws("/guarded")
    async def guarded(ws: WebSocket) -> None:
        await ws.accept()
        await ws.send_json({"hooked": ws.event.context.get("hooked")})
        await ws.receive()

    @app.ws("/echo")
    async def echo(ws: WebSocket) -> None:
        await ws.accept()
        async for message in ws:
            await ws.send(message)
        state["echo_closed"] = (ws.close_code, ws.close_reason)
        state["echo_done"].set()

    @app.ws("/proto")
    async def proto(ws: WebSocket) -> None:
        chosen = "chat.v2" if "chat.v2" in ws.subprotocols else None
        await ws.accept(subprotocol=chosen)
        await ws.send_json({"offered": ws.subprotocols, "chosen": chosen})
        await ws.receive()

    @app.ws("/rooms/:room/users/:user")
    async def rooms(ws: WebSocket) -> None:
        await ws.accept()
        await ws.send_json(
            {"params": ws.params, "q": ws.query.get("q"), "ua": ws.headers.get("x-who")}
        )
        await ws.receive()

    @app.ws("/bye")
    async def bye(ws: WebSocket) -> None:
        await ws.accept()
        await ws.send("closing")
        await ws.close(4001, "see you")

    @app.ws("/boom")
    async def boom(ws: WebSocket) -> None:
        await ws.accept()
        await ws.send("about to fail")
        raise RuntimeError("handler bug")

    @app.ws("/refuse")
    async def refuse(ws: WebSocket) -> None:
        state["refused"] += 1  # returns without accepting

    @app.ws("/big")
    async def big(ws: WebSocket) -> None:
        await ws.accept()
        try:
            while True:
                await ws.receive()
        except WebSocketDisconnect as exc:
            state["big_code"] = exc.code
            state["big_done"].set()
            raise

    @app.ws("/firehose")
    async def firehose(ws: WebSocket) -> None:
        await ws.accept()
        payload = b"x" * BURST
        conn = ws.event.conn  # the built-in server's protocol (None under ASGI)
        for _ in range(BURSTS):
            await ws.send(payload)
            state["sent"] += 1
            if conn is not None:
                state["max_buffer"] = max(
                    state["max_buffer"], conn.transport.get_write_buffer_size()
                )

    @app.ws("/hold")
    async def hold(ws: WebSocket) -> None:
        await ws.accept()
        state["held"].set()
        try:
            await ws.receive()
        except WebSocketDisconnect as exc:
            state["hold_code"] = exc.code
            raise

    @app.get("/both")
    def both_http(event: H3Event) -> str:
        return "plain http"

    @app.ws("/both")
    async def both_ws(ws: WebSocket) -> None:
        await ws.accept()
        await ws.send("websocket")

    return app


def new_state() -> dict[str, Any]:
    return {
        "echo_done": asyncio.Event(),
        "echo_closed": None,
        "refused": 0,
        "big_code": None,
        "big_done": asyncio.Event(),
        "sent": 0,
        "max_buffer": 0,
        "held": asyncio.Event(),
        "hold_code": None,
    }


class Live:
    def __init__(self, kind: str, url: str, state: dict[str, Any], server: Any) -> None:
        self.kind = kind
        self.url = url
        self.state = state
        self.server = server
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))

    def ws(self, path: str, **kw: Any) -> Any:
        return self.session.ws_connect(self.url + path, **kw)


async def start_uvicorn(app: H3) -> tuple[str, Any, asyncio.Task[None]]:
    port = free_port()
    config = uvicorn.Config(
        app.asgi,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
        loop="asyncio",
        ws="wsproto",
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(300):
        if server.started:
            break
        await asyncio.sleep(0.01)
    return f"http://127.0.0.1:{port}", server, task


@pytest.fixture(params=["builtin", "uvicorn"])
async def live(request: pytest.FixtureRequest) -> AsyncIterator[Live]:
    state = new_state()
    config = Config().replace(
        **{"limits.max_websocket_message_size": LIMIT, "limits.write_buffer_high": 65536}
    )
    app = build(state, config)
    if request.param == "builtin":
        server = Server(app, "127.0.0.1", 0)
        await server.start()
        client = Live("builtin", server.url, state, server)
        yield client
        await client.session.close()
        await server.shutdown(grace=1.0)
    else:
        url, server, task = await start_uvicorn(app)
        client = Live("uvicorn", url, state, server)
        yield client
        await client.session.close()
        server.should_exit = True
        await asyncio.wait_for(task, 5)


async def test_echo_text_and_bytes(live: Live) -> None:
    async with live.ws("/echo") as ws:
        await ws.send_str("héllo")
        assert await ws.receive_str() == "héllo"
        await ws.send_bytes(b"\x00\xff")
        assert await ws.receive_bytes() == b"\x00\xff"
        await ws.send_str("x" * LIMIT)  # exactly the limit is allowed
        assert await ws.receive_str() == "x" * LIMIT


async def test_client_close_ends_async_for_with_its_code(live: Live) -> None:
    async with live.ws("/echo") as ws:
        await ws.send_str("one")
        assert await ws.receive_str() == "one"
        await ws.close(code=4002, message=b"client done")
        assert ws.close_code == 4002  # the server answered our Close
    await asyncio.wait_for(live.state["echo_done"].wait(), 5)
    assert live.state["echo_closed"] == (4002, "client done")


async def test_subprotocol_negotiation(live: Live) -> None:
    async with live.ws("/proto", protocols=["chat.v1", "chat.v2"]) as ws:
        assert ws.protocol == "chat.v2"
        assert await ws.receive_json() == {"offered": ["chat.v1", "chat.v2"], "chosen": "chat.v2"}
    async with live.ws("/proto") as ws:
        assert ws.protocol is None
        assert (await ws.receive_json())["chosen"] is None


async def test_route_params_query_and_headers(live: Live) -> None:
    async with live.ws("/rooms/r%201/users/7?q=hi", headers={"x-who": "me"}) as ws:
        got = await ws.receive_json()
    assert got == {"params": {"room": "r 1", "user": "7"}, "q": "hi", "ua": "me"}


async def test_server_initiated_close_with_code_and_reason(live: Live) -> None:
    async with live.ws("/bye") as ws:
        assert await ws.receive_str() == "closing"
        message = await ws.receive()
        assert message.type == aiohttp.WSMsgType.CLOSE
        assert (message.data, message.extra) == (4001, "see you")


async def test_ping_is_answered_with_pong(live: Live) -> None:
    async with live.ws("/echo", autoping=False) as ws:
        await ws.ping(b"are you there")
        message = await ws.receive()
        assert message.type == aiohttp.WSMsgType.PONG
        assert message.data == b"are you there"
        await ws.send_str("still echoing")
        assert await ws.receive_str() == "still echoing"


async def test_oversized_message_is_closed_with_1009(live: Live) -> None:
    async with live.ws("/big") as ws:
        await ws.send_bytes(b"y" * (LIMIT + 1))
        message = await ws.receive()
        assert message.type == aiohttp.WSMsgType.CLOSE and message.data == 1009
    await asyncio.wait_for(live.state["big_done"].wait(), 5)
    assert live.state["big_code"] == 1009


async def test_the_limit_counts_utf8_bytes_not_characters(live: Live) -> None:
    async with live.ws("/echo") as ws:
        await ws.send_str("é" * (LIMIT // 2))  # exactly LIMIT bytes
        assert await ws.receive_str() == "é" * (LIMIT // 2)
    async with live.ws("/big") as ws:
        await ws.send_str("é" * (LIMIT // 2 + 1))  # LIMIT // 2 + 1 characters, LIMIT + 2 bytes
        message = await ws.receive()
        assert message.type == aiohttp.WSMsgType.CLOSE and message.data == 1009


async def test_handler_error_after_accept_closes_with_1011(live: Live) -> None:
    async with live.ws("/boom") as ws:
        assert await ws.receive_str() == "about to fail"
        message = await ws.receive()
        assert message.type == aiohttp.WSMsgType.CLOSE and message.data == 1011


async def test_handler_that_does_not_accept_refuses_with_403(live: Live) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
        await live.ws("/refuse")
    assert caught.value.status == 403
    assert live.state["refused"] == 1


async def test_plain_get_on_a_websocket_route_is_426(live: Live) -> None:
    async with live.session.get(live.url + "/echo") as resp:
        assert resp.status == 426
        assert resp.headers["upgrade"] == "websocket"
        assert resp.headers["sec-websocket-version"] == "13"
    # A path with both: plain GET goes to the HTTP route, the upgrade to the WebSocket one.
    async with live.session.get(live.url + "/both") as resp:
        assert resp.status == 200 and await resp.text() == "plain http"
    async with live.ws("/both") as ws:
        assert await ws.receive_str() == "websocket"


async def test_on_request_hook_runs_for_upgrades_and_may_refuse_them(live: Live) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
        await live.ws("/guarded")
    assert caught.value.status == 401
    async with live.ws("/guarded", headers={"x-token": "t"}) as ws:
        assert await ws.receive_json() == {"hooked": True}


async def test_root_path_applies_to_websocket_routes() -> None:
    from h3lab.server import proxy

    app = build(new_state())
    proxy.install(app, proxy.proxy_hook(root_path="/api"))  # what h3lab serve --root-path does
    server = Server(app, "127.0.0.1", 0)
    await server.start()
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(server.url + "/api/echo") as ws,
        ):
            await ws.send_str("under /api")
            assert await ws.receive_str() == "under /api"
    finally:
        await server.shutdown(grace=1.0)


async def test_a_slow_reader_makes_send_wait(live: Live) -> None:
    """The client reads nothing: the handler's sends stop, the server's buffer stays bounded."""
    url = live.url.removeprefix("http://")
    host, port = url.split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
    reader, writer = await asyncio.open_connection(sock=sock)
    try:
        writer.write(
            b"GET /firehose HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101")
        await asyncio.sleep(0.5)  # the handler sends as fast as it may; we read nothing
        sent = live.state["sent"]
        await asyncio.sleep(0.3)
        assert live.state["sent"] == sent, "send() did not wait for the slow reader"
        assert sent < BURSTS
        if live.kind == "builtin":
            # At most the high-water mark plus the message that crossed it.
            assert live.state["max_buffer"] <= 65536 + BURST + 16
        # Reading lets the handler go on.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        while live.state["sent"] == sent and loop.time() < deadline:
            await asyncio.wait_for(reader.read(1 << 20), 5)
        assert live.state["sent"] > sent
    finally:
        writer.close()


async def test_graceful_shutdown_closes_with_1001(live: Live) -> None:
    if live.kind != "builtin":
        pytest.skip("uvicorn closes WebSockets itself at shutdown (1012)")
    async with live.ws("/hold") as ws:
        await asyncio.wait_for(live.state["held"].wait(), 5)
        shutdown = asyncio.create_task(live.server.shutdown(grace=2.0))
        message = await ws.receive()
        assert message.type == aiohttp.WSMsgType.CLOSE and message.data == 1001
        await asyncio.wait_for(shutdown, 5)
    assert live.state["hold_code"] == 1001
    assert not live.server.connections


async def test_clone_keeps_websocket_routes() -> None:
    app = build(new_state())
    twin = app.clone(Config.preset("performance"))
    assert [r.pattern for r in twin.ws_routes()] == [r.pattern for r in app.ws_routes()]
    server = Server(twin, "127.0.0.1", 0)
    await server.start()
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(server.url + "/echo") as ws,
        ):
            await ws.send_str("cloned")
            assert await ws.receive_str() == "cloned"
    finally:
        await server.shutdown(grace=1.0)


def test_registration_errors() -> None:
    app = H3()
    with pytest.raises(ValueError, match="must start with '/'"):
        app.ws("chat", lambda ws: None)
    with pytest.raises(TypeError, match="async function"):
        app.ws("/chat", lambda ws: None)


def test_bad_limit_is_a_value_error_naming_the_field() -> None:
    with pytest.raises(ValueError, match=r"limits\.max_websocket_message_size"):
        Config().replace("limits.max_websocket_message_size", 0)


# -- the in-process TestClient -----------------------------------------------


def test_testclient_websocket_session() -> None:
    state = new_state()
    client = TestClient(build(state))
    with client.websocket_connect("/echo") as ws:
        ws.send_text("hi")
        assert ws.receive_text() == "hi"
        ws.send_bytes(b"\x01")
        assert ws.receive_bytes() == b"\x01"
        ws.send_json({"a": [1]})
        assert ws.receive_json() == {"a": [1]}
    with client.websocket_connect("/proto", subprotocols=["chat.v2"]) as ws:
        assert ws.accepted_subprotocol == "chat.v2"
        assert ws.receive_json()["offered"] == ["chat.v2"]
    with client.websocket_connect("/rooms/a/users/b?q=1", headers={"x-who": "tc"}) as ws:
        assert ws.receive_json() == {"params": {"room": "a", "user": "b"}, "q": "1", "ua": "tc"}


def test_testclient_close_codes_and_refusals() -> None:
    state = new_state()
    with TestClient(build(state)) as client:  # on the client's own loop, with lifespan
        with client.websocket_connect("/bye") as ws:
            assert ws.receive_text() == "closing"
            with pytest.raises(WebSocketDisconnect) as closed:
                ws.receive_text()
            assert (closed.value.code, closed.value.reason) == (4001, "see you")
        with client.websocket_connect("/boom") as ws:
            assert ws.receive_text() == "about to fail"
            with pytest.raises(WebSocketDisconnect) as closed:
                ws.receive_text()
            assert closed.value.code == 1011
        with client.websocket_connect("/big") as ws:
            ws.send_bytes(b"z" * (LIMIT + 1))
            with pytest.raises(WebSocketDisconnect) as closed:
                ws.receive_bytes()
            assert closed.value.code == 1009
        with pytest.raises(WebSocketRejected) as refused:
            client.websocket_connect("/refuse").__enter__()
        assert refused.value.status_code == 403
        with pytest.raises(WebSocketRejected) as refused:
            client.websocket_connect("/nowhere").__enter__()
        assert refused.value.status_code == 404
        assert client.get("/echo").status_code == 426


def test_demo_app_websocket_echo() -> None:
    from h3lab.examples.demo import build as build_demo

    with TestClient(build_demo()).websocket_connect("/ws/echo") as ws:
        ws.send_text("ping")
        assert ws.receive_text() == "ping"
        ws.send_bytes(b"\x00")
        assert ws.receive_bytes() == b"\x00"


def test_readme_websocket_example() -> None:
    app = H3()

    @app.ws("/chat/:room")
    async def chat(ws: WebSocket) -> None:
        await ws.accept(subprotocol="chat.v1" if "chat.v1" in ws.subprotocols else None)
        async for message in ws:
            await ws.send(f"{ws.params['room']}: {message}")

    with TestClient(app).websocket_connect("/chat/lobby", subprotocols=["chat.v1"]) as ws:
        assert ws.accepted_subprotocol == "chat.v1"
        ws.send_text("hi")
        assert ws.receive_text() == "lobby: hi"


async def test_h3lab_serve_uvloop_clone_and_sigint_close_with_1001() -> None:
    """The real CLI: ``h3lab serve`` rebuilds the demo app (``H3.clone``) and runs
    it on uvloop; SIGINT closes an open WebSocket with 1001 and exits 0."""
    import signal

    from tests.test_serve_cli import Served

    served = Served("h3lab.examples.demo:app", "--port", "0", "--preset", "performance")
    try:
        await asyncio.to_thread(served.ready)
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(served.url + "/ws/echo") as ws,
        ):
            await ws.send_str("over uvloop")
            assert await ws.receive_str() == "over uvloop"
            stopping = asyncio.create_task(asyncio.to_thread(served.stop, signal.SIGINT))
            message = await ws.receive(timeout=10)
            assert message.type == aiohttp.WSMsgType.CLOSE and message.data == 1001
        code, _, _, err = await stopping
        assert code == 0, err
        assert "uvloop" in " ".join(served.lines)
    finally:
        served.kill()
