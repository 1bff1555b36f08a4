"""The closed-loop engine: N keep-alive connections, each sending as soon as it is answered.

wrk's model: aiohttp with one ``TCPConnector(limit=N)`` and N worker tasks;
with ``pipelining > 1`` raw asyncio streams instead (aiohttp does not
pipeline): each connection writes ``depth`` requests, then reads ``depth``
responses, parsed with ``httptools.HttpResponseParser``. A pipelined
request's latency runs from the write of its batch to the completion of its
own response.

Closed-loop latency suffers from *coordinated omission*: while the server
stalls, the generator stops sending, so the stall is sampled by at most N
requests and the percentiles hide it. Use it for throughput; ``open_loop``
for latency.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import httptools

from h3lab.bench.load.client import (
    CONNECT_BACKOFF_S,
    DEFAULT_POOL,
    SLACK_S,
    UNIQUE_POOL_CAP,
    UNIQUE_RATE_GUESS,
    bounded,
    classify,
    repeats_keys,
    request_headers,
    resolve_requests,
    run_async,
    slices,
    split_url,
)
from h3lab.bench.load.result import LoadResult, RunCounters

if TYPE_CHECKING:
    from h3lab.bench.route_tables import BenchRequest


async def closed_loop(
    url: str,
    workload: Any,
    *,
    connections: int = 64,
    duration: float | None = 10.0,
    requests: int | None = None,
    pipelining: int = 1,
    warmup: float = 1.0,
    timeout: float = 5.0,
    max_duration: float = 300.0,
) -> LoadResult:
    """The async closed-loop engine (see ``run_closed_loop``)."""
    if connections < 1:
        raise ValueError(f"connections must be >= 1, got {connections}")
    if pipelining < 1:
        raise ValueError(f"pipelining must be >= 1, got {pipelining}")
    if duration is None and requests is None:
        raise ValueError("give a duration, a request count, or both")
    if duration is not None and duration <= 0:
        raise ValueError(f"duration must be > 0, got {duration}")
    if requests is not None and requests < 1:
        raise ValueError(f"requests must be >= 1, got {requests}")
    if warmup < 0 or timeout <= 0:
        raise ValueError("warmup must be >= 0 and timeout > 0")
    pool = min(requests, 100_000) if requests else DEFAULT_POOL
    if not repeats_keys(workload):
        wanted = requests or int((duration or max_duration) + warmup) * UNIQUE_RATE_GUESS
        pool = min(max(pool, wanted), UNIQUE_POOL_CAP)
    name, reqs = resolve_requests(workload, pool)
    if pipelining > 1 and any(r.method == "HEAD" for r in reqs):
        raise ValueError("the pipelining path cannot parse responses to HEAD requests")
    base, host, port = split_url(url)
    clock = time.perf_counter
    start = clock()
    run = RunCounters(clock, start + warmup)
    limit = duration if duration is not None else max_duration
    send_until = run.measure_start + limit
    hard_end = send_until + timeout + SLACK_S

    def may_send() -> tuple[bool, float]:
        now = clock()
        if now >= send_until:
            return False, now
        if requests is not None and now >= run.measure_start:
            if run.issued >= requests:
                return False, now
            run.issued += 1
        return True, now

    if pipelining == 1:
        tasks = await _closed_aiohttp(base, reqs, connections, timeout, run, may_send, hard_end)
    else:
        run.notes.append(f"pipelined {pipelining} deep over raw asyncio streams (httptools parser)")
        tasks = [
            asyncio.ensure_future(
                _pipelined_worker(host, port, s, pipelining, timeout, run, may_send)
            )
            for s in slices(reqs, connections)
        ]
        await bounded(tasks, hard_end, clock, run)
    if duration is None and clock() >= send_until:
        run.notes.append(f"stopped by max_duration={max_duration}s before {requests} requests")
    return run.result(
        loop_mode="closed",
        url=url,
        workload=name,
        connections=connections,
        pipelining=pipelining,
        warmup_s=warmup,
    )


async def _closed_aiohttp(
    base: str,
    reqs: list[BenchRequest],
    connections: int,
    timeout: float,
    run: RunCounters,
    may_send: Callable[[], tuple[bool, float]],
    hard_end: float,
) -> list[asyncio.Task[Any]]:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=connections, limit_per_host=connections)
    session = aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=timeout),
        auto_decompress=False,
    )

    async def worker(mine: list[BenchRequest]) -> None:
        i = 0
        n = len(mine)
        while True:
            go, sent = may_send()
            if not go:
                return
            req = mine[i % n]
            i += 1
            try:
                async with session.request(
                    req.method, base + req.path, data=req.body or None, headers=request_headers(req)
                ) as resp:
                    body = await resp.read()
                    run.response(req, sent, resp.status, resp.headers.get("Content-Type"), body)
            except asyncio.CancelledError:
                run.error("timeout", sent)  # abandoned at the hard bound
                raise
            except Exception as exc:
                kind = classify(exc)
                run.error(kind, sent)
                if kind == "connect":
                    await asyncio.sleep(CONNECT_BACKOFF_S)

    try:
        tasks = [asyncio.ensure_future(worker(s)) for s in slices(reqs, connections)]
        await bounded(tasks, hard_end, run.clock, run)
    finally:
        await session.close()
    return tasks


def encode_request(req: BenchRequest, host_header: str) -> bytes:
    """One HTTP/1.1 request, as the raw pipelining path writes it."""
    lines = [f"{req.method} {req.path} HTTP/1.1", f"Host: {host_header}"]
    if req.content_type:
        lines.append(f"Content-Type: {req.content_type}")
    if req.body or req.method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(req.body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + req.body


class _ResponseCollector:
    """httptools callbacks: collects (status, content type, body, keep-alive) per response."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.done: list[tuple[int, str | None, bytes, bool]] = []
        self._ctype: str | None = None
        self._body: list[bytes] = []

    def on_message_begin(self) -> None:
        self._ctype = None
        self._body = []

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"content-type":
            self._ctype = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        p = self.parser
        self.done.append(
            (p.get_status_code(), self._ctype, b"".join(self._body), p.should_keep_alive())
        )


async def pipelined_exchange(
    host: str, port: int, batch: Sequence[BenchRequest], timeout: float = 5.0
) -> list[tuple[int, str | None, bytes]]:
    """Write ``batch`` pipelined on one new connection; the responses, in order.

    A small building block (and test hook) of the pipelining path.
    """
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    try:
        writer.write(b"".join(encode_request(r, f"{host}:{port}") for r in batch))
        collector = _ResponseCollector()
        while len(collector.done) < len(batch):
            data = await asyncio.wait_for(reader.read(65536), timeout)
            if not data:
                raise asyncio.IncompleteReadError(b"", None)
            collector.parser.feed_data(data)
        return [(s, c, b) for s, c, b, _ in collector.done]
    finally:
        writer.close()


async def _pipelined_worker(
    host: str,
    port: int,
    mine: list[BenchRequest],
    depth: int,
    timeout: float,
    run: RunCounters,
    may_send: Callable[[], tuple[bool, float]],
) -> None:
    wire = [encode_request(r, f"{host}:{port}") for r in mine]
    n = len(mine)
    i = 0
    writer: asyncio.StreamWriter | None = None
    reader: asyncio.StreamReader | None = None
    collector = _ResponseCollector()
    try:
        while True:
            batch: list[int] = []
            sent = 0.0
            for _ in range(depth):
                go, now = may_send()
                if not go:
                    break
                sent = sent or now
                batch.append(i % n)
                i += 1
            if not batch:
                return
            if writer is None:
                try:
                    reader, writer = await asyncio.wait_for(
                        asyncio.open_connection(host, port), timeout
                    )
                except asyncio.CancelledError:
                    run.error("timeout", sent, len(batch))
                    raise
                except Exception as exc:
                    kind = "timeout" if isinstance(exc, TimeoutError) else "connect"
                    run.error(kind, sent, len(batch))
                    await asyncio.sleep(CONNECT_BACKOFF_S)
                    continue
                collector = _ResponseCollector()
            assert reader is not None and writer is not None
            got = 0
            keep_alive = True
            try:
                writer.write(b"".join(wire[k] for k in batch))
                deadline = run.clock() + timeout
                while got < len(batch):
                    data = await asyncio.wait_for(reader.read(65536), deadline - run.clock())
                    if not data:
                        raise asyncio.IncompleteReadError(b"", None)
                    collector.parser.feed_data(data)
                    for status, ctype, body, alive in collector.done:
                        run.response(mine[batch[got]], sent, status, ctype, body)
                        got += 1
                        keep_alive = keep_alive and alive
                    collector.done.clear()
                if not keep_alive:
                    raise asyncio.IncompleteReadError(b"", None)  # reconnect, nothing lost
            except asyncio.CancelledError:
                run.error("timeout", sent, len(batch) - got)
                raise
            except Exception as exc:
                missing = len(batch) - got
                if missing:
                    kind = "read" if isinstance(exc, httptools.HttpParserError) else classify(exc)
                    run.error(kind, sent, missing)
                writer.close()
                writer = reader = None
    finally:
        if writer is not None:
            writer.close()


def run_closed_loop(
    url: str,
    workload: Any,
    *,
    connections: int = 64,
    duration: float | None = 10.0,
    requests: int | None = None,
    pipelining: int = 1,
    warmup: float = 1.0,
    timeout: float = 5.0,
    max_duration: float = 300.0,
) -> LoadResult:
    """Closed-loop load: ``connections`` keep-alive connections for ``duration`` s.

    ``workload``: a ``Workload``, a workload name (``make_workload``), a path
    (``"/plaintext"``) or a list of ``BenchRequest``. Stops at ``duration``
    seconds or after ``requests`` requests, whichever is given first (with
    only ``requests``, ``max_duration`` bounds the time). The first ``warmup``
    seconds are run but not measured (reported as ``warmup_requests`` /
    ``warmup_errors``). ``pipelining > 1`` uses the raw-stream path.
    """
    return run_async(
        lambda: closed_loop(
            url,
            workload,
            connections=connections,
            duration=duration,
            requests=requests,
            pipelining=pipelining,
            warmup=warmup,
            timeout=timeout,
            max_duration=max_duration,
        )
    )
