"""``Connection``: what the parts of ``HttpProtocol`` may use of one another.

``HttpProtocol`` is assembled from one mixin per concept (``reading``,
``cycle``, ``writer``, ``deadlines``) sharing one set of slots. Each mixin
method types ``self`` as this ``Protocol`` (mypy's pattern for mixins), so the
type checker sees every field and method a mixin uses while no mixin imports
another. It is for the type checker only: nothing at run time refers to it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import asyncio
    from collections import deque
    from collections.abc import Coroutine

    from h3lab.app import H3
    from h3lab.config import LimitsConfig
    from h3lab.event import H3Event
    from h3lab.response import Response
    from h3lab.server.cycle import _WritePaused
    from h3lab.server.flow import FlowControl
    from h3lab.server.head import Head
    from h3lab.server.state import ServerState


class Connection(Protocol):
    # Shared by the connections of one server.
    server: ServerState
    app: H3
    pool: Any
    _acquire: Any  # pool.acquire and pool.release, bound once per connection
    _release: Any
    limits: LimitsConfig
    loop: asyncio.AbstractEventLoop
    max_requests: int
    # The connection.
    transport: asyncio.Transport | None
    parser: Any
    head: Head
    flow: FlowControl | None
    peer: Any
    queue: deque[H3Event]
    running: asyncio.Task[Any] | _WritePaused | None
    closing: bool
    requests_served: int
    state: int
    since: float
    keep_alive_next: bool
    _llhttp: Any
    _chunk: bytes | None
    _pending_error: bytes | None
    _continue_pending: list[tuple[bytes, bytes]] | None
    _eof_seen: bool
    _task_pending: H3Event | None
    _upgrade: Any
    _send_mark: int
    _send_since: float
    # The request being parsed.
    _url: bytes
    _headers: list[tuple[bytes, bytes]]
    _req_headers: list[tuple[bytes, bytes]]
    _hdr_total: int
    _hdr_line: int
    _hdr_first: bool
    _body: bytes
    _body_buf: bytearray | None
    _body_size: int
    _body_wire: int

    # protocol
    def eof_received(self) -> bool | None: ...
    def in_flight(self) -> bool: ...
    def _release_body(self) -> None: ...
    def _switch_to_websocket(self, trailing: bytes) -> None: ...

    # reading
    def data_received(self, data: bytes) -> None: ...
    def _feed_slices(self, data: bytes) -> None: ...
    def _hold_input(self) -> None: ...
    def _pause_input(self, reason: str) -> None: ...
    def _input_resumed(self) -> None: ...
    def _headers_arriving(self, data: bytes) -> None: ...
    def _body_arriving(self, data: bytes) -> None: ...
    def _parse_failed(self, exc: Exception, data: bytes) -> None: ...

    # cycle
    def _last_request(self, event: H3Event, llhttp_keep_alive: bool) -> None: ...
    def _deliver(self, event: H3Event) -> None: ...
    def _dispatch(self, event: H3Event) -> None: ...
    def _start_task(self, event: H3Event, coro: Coroutine[Any, Any, None]) -> None: ...
    def _answer_star(self, event: H3Event) -> None: ...
    def _request_done(self, task: asyncio.Task[Any]) -> None: ...
    def _serve_sync(self, event: H3Event, chain: Any) -> None: ...
    async def _serve(self, event: H3Event, chain: Any) -> None: ...
    async def _serve_stream(self, event: H3Event, response: Response, keep_alive: bool) -> None: ...
    def _next_in_queue(self) -> None: ...
    def _drop_queue(self) -> None: ...

    # writer
    def _respond_fast(self, event: H3Event, result: Any, keep_alive: bool) -> bool: ...
    def _respond(self, event: H3Event, response: Response, keep_alive: bool) -> None: ...
    def _finish(
        self, event: H3Event, keep_alive: bool, status: int = 200, size: int | None = None
    ) -> None: ...
    def _more_follows(self) -> bool: ...
    def _encode(
        self, event: H3Event, response: Response, keep_alive: bool, head_only: bool
    ) -> tuple[bytes, bytes, int]: ...
    def _encode_unchecked(
        self, event: H3Event, response: Response, keep_alive: bool, head_only: bool
    ) -> tuple[bytes, bytes, int]: ...
    def _response_head(
        self,
        event: H3Event,
        response: Response,
        keep_alive: bool,
        length: int | None,
        head_only: bool = False,
    ) -> bytes: ...
    async def _stream(self, event: H3Event, response: Response, keep_alive: bool) -> None: ...
    async def _send_body(self, body: Any, transport: asyncio.Transport, http10: bool) -> bool: ...

    # deadlines
    def check_deadlines(self, now: float) -> None: ...
    def _still_sending(self, now: float) -> bool: ...
    def close(self) -> None: ...
    def abort(self) -> None: ...
    def _close_when_done(self) -> None: ...
    def _protocol_error(self, status: int, reason: str, answer: bytes | None = None) -> None: ...
    def _refusing_head(self) -> bool: ...


__all__ = ["Connection"]
