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

``client.websocket_connect(path, subprotocols=None, headers=None)`` opens a
WebSocket session with the app, in-process as well (Starlette's
``WebSocketTestSession``): ``send_text/send_bytes/send_json``,
``receive_text/receive_bytes/receive_json``, ``close(code)``, used as a
context manager. A close from the app raises ``WebSocketDisconnect`` (with
its code) in the receiving call; an upgrade the app refuses (a handler that
does not accept, or no route) raises ``WebSocketRejected`` with the HTTP
status the app answered.

For the built-in server itself, two stand-ins: ``MemoryTransport`` (an
``asyncio.Transport`` recording what the server writes and how it paused,
half-closed or closed the connection) drives ``HttpProtocol`` with no socket,
and ``FakeClock`` is time a test advances: a server given one
(``Server(app, clock=FakeClock())``, or ``ServerState``) applies its
deadlines only when the test moves the clock, so no deadline test sleeps.

Requires httpx (``pip install 'h3lab[testing]'``).
"""

from __future__ import annotations

import asyncio
import heapq
import json
import queue
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar
from urllib.parse import unquote

try:
    import httpx
except ModuleNotFoundError as exc:  # pragma: no cover - depends on the install
    raise ModuleNotFoundError(
        "h3lab.testing needs httpx: pip install 'h3lab[testing]'", name="httpx"
    ) from exc

from h3lab.websocket import WebSocketDisconnect

__all__ = [
    "FakeClock",
    "MemoryTransport",
    "TestClient",
    "WebSocketDisconnect",
    "WebSocketRejected",
    "WebSocketTestSession",
]

T = TypeVar("T")
Message = dict[str, Any]
# A coroutine function (run as a task), as every ASGI app here is.
ASGIApp = Callable[[dict[str, Any], Any, Any], Coroutine[Any, Any, None]]

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

    def websocket_connect(
        self,
        path: str,
        subprotocols: list[str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> WebSocketTestSession:
        """A WebSocket session with the app: ``with client.websocket_connect("/chat") as ws:``."""
        request = self.build_request("GET", path, headers=headers)
        scope = _http_scope(request, self.client_address, self.app_state)
        del scope["method"]
        scope["type"] = "websocket"
        scope["scheme"] = "wss" if request.url.scheme == "https" else "ws"
        scope["subprotocols"] = list(subprotocols or ())
        scope["extensions"] = {"websocket.http.response": {}}
        scope["headers"] += [
            (b"connection", b"upgrade"),
            (b"upgrade", b"websocket"),
            (b"sec-websocket-version", b"13"),
            (b"sec-websocket-key", b"dGhlIHNhbXBsZSBub25jZQ=="),
        ]
        if subprotocols:
            scope["headers"].append((b"sec-websocket-protocol", ", ".join(subprotocols).encode()))
        return WebSocketTestSession(self, scope)

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


class WebSocketRejected(Exception):
    """The app refused the upgrade with an HTTP response (``status_code``, ``body``)."""

    def __init__(self, status_code: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        super().__init__(f"WebSocket upgrade refused with {status_code}")
        self.status_code = status_code
        self.headers = headers
        self.body = body


_DONE: Message = {"type": "testclient.done"}


class WebSocketTestSession:
    """One WebSocket conversation with the app, run on the client's loop thread.

    Messages to the app go through an ``asyncio.Queue`` on that loop, messages
    from it through a thread-safe ``queue.Queue``, so the test stays synchronous.
    """

    __test__ = False

    def __init__(self, client: TestClient, scope: dict[str, Any]) -> None:
        self._client = client
        self.scope = scope
        self.accepted_subprotocol: str | None = None
        self.accepted_headers: list[tuple[bytes, bytes]] = []
        self._own_loop: _LoopThread | None = None
        self._loop_thread: _LoopThread | None = None
        self._to_app: asyncio.Queue[Message] | None = None
        self._from_app: queue.Queue[Message] = queue.Queue()
        self._app_done: Future[None] | None = None
        self._closed = False

    # -- lifecycle -----------------------------------------------------------

    def __enter__(self) -> WebSocketTestSession:
        loop_thread = self._client._loop_thread
        if loop_thread is None:
            loop_thread = self._own_loop = _LoopThread()
        self._loop_thread = loop_thread
        self._to_app = loop_thread.call(_new_queue())
        self._app_done = loop_thread.submit(self._run())
        self._put({"type": "websocket.connect"})
        try:
            message = self._next()
            if message["type"] == "websocket.http.response.start":
                body = b""
                while True:
                    part = self._next()
                    body += part.get("body", b"")
                    if not part.get("more_body", False):
                        break
                raise WebSocketRejected(message["status"], list(message.get("headers", [])), body)
            _raise_on_close(message)
            if message["type"] != "websocket.accept":
                raise RuntimeError(f"expected websocket.accept, got {message['type']!r}")
        except BaseException:
            self._closed = True
            self._finish()
            raise
        self.accepted_subprotocol = message.get("subprotocol")
        self.accepted_headers = list(message.get("headers", []))
        return self

    def __exit__(self, *exc_info: Any) -> None:
        try:
            self.close()
        finally:
            self._finish()

    def _finish(self) -> None:
        try:
            if self._app_done is not None:
                self._app_done.result(timeout=10)  # the app's own errors surface here
        finally:
            own, self._own_loop = self._own_loop, None
            if own is not None:
                own.close()

    async def _run(self) -> None:
        to_app = self._to_app
        assert to_app is not None

        async def send(message: Message) -> None:
            self._from_app.put(message)

        try:
            await self._client.app(self.scope, to_app.get, send)
        except BaseException as exc:
            self._from_app.put({"type": "testclient.error", "error": exc})
            raise
        finally:
            self._from_app.put(_DONE)

    def _put(self, message: Message) -> None:
        assert self._loop_thread is not None and self._to_app is not None
        self._loop_thread.loop.call_soon_threadsafe(self._to_app.put_nowait, message)

    def _next(self) -> Message:
        message = self._from_app.get()
        if message["type"] == "testclient.error":
            raise message["error"]
        if message is _DONE:
            self._from_app.put(_DONE)  # every later call sees it too
            raise WebSocketDisconnect(1006, "the app returned without closing")
        return message

    # -- the conversation ----------------------------------------------------

    def send_text(self, data: str) -> None:
        self._put({"type": "websocket.receive", "text": data})

    def send_bytes(self, data: bytes) -> None:
        self._put({"type": "websocket.receive", "bytes": data})

    def send_json(self, value: Any) -> None:
        self.send_text(json.dumps(value))

    def receive(self) -> Message:
        """The app's next ASGI message (``websocket.send`` or ``websocket.close``)."""
        return self._next()

    def receive_text(self) -> str:
        message = self._next()
        _raise_on_close(message)
        if message.get("text") is None:
            raise TypeError("expected a text message, got a binary one")
        return message["text"]

    def receive_bytes(self) -> bytes:
        message = self._next()
        _raise_on_close(message)
        if message.get("bytes") is None:
            raise TypeError("expected a binary message, got a text one")
        return message["bytes"]

    def receive_json(self) -> Any:
        return json.loads(self.receive_text())

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close from the client's side (the app's ``receive`` raises ``WebSocketDisconnect``)."""
        if not self._closed:
            self._closed = True
            self._put({"type": "websocket.disconnect", "code": code, "reason": reason})


async def _new_queue() -> asyncio.Queue[Message]:
    return asyncio.Queue()  # created on (and bound to) the loop that will use it


def _raise_on_close(message: Message) -> None:
    if message["type"] == "websocket.close":
        raise WebSocketDisconnect(message.get("code", 1000), message.get("reason") or "")


# -- the built-in server without a socket, and without waiting -----------------


class MemoryTransport(asyncio.Transport):
    """An ``asyncio.Transport`` in memory, for driving ``HttpProtocol`` directly.

    ::

        state = ServerState(app, loop=asyncio.get_running_loop(), clock=FakeClock())
        protocol = HttpProtocol(state)
        transport = MemoryTransport()
        protocol.connection_made(transport)
        protocol.data_received(b"GET / HTTP/1.1\\r\\nHost: t\\r\\n\\r\\n")
        assert transport.data.startswith(b"HTTP/1.1 200 OK")

    It records what the server writes (``writes``, joined: ``data``; set
    ``record = False`` to drop writes, as the benchmarks do while timing), and
    the transport calls a protocol makes: ``reading`` (False while paused),
    ``eof_written`` (``write_eof``), ``closed`` (``close`` or ``abort``),
    ``aborted``. ``buffered`` is what ``get_write_buffer_size`` reports: set it
    to play a client that stopped reading. Nothing is ever delivered to the
    protocol by the transport itself (no ``connection_lost``): the test calls
    the protocol, as the event loop would.
    """

    def __init__(
        self,
        peername: Any = ("127.0.0.1", 50000),
        sockname: Any = ("127.0.0.1", 3000),
    ) -> None:
        super().__init__({"peername": peername, "sockname": sockname})
        self.writes: list[bytes] = []
        self.record = True
        self.reading = True
        self.eof_written = False
        self.closed = False
        self.aborted = False
        self.buffered = 0
        self.write_buffer_limits: tuple[int | None, int | None] = (None, None)
        self.protocol: asyncio.BaseProtocol | None = None

    @property
    def data(self) -> bytes:
        """Everything written so far."""
        return b"".join(self.writes)

    def write(self, data: Any) -> None:
        if self.record:
            self.writes.append(bytes(data))

    def write_eof(self) -> None:
        self.eof_written = True

    def can_write_eof(self) -> bool:
        return True

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self.write_buffer_limits = (high, low)

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_reading(self) -> bool:
        return self.reading and not self.closed

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = self.aborted = True

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self.protocol  # type: ignore[return-value]  # asked only once a protocol is set


class FakeTimer:
    """A timer of ``FakeClock`` (``cancel()`` as an ``asyncio.TimerHandle``)."""

    __slots__ = ("args", "callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[..., object], args: tuple[Any, ...]) -> None:
        self.when = when
        self.callback = callback
        self.args = args
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock:
    """Monotonic time that only moves when a test advances it (a ``state.Clock``).

    ``Server(app, port=0, clock=FakeClock())`` runs its ticker -- and so the
    deadline of every connection (``h3lab.server.deadlines``) -- on this
    clock: nothing expires until ``advance(seconds)``, which moves time
    forward and fires every timer that falls due on the way, in order, each
    at its own time (the ticker, re-arming itself, fires once per interval).
    A deadline test then takes no wall-clock time and cannot be flaky.
    """

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self._timers: list[tuple[float, int, FakeTimer]] = []
        self._order = 0

    def time(self) -> float:
        return self.now

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> FakeTimer:
        timer = FakeTimer(self.now + max(0.0, delay), callback, args)
        self._order += 1  # equal times fire in the order they were set
        heapq.heappush(self._timers, (timer.when, self._order, timer))
        return timer

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``, firing the timers due on the way."""
        if seconds < 0:
            raise ValueError(f"a monotonic clock cannot go back (advance({seconds!r}))")
        end = self.now + seconds
        while self._timers and self._timers[0][0] <= end:
            when, _, timer = heapq.heappop(self._timers)
            self.now = when
            if not timer.cancelled:
                timer.callback(*timer.args)
        self.now = end

    @property
    def pending(self) -> int:
        """Timers set and neither fired nor cancelled."""
        return sum(not timer.cancelled for _, _, timer in self._timers)
