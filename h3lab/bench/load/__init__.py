"""Load generation against a server on a socket, with one result schema for every engine.

``run_closed_loop(url, "zipf", connections=64, duration=10)`` and
``run_open_loop(url, "zipf", rate=5000, duration=10)`` return a
``LoadResult``; ``verify(url, requests)`` checks every distinct answer
before any timing; ``run_wrk`` drives wrk into the same ``LoadResult``.

Layout, one concept per module:

``result``        ``LoadResult``, the error classes and the accounting of a run
``verification``  ``verify``: each distinct request once, status/type/body checked
``closed_loop``   N keep-alive connections, each sending when answered (throughput);
                  aiohttp, or raw asyncio streams when pipelining
``open_loop``     a constant arrival rate, latency from the intended start (wrk2)
``wrk``           wrk (C) as the closed-loop generator, its output parsed
``client``        what the Python engines share: request pools, URL splitting,
                  error classification, the hard wall-clock bound, ``run_async``

The latency histogram (``h3lab.bench.histogram``) stays outside: the studies
decode stored histograms without running any load. The server process under
test (``h3lab.bench.server``) and the interleaved rounds that compare servers
(``h3lab.bench.rounds``) stay outside too: they are used by the peers
comparison, the studies and ``h3lab tune`` alike, with any engine.
"""

from __future__ import annotations

from h3lab.bench.load.client import SLACK_S, resolve_requests, run_async
from h3lab.bench.load.closed_loop import encode_request, pipelined_exchange, run_closed_loop
from h3lab.bench.load.open_loop import run_open_loop
from h3lab.bench.load.result import ERROR_CLASSES, LoadResult, check_response
from h3lab.bench.load.verification import VerificationError, averify, verify
from h3lab.bench.load.wrk import WrkError, run_wrk, wrk_available

__all__ = [
    "ERROR_CLASSES",
    "SLACK_S",
    "LoadResult",
    "VerificationError",
    "WrkError",
    "averify",
    "check_response",
    "encode_request",
    "pipelined_exchange",
    "resolve_requests",
    "run_async",
    "run_closed_loop",
    "run_open_loop",
    "run_wrk",
    "verify",
    "wrk_available",
]
