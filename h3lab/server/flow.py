"""Flow control for one connection: reading and writing backpressure.

Two independent reasons can pause reading -- the transport's write buffer is
over its high-water mark (a client that sends requests but does not read
responses), or too many pipelined requests are queued -- so reading resumes
only when no reason is left. Writers of streaming bodies ``await drain()``
while the write buffer is full: the server's memory stays bounded by the
buffer's high-water mark however slowly the client reads.

Pausing the transport stops *future* reads only: the protocol holds the rest
of a read that was already delivered (feeding it to ``Held`` instead of the
parser, see ``h3lab.server.reading``) and parses it when reading resumes, so
neither reason is undone by one large read full of pipelined requests. A
connection that will never parse another byte feeds them to ``DISCARD``.
"""

from __future__ import annotations

import asyncio


class FlowControl:
    __slots__ = ("_drained", "_pause_reasons", "_transport", "write_paused")

    def __init__(self, transport: asyncio.Transport, write_buffer_high: int) -> None:
        self._transport = transport
        self._pause_reasons: set[str] = set()
        self._drained: asyncio.Event | None = None
        self.write_paused = False
        transport.set_write_buffer_limits(high=write_buffer_high)

    # -- reading -------------------------------------------------------------

    def pause_reading(self, reason: str) -> None:
        if not self._pause_reasons and not self._transport.is_closing():
            self._transport.pause_reading()
        self._pause_reasons.add(reason)

    def resume_reading(self, reason: str) -> None:
        if reason in self._pause_reasons:
            self._pause_reasons.discard(reason)
            if not self._pause_reasons and not self._transport.is_closing():
                self._transport.resume_reading()

    def resume_all(self) -> None:
        """Read again whatever paused it (a refused connection drains its input)."""
        if self._pause_reasons:
            self._pause_reasons.clear()
            if not self._transport.is_closing():
                self._transport.resume_reading()

    @property
    def reading_paused(self) -> bool:
        return bool(self._pause_reasons)

    # -- writing -------------------------------------------------------------

    def pause_writing(self) -> None:
        self.write_paused = True
        self.pause_reading("write")

    def resume_writing(self) -> None:
        self.write_paused = False
        if self._drained is not None:
            self._drained.set()
            self._drained = None
        self.resume_reading("write")

    async def drain(self) -> None:
        """Wait until the write buffer is below its low-water mark (or closed)."""
        if not self.write_paused:
            return
        if self._drained is None:
            self._drained = asyncio.Event()
        await self._drained.wait()

    def connection_lost(self) -> None:
        # Wake writers so they notice the connection is gone.
        self.write_paused = False
        if self._drained is not None:
            self._drained.set()
            self._drained = None


# -- held input ----------------------------------------------------------------


class Held:
    """Bytes that arrived while reading was paused, parsed when it resumes."""

    __slots__ = ("data", "eof")

    def __init__(self) -> None:
        self.data = bytearray()
        self.eof = False

    def feed_data(self, data: bytes) -> None:
        self.data += data


class Discard:
    """The parser of a connection that will never interpret another byte."""

    __slots__ = ()

    def feed_data(self, data: bytes) -> None:
        pass


DISCARD = Discard()
