"""Load engines with one result schema: closed loop, open loop, and verification.

Engines
-------
``run_closed_loop``
    N persistent keep-alive connections, each sending its next request as soon
    as the previous response arrived (wrk's model). aiohttp with one
    ``TCPConnector(limit=N)`` and N worker tasks; with ``pipelining > 1`` raw
    asyncio streams instead (aiohttp does not pipeline): each connection
    writes ``depth`` requests, then reads ``depth`` responses, parsed with
    ``httptools.HttpResponseParser``. A pipelined request's latency runs from
    the write of its batch to the completion of its own response.

    Closed-loop latency suffers from *coordinated omission*: while the server
    stalls, the generator stops sending, so the stall is sampled by at most N
    requests and the percentiles hide it. Use it for throughput.

``run_open_loop``
    A constant arrival rate (the wrk2 method): request ``i`` is *intended* to
    start at ``t0 + i / rate``; its latency is ``completion - intended start``.
    A request whose intended start passes while every connection is busy
    waits in a queue and is still measured from its intended start, so a
    stall shows up in every request scheduled during it. Use it for latency.

Accounting (identical for every engine)
---------------------------------------
``requests``: exchanges that completed *and* passed the checks (expected
status, and content type/body when the request states them); their latencies
are in the histogram and ``throughput_rps = requests / duration_s``. Every
failure is counted in exactly one class of ``errors``: ``connect``,
``timeout`` (including requests abandoned at the hard wall-clock bound),
``reset`` (the server closed or reset the connection mid-exchange), ``read``
(unparsable or truncated response), ``status_mismatch``, ``body_mismatch``
(body or content type differs). ``status_counts`` counts every received
response by status. Errors are never retried silently.

Every engine enforces a hard wall-clock bound (duration + timeout + slack),
returns whatever it measured if the server dies, and never hangs. The sync
entry points run on uvloop when it is installed, on a helper thread when
called from a running event loop (notebooks).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import httptools

from h3lab.bench.histogram import LatencyRecorder, histogram_percentiles

if TYPE_CHECKING:
    from h3lab.bench.workloads import BenchRequest

T = TypeVar("T")

ERROR_CLASSES = ("connect", "timeout", "reset", "read", "status_mismatch", "body_mismatch")
SLACK_S = 2.0
"""Added to duration + timeout for the hard wall-clock bound."""
CONNECT_BACKOFF_S = 0.01
"""Pause after a connect error so a dead server does not turn the client into a busy loop."""
DEFAULT_POOL = 10_000
# A workload that must never repeat a key gets a pool sized to the run, up to
# this cap (generation costs ~8 us a request); beyond it the pool cycles and
# LoadResult.pool_wrapped says so.
UNIQUE_POOL_CAP = 400_000
UNIQUE_RATE_GUESS = 40_000  # requests/s assumed when sizing for a timed run
"""Requests drawn from a workload for a duration-bounded run (cycled)."""


class VerificationError(AssertionError):
    """A response differed from what the workload expects (before any timing)."""


# -- results -------------------------------------------------------------------


@dataclass
class LoadResult:
    engine: str
    """"aiohttp" (also for the raw pipelining path) or "wrk"."""
    loop_mode: str
    """"closed" or "open"."""
    url: str
    workload: str
    connections: int
    pipelining: int
    duration_s: float
    """Measured seconds of the timed phase (from its start to the last completion)."""
    requests: int
    errors: dict[str, int]
    status_counts: dict[int | str, int]
    throughput_rps: float
    latency: dict[str, float | None]
    """p50_ms, p90_ms, p99_ms, p99_9_ms, max_ms (None when not measured)."""
    series: list[dict[str, Any]] = field(default_factory=list)
    target_rate: float | None = None
    histoblob: str | None = None
    warmup_s: float = 0.0
    warmup_requests: int = 0
    warmup_errors: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def errors_total(self) -> int:
        return sum(self.errors.values())

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def rows(
        self,
        study: str,
        run_id: str,
        config_cols: dict[str, Any] | None = None,
        *,
        repetition: int = 0,
        extra: dict[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """Tidy rows: one per summary metric (``t`` None) and per series second (``t``).

        ``t`` of a series row is the second since the timed phase started;
        summary rows leave ``t`` None (``RunWriter`` stamps them with the
        wall-clock time). The trailing partial second is left out of the
        series rows (every metric over time drops it anyway). ``extra`` adds
        columns to each row.
        """
        base: dict[str, Any] = {"study": study, "run_id": run_id, **(config_cols or {})}
        base["workload"] = self.workload
        base.update(
            engine=self.engine,
            loop_mode=self.loop_mode,
            connections=self.connections,
            pipelining=self.pipelining,
            target_rate=self.target_rate,
        )
        base.update(extra or {})
        base["repetition"] = repetition

        def row(metric: str, value: Any, unit: str, t: int | None = None) -> dict[str, Any]:
            return {**base, "metric": metric, "value": value, "unit": unit, "t": t}

        out = [
            row("throughput_rps", self.throughput_rps, "req/s"),
            row("requests", self.requests, "count"),
            row("duration_s", self.duration_s, "s"),
            row("errors_total", self.errors_total, "count"),
        ]
        for key in ("p50_ms", "p90_ms", "p99_ms", "p99_9_ms", "max_ms"):
            value = self.latency.get(key)
            if value is not None:
                out.append(row(f"latency_{key}", value, "ms"))
        out.extend(row(f"errors_{name}", count, "count") for name, count in self.errors.items())
        for s in self.series:
            if s.get("partial"):
                continue
            t = s["t"]
            out.append(row("series_requests", s["requests"], "req", t))
            out.append(row("series_errors", s["errors"], "count", t))
            for key in ("p50_ms", "p99_ms"):
                if s.get(key) is not None:
                    out.append(row(f"series_{key}", s[key], "ms", t))
        return out


def _empty_errors() -> dict[str, int]:
    return dict.fromkeys(ERROR_CLASSES, 0)


# -- requests and checks -----------------------------------------------------------


def _repeats_keys(workload: Any) -> bool:
    if isinstance(workload, str) and not workload.startswith("/"):
        from h3lab.bench.workloads import make_workload

        workload = make_workload(workload)
    return bool(getattr(workload, "repeats_keys", True))


def resolve_requests(workload: Any, count: int) -> tuple[str, list[BenchRequest]]:
    """(name, requests) from a Workload, a workload name, a path, or BenchRequests."""
    from h3lab.bench.workloads import BenchRequest, make_workload

    if isinstance(workload, BenchRequest):
        return workload.path, [workload]
    if isinstance(workload, str):
        if workload.startswith("/"):
            return workload, [BenchRequest("GET", workload)]
        workload = make_workload(workload)
    if hasattr(workload, "requests") and callable(workload.requests):
        reqs = list(workload.requests(count))
        name = str(getattr(workload, "name", type(workload).__name__))
    else:
        reqs = list(workload)
        name = "custom"
    if not reqs:
        raise ValueError("the workload produced no requests")
    return name, reqs


def _content_type_ok(expected: str | None, actual: str | None) -> bool:
    if expected is None:
        return True
    if actual is None:
        return False
    exp = expected.replace(" ", "").lower()
    act = actual.replace(" ", "").lower()
    # "text/plain" accepts "text/plain; charset=utf-8"; a stated parameter must match exactly.
    return act == exp if ";" in exp else act.split(";", 1)[0] == exp


def check_response(req: BenchRequest, status: int, ctype: str | None, body: bytes) -> str | None:
    """The error class of a received response, or None when it is as expected."""
    if status != req.expect_status:
        return "status_mismatch"
    if not _content_type_ok(req.expect_content_type, ctype):
        return "body_mismatch"
    if req.expect_body is not None and body != req.expect_body:
        return "body_mismatch"
    return None


def _split_url(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"url must look like http://host:port, got {url!r}")
    base = f"http://{parts.netloc}"
    return base, parts.hostname, parts.port or 80


def _headers(req: BenchRequest) -> dict[str, str]:
    return {"Content-Type": req.content_type} if req.content_type else {}


def _classify(exc: BaseException) -> str:
    import aiohttp

    # Order matters: ServerTimeoutError is a TimeoutError and a ClientError;
    # ClientConnectorError is a ClientOSError.
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, aiohttp.ClientConnectorError | ConnectionRefusedError):
        return "connect"
    if isinstance(exc, aiohttp.ServerDisconnectedError | ConnectionResetError | BrokenPipeError):
        return "reset"
    if isinstance(exc, aiohttp.ClientOSError) and exc.errno in (errno.ECONNRESET, errno.EPIPE):
        return "reset"
    if isinstance(exc, asyncio.IncompleteReadError | EOFError):
        return "reset"
    return "read"


# -- verification ------------------------------------------------------------------


def _distinct(requests: Iterable[BenchRequest]) -> list[BenchRequest]:
    seen: set[Any] = set()
    out = []
    for req in requests:
        key = (
            req.method,
            req.path,
            req.body,
            req.content_type,
            req.expect_status,
            req.expect_content_type,
            req.expect_body,
        )
        if key not in seen:
            seen.add(key)
            out.append(req)
    return out


async def averify(
    url: str,
    requests: Iterable[BenchRequest],
    *,
    require_headers: Sequence[str] = ("date", "server"),
    timeout: float = 5.0,
) -> int:
    """Async ``verify``; returns the number of requests sent."""
    import aiohttp

    base, _, _ = _split_url(url)
    problems: list[str] = []
    distinct = _distinct(requests)
    async with aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=timeout), auto_decompress=False
    ) as session:
        for req in distinct:
            where = f"{req.method} {req.path}"
            try:
                async with session.request(
                    req.method, base + req.path, data=req.body or None, headers=_headers(req)
                ) as resp:
                    body = await resp.read()
                    status, headers = resp.status, resp.headers
            except Exception as exc:
                problems.append(f"{where}: {_classify(exc)} error: {exc!r}")
                continue
            if status != req.expect_status:
                problems.append(f"{where}: status {status}, expected {req.expect_status}")
            ctype = headers.get("Content-Type")
            if not _content_type_ok(req.expect_content_type, ctype):
                problems.append(
                    f"{where}: content-type {ctype!r}, expected {req.expect_content_type!r}"
                )
            if req.expect_body is not None and body != req.expect_body:
                problems.append(f"{where}: body {body[:200]!r}, expected {req.expect_body[:200]!r}")
            problems.extend(
                f"{where}: missing {name!r} header"
                for name in require_headers
                if name not in headers
            )
    if problems:
        more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
        raise VerificationError(
            f"{len(problems)} verification problem(s) at {url}: " + "; ".join(problems[:10]) + more
        )
    return len(distinct)


def verify(
    url: str,
    requests: Iterable[BenchRequest],
    *,
    require_headers: Sequence[str] = ("date", "server"),
    timeout: float = 5.0,
) -> None:
    """Send each distinct request once; raise ``VerificationError`` listing what differed.

    TechEmpower-style: status, content type (media type, or exactly when the
    expectation has parameters) and body (bytes, exactly) when the request
    states them, plus the presence of ``require_headers`` (``Date`` and
    ``Server`` by default, which h3lab always sends).
    """
    reqs = list(requests)
    run_async(lambda: averify(url, reqs, require_headers=require_headers, timeout=timeout))


# -- shared run state ----------------------------------------------------------------


class _Run:
    """Counters of one run, split between the warm-up and the timed phase."""

    def __init__(self, clock: Callable[[], float], measure_start: float) -> None:
        self.clock = clock
        self.measure_start = measure_start
        self.recorder = LatencyRecorder(start=measure_start, clock=clock)
        self.errors = _empty_errors()
        self.status_counts: dict[int | str, int] = {}
        self.requests = 0
        self.warmup_requests = 0
        self.warmup_errors = 0
        self.issued = 0
        self.notes: list[str] = []

    def measuring(self, sent_at: float) -> bool:
        return sent_at >= self.measure_start

    def response(
        self,
        req: BenchRequest,
        sent_at: float,
        status: int,
        ctype: str | None,
        body: bytes,
        latency_from: float | None = None,
    ) -> None:
        done = self.clock()
        self.status_counts[status] = self.status_counts.get(status, 0) + 1
        problem = check_response(req, status, ctype, body)
        if not self.measuring(sent_at):
            if problem is None:
                self.warmup_requests += 1
            else:
                self.warmup_errors += 1
            return
        if problem is None:
            self.requests += 1
            self.recorder.record(done - (sent_at if latency_from is None else latency_from), done)
        else:
            self.errors[problem] += 1
            self.recorder.error(done)

    def error(self, kind: str, sent_at: float, count: int = 1) -> None:
        if not self.measuring(sent_at):
            self.warmup_errors += count
            return
        self.errors[kind] += count
        done = self.clock()
        for _ in range(count):
            self.recorder.error(done)

    def result(self, **kw: Any) -> LoadResult:
        end = self.clock()
        self.recorder.finish(end)
        elapsed = max(end - self.measure_start, 1e-9)
        hist = self.recorder.hist
        return LoadResult(
            engine="aiohttp",
            requests=self.requests,
            errors=self.errors,
            status_counts=self.status_counts,
            throughput_rps=self.requests / elapsed,
            duration_s=elapsed,
            latency=histogram_percentiles(hist),
            series=self.recorder.series.rows(),
            histoblob=self.recorder.encode(),
            warmup_requests=self.warmup_requests,
            warmup_errors=self.warmup_errors,
            notes=self.notes,
            **kw,
        )


async def _bounded(
    tasks: list[asyncio.Task[Any]], hard_end: float, clock: Callable[[], float], run: _Run
) -> None:
    """Wait for ``tasks`` until ``hard_end``; cancel what is left (it counts as timeouts)."""
    _, pending = await asyncio.wait(tasks, timeout=max(0.0, hard_end - clock()))
    if pending:
        run.notes.append(f"hard wall-clock bound reached: {len(pending)} worker(s) cancelled")
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    for task in tasks:
        if task.done() and not task.cancelled() and task.exception() is not None:
            # A bug in a worker must not pass for a quiet run.
            raise task.exception()  # type: ignore[misc]


def _slices(reqs: list[BenchRequest], n: int) -> list[list[BenchRequest]]:
    """Strided slices keep each worker's share distributed like the whole workload."""
    return [reqs[k::n] or [reqs[k % len(reqs)]] for k in range(n)]


# -- closed loop ---------------------------------------------------------------------


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
    if not _repeats_keys(workload):
        wanted = requests or int((duration or max_duration) + warmup) * UNIQUE_RATE_GUESS
        pool = min(max(pool, wanted), UNIQUE_POOL_CAP)
    name, reqs = resolve_requests(workload, pool)
    if pipelining > 1 and any(r.method == "HEAD" for r in reqs):
        raise ValueError("the pipelining path cannot parse responses to HEAD requests")
    base, host, port = _split_url(url)
    clock = time.perf_counter
    start = clock()
    run = _Run(clock, start + warmup)
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
            for s in _slices(reqs, connections)
        ]
        await _bounded(tasks, hard_end, clock, run)
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
    run: _Run,
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
                    req.method, base + req.path, data=req.body or None, headers=_headers(req)
                ) as resp:
                    body = await resp.read()
                    run.response(req, sent, resp.status, resp.headers.get("Content-Type"), body)
            except asyncio.CancelledError:
                run.error("timeout", sent)  # abandoned at the hard bound
                raise
            except Exception as exc:
                kind = _classify(exc)
                run.error(kind, sent)
                if kind == "connect":
                    await asyncio.sleep(CONNECT_BACKOFF_S)

    try:
        tasks = [asyncio.ensure_future(worker(s)) for s in _slices(reqs, connections)]
        await _bounded(tasks, hard_end, run.clock, run)
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
    run: _Run,
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
            assert reader is not None
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
                    kind = "read" if isinstance(exc, httptools.HttpParserError) else _classify(exc)
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


# -- open loop ---------------------------------------------------------------------


async def open_loop(
    url: str,
    workload: Any,
    *,
    rate: float,
    duration: float,
    connections: int = 64,
    timeout: float = 5.0,
) -> LoadResult:
    """The async open-loop engine (see ``run_open_loop``)."""
    import aiohttp

    if rate <= 0 or duration <= 0:
        raise ValueError(f"rate and duration must be > 0, got rate={rate}, duration={duration}")
    if connections < 1:
        raise ValueError(f"connections must be >= 1, got {connections}")
    total = max(1, int(rate * duration))
    cap = UNIQUE_POOL_CAP if not _repeats_keys(workload) else DEFAULT_POOL
    name, reqs = resolve_requests(workload, min(total, cap))
    base, _, _ = _split_url(url)
    clock = time.perf_counter
    t0 = clock() + 0.05  # a moment for the workers to start before the first slot
    run = _Run(clock, t0)
    hard_end = t0 + duration + timeout + SLACK_S
    queue: asyncio.Queue[tuple[float, BenchRequest] | None] = asyncio.Queue()
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=connections, limit_per_host=connections),
        timeout=aiohttp.ClientTimeout(total=timeout),
        auto_decompress=False,
    )

    async def dispatcher() -> None:
        i = 0
        n = len(reqs)
        while i < total:
            now = clock()
            due = t0 + i / rate
            if due > now:
                await asyncio.sleep(due - now)
                continue
            # Everything already due goes in at once: a late wake-up must not
            # shift the timetable (that would be coordinated omission again).
            while i < total and t0 + i / rate <= now:
                queue.put_nowait((t0 + i / rate, reqs[i % n]))
                i += 1
        for _ in range(connections):
            queue.put_nowait(None)

    async def worker() -> None:
        while True:
            item = await queue.get()
            if item is None:
                return
            intended, req = item
            try:
                async with session.request(
                    req.method, base + req.path, data=req.body or None, headers=_headers(req)
                ) as resp:
                    body = await resp.read()
                    run.response(
                        req, intended, resp.status, resp.headers.get("Content-Type"), body, intended
                    )
            except asyncio.CancelledError:
                run.error("timeout", intended)
                raise
            except Exception as exc:
                kind = _classify(exc)
                run.error(kind, intended)
                if kind == "connect":
                    await asyncio.sleep(CONNECT_BACKOFF_S)

    try:
        tasks = [asyncio.ensure_future(dispatcher())]
        tasks += [asyncio.ensure_future(worker()) for _ in range(connections)]
        await _bounded(tasks, hard_end, clock, run)
        # Requests still queued at the hard bound waited longer than the
        # timeout since their intended start: they are timeouts, not silence.
        left = 0
        while not queue.empty():
            item = queue.get_nowait()
            if item is not None:
                run.error("timeout", item[0])
                left += 1
        if left:
            run.notes.append(f"{left} scheduled request(s) never sent before the hard bound")
    finally:
        await session.close()
    return run.result(
        loop_mode="open",
        url=url,
        workload=name,
        connections=connections,
        pipelining=1,
        target_rate=float(rate),
    )


def run_open_loop(
    url: str,
    workload: Any,
    *,
    rate: float,
    duration: float,
    connections: int = 64,
    timeout: float = 5.0,
) -> LoadResult:
    """Open-loop load at ``rate`` req/s for ``duration`` s (wrk2 method, no coordinated omission).

    Request ``i`` is intended to start at ``t0 + i / rate``; its latency is
    completion minus that intended start, including any time it waited for a
    free connection. If the client cannot keep up, achieved
    ``throughput_rps`` falls below ``target_rate`` and latencies grow: both
    are reported, neither hidden.
    """
    return run_async(
        lambda: open_loop(
            url, workload, rate=rate, duration=duration, connections=connections, timeout=timeout
        )
    )


# -- running a coroutine from sync code ----------------------------------------------


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop
    return uvloop.new_event_loop


def run_async(make: Callable[[], Awaitable[T]]) -> T:
    """Run ``make()`` on a fresh (uv)loop; on a helper thread if a loop is already running."""

    def go() -> T:
        async def main() -> T:
            return await make()

        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            return runner.run(main())

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return go()
    # Called from inside an event loop (a notebook cell, an async test): the
    # load needs its own loop, so it gets its own thread.
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="h3lab-load") as pool:
        return pool.submit(go).result()


__all__ = [
    "ERROR_CLASSES",
    "LoadResult",
    "VerificationError",
    "averify",
    "check_response",
    "closed_loop",
    "encode_request",
    "open_loop",
    "pipelined_exchange",
    "resolve_requests",
    "run_async",
    "run_closed_loop",
    "run_open_loop",
    "verify",
]
