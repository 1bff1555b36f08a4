"""How a connection ends: refusal, lingering close, and the deadline of each state.

Connection states and their deadlines
-------------------------------------
``DEADLINES`` maps each connection state to the limit that bounds it, what
stops its clock, and what happens when it runs out:

=========  =====================  ==========================  =====================
state      limit                  the clock does not run      when it runs out
=========  =====================  ==========================  =====================
IDLE       keepalive_timeout      a response still buffered   close
HEADERS    header_timeout         we paused reading           408, then linger
BODY       body_timeout           we paused reading           408, then linger
ACTIVE     keepalive_timeout      a handler runs, requests    close (an answer was
                                  wait, or writing paused     lost: never hanging)
LINGER     linger_timeout         a response still buffered   close
CLOSING    linger_timeout         a response still buffered   abort (close() is stuck)
=========  =====================  ==========================  =====================

The header and body deadlines are absolute (from the request's first byte,
from the end of its head): a slowloris or a slow POST is cut even while bytes
trickle in. Independently of the state, a response that stays buffered with
no progress for ``send_timeout`` (a client that stopped reading) aborts the
connection.

There is no timer per connection or request (a ``call_later`` per request is
one of the dearest things a server can do per request): the server's ticker
calls ``check_deadlines(now)`` on every connection a few times a second,
``now`` read from its clock (``h3lab.server.state``), which a test can fake.

Ending gracefully
-----------------
A refusal answers once, then closes gracefully (``_close_when_done``): FIN
after the answer, then read and discard for ``linger_timeout``, so the client
reads the 4xx instead of a reset.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, NamedTuple

from h3lab.server import http11
from h3lab.server.flow import DISCARD

if TYPE_CHECKING:
    from collections.abc import Callable

    from h3lab.server.conn import Connection

logger = logging.getLogger("h3lab.server")

# Connection states (HttpProtocol.state).
IDLE = 0  # keep-alive, waiting for the next request
HEADERS = 1  # receiving a request line and headers
BODY = 2  # receiving a body
ACTIVE = 3  # requests are being handled or their responses written
LINGER = 4  # final answer sent (FIN), discarding input until the client closes
CLOSING = 5  # close() called, waiting for the transport to flush and go

# What a state's hold rule says about its clock this tick.
_RUNS = 0  # the deadline applies
_RESTART = 1  # not the client's time: the state's clock starts again now
_WAITS = 2  # neither: checked again next tick


class Deadline(NamedTuple):
    limit: str  # the ``Limits`` field bounding the state
    hold: Callable[[Connection, float], int]  # _RUNS, _RESTART or _WAITS
    expire: Callable[[Connection], None]


def _sending(conn: Connection, now: float) -> int:
    return _RESTART if conn._still_sending(now) else _RUNS


def _sending_waits(conn: Connection, now: float) -> int:
    return _WAITS if conn._still_sending(now) else _RUNS


def _receiving(conn: Connection, now: float) -> int:
    flow = conn.flow
    if flow is not None and flow.reading_paused:
        # We are the ones not reading (pipeline cap, or the client is not
        # reading our responses): not the client's time.
        conn._still_sending(now)
        return _RESTART
    return _RUNS


def _answering(conn: Connection, now: float) -> int:
    flow = conn.flow
    if flow is not None and flow.write_paused:
        conn._still_sending(now)
        return _WAITS
    if conn.running is not None or conn.queue:
        return _RESTART  # a handler runs (as long as it likes) or requests wait
    return _sending_waits(conn, now)


def _close(conn: Connection) -> None:
    conn.close()


def _header_timeout(conn: Connection) -> None:
    conn._protocol_error(408, "Request header timeout")


def _body_timeout(conn: Connection) -> None:
    conn._protocol_error(408, "Request body timeout")


def _stuck(conn: Connection) -> None:
    # Nothing runs, nothing is sent, yet the connection never went idle: a
    # request whose answer was lost. Never left hanging.
    logger.warning("closing a connection stuck after a request (%s)", conn.peer)
    conn.close()


def _abort(conn: Connection) -> None:
    conn.abort()  # close() did not finish: the transport is stuck


DEADLINES: dict[int, Deadline] = {
    IDLE: Deadline("keepalive_timeout", _sending, _close),
    HEADERS: Deadline("header_timeout", _receiving, _header_timeout),
    BODY: Deadline("body_timeout", _receiving, _body_timeout),
    ACTIVE: Deadline("keepalive_timeout", _answering, _stuck),
    LINGER: Deadline("linger_timeout", _sending_waits, _close),
    CLOSING: Deadline("linger_timeout", _sending_waits, _abort),
}


class Ending:
    """The ``HttpProtocol`` methods that end a connection and apply its deadlines."""

    __slots__ = ()
    _pending_error: bytes | None  # for the type checker (the slots are HttpProtocol's)

    def check_deadlines(self: Connection, now: float) -> None:
        """Apply the deadline of the connection's state (``DEADLINES``) at ``now``."""
        deadline = DEADLINES[self.state]
        held = deadline.hold(self, now)
        if held == _RESTART:
            self.since = now
        elif held == _RUNS and now - self.since > getattr(self.limits, deadline.limit):
            deadline.expire(self)

    def _still_sending(self: Connection, now: float) -> bool:
        """Is a response still buffered? Abort when it made no progress for send_timeout."""
        try:
            size = self.transport.get_write_buffer_size()  # type: ignore[union-attr]  # None once gone: AttributeError below
        except (AttributeError, NotImplementedError):  # gone, or a minimal transport
            size = 0
        if size == 0:
            self._send_mark = -1
            return False
        if size != self._send_mark:
            self._send_mark = size
            self._send_since = now
        elif now - self._send_since > self.limits.send_timeout:
            self.abort()  # the client stopped reading; its handler is cancelled
        return True

    def close(self: Connection) -> None:
        if not self.closing:
            self.closing = True
            self.parser = DISCARD
            self.state = CLOSING
            self.since = self.server.now
            if self.transport is not None:
                self.transport.close()

    def abort(self: Connection) -> None:
        """Drop the connection now, unsent data included (RST)."""
        self.closing = True
        self.parser = DISCARD
        if self.transport is not None:
            try:
                self.transport.abort()
            except NotImplementedError:  # a minimal transport
                self.transport.close()

    def _close_when_done(self: Connection) -> None:
        """The connection's last response is written: send a pending refusal, then linger."""
        self._drop_queue()
        self.keep_alive_next = False
        self.parser = DISCARD
        transport = self.transport
        if transport is None or self.closing or self.state == LINGER:
            return
        if self._pending_error is not None:
            transport.write(self._pending_error)
            self._pending_error = None
        if self._eof_seen or transport.is_closing() or not transport.can_write_eof():
            self.close()
            return
        # FIN after the answer, then keep reading (and dropping) until the
        # client closes or linger_timeout: closing a socket with unread input
        # makes the kernel send RST, which can destroy the answer in flight.
        transport.write_eof()
        self.state = LINGER
        self.since = self.server.now
        if self.flow is not None:
            self.flow.resume_all()

    def _protocol_error(
        self: Connection, status: int, reason: str, answer: bytes | None = None
    ) -> None:
        """Refuse the request being received: answer, then close gracefully.

        Nothing after the error is interpreted (the parser becomes a sink).
        Responses already in flight on this connection go first, in order:
        the refusal is written after them.
        """
        self.server.protocol_errors += 1
        self.parser = DISCARD
        self.keep_alive_next = False
        self._release_body()
        if (
            self.transport is None
            or self.closing
            or self.state == LINGER
            or self._pending_error is not None
        ):
            return
        # ``answer``: the app's own refusal (a 413 through on_error), else the server's.
        self._pending_error = answer or http11.error_bytes(
            status,
            reason,
            server=self.server.server_bytes,
            date=self.server.date_bytes,
            head_only=self._refusing_head(),
        )
        if self.running is not None or self.queue:
            self.state = ACTIVE  # nothing is being received any more
            return
        self._close_when_done()

    def _refusing_head(self: Connection) -> bool:
        """Is the request being refused a HEAD (its answer then has no body)?

        llhttp knows the method once the target began (the head parsed, or
        ``on_url`` called): never guessed from the previous request.
        """
        state = self.state
        if state != BODY and not (state == HEADERS and self._url):
            return False
        try:
            return self._llhttp.get_method() == b"HEAD"
        except Exception:  # llhttp in an error state: no method to trust
            return False


__all__ = ["ACTIVE", "BODY", "CLOSING", "DEADLINES", "HEADERS", "IDLE", "LINGER", "Ending"]
