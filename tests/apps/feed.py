"""An endless stream, for the uvicorn subprocess test (``uvicorn tests.apps.feed:asgi``)."""

from __future__ import annotations

import asyncio
from typing import Any

from h3lab import H3, Response
from h3lab.event import H3Event

app = H3()


@app.get("/feed")
async def feed(event: H3Event) -> Response:
    async def frames() -> Any:
        while True:  # only the client leaving (or the server) ends it
            yield b"data: tick\n\n"
            await asyncio.sleep(0.01)

    return Response(frames(), headers={"content-type": "text/event-stream"})


asgi = app.asgi
