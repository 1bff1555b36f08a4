"""Load engines with one result schema: closed loop, open loop, verification, wrk."""

from __future__ import annotations

from h3lab.bench.load.closed_loop import (
    ERROR_CLASSES,
    SLACK_S,
    LoadResult,
    VerificationError,
    averify,
    check_response,
    closed_loop,
    encode_request,
    open_loop,
    pipelined_exchange,
    resolve_requests,
    run_async,
    run_closed_loop,
    run_open_loop,
    verify,
)
from h3lab.bench.load.wrk import WrkError, run_wrk, wrk_available

__all__ = [
    "ERROR_CLASSES",
    "SLACK_S",
    "LoadResult",
    "VerificationError",
    "WrkError",
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
    "run_wrk",
    "verify",
    "wrk_available",
]
