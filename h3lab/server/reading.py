"""Bytes as they arrive: fed to the parser, held, bounded, or refused.

Hostile input (see ``h3lab.server.framing`` for who refuses what)
------------------------------------------------------------------
* Every limit is counted as bytes arrive. A request head that is complete
  in one read is checked once, by ``Head.scan``, from what the callbacks
  gave (no extra cost per header). A read that ends *inside* a head goes
  through ``_headers_arriving``, which measures the unfinished line and
  section from the raw bytes -- httptools buffers an unfinished header
  silently, so that is the only place its size is visible.
* A refusal answers once, then closes gracefully (``h3lab.server.deadlines``).
  From the refusal on, ``parser`` is a sink: no byte that follows is ever
  interpreted as a request. The same holds after a request that ends the
  connection (Connection: close, HTTP/1.0, an Upgrade attempt, the
  per-connection request cap).
* ``parser`` is the object bytes are fed to: the llhttp parser, a ``Held``
  buffer while reading is paused (pipeline cap, write backpressure) or the
  ``DISCARD`` sink. Reads larger than ``FEED_SLICE`` are parsed in slices so
  one read full of pipelined requests cannot queue more than a slice's worth
  past the cap.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import httptools

from h3lab.server import framing
from h3lab.server.app_refusal import body_too_large
from h3lab.server.cycle import Stop
from h3lab.server.deadlines import BODY, HEADERS
from h3lab.server.flow import DISCARD, Held
from h3lab.server.framing import Refusal

if TYPE_CHECKING:
    from h3lab.server.conn import Connection

logger = logging.getLogger("h3lab.server")

# Reads larger than this are parsed in slices (see the module docstring).
FEED_SLICE = 16 * 1024
# A request line may exceed the target limit by its method, spaces and version.
REQUEST_LINE_SLACK = 64


class Reading:
    """The ``HttpProtocol`` methods that take in bytes."""

    __slots__ = ()
    _chunk: bytes | None  # for the type checker (the slots are HttpProtocol's)

    def data_received(self: Connection, data: bytes) -> None:
        if len(data) > FEED_SLICE:
            self._feed_slices(data)
            return
        parser = self.parser
        self._chunk = data
        try:
            parser.feed_data(data)
            state = self.state
            if state in (HEADERS, BODY) and parser is self._llhttp:
                # Rare: the read ended inside a request (see the module docstring).
                if state == HEADERS:
                    self._headers_arriving(data)
                else:
                    self._body_arriving(data)
        except Exception as exc:
            self._parse_failed(exc, data)
        self._chunk = None

    def _feed_slices(self: Connection, data: bytes) -> None:
        for at in range(0, len(data), FEED_SLICE):
            if self.parser is not self._llhttp:
                self.parser.feed_data(data[at:])  # held (paused) or discarded
                return
            self.data_received(data[at : at + FEED_SLICE])

    # -- paused input ----------------------------------------------------------

    def _hold_input(self: Connection) -> None:
        if self.parser is self._llhttp:
            self.parser = Held()

    def _pause_input(self: Connection, reason: str) -> None:
        if self.flow is not None:
            self.flow.pause_reading(reason)
            self._hold_input()

    def _input_resumed(self: Connection) -> None:
        """Reading resumed: parse what arrived while it was paused."""
        held = self.parser
        if type(held) is not Held or (self.flow is not None and self.flow.reading_paused):
            return
        self.parser = self._llhttp
        if held.data:
            self.data_received(bytes(held.data))
        if held.eof:
            if type(self.parser) is Held:
                self.parser.eof = True
            elif self.eof_received() is None:
                self._close_when_done()

    # -- unfinished requests ---------------------------------------------------

    def _headers_arriving(self: Connection, data: bytes) -> None:
        """The read ended inside a request head: bound what is buffered so far.

        ``_hdr_total`` counts the head's bytes (-1: the request began in this
        read, so its start must be found first), ``_hdr_line`` the unfinished
        line's, ``_hdr_first`` says whether that is still the request line.
        """
        limits = self.limits
        total = self._hdr_total
        newline = data.rfind(b"\n")
        if total < 0:
            url = self._url
            if not url:  # still in the method token: a few bytes at most
                self._hdr_total, self._hdr_line, self._hdr_first = 0, 0, True
                return
            # Earlier requests may share this read: the head starts at its
            # request line, found from the method and target llhttp reported.
            start = data.rfind(self._llhttp.get_method() + b" " + url)
            if start < 0:
                at = data.rfind(url)
                start = data.rfind(b"\n", 0, max(at, 0)) + 1
            total = len(data) - start
            first = newline < start
            line = total if first else len(data) - newline - 1
        else:
            total += len(data)
            if newline < 0:
                line = self._hdr_line + len(data)
                first = self._hdr_first
            else:
                line = len(data) - newline - 1
                first = False
        self._hdr_total, self._hdr_line, self._hdr_first = total, line, first
        if first:
            if line > limits.max_request_target + REQUEST_LINE_SLACK:
                raise Refusal(414, "Request line too long")
        elif line > limits.max_header_line:
            raise Refusal(431, "Request header line too large")
        if total > limits.max_request_target + limits.max_headers_size + REQUEST_LINE_SLACK:
            raise Refusal(431, "Request header section too large")
        if len(self._headers) > limits.max_header_count:
            raise Refusal(431, "Too many request headers")

    def _body_arriving(self: Connection, data: bytes) -> None:
        # The read ended inside a body: count its wire bytes, so chunk-size
        # lines, extensions and trailers are bounded as well as the data.
        # _hdr_total is free once the head is parsed: -2 marks "counting this body".
        wire = len(data)
        if self._hdr_total == -2:
            wire += self._body_wire
        else:
            self._hdr_total = -2
        self._body_wire = wire
        limits = self.limits
        if wire > limits.max_body_size + limits.max_chunked_overhead:
            raise Refusal(413, "Request body too large (with its chunked framing)")

    # -- failures --------------------------------------------------------------

    def _parse_failed(self: Connection, exc: Exception, data: bytes) -> None:
        if isinstance(exc, httptools.HttpParserUpgrade):
            if self._upgrade is not None:
                # llhttp stopped right after the upgrade request: the rest is frames.
                self._switch_to_websocket(data[exc.args[0] :] if exc.args else b"")
                return
            # llhttp stops after a request that asks to switch protocols (its
            # response says close, see head.F_CLOSE): the bytes after it are
            # never interpreted, as HTTP or as a tunnel.
            self.keep_alive_next = False
            self.parser = DISCARD
            if not self.in_flight():
                self._close_when_done()
            return
        cause: BaseException | None = None
        if isinstance(exc, Refusal):
            cause = exc
        elif isinstance(exc, httptools.HttpParserCallbackError):
            cause = exc.__context__  # what our callback raised
        if isinstance(cause, Stop) or (
            not self.keep_alive_next and self.state != HEADERS and self.state != BODY
        ):
            # Bytes after the connection's last request (llhttp reports them as
            # "Data after Connection: close"): dropped, never answered.
            self.parser = DISCARD
            if not self.in_flight():
                self._close_when_done()
            return
        answer = None
        if isinstance(cause, Refusal):
            status, reason = cause.status, cause.reason
            if status == 413 and self.state == BODY:
                # h3 (and the ASGI adapter) answer it through the app's on_error hook.
                answer = body_too_large(
                    self.app,
                    self.server,
                    reason,
                    head=self.head,
                    raw_headers=self._headers,
                    peer=self.peer,
                    conn=self,
                    head_only=self._refusing_head(),
                )
        elif cause is not None or not isinstance(exc, httptools.HttpParserError):
            # Our own code failed on this input: a bug, so say it loudly.
            logger.error("failed to process request bytes", exc_info=cause or exc)
            status, reason = 500, "Internal Server Error"
        else:
            status, reason = framing.parser_error(exc, data)
        self._protocol_error(status, reason, answer)


__all__ = ["FEED_SLICE", "REQUEST_LINE_SLACK", "Reading"]
