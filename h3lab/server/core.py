"""The server: listener, connection registry, ticker, shutdown, workers.

One ticker callback runs a few times a second. It refreshes the cached clock
and the Date header, enforces every connection's deadlines (header, body,
keep-alive idle), trims the event pool and tells the memory strategy how many
requests were served. Per-request code only reads ``state.now``
(``h3lab.server.state``), refreshed from the clock the server was given
(``time.monotonic`` unless a test injects ``h3lab.testing.FakeClock``).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import multiprocessing
import os
import signal
import socket
import ssl as ssl_module
import stat
import sys
import time
from typing import TYPE_CHECKING, Any

from h3lab.server.protocol import HttpProtocol
from h3lab.server.state import Clock, ServerState, SystemClock
from h3lab.server.ws_protocol import WebSocketProtocol

if TYPE_CHECKING:
    from h3lab.app import H3

logger = logging.getLogger("h3lab.server")


class ServeError(RuntimeError):
    """The server cannot start (address in use, cannot bind, bad socket): one line."""


def check_port(port: int) -> int:
    # Checked here: some event loops silently take a port modulo 65536.
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(f"port must be in 0..65535 (0 picks a free port), got {port!r}")
    return port


def listen_error(where: str, exc: OSError) -> ServeError:
    reason = os.strerror(exc.errno).lower() if exc.errno else str(exc)
    if exc.errno == errno.EADDRINUSE:
        reason = "address already in use (another server is listening there)"
    elif isinstance(exc, socket.gaierror):
        reason = f"unknown host ({exc.strerror})"
    return ServeError(f"cannot listen on {where}: {reason}")


class Server:
    """Serves one app on one listening socket, in the running event loop.

    ``async with Server(app, port=0) as server: ...`` starts it on an
    ephemeral port (``server.port``) and shuts it down gracefully on exit.
    ``clock`` drives the ticker, and so every connection's deadlines: the
    event loop's by default, ``h3lab.testing.FakeClock`` in tests.
    """

    def __init__(
        self,
        app: H3,
        host: str = "127.0.0.1",
        port: int = 3000,
        *,
        sock: socket.socket | None = None,
        reuse_port: bool = False,
        uds: str | None = None,
        ssl: ssl_module.SSLContext | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.app = app
        self.config = app.config
        self.host = host
        self.port = check_port(port)
        self.sock = sock
        self.uds = uds
        self.ssl = ssl
        self.reuse_port = reuse_port
        app.server = self
        # What the connections share (limits, clock, counters, Date line...).
        self.state = ServerState(app, clock=clock)
        self.started_at = 0.0
        self._date_second = int(time.time())
        self._listener: asyncio.base_events.Server | None = None
        self._started = False  # startup hooks ran: shutdown hooks are due
        self._ticker: Any = None
        self._requests_at_last_tick = 0
        limits = self.config.limits
        shortest = min(
            limits.header_timeout,
            limits.body_timeout,
            limits.keepalive_timeout,
            limits.linger_timeout,
        )
        self.tick_interval = min(0.5, max(0.02, shortest / 4))

    # The shared state, read through the server as before (stats, tests,
    # shutdown); the connections and the ticker use ``state`` itself.

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self.state.loop

    @loop.setter
    def loop(self, loop: asyncio.AbstractEventLoop) -> None:
        self.state.loop = loop

    @property
    def connections(self) -> set[Any]:
        return self.state.connections

    @property
    def now(self) -> float:
        return self.state.now

    @property
    def clock(self) -> Clock | None:
        return self.state.clock

    @property
    def requests(self) -> int:
        return self.state.requests

    @property
    def accepted(self) -> int:
        return self.state.accepted

    @property
    def refused(self) -> int:
        return self.state.refused

    @property
    def protocol_errors(self) -> int:
        return self.state.protocol_errors

    @property
    def server_bytes(self) -> bytes:
        return self.state.server_bytes

    @property
    def date_bytes(self) -> bytes:
        return self.state.date_bytes

    # -- lifecycle -----------------------------------------------------------

    async def start(self) -> None:
        """Run the app's startup hooks, then listen. ``StartupFailed`` (one
        line) if a hook raises: nothing listens then."""
        from h3lab.lifespan import run_startup

        self.loop = asyncio.get_running_loop()
        self.app.memory.install()
        self.app.prepare()
        try:
            await run_startup(self.app)
        except BaseException:
            self.app.memory.close()
            raise
        self._started = True
        state = self.state
        if state.clock is None:
            state.clock = SystemClock(self.loop)
        state.now = state.clock.time()
        self.started_at = time.monotonic()
        kwargs: dict[str, Any] = {"backlog": self.config.server.backlog}
        if self.ssl is not None:
            kwargs["ssl"] = self.ssl
        try:
            if self.sock is not None:
                kwargs["sock"] = self.sock
                if self.sock.family == socket.AF_UNIX:
                    self._listener = await self.loop.create_unix_server(
                        lambda: HttpProtocol(state), **kwargs
                    )
                else:
                    self._listener = await self.loop.create_server(
                        lambda: HttpProtocol(state), **kwargs
                    )
            elif self.uds is not None:
                _remove_stale_socket(self.uds)
                self._listener = await self.loop.create_unix_server(
                    lambda: HttpProtocol(state), path=self.uds, **kwargs
                )
            else:
                kwargs.update(host=self.host, port=self.port, reuse_port=self.reuse_port or None)
                self._listener = await self.loop.create_server(
                    lambda: HttpProtocol(state), **kwargs
                )
        except OSError as exc:
            await self._run_shutdown_hooks()
            self.app.memory.close()
            raise listen_error(self._where(), exc) from None
        address = self._listener.sockets[0].getsockname()
        if isinstance(address, tuple):
            self.host, self.port = address[0], address[1]
        else:
            self.uds = address or self.uds
        self._ticker = state.clock.call_later(self.tick_interval, self._tick)

    async def __aenter__(self) -> Server:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.shutdown()

    def _where(self) -> str:
        if self.sock is not None:
            return f"file descriptor {self.sock.fileno()}"
        if self.uds is not None:
            return f"unix socket {self.uds}"
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """``http://127.0.0.1:3000``, ``https://...`` with TLS, ``unix:/path`` on a Unix socket."""
        if self.uds is not None:
            return f"unix:{self.uds}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.ssl is not None else 'http'}://{host}:{self.port}"

    def _tick(self) -> None:
        """Refresh the clock and the Date line, apply every deadline, trim, re-arm."""
        state = self.state
        clock = state.clock
        assert clock is not None  # set by start()
        now = state.now = clock.time()
        second = int(time.time())
        if second != self._date_second:
            self._date_second = second
            state.refresh_date()
        for conn in list(state.connections):
            try:
                conn.check_deadlines(now)
            except Exception:  # one connection's bug must not stop every deadline
                logger.exception("deadline check failed")
                conn.abort()
        served = self.requests - self._requests_at_last_tick
        self._requests_at_last_tick = self.requests
        self.app.tick(now, served)
        self._ticker = clock.call_later(self.tick_interval, self._tick)

    async def shutdown(self, grace: float | None = None) -> None:
        """Stop accepting, close idle connections, let in-flight requests finish.

        Order: the listener closes first (no new connection), idle keep-alive
        connections and half-received heads are closed at once, requests in
        flight (a body arriving, a handler running, a response being written)
        get ``grace`` seconds and then close after their response (a request
        that arrives meanwhile on such a connection is still answered, with
        ``connection: close``); open WebSockets are closed with 1001 and get
        the same grace for their closing handshake; whatever is left is
        closed, and aborted if it cannot even flush.
        """
        grace = self.config.limits.shutdown_grace if grace is None else grace
        if self._listener is not None:
            self._listener.close()
        for conn in list(self.connections):
            if isinstance(conn, WebSocketProtocol):
                conn.going_away()  # close 1001, then the closing handshake
            elif conn.in_flight():
                conn.keep_alive_next = False  # finish what is in flight, then close
            else:
                conn.close()
        deadline = time.monotonic() + grace
        while any(c.in_flight() for c in self.connections) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        # event.wait_until work (started by the requests just finished) shares the grace.
        await self.app.wait_background(deadline - time.monotonic())
        for conn in list(self.connections):
            conn.close()
        # close() waits for the write buffer to flush; a client that does not
        # read would keep its connection (and our exit) forever.
        flush_deadline = time.monotonic() + min(1.0, max(grace, 0.1))
        while self.connections and time.monotonic() < flush_deadline:
            await asyncio.sleep(0.01)
        for conn in list(self.connections):
            conn.abort()
        if self._listener is not None:
            # Not wait_closed(): on Python 3.12+ it waits for every connection,
            # which the grace period above has already bounded.
            self._listener = None
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None
        await asyncio.sleep(0)
        await self._run_shutdown_hooks()
        self.app.memory.close()

    async def _run_shutdown_hooks(self) -> None:
        if self._started:
            from h3lab.lifespan import run_shutdown

            self._started = False
            await run_shutdown(self.app)  # failures are logged there

    def stats(self) -> dict[str, Any]:
        return {
            "connections": len(self.connections),
            "accepted": self.accepted,
            "refused": self.refused,
            "requests": self.requests,
            "protocol_errors": self.protocol_errors,
            "uptime_s": time.monotonic() - self.started_at if self.started_at else 0.0,
            "pid": os.getpid(),
        }


# -- running -----------------------------------------------------------------


def _remove_stale_socket(path: str) -> None:
    # A socket file left by a server that died; anything else is not ours to delete.
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISSOCK(os.stat(path).st_mode):
            os.unlink(path)


def _loop_factory(loop: str) -> Any:
    if loop not in ("auto", "asyncio", "uvloop"):
        raise ValueError(f"loop must be one of auto, asyncio, uvloop, got {loop!r}")
    if loop == "asyncio":
        return asyncio.new_event_loop
    try:
        import uvloop
    except ImportError:
        if loop == "uvloop":
            raise ValueError("--loop uvloop: uvloop is not installed") from None
        return asyncio.new_event_loop
    return uvloop.new_event_loop


def loop_name(loop: str) -> str:
    factory = _loop_factory(loop)
    return "uvloop" if factory is not asyncio.new_event_loop else "asyncio"


def describe_config(config: Any) -> str:
    """``balanced+1 (cache.size=77)``: the preset and what differs from it."""
    changed = config.overrides()
    if not changed:
        return config.label
    return f"{config.label} ({', '.join(f'{k}={v}' for k, v in changed.items())})"


def _announce(url: str, config: Any, details: str) -> None:
    print(
        f"h3lab serving on {url} (config {describe_config(config)}; {details}). "
        "Press CTRL+C to quit",
        flush=True,
    )


async def _serve_until_signal(server: Server, announce: bool, ready: Any = None) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await server.start()
    if announce:
        _announce(
            server.url,
            server.config,
            f"loop {type(loop).__module__.split('.')[0]}, pid {os.getpid()}",
        )
    if ready is not None:
        ready.set()
    await stop.wait()
    if announce:
        busy = sum(1 for c in server.connections if c.in_flight())
        print(
            f"h3lab shutting down ({busy} request(s) in flight, "
            f"{len(server.connections)} connection(s))",
            flush=True,
        )
    await server.shutdown()
    if announce:
        print("h3lab stopped", flush=True)


def serve(
    app: H3,
    host: str = "127.0.0.1",
    port: int = 3000,
    *,
    loop: str = "auto",
    workers: int = 1,
    announce: bool = True,
    uds: str | None = None,
    sock: socket.socket | None = None,
    ssl: ssl_module.SSLContext | None = None,
) -> None:
    """Serve ``app`` until SIGINT/SIGTERM, then shut down gracefully (exit 0).

    Listens on ``host:port``, or on the Unix socket ``uds``, or on an already
    bound ``sock`` (``--fd``); ``ssl`` serves HTTPS. ``workers > 1`` forks that
    many processes: on TCP each binds the same port with SO_REUSEPORT and the
    kernel spreads connections across them; on a Unix socket or an inherited
    socket they share the one listening socket.
    Raises ``ServeError`` (one line) when it cannot listen.
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers!r}")
    check_port(port)
    factory = _loop_factory(loop)
    if workers == 1:
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(
                _serve_until_signal(Server(app, host, port, sock=sock, uds=uds, ssl=ssl), announce)
            )
        return
    _serve_workers(app, host, port, loop, workers, announce, uds=uds, sock=sock, ssl=ssl)


def _worker_main(
    app: H3, host: str, port: int, loop: str, ready: Any, options: Any, failures: Any
) -> None:
    server = Server(app, host, port, reuse_port=options["sock"] is None, **options)
    try:
        with asyncio.Runner(loop_factory=_loop_factory(loop)) as runner:
            runner.run(_serve_until_signal(server, False, ready))
    except ServeError as exc:
        # A startup hook or the listener failed: the parent reports it, once.
        failures.put(str(exc))
        sys.exit(1)


def _wait_ready(procs: list[Any], readies: list[Any], failures: Any, timeout: float) -> None:
    """Until every worker is serving; ``ServeError`` as soon as one cannot."""
    deadline = time.monotonic() + timeout
    while not all(ready.is_set() for ready in readies) and time.monotonic() < deadline:
        for proc, ready in zip(procs, readies, strict=True):
            if not ready.is_set() and not proc.is_alive():
                for other in procs:
                    if other.is_alive() and other.pid is not None:
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(other.pid, signal.SIGTERM)
                for other in procs:
                    other.join(10)
                message = failures.get() if not failures.empty() else None
                raise ServeError(message or f"a worker exited with code {proc.exitcode}")
        time.sleep(0.01)


def _serve_workers(
    app: H3,
    host: str,
    port: int,
    loop: str,
    workers: int,
    announce: bool,
    *,
    uds: str | None,
    sock: socket.socket | None,
    ssl: ssl_module.SSLContext | None,
) -> None:
    reserve = None
    if sock is None and uds is not None:
        # One listening socket, inherited by every worker.
        _remove_stale_socket(uds)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(uds)
        except OSError as exc:
            raise listen_error(f"unix socket {uds}", exc) from None
        sock.listen(app.config.server.backlog)
    if sock is not None:
        address = sock.getsockname()
        url = (
            f"unix:{address}"
            if sock.family == socket.AF_UNIX
            else f"{'https' if ssl else 'http'}://{address[0]}:{address[1]}"
        )
    else:
        # Reserve the port first (port 0 = pick one) so every worker binds the same one.
        try:
            family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
            reserve = socket.socket(family, socket.SOCK_STREAM)
            reserve.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            reserve.bind((host, port))
        except OSError as exc:
            if reserve is not None:
                reserve.close()
            raise listen_error(f"{host}:{port}", exc) from None
        port = reserve.getsockname()[1]
        shown = f"[{host}]" if ":" in host else host
        url = f"{'https' if ssl else 'http'}://{shown}:{port}"
    options = {"sock": sock, "ssl": ssl, "uds": None}
    ctx = multiprocessing.get_context("fork")
    procs = []
    readies = []
    failures = ctx.SimpleQueue()
    for _ in range(workers):
        ready = ctx.Event()
        proc = ctx.Process(
            target=_worker_main,
            args=(app, host, port, loop, ready, options, failures),
            daemon=True,
        )
        proc.start()
        procs.append(proc)
        readies.append(ready)
    try:
        _wait_ready(procs, readies, failures, 30)
    finally:
        if reserve is not None:
            reserve.close()
    if announce:
        _announce(url, app.config, f"loop {loop_name(loop)}, {workers} workers, pid {os.getpid()}")
    stopping = False

    def forward(signum: int, _frame: Any) -> None:
        nonlocal stopping
        if announce and not stopping:
            print("h3lab shutting down the workers", flush=True)
        stopping = True
        for proc in procs:
            if proc.is_alive() and proc.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGTERM)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    for proc in procs:
        proc.join()
    codes = [proc.exitcode for proc in procs]
    if not stopping or any(code not in (0, None) for code in codes):
        logger.error("workers exited with codes %s", codes)
        sys.exit(1)
    if announce:
        print("h3lab stopped", flush=True)
