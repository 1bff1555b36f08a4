"""Both transports behind one async client: ``client = await connect(app)``.

``builtin``: the app on h3lab's own server on 127.0.0.1 (ephemeral port),
spoken to by aiohttp over a real socket (its cookie jar accepts IP hosts).
``asgi``: the app through ``app.asgi`` driven in-process by
``h3lab.testing.TestClient``, called from a worker thread so the test's own
event loop stays free (an upstream server for the proxy tests runs there).
Both keep cookies between requests; ``clear_cookies()`` empties the jar (a
test sending its own ``Cookie`` header does that first, or the jar's cookie
would be sent too).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from h3lab import H3, Server
from h3lab.testing import TestClient

TRANSPORTS = ["builtin", "asgi"]


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]  # lower-case names, every value
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k == name.lower()), None)

    def header_all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k == name.lower()]

    @property
    def text(self) -> str:
        return self.body.decode()

    def json(self) -> Any:
        return json.loads(self.body)


class SocketClient:
    kind = "builtin"

    def __init__(self, server: Server) -> None:
        self.server = server
        self.url = server.url
        self.session = aiohttp.ClientSession(
            cookie_jar=aiohttp.CookieJar(unsafe=True),
            timeout=aiohttp.ClientTimeout(total=15),
            auto_decompress=False,
        )

    async def request(self, method: str, path: str, **kw: Any) -> Reply:
        async with self.session.request(method, self.url + path, **kw) as resp:
            body = await resp.read()
            headers = [
                (k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in resp.raw_headers
            ]
            return Reply(resp.status, headers, body)

    def cookie(self, name: str) -> str | None:
        morsel = next((m for m in self.session.cookie_jar if m.key == name), None)
        return None if morsel is None else morsel.value

    def clear_cookies(self) -> None:
        self.session.cookie_jar.clear()

    async def close(self) -> None:
        await self.session.close()
        await self.server.shutdown(grace=1.0)


class InProcessClient:
    kind = "asgi"

    def __init__(self, client: TestClient) -> None:
        self.client = client

    async def request(self, method: str, path: str, **kw: Any) -> Reply:
        if "data" in kw and isinstance(kw["data"], bytes | str):
            kw["content"] = kw.pop("data")
        if "allow_redirects" in kw:
            kw["follow_redirects"] = kw.pop("allow_redirects")
        kw.setdefault("follow_redirects", False)
        resp = await asyncio.to_thread(self.client.request, method, path, **kw)
        headers = [(k.decode().lower(), v.decode("latin-1")) for k, v in resp.headers.raw]
        return Reply(resp.status_code, headers, resp.content)

    def cookie(self, name: str) -> str | None:
        return self.client.cookies.get(name)

    def clear_cookies(self) -> None:
        self.client.cookies.clear()

    async def close(self) -> None:
        await asyncio.to_thread(self.client.__exit__, None, None, None)


@pytest.fixture(params=TRANSPORTS)
async def connect(request: pytest.FixtureRequest) -> AsyncIterator[Callable[[H3], Any]]:
    """``client = await connect(app)`` on the parametrized transport."""
    opened: list[Any] = []

    async def start(app: H3) -> SocketClient | InProcessClient:
        if request.param == "builtin":
            server = Server(app, "127.0.0.1", 0)
            await server.start()
            client: Any = SocketClient(server)
        else:
            test_client = TestClient(app, base_url="http://testserver")
            await asyncio.to_thread(test_client.__enter__)
            client = InProcessClient(test_client)
        opened.append(client)
        return client

    yield start
    for client in opened:
        await client.close()
