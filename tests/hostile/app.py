"""The app every hostile test serves (also ``h3lab serve tests.hostile.app:create_app``)."""

from __future__ import annotations

import asyncio
from typing import Any

from h3lab import H3, Config, WebSocket
from h3lab.errors import HTTPError
from h3lab.event import H3Event
from h3lab.response import Response


def make_app(config: Config) -> tuple[H3, dict[str, Any]]:
    """The app and a dict of counters its handlers update (``state``)."""
    app = H3(config)
    state: dict[str, Any] = {
        "smuggled": 0,
        "produced": 0,
        "cancelled": 0,
        "finished": 0,
        "gate": None,
    }
    app.get("/ok", lambda e: "ok")

    def smuggled(event: H3Event) -> str:
        state["smuggled"] += 1
        return "SMUGGLED"

    app.get("/smuggled", smuggled)

    @app.post("/echo")
    async def echo(event: H3Event) -> bytes:
        return await event.body()

    @app.get("/users/:id")
    def user(event: H3Event) -> dict[str, str]:
        return {"id": event.params["id"]}

    @app.get("/slow-echo/:id")
    async def slow_echo(event: H3Event) -> dict[str, str]:
        await asyncio.sleep(0.001)
        return {"id": event.params["id"], "q": event.query_string}

    @app.get("/number/:n")
    def number(event: H3Event) -> dict[str, int]:
        # A handler that parses its parameter: it must answer 400, never 500.
        raw = event.params["n"]
        if not raw.isdigit() or len(raw) > 18:
            raise HTTPError(400, "n must be a number of at most 18 digits")
        return {"n": int(raw)}

    @app.get("/slow")
    async def slow(event: H3Event) -> str:
        await asyncio.sleep(0.05)
        return "slow"

    @app.get("/gate")
    async def gate(event: H3Event) -> str:
        if state["gate"] is None:
            state["gate"] = asyncio.Event()
        await state["gate"].wait()
        return "gate"

    @app.get("/hang")
    async def hang(event: H3Event) -> str:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            state["cancelled"] += 1
            raise
        return "never"

    @app.get("/firehose")
    async def firehose(event: H3Event) -> Any:
        async def chunks() -> Any:
            try:
                while True:
                    state["produced"] += 1
                    yield b"x" * 65536
            finally:
                state["cancelled"] += 1

        return chunks()

    @app.get("/graceful")
    async def graceful(event: H3Event) -> str:
        await asyncio.sleep(0.3)
        state["finished"] += 1
        return "finished"

    big = b"b" * (256 * 1024)
    app.get("/big", lambda e: big)

    @app.get("/bad-header")
    def bad_header(event: H3Event) -> str:
        event.set_header("x-injected", "a\r\nSet-Cookie: pwned=1")
        return "never sent"

    @app.get("/bad-header-stream")
    def bad_header_stream(event: H3Event) -> Response:
        async def chunks() -> Any:
            yield b"never sent"

        return Response(chunks(), headers=[("x-injected", "a\nb")])

    state["ws_calls"] = 0
    state["ws_codes"] = []

    @app.ws("/ws")
    async def ws_echo(ws: WebSocket) -> None:
        state["ws_calls"] += 1
        await ws.accept()
        try:
            async for message in ws:
                await ws.send(message)
        finally:  # send() raises WebSocketDisconnect once the connection is closing
            state["ws_codes"].append(ws.close_code)

    return app, state


def create_app(config: Config | None = None) -> H3:
    """Factory for ``h3lab serve`` (the subprocess tests)."""
    return make_app(config or Config())[0]
