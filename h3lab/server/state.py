"""What every connection of one server shares: ``ServerState`` (uvicorn's ``ServerState``).

A connection reads its limits, the app, the cached clock and the response
bytes that change once a second (the Date line) from here, and counts what
it did into it; it never sees the listener, the workers or shutdown (that is
``Server``, which owns one ``ServerState``). So a connection can be built
with no ``Server`` at all: ``h3lab.bench.wire`` and the in-process tests do.

The clock is injectable. ``SystemClock`` is ``time.monotonic`` and the event
loop's timers; ``h3lab.testing.FakeClock`` is time a test advances, whose
timers fire as it does. Per-request code only reads ``now``, which the
server's ticker refreshes from the clock a few times a second.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any, Protocol

from h3lab.server import http11

if TYPE_CHECKING:
    from collections.abc import Callable

    from h3lab.app import H3


class Clock(Protocol):
    """Monotonic seconds and one-shot timers (what the ticker and the deadlines need)."""

    def time(self) -> float: ...

    def call_later(self, delay: float, callback: Callable[[], object]) -> Any:
        """Call ``callback`` ``delay`` seconds from now; the handle has ``cancel()``."""
        ...


class SystemClock:
    """``time.monotonic`` and ``loop.call_later``: the clock a running server uses."""

    __slots__ = ("loop",)

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def time(self) -> float:
        return time.monotonic()

    def call_later(self, delay: float, callback: Callable[[], object]) -> asyncio.TimerHandle:
        return self.loop.call_later(delay, callback)


class ServerState:
    """The part of a server its connections use (see the module docstring)."""

    __slots__ = (
        "accepted",
        "access_log",
        "app",
        "clock",
        "config",
        "connections",
        "date_bytes",
        "date_end",
        "limits",
        "loop",
        "now",
        "prefix_bytes",
        "prefix_json",
        "prefix_text",
        "protocol_errors",
        "refused",
        "requests",
        "server_bytes",
    )

    def __init__(
        self,
        app: H3,
        *,
        loop: asyncio.AbstractEventLoop | None = None,
        clock: Clock | None = None,
    ) -> None:
        config = app.config
        self.app = app
        self.config = config
        self.limits = config.limits
        self.access_log = config.server.access_log
        self.loop: asyncio.AbstractEventLoop = loop  # type: ignore[assignment]  # None only until the server starts
        # None until the server starts (then SystemClock of its loop) unless injected.
        self.clock: Clock | None = clock
        self.now = clock.time() if clock is not None else time.monotonic()
        # Every open connection (HTTP and WebSocket), for the deadline sweep and shutdown.
        self.connections: set[Any] = set()
        self.requests = 0
        self.accepted = 0
        self.refused = 0
        self.protocol_errors = 0
        self.server_bytes = http11.server_header(config.server.server_header)
        self.date_bytes = http11.date_header()
        self.date_end = self.date_bytes + b"\r\n"
        self.prefix_text = http11.fast_prefix(self.server_bytes, b"text/plain; charset=utf-8")
        self.prefix_json = http11.fast_prefix(self.server_bytes, b"application/json")
        self.prefix_bytes = http11.fast_prefix(self.server_bytes, b"application/octet-stream")

    def refresh_date(self) -> None:
        """A new second: the Date line every response carries."""
        self.date_bytes = http11.date_header()
        self.date_end = self.date_bytes + b"\r\n"


__all__ = ["Clock", "ServerState", "SystemClock"]
