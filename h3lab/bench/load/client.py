"""The client side the Python engines share: requests, URLs, errors, bounds, the loop.

Every engine enforces a hard wall-clock bound (duration + timeout +
``SLACK_S``: ``bounded``), returns whatever it measured if the server dies,
and never hangs. The sync entry points run on uvloop when it is installed, on
a helper thread when called from a running event loop (notebooks):
``run_async``. ``classify`` maps a client exception to its error class
(``h3lab.bench.load.result``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from h3lab.bench.load.result import RunCounters
    from h3lab.bench.route_tables import BenchRequest

T = TypeVar("T")

SLACK_S = 2.0
"""Added to duration + timeout for the hard wall-clock bound."""
CONNECT_BACKOFF_S = 0.01
"""Pause after a connect error so a dead server does not turn the client into a busy loop."""
DEFAULT_POOL = 10_000
"""Requests drawn from a workload for a duration-bounded run (cycled)."""
# A workload that must never repeat a key gets a pool sized to the run, up to
# this cap (generation costs ~8 us a request); beyond it the pool cycles.
UNIQUE_POOL_CAP = 400_000
UNIQUE_RATE_GUESS = 40_000  # requests/s assumed when sizing for a timed run


def repeats_keys(workload: Any) -> bool:
    if isinstance(workload, str) and not workload.startswith("/"):
        from h3lab.bench.workloads import make_workload

        workload = make_workload(workload)
    return bool(getattr(workload, "repeats_keys", True))


def resolve_requests(workload: Any, count: int) -> tuple[str, list[BenchRequest]]:
    """(name, requests) from a Workload, a workload name, a path, or BenchRequests."""
    from h3lab.bench.route_tables import BenchRequest
    from h3lab.bench.workloads import make_workload

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


def split_url(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"url must look like http://host:port, got {url!r}")
    base = f"http://{parts.netloc}"
    return base, parts.hostname, parts.port or 80


def request_headers(req: BenchRequest) -> dict[str, str]:
    return {"Content-Type": req.content_type} if req.content_type else {}


def classify(exc: BaseException) -> str:
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


async def bounded(
    tasks: list[asyncio.Task[Any]], hard_end: float, clock: Callable[[], float], run: RunCounters
) -> None:
    """Wait for ``tasks`` until ``hard_end``; cancel what is left (it counts as timeouts)."""
    _, pending = await asyncio.wait(tasks, timeout=max(0.0, hard_end - clock()))
    if pending:
        run.notes.append(f"hard wall-clock bound reached: {len(pending)} worker(s) cancelled")
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    for task in tasks:
        if task.done() and not task.cancelled():
            error = task.exception()
            if error is not None:
                raise error  # a bug in a worker must not pass for a quiet run


def slices(reqs: list[BenchRequest], n: int) -> list[list[BenchRequest]]:
    """Strided slices keep each worker's share distributed like the whole workload."""
    return [reqs[k::n] or [reqs[k % len(reqs)]] for k in range(n)]


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
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

        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            return runner.run(main())

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return go()
    # Called from inside an event loop (a notebook cell, an async test): the
    # load needs its own loop, so it gets its own thread.
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="h3lab-load") as pool:
        return pool.submit(go).result()
