"""Where a request's time goes, stage by stage: the ``stages`` target.

``bench_stages`` times each stage of the built-in server's path for one
request, in isolation, on the same request and with the same objects the
server uses (its ``ServerState``, app, pool, router, encoder, writer), per
preset (``performance``, and ``baseline`` unless quick) and endpoint
(``/plaintext``, ``/json``, ``/users/:id`` of ``h3lab.bench.apps``, the app
the ``protocol`` target and ``h3lab bench peers`` serve). Rows: ``strategy``
is the preset, ``param`` the endpoint, ``stage`` one of:

``parse``   ``HttpProtocol.data_received`` on the 32 pipelined requests the
            ``protocol`` target feeds (per request): llhttp plus the server's
            own ``on_message_begin``/``on_url``/``on_header`` callbacks.
            ``on_headers_complete`` and ``on_message_complete`` are replaced
            (a subclass, ``_parse_only()``) by the one state store that keeps
            ``data_received`` on its common path: their work is the next
            stages'. A subclass, not a parser with callbacks of our own, so the
            callbacks timed are the server's own, whatever they become.
``head``    ``Head.scan`` on that parser, its header list and target, then
            ``fill_target`` into the event (what ``on_headers_complete`` and
            ``on_message_complete`` call). llhttp has finished the message by
            then; for these keep-alive HTTP/1.1 heads it answers the same
            (checked against the head the server filled).
``event``   ``pool.acquire()``, the stores ``on_message_complete`` makes into
            the event, ``pool.release(event)`` (which resets it).
``route``   ``app.resolve(event)``: the router and route-cache strategies, and
            the route's params put on the event.
``chain``   the route's compiled middleware chain and its handler, called on
            the event (a coroutine is driven with ``send(None)``).
``encode``  the body from the handler's value, as ``Writer._respond_fast``
            makes it: ``app.json_encode`` (the ``response.json`` strategy) for a
            dict or list, ``str.encode`` for a str.
``write``   ``Writer._respond_fast`` given that body as bytes (so encoding is
            not counted twice): the prefix, length and Date join, the write
            into a ``MemoryTransport``, and ``_finish``. Checked byte for byte
            against what the server sends, the Content-Type line aside (the
            bytes branch writes ``application/octet-stream``; the same join).
``task``    the per-request isolation the server starts for the route
            (``cycle.Cycle._dispatch``): a ``copy_context().run`` for a chain
            that cannot await, ``tasks.start_request_task`` (eager) for one
            that can, around an empty step.
``whole``   the ``protocol`` target's operation: the real ``HttpProtocol`` fed
            the 32 pipelined requests, per request.
``sequence`` the seven stages after ``parse`` back to back per request, in
            one loop: the same calls, none of the server's code between them.
``unattributed``
            derived per interleaved round: ``whole`` minus the sum of the
            eight stages (metric ``unattributed_ns``: not a timed sample, so
            not ``ns_per_op``). Two things make it up, and ``sequence`` tells
            them apart (``stage_table`` shows both):

            * the server's code that no stage times: the rest of the two
              replaced callbacks (deadline state, keep-alive bookkeeping),
              ``_dispatch`` and ``_serve_sync`` around the stages they call
              -- ``whole - parse - sequence``;
            * isolation itself: a stage repeated alone runs with its code and
              data hot in the CPU caches and branch predictors, which seven
              stages run one after the other share -- ``sequence`` minus the
              seven stages' sum. On a busy shared machine this part is large.

            It **can be negative**: the timing loop's own step is paid by each
            of the eight stages once and by ``whole`` once, and medians of
            noisy parts need not add up. A negative value means the isolated
            costs overstate the whole, never that a stage is free.

Before any timing every stage is checked to do the real work on this
request (the parser saw the batch's requests with their target and headers,
the head matches the server's, the route and params are the endpoint's, the
handler's value is the endpoint's, the body and the written bytes are the
server's), so a fast wrong answer raises ``BenchmarkError``.

``stage_table(rows)`` (in ``stage_report``) is the markdown breakdown (one
row per stage, one column per endpoint: median ns and share of ``whole``);
``h3lab bench micro --target stages`` prints it after the usual table.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Sequence
from contextvars import copy_context
from typing import TYPE_CHECKING, Any

from h3lab.bench.micro.harness import BenchmarkError, Case, drive, run_cases
from h3lab.bench.micro.protocol import _PATHS, BATCH, _batch, _check, _in_loop, _returns_at_once
from h3lab.bench.micro.stage_report import (
    ENDPOINTS,
    SEQUENCE,
    STAGES,
    UNATTRIBUTED_METRIC,
    WHOLE,
    unattributed_rows,
)

if TYPE_CHECKING:
    from h3lab.app import H3
    from h3lab.event import H3Event
    from h3lab.server.protocol import HttpProtocol
    from h3lab.server.state import ServerState

DEFAULT_PRESETS = ("performance", "baseline")
_WORKLOAD = "pipelined-keepalive"


@functools.cache
def _parse_only() -> type[HttpProtocol]:
    """``HttpProtocol`` minus the two callbacks whose work the later stages time
    (built on first use: importing the micro targets imports no server)."""
    from h3lab.server.deadlines import IDLE
    from h3lab.server.protocol import HttpProtocol

    class ParseOnly(HttpProtocol):
        __slots__ = ()

        def on_headers_complete(self) -> None:
            pass

        def on_message_complete(self) -> None:
            # What finishing a request leaves (data_received then takes its
            # common path), and a count for the check.
            self.state = IDLE
            self.requests_served += 1

    return ParseOnly


def _body_encoder(app: H3, value: Any) -> Callable[[Any], bytes]:
    """The call ``Writer._respond_fast`` makes to encode ``value``'s body."""
    kind = type(value)
    if kind is str:
        return str.encode
    if kind is dict or kind is list:
        return app.json_encode
    raise BenchmarkError(f"the handler gave a {kind.__name__}: not a fast-path value")


def _nothing(event: H3Event, chain: Any) -> bool:
    """The step a context copy runs in the ``task`` stage (the server's: ``_serve_sync``)."""
    return True


def _connected(state: ServerState, cls: type[HttpProtocol] | None = None) -> Any:
    from h3lab.server.protocol import HttpProtocol
    from h3lab.testing import MemoryTransport

    transport = MemoryTransport()
    protocol = (cls or HttpProtocol)(state)
    protocol.connection_made(transport)
    return protocol, transport


def _without_content_type(response: bytes) -> bytes:
    head, blank, body = response.partition(b"\r\n\r\n")
    lines = [line for line in head.split(b"\r\n") if not line.lower().startswith(b"content-type:")]
    return b"\r\n".join(lines) + blank + body


def _fail(label: str, what: str, got: Any, expected: Any) -> BenchmarkError:
    return BenchmarkError(f"{label}: {what} is {got!r}, expected {expected!r}")


class _Request:
    """One preset's objects for one endpoint, checked; ``cases()`` times each stage."""

    def __init__(
        self,
        app: H3,
        state: ServerState,
        loop: asyncio.AbstractEventLoop,
        preset: str,
        endpoint: str,
        columns: dict[str, Any],
    ) -> None:
        self.app = app
        self.state = state
        self.loop = loop
        self.preset = preset
        self.endpoint = endpoint
        self.columns = columns
        self.label = f"stages {preset} {endpoint}"
        self.batch = _batch(_PATHS[endpoint])
        self.target = _PATHS[endpoint].encode()
        self.sent = self._whole()
        self._parse()
        self._head_and_event()
        self._route_and_chain()
        self._encode_and_write()
        self._task()

    # -- each stage's objects, checked against what the server does -------------

    def _whole(self) -> bytes:
        """The real protocol on the batch; returns the first response it sent."""
        protocol, transport = _connected(self.state)

        def feed(_: int) -> int:
            protocol.data_received(self.batch)
            return 1

        _in_loop(self.loop, feed)(1)
        _check(transport.writes, self.label)
        self.whole_protocol = protocol
        self.whole_transport = transport
        data = transport.data
        return data[: len(data) // BATCH]  # BATCH equal responses

    def _parse(self) -> None:
        protocol, _ = _connected(self.state, _parse_only())
        protocol.data_received(self.batch)
        if protocol.requests_served != BATCH:
            raise _fail(self.label, "parse: requests parsed", protocol.requests_served, BATCH)
        # The fields of the batch's (identical) requests, read off its bytes.
        lines = self.batch[: len(self.batch) // BATCH].split(b"\r\n")[1:-2]
        fields = [tuple(line.split(b": ", 1)) for line in lines]
        if protocol._url != self.target or protocol._headers != fields or not fields:
            got = (protocol._url, protocol._headers)
            raise _fail(self.label, "parse: target and headers", got, (self.target, fields))
        self.parse_protocol = protocol

    def _head_and_event(self) -> None:
        from h3lab.server.head import Head, fill_target

        parsed = self.parse_protocol
        self.llhttp = parsed._llhttp
        self.headers = list(parsed._headers)
        self.url = parsed._url
        self.head = head = Head(self.state.limits, self.app)
        self.event = event = self.app.pool.acquire()
        head.scan(self.llhttp, self.headers, self.url, self.batch)
        fill_target(event, head.target)
        real = self.whole_protocol.head  # the last request's, as the server filled it
        fields = ("method", "version", "keep_alive", "target", "flags")
        got = tuple(getattr(head, f) for f in fields)
        expected = tuple(getattr(real, f) for f in fields)
        if got != expected:
            raise _fail(self.label, "head: " + "/".join(fields), got, expected)
        path = self.target.decode()
        paths = (event.raw_path, event.route_path, event.path, event.query_string)
        if paths != (path, path, path, ""):
            raise _fail(self.label, "head: event paths", paths, (path, path, path, ""))
        self._fill(event)
        # The event stage: two cycles hand out and take back, and the second
        # reuses the first's event where the policy pools (nothing retired).
        pool = self.app.pool
        before = pool.stats()
        self._event_cycle(2)
        after = pool.stats()
        if (
            after["acquired"] != before["acquired"] + 2
            or after["in_use"] != before["in_use"]
            or after["retired"] != before["retired"]
        ):
            raise BenchmarkError(f"{self.label}: event: the pool did not hand out and take back")

    def _fill(self, event: H3Event) -> None:
        # The stores on_message_complete makes (fill_target aside: the head
        # stage's); _event_cycle makes them inline, as the server does.
        head = self.head
        event.conn = self.whole_protocol
        event.remote = self.whole_protocol.peer
        event.method = head.method
        event.http_version = head.version
        event._body = b""
        event._raw_headers = self.headers
        event.keep_alive = True

    def _event_cycle(self, loops: int) -> None:
        acquire = self.app.pool.acquire
        release = self.app.pool.release
        head = self.head
        conn = self.whole_protocol
        peer = conn.peer
        headers = self.headers
        for _ in range(loops):
            event = acquire()
            event.conn = conn
            event.remote = peer
            event.method = head.method
            event.http_version = head.version
            event._body = b""
            event._raw_headers = headers
            event.keep_alive = True
            release(event)
            # As when the server's frames end: a released event that something
            # still references is retired at its next acquire (h3lab.pool).
            del event

    def _route_and_chain(self) -> None:
        event = self.event
        chain, self.sync = self.app.resolve(event)
        route = event.route
        if route is None or route.pattern != self.endpoint or chain is not route.chain:
            got = None if route is None else route.pattern
            raise _fail(self.label, "route: pattern", got, self.endpoint)
        params = {"id": "42"} if ":id" in self.endpoint else {}
        if dict(event.params) != params:
            raise _fail(self.label, "route: params", dict(event.params), params)
        self.chain = chain
        value = drive(chain(event))
        from h3lab.bench.apps import PLAINTEXT

        expected = {"/plaintext": PLAINTEXT, "/json": {"message": PLAINTEXT}}.get(
            self.endpoint, {"id": "42"}
        )
        if value != expected:
            raise _fail(self.label, "chain: the handler's value", value, expected)
        self.value = value

    def _encode_and_write(self) -> None:
        self.encode = _body_encoder(self.app, self.value)
        body = self.encode(self.value)
        sent_body = self.sent.partition(b"\r\n\r\n")[2]
        if body != sent_body:
            raise _fail(self.label, "encode: the body", body, sent_body)
        self.body = body
        protocol, transport = _connected(self.state)
        if not protocol._respond_fast(self.event, body, True):
            raise BenchmarkError(f"{self.label}: write: the writer's fast path declined")
        written = transport.data
        if _without_content_type(written) != _without_content_type(self.sent):
            raise _fail(self.label, "write: the bytes written", written, self.sent)
        transport.record = False
        self.write_protocol = protocol

    def _task(self) -> None:
        from h3lab.server.tasks import start_request_task

        if self.sync:
            if copy_context().run(_nothing, self.event, self.chain) is not True:
                raise BenchmarkError(f"{self.label}: task: the context did not run the step")
            return
        out: list[Any] = []

        def start(_: int) -> int:
            out.append(start_request_task(self.loop, _returns_at_once()))
            return 1

        _in_loop(self.loop, start)(1)
        if not out[0].done() or out[0].result() != "ok":
            raise BenchmarkError(f"{self.label}: task: a request task did not finish eagerly")

    # -- the timed loops ----------------------------------------------------------

    def _feed_loop(self, protocol: HttpProtocol) -> Callable[[int], int]:
        """``parse`` and ``whole``: the batch fed to ``protocol`` (ns per request)."""
        feed = protocol.data_received
        batch = self.batch

        def run(loops: int) -> int:
            for _ in range(loops):
                feed(batch)
            return loops * BATCH

        return run

    def _head_loop(self, loops: int) -> int:
        from h3lab.server.head import fill_target

        head, scan, event = self.head, self.head.scan, self.event
        llhttp, headers, url, chunk = self.llhttp, self.headers, self.url, self.batch
        for _ in range(loops):
            scan(llhttp, headers, url, chunk)
            fill_target(event, head.target)
        return loops

    def _event_loop(self, loops: int) -> int:
        self._event_cycle(loops)
        return loops

    def _route_loop(self, loops: int) -> int:
        resolve = self.app.resolve
        event = self.event
        for _ in range(loops):
            resolve(event)
        return loops

    def _chain_loop(self, loops: int) -> int:
        chain = self.chain
        event = self.event
        if self.sync:
            for _ in range(loops):
                chain(event)
        else:
            for _ in range(loops):
                drive(chain(event))
        return loops

    def _encode_loop(self, loops: int) -> int:
        encode = self.encode
        value = self.value
        for _ in range(loops):
            encode(value)
        return loops

    def _write_loop(self, loops: int) -> int:
        respond = self.write_protocol._respond_fast
        event = self.event
        body = self.body
        for _ in range(loops):
            respond(event, body, True)
        return loops

    def _task_loop(self, loops: int) -> int:
        event = self.event
        chain = self.chain
        if self.sync:
            for _ in range(loops):
                copy_context().run(_nothing, event, chain)
        else:
            from h3lab.server.tasks import start_request_task

            loop = self.loop
            for _ in range(loops):
                start_request_task(loop, _returns_at_once())
        return loops

    def _sequence_loop(self, loops: int) -> int:
        """The seven stages after ``parse``, back to back per request: the same
        calls as their own loops, with none of the server's code between them."""
        from h3lab.server.head import fill_target
        from h3lab.server.tasks import start_request_task

        head, scan, event = self.head, self.head.scan, self.event
        llhttp, headers, url, chunk = self.llhttp, self.headers, self.url, self.batch
        acquire, release = self.app.pool.acquire, self.app.pool.release
        conn = self.whole_protocol
        peer = conn.peer
        resolve, encode = self.app.resolve, self.encode
        respond = self.write_protocol._respond_fast
        sync, loop = self.sync, self.loop
        for _ in range(loops):
            scan(llhttp, headers, url, chunk)
            fill_target(event, head.target)
            fresh = acquire()
            fresh.conn = conn
            fresh.remote = peer
            fresh.method = head.method
            fresh.http_version = head.version
            fresh._body = b""
            fresh._raw_headers = headers
            fresh.keep_alive = True
            release(fresh)
            del fresh  # see _event_cycle
            chain, _ = resolve(event)
            value = chain(event) if sync else drive(chain(event))
            respond(event, encode(value), True)
            if sync:
                copy_context().run(_nothing, event, chain)
            else:
                start_request_task(loop, _returns_at_once())
        return loops

    def cases(self) -> list[Case]:
        served = self.write_protocol.requests_served
        self._sequence_loop(1)
        if self.write_protocol.requests_served != served + 1:
            raise BenchmarkError(f"{self.label}: sequence: no response was written")
        loops = {
            "parse": self._feed_loop(self.parse_protocol),
            "head": self._head_loop,
            "event": self._event_loop,
            "route": self._route_loop,
            "chain": self._chain_loop,
            "encode": self._encode_loop,
            "write": self._write_loop,
            "task": self._task_loop,
            SEQUENCE: self._sequence_loop,
            WHOLE: self._feed_loop(self.whole_protocol),
        }
        self.whole_transport.record = False
        memory = self.app.memory
        return [
            Case(
                "stages",
                self.preset,
                self.endpoint,
                _WORKLOAD,
                # Every stage from a callback of the running loop, where the
                # server runs them (no current task; eager task starts).
                _in_loop(self.loop, fn),
                {"stage": stage, **self.columns, "sync_chain": self.sync},
                setup=memory.install,
                teardown=memory.close,
            )
            for stage, fn in loops.items()
        ]


def bench_stages(
    presets: Sequence[str] = DEFAULT_PRESETS,
    endpoints: Sequence[str] = ENDPOINTS,
    **timing: Any,
) -> list[dict[str, Any]]:
    """ns per request of each stage, of the whole path and what is left (``unattributed``)."""
    from h3lab.bench.apps import build_app
    from h3lab.bench.results import config_columns
    from h3lab.config import Config
    from h3lab.server.core import _loop_factory
    from h3lab.server.state import ServerState

    unknown = [e for e in endpoints if e not in _PATHS]
    if unknown:
        raise ValueError(f"endpoints must be among {list(_PATHS)}, got {unknown}")
    loop = _loop_factory("auto")()  # uvloop where installed, as h3lab serve runs
    cases: list[Case] = []
    try:
        for preset in presets:
            config = Config.preset(preset)
            app = build_app(config)
            app.prepare()
            state = ServerState(app, loop=loop)
            for endpoint in endpoints:
                request = _Request(app, state, loop, preset, endpoint, config_columns(config))
                cases += request.cases()
        rows = run_cases(cases, **timing)
    finally:
        loop.close()
    return rows + unattributed_rows(rows)


__all__ = [
    "ENDPOINTS",
    "SEQUENCE",
    "STAGES",
    "UNATTRIBUTED_METRIC",
    "bench_stages",
]
