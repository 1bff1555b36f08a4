"""A small app for subprocess tests (``h3lab serve tests.apps.basic:app``)."""

from __future__ import annotations

import asyncio
import os

from h3lab import H3
from h3lab.event import H3Event

app = H3()


@app.get("/pid")
def pid(event: H3Event) -> dict[str, int]:
    return {"pid": os.getpid()}


@app.get("/config")
def config(event: H3Event) -> dict[str, object]:
    return event.app.config.flat()


@app.get("/slow")
async def slow(event: H3Event) -> str:
    await asyncio.sleep(0.5)
    return "done"
