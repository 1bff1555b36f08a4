"""The open-loop engine: a constant arrival rate (the wrk2 method).

Request ``i`` is *intended* to start at ``t0 + i / rate``; its latency is
``completion - intended start``. A request whose intended start passes while
every connection is busy waits in a queue and is still measured from its
intended start, so a stall shows up in every request scheduled during it
(no coordinated omission). Use it for latency; ``closed_loop`` for
throughput.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from h3lab.bench.load.client import (
    CONNECT_BACKOFF_S,
    DEFAULT_POOL,
    SLACK_S,
    UNIQUE_POOL_CAP,
    bounded,
    classify,
    repeats_keys,
    request_headers,
    resolve_requests,
    run_async,
    split_url,
)
from h3lab.bench.load.result import LoadResult, RunCounters

if TYPE_CHECKING:
    from h3lab.bench.route_tables import BenchRequest


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
    cap = UNIQUE_POOL_CAP if not repeats_keys(workload) else DEFAULT_POOL
    name, reqs = resolve_requests(workload, min(total, cap))
    base, _, _ = split_url(url)
    clock = time.perf_counter
    t0 = clock() + 0.05  # a moment for the workers to start before the first slot
    run = RunCounters(clock, t0)
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
                    req.method, base + req.path, data=req.body or None, headers=request_headers(req)
                ) as resp:
                    body = await resp.read()
                    run.response(
                        req, intended, resp.status, resp.headers.get("Content-Type"), body, intended
                    )
            except asyncio.CancelledError:
                run.error("timeout", intended)
                raise
            except Exception as exc:
                kind = classify(exc)
                run.error(kind, intended)
                if kind == "connect":
                    await asyncio.sleep(CONNECT_BACKOFF_S)

    try:
        tasks = [asyncio.ensure_future(dispatcher())]
        tasks += [asyncio.ensure_future(worker()) for _ in range(connections)]
        await bounded(tasks, hard_end, clock, run)
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
