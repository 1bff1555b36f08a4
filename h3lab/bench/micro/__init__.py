"""In-process micro-benchmarks of each strategy family (no server, no sockets)."""

from __future__ import annotations

from h3lab.bench.micro.harness import (
    BENCHES,
    BenchmarkError,
    BenchmarkStabilityWarning,
    Case,
    alloc_rows,
    bench_cache,
    bench_dispatch,
    bench_middleware,
    bench_pool,
    bench_protocol,
    bench_router,
    calibrate,
    medians,
    run_cases,
    run_micro,
    time_fn,
)

__all__ = [
    "BENCHES",
    "BenchmarkError",
    "BenchmarkStabilityWarning",
    "Case",
    "alloc_rows",
    "bench_cache",
    "bench_dispatch",
    "bench_middleware",
    "bench_pool",
    "bench_protocol",
    "bench_router",
    "calibrate",
    "medians",
    "run_cases",
    "run_micro",
    "time_fn",
]
