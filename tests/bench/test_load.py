"""The load engines: accounting, coordinated omission, pipelining, bounds, verification."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from h3lab.bench.apps import json_request, plaintext_request, user_request
from h3lab.bench.load import (
    ERROR_CLASSES,
    SLACK_S,
    LoadResult,
    VerificationError,
    averify,
    encode_request,
    pipelined_exchange,
    run_closed_loop,
    run_open_loop,
)
from h3lab.bench.load.closed_loop import closed_loop
from h3lab.bench.workloads import BenchRequest
from h3lab.examples.demo import build

OK_BODY = b"ok"
OK_REQ = BenchRequest("GET", "/ok", expect_content_type="text/plain", expect_body=OK_BODY)


class ToyServer:
    """A tiny HTTP/1.1 keep-alive server on its own thread and event loop.

    ``mode``: "ok" answers every request; "stall_once" blocks its whole event
    loop for ``stall_s`` once, at the first request ``stall_after`` s after the
    first one (a GC pause, as the server sees it); "die_after" stops listening
    and drops every connection after ``limit`` responses; "silent" reads and
    never answers.
    """

    def __init__(
        self, mode: str = "ok", *, stall_after: float = 0.5, stall_s: float = 0.3, limit: int = 50
    ) -> None:
        self.mode = mode
        self.stall_after = stall_after
        self.stall_s = stall_s
        self.limit = limit
        self.served = 0
        self.first: float | None = None
        self.stalled = False
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.base_events.Server | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ToyServer:
        self._thread.start()
        assert self._ready.wait(5)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def start() -> None:
            self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
            self.port = self._server.sockets[0].getsockname()[1]

        self._loop.run_until_complete(start())
        self._ready.set()
        self._loop.run_forever()
        for w in list(self._writers):
            w.close()
        if self._server is not None:
            self._server.close()
        self._loop.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                try:
                    await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                now = time.perf_counter()
                if self.first is None:
                    self.first = now
                if self.mode == "silent":
                    continue
                if (
                    self.mode == "stall_once"
                    and not self.stalled
                    and now - self.first >= self.stall_after
                ):
                    self.stalled = True
                    time.sleep(self.stall_s)  # blocks the whole loop, like a GC pause
                # counted before the write: the client may assert on it as soon as it reads
                self.served += 1
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n"
                    b"date: x\r\nserver: toy\r\n\r\nok"
                )
                if self.mode == "die_after" and self.served >= self.limit:
                    assert self._server is not None
                    self._server.close()
                    for w in list(self._writers):
                        w.transport.abort()
                    return
        finally:
            self._writers.discard(writer)


@pytest.fixture
def toy() -> Iterator[Any]:
    servers: list[ToyServer] = []

    def make(mode: str = "ok", **kw: Any) -> ToyServer:
        server = ToyServer(mode, **kw).__enter__()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.__exit__()


# -- accounting ------------------------------------------------------------------------------


def test_closed_loop_counts_every_request(toy: Any) -> None:
    server = toy()
    result = run_closed_loop(server.url, [OK_REQ], connections=3, duration=0.6, warmup=0.2)
    assert isinstance(result, LoadResult)
    assert result.engine == "aiohttp" and result.loop_mode == "closed"
    assert result.requests > 0 and result.errors_total == 0
    assert set(result.errors) == set(ERROR_CLASSES)
    # every exchange the server answered is either warm-up or measured
    assert result.requests + result.warmup_requests == server.served
    assert result.status_counts == {200: server.served}
    assert result.throughput_rps == pytest.approx(result.requests / result.duration_s)
    assert result.latency["p50_ms"] is not None and result.histoblob
    assert sum(s["requests"] for s in result.series) == result.requests


def test_closed_loop_request_bound_is_exact(toy: Any) -> None:
    server = toy()
    result = run_closed_loop(
        server.url, [OK_REQ], connections=4, duration=None, requests=137, warmup=0
    )
    assert result.requests == 137
    assert server.served == 137


def test_mismatches_are_counted_not_hidden(toy: Any) -> None:
    server = toy()
    wrong_status = BenchRequest("GET", "/a", expect_status=404)
    wrong_body = BenchRequest("GET", "/b", expect_body=b"nope")
    wrong_type = BenchRequest("GET", "/c", expect_content_type="application/json")
    result = run_closed_loop(
        # one connection cycles through the three in order: 10 of each
        server.url,
        [wrong_status, wrong_body, wrong_type],
        connections=1,
        duration=None,
        requests=30,
        warmup=0,
    )
    assert result.requests == 0
    assert result.errors["status_mismatch"] == 10
    assert result.errors["body_mismatch"] == 20  # wrong body and wrong content type
    assert result.status_counts == {200: 30}
    assert result.throughput_rps == 0


def test_connect_errors_when_nothing_listens() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: connections are refused
        start = time.monotonic()
        result = run_closed_loop(
            f"http://127.0.0.1:{port}", [OK_REQ], connections=2, duration=0.3, warmup=0
        )
    assert result.requests == 0
    assert result.errors["connect"] > 0
    assert time.monotonic() - start < 0.3 + 5 + SLACK_S


def test_server_dying_mid_run_returns_partial_results(toy: Any) -> None:
    server = toy("die_after", limit=40)
    start = time.monotonic()
    result = run_closed_loop(
        server.url, [OK_REQ], connections=2, duration=1.0, warmup=0, timeout=1.0
    )
    assert time.monotonic() - start < 1.0 + 1.0 + SLACK_S + 1
    assert 0 < result.requests <= 40
    assert result.errors["reset"] + result.errors["connect"] + result.errors["read"] > 0


def test_silent_server_hits_the_hard_bound_and_counts_timeouts(toy: Any) -> None:
    server = toy("silent")
    start = time.monotonic()
    closed = run_closed_loop(
        server.url, [OK_REQ], connections=2, duration=0.3, warmup=0, timeout=0.5
    )
    assert time.monotonic() - start < 0.3 + 0.5 + SLACK_S + 1
    assert closed.requests == 0 and closed.errors["timeout"] >= 2
    start = time.monotonic()
    opened = run_open_loop(server.url, [OK_REQ], rate=20, duration=0.5, connections=1, timeout=0.4)
    assert time.monotonic() - start < 0.5 + 0.4 + SLACK_S + 1
    # all 10 scheduled requests are accounted for: sent and timed out, or never sent
    assert opened.requests == 0 and opened.errors["timeout"] == 10


def test_open_loop_sends_the_schedule(toy: Any) -> None:
    server = toy()
    result = run_open_loop(server.url, [OK_REQ], rate=200, duration=1.0, connections=4)
    assert result.loop_mode == "open" and result.target_rate == 200
    assert result.requests + result.errors_total == 200
    assert server.served == 200


# -- coordinated omission ----------------------------------------------------------------------


def test_open_loop_sees_the_stall_closed_loop_hides_it(toy: Any) -> None:
    """The coordinated-omission demonstration (wrk2's argument, in miniature).

    The server freezes for 300 ms once. The closed loop has only 2 requests in
    flight during the freeze, so its p99 stays small (the max shows it). The
    open loop keeps its timetable: every request scheduled during the freeze
    is measured from its intended start, so its p99 shows the stall.
    """
    closed_server = toy("stall_once", stall_after=0.5, stall_s=0.3)
    closed = run_closed_loop(closed_server.url, [OK_REQ], connections=2, duration=2.0, warmup=0)
    open_server = toy("stall_once", stall_after=0.5, stall_s=0.3)
    opened = run_open_loop(open_server.url, [OK_REQ], rate=200, duration=2.0, connections=2)
    assert closed_server.stalled and open_server.stalled
    assert closed.errors_total == 0 and opened.errors_total == 0
    assert closed.requests > 400  # enough samples that 2 stalled ones sit above p99
    # both saw the stall at least once...
    assert closed.latency["max_ms"] >= 250
    assert opened.latency["max_ms"] >= 250
    # ...but only the open loop's percentiles admit it
    assert opened.latency["p99_ms"] >= 200
    assert closed.latency["p99_ms"] < 100
    assert opened.latency["p99_ms"] > 2 * closed.latency["p99_ms"]
    # the stall lands in the open loop's per-second series too
    assert max(s["p99_ms"] or 0 for s in opened.series) >= 200


# -- pipelining --------------------------------------------------------------------------------


def test_encode_request() -> None:
    req = BenchRequest("POST", "/echo", body=b'{"a":1}', content_type="application/json")
    wire = encode_request(req, "127.0.0.1:80")
    assert wire.startswith(b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1:80\r\n")
    assert b"Content-Length: 7\r\n" in wire and wire.endswith(b"\r\n\r\n" + req.body)
    assert b"Content-Length" not in encode_request(BenchRequest("GET", "/x"), "h")


async def test_pipelined_responses_come_back_in_order(live_factory: Any) -> None:
    live = await live_factory(build())
    batch = [plaintext_request(), user_request(1), json_request(), user_request(2), user_request(3)]
    batch += [BenchRequest("GET", "/nope", expect_status=404)]
    got = await pipelined_exchange("127.0.0.1", live.port, batch)
    assert [s for s, _, _ in got] == [200, 200, 200, 200, 200, 404]
    assert [b for _, _, b in got[:5]] == [r.expect_body for r in batch[:5]]
    assert got[0][1] == "text/plain; charset=utf-8" and got[1][1] == "application/json"


async def test_closed_loop_pipelining_path(live_factory: Any) -> None:
    live = await live_factory(build())
    reqs = [plaintext_request(), json_request(), *(user_request(i) for i in range(5))]
    result = await closed_loop(
        live.url, reqs, connections=2, duration=None, requests=160, pipelining=8, warmup=0
    )
    # every response was checked against its own request: an out-of-order
    # response would have been a body mismatch
    assert result.pipelining == 8
    assert result.errors_total == 0
    assert result.requests == 160
    assert live.server.requests == 160


# -- verification ------------------------------------------------------------------------------


async def test_verify_passes_and_reports_every_difference(live_factory: Any) -> None:
    live = await live_factory(build())
    good = [plaintext_request(), json_request(), user_request(5), plaintext_request()]
    assert await averify(live.url, good) == 3  # each distinct request once
    bad = [
        BenchRequest("GET", "/plaintext", expect_body=b"Hello"),
        BenchRequest("GET", "/json", expect_content_type="text/html"),
        BenchRequest("GET", "/missing"),
    ]
    with pytest.raises(VerificationError) as info:
        await averify(live.url, bad)
    text = str(info.value)
    assert "3 verification problem(s)" in text
    assert "GET /plaintext: body b'Hello, World!', expected b'Hello'" in text
    assert "content-type 'application/json', expected 'text/html'" in text
    assert "GET /missing: status 404, expected 200" in text


async def test_verify_requires_date_and_server_headers(toy: Any) -> None:
    server = toy()
    await averify(server.url, [OK_REQ])  # the toy sends both
    with pytest.raises(VerificationError, match="missing 'x-h3lab' header"):
        await averify(server.url, [OK_REQ], require_headers=("date", "x-h3lab"))


async def test_sync_engines_work_inside_a_running_loop(toy: Any) -> None:
    # a notebook cell runs inside an event loop: the sync API must still work
    server = toy()
    result = run_closed_loop(
        server.url, [OK_REQ], connections=1, duration=None, requests=5, warmup=0
    )
    assert result.requests == 5


def test_rows_are_tidy(toy: Any) -> None:
    server = toy()
    result = run_closed_loop(server.url, "/ok", connections=1, duration=1.2, warmup=0)
    rows = result.rows("bench-load", "r1", {"router": "trie"}, repetition=2, extra={"x": 1})
    by_metric = {r["metric"]: r for r in rows if r["t"] is None}
    for metric in (
        "throughput_rps",
        "latency_p50_ms",
        "latency_p99_9_ms",
        "latency_max_ms",
        "errors_total",
        "errors_timeout",
    ):
        assert metric in by_metric
    row = by_metric["throughput_rps"]
    assert row["study"] == "bench-load" and row["run_id"] == "r1" and row["router"] == "trie"
    assert row["workload"] == "/ok" and row["repetition"] == 2 and row["x"] == 1
    assert row["engine"] == "aiohttp" and row["unit"] == "req/s"
    series = [r for r in rows if r["metric"] == "series_requests"]
    assert series and all(isinstance(r["t"], int) for r in series)
    # the trailing partial second is not stored
    assert len(series) == len([s for s in result.series if not s["partial"]])


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        run_closed_loop("http://127.0.0.1:1", [OK_REQ], duration=None, requests=None)
    with pytest.raises(ValueError):
        run_closed_loop("ftp://x", [OK_REQ], duration=1)
    with pytest.raises(ValueError):
        run_open_loop("http://127.0.0.1:1", [OK_REQ], rate=0, duration=1)
