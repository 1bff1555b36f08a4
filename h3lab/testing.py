"""``TestClient``: call an app in-process, through its ASGI interface, with no socket.

::

    from h3lab.testing import TestClient

    def test_items():
        with TestClient(app) as client:          # runs the lifespan startup/shutdown
            response = client.get("/api/items", params={"limit": 2})
            assert response.status_code == 200
            assert response.json() == [...]

Modelled on Starlette's ``TestClient``: it *is* an ``httpx.Client`` whose
transport hands each request to ``app.asgi`` instead of a socket, so every
httpx feature works as usual -- ``params=``, ``json=``, ``data=``,
``files=``, ``auth=``, redirects (followed by default), and a real cookie
jar (``http.cookiejar`` rules: ``Path``, ``Domain``, ``Expires``/``Max-Age``
and ``Secure`` are honoured, so a ``Secure`` cookie is only sent back with
``base_url="https://testserver"``). Responses are ``httpx.Response``:
``status_code``, ``headers``, ``text``, ``json()``, ``cookies``...

The app runs on an event loop in a helper thread, so the client is
synchronous and may also be used from async tests. Used as a context
manager, that loop lives for the whole block and the ASGI *lifespan*
protocol runs around it (``lifespan.startup`` on entry -- a failed startup
raises -- and ``lifespan.shutdown`` on exit), so startup and shutdown hooks
run exactly as under uvicorn. Without ``with``, each request gets a
short-lived loop and no lifespan events are sent.

Exceptions the app lets escape (h3lab's adapter turns handler errors into
500 responses itself, so these are adapter or ASGI-app bugs) are raised in
the test. A streamed response is read to its end before it is returned.

``websocket_connect`` is the extension point for WebSocket sessions; it
raises ``NotImplementedError`` until h3lab supports WebSockets (issue 12,
item 7).

Requires httpx (``pip install 'h3lab[testing]'``).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar
from urllib.parse import unquote

try:
    import httpx
except ModuleNotFoundError as exc:  # pragma: no cover - depends on the install
    raise ModuleNotFoundError(
        "h3lab.testing needs httpx: pip install 'h3lab[testing]'", name="httpx"
    ) from exc

__all__ = ["TestClient"]

T = TypeVar("T")
Message = dict[str, Any]
ASGIApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


class _LoopThread:
    """An event loop running in a daemon thread; ``call`` runs a coroutine there and waits."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="h3lab-testclient-loop", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def close(self) -> None:
        async def drain() -> None:
            # Finish what the app left running (streams, cancelled tasks),
            # then let async generators run their finally blocks.
            current = asyncio.current_task()
            pending = [t for t in asyncio.all_tasks() if t is not current]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            await self.loop.shutdown_asyncgens()

        try:
            self.call(drain())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join()
            self.loop.close()


class _Lifespan:
    """Drives the ASGI lifespan protocol (the server's side of it) on a loop."""

    def __init__(self, app: ASGIApp, state: dict[str, Any]) -> None:
        self.app = app
        self.state = state
        self._to_app: asyncio.Queue[Message] | None = None
        self._from_app: asyncio.Queue[Message] | None = None
        self._task: asyncio.Task[None] | None = None

    async def startup(self) -> None:
        self._to_app = asyncio.Queue()
        self._from_app = asyncio.Queue()
        scope = {
            "type": "lifespan",
            "asgi": {"version": "3.0", "spec_version": "2.0"},
            "state": self.state,
        }
        self._task = asyncio.get_running_loop().create_task(
            self.app(scope, self._to_app.get, self._from_app.put)
        )
        await self._to_app.put({"type": "lifespan.startup"})
        reply = await self._reply()
        if reply is None:
            return  # the app does not speak lifespan: allowed by the spec
        if reply["type"] == "lifespan.startup.failed":
            raise RuntimeError(f"lifespan startup failed: {reply.get('message', '')}")
        if reply["type"] != "lifespan.startup.complete":
            raise RuntimeError(f"unexpected lifespan message {reply['type']!r}")

    async def shutdown(self) -> None:
        if self._task is None or self._task.done():
            return
        assert self._to_app is not None
        await self._to_app.put({"type": "lifespan.shutdown"})
        reply = await self._reply()
        if reply is not None and reply["type"] == "lifespan.shutdown.failed":
            raise RuntimeError(f"lifespan shutdown failed: {reply.get('message', '')}")
        await self._task

    async def _reply(self) -> Message | None:
        """The app's next message, or None when it returned without one."""
        assert self._from_app is not None and self._task is not None
        getter = asyncio.ensure_future(self._from_app.get())
        done, _ = await asyncio.wait({getter, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if getter in done:
            return getter.result()
        getter.cancel()
        self._task.result()  # the app raised: surface it
        return None


class _ASGITransport(httpx.BaseTransport):
    def __init__(self, client: TestClient) -> None:
        self._client = client

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        client = self._client
        scope = _http_scope(request, client.client_address, client.app_state)
        body = request.read()
        loop_thread = client._loop_thread
        if loop_thread is not None:
            status, headers, content = loop_thread.call(_exchange(client.app, scope, body))
        else:
            loop_thread = _LoopThread()
            try:
                status, headers, content = loop_thread.call(_exchange(client.app, scope, body))
            finally:
                loop_thread.close()
        return httpx.Response(
            status, headers=headers, stream=httpx.ByteStream(content), request=request
        )


def _http_scope(
    request: httpx.Request, client_address: tuple[str, int], state: dict[str, Any]
) -> dict[str, Any]:
    url = request.url
    scheme = url.scheme
    port = url.port or _DEFAULT_PORTS.get(scheme, 80)
    headers = [(bytes(k).lower(), bytes(v)) for k, v in request.headers.raw]
    if not any(name == b"host" for name, _ in headers):
        host = url.host if url.port is None else f"{url.host}:{url.port}"
        headers.insert(0, (b"host", host.encode("ascii")))
    raw_path = url.raw_path.split(b"?", 1)[0]
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": request.method,
        "scheme": scheme,
        "path": unquote(raw_path.decode("ascii")),
        "raw_path": raw_path,
        "root_path": "",
        "query_string": url.query,
        "headers": headers,
        "client": list(client_address),
        "server": [url.host, port],
        "state": dict(state),
        "extensions": {},
    }


async def _exchange(
    app: ASGIApp, scope: dict[str, Any], body: bytes
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """One request through ``app``: the status, headers and whole body it sent."""
    request_sent = False
    response_done = asyncio.Event()
    start: Message | None = None
    chunks: list[bytes] = []

    async def receive() -> Message:
        nonlocal request_sent
        if not request_sent:
            request_sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await response_done.wait()  # what a server does: disconnect once it is over
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        nonlocal start
        kind = message["type"]
        if kind == "http.response.start":
            if start is not None:
                raise RuntimeError("the app sent http.response.start twice")
            start = message
        elif kind == "http.response.body":
            if start is None:
                raise RuntimeError("the app sent a body before http.response.start")
            if response_done.is_set():
                raise RuntimeError("the app sent a body after the response was complete")
            chunks.append(bytes(message.get("body", b"")))
            if not message.get("more_body", False):
                response_done.set()

    try:
        await app(scope, receive, send)
    finally:
        response_done.set()
    if start is None:
        raise RuntimeError("the app returned without sending a response")
    if scope["method"] == "HEAD":
        chunks = []
    return start["status"], list(start.get("headers", [])), b"".join(chunks)


class TestClient(httpx.Client):
    """``TestClient(app)``: an ``httpx.Client`` wired to ``app`` in-process (see module doc)."""

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        app: Any,
        base_url: str = "http://testserver",
        *,
        headers: dict[str, str] | None = None,
        cookies: Any = None,
        follow_redirects: bool = True,
        client: tuple[str, int] = ("testclient", 50000),
    ) -> None:
        asgi = getattr(app, "asgi", None)  # an H3 app: its ASGI adapter (built once)
        self.app: ASGIApp = asgi if asgi is not None else app
        if not callable(self.app):
            raise TypeError(f"TestClient needs an H3 app or an ASGI callable, got {app!r}")
        self.client_address = client
        self.app_state: dict[str, Any] = {}
        self._loop_thread: _LoopThread | None = None
        self._lifespan: _Lifespan | None = None
        headers = dict(headers or {})
        headers.setdefault("user-agent", "testclient")
        super().__init__(
            base_url=base_url,
            headers=headers,
            cookies=cookies,
            transport=_ASGITransport(self),
            follow_redirects=follow_redirects,
        )

    def websocket_connect(self, path: str, subprotocols: list[str] | None = None) -> Any:
        """Open a WebSocket session with the app (the hook for issue 12, item 7)."""
        raise NotImplementedError(
            "WebSockets are not supported by h3lab yet (issue 12, item 7); "
            "TestClient.websocket_connect will open sessions once they are"
        )

    def __enter__(self) -> TestClient:
        super().__enter__()
        self._loop_thread = _LoopThread()
        self._lifespan = _Lifespan(self.app, self.app_state)
        try:
            self._loop_thread.call(self._lifespan.startup())
        except BaseException:
            self._stop_loop()
            super().__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc_info: Any) -> None:
        try:
            if self._loop_thread is not None and self._lifespan is not None:
                self._loop_thread.call(self._lifespan.shutdown())
        finally:
            self._stop_loop()
            super().__exit__(*exc_info)

    def _stop_loop(self) -> None:
        loop_thread, self._loop_thread, self._lifespan = self._loop_thread, None, None
        if loop_thread is not None:
            loop_thread.close()
