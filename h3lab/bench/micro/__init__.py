"""In-process micro-benchmarks of each strategy family (no server, no sockets).

``run_micro("router", quick=True)`` runs one target and returns tidy rows
(``h3lab bench micro`` stores them with ``RunWriter``).

Layout: the harness first, then one module per target, then their names.

``harness``     calibration, warm-up, interleaved sampling, stability checks and
                the allocation pass (pyperf/asv style), plus the replay helpers
                the targets share; it imports no target
``router``      ``router.match`` per strategy and table size, bare and cached
``cache``       route-cache get/put per policy and capacity (and its hit ratio)
``pool``        event acquire + release per pool policy, size and concurrency
``middleware``  a request through ``n`` no-op middlewares per execution
``dispatch``    a full in-process dispatch per preset, without parsing
``protocol``    the server's protocol per preset, parsing included, and the
                raw httptools floor
``stages``      that per-request cost split by stage (parse, head, event,
                route, chain, encode, write, task), each timed alone
``stage_report`` the ``stages`` rows read back: the unattributed remainder
                and the markdown breakdown (``stage_table``); times nothing
``targets``     ``TARGETS`` (name -> bench), the quick grids and ``run_micro``

Every target imports the harness and nothing imports a target but
``targets`` (and ``stages``, which reuses the ``protocol`` target's request
batch and answer check; ``protocol`` imports no target), so there is no
import cycle (there was one between the flat ``micro.py`` and ``wire.py``,
which the ``protocol`` target replaces).
Load measurement, which needs a server process and sockets, is
``h3lab.bench.load``.
"""

from __future__ import annotations

from h3lab.bench.micro.cache import bench_cache
from h3lab.bench.micro.dispatch import bench_dispatch
from h3lab.bench.micro.harness import (
    BenchmarkError,
    BenchmarkStabilityWarning,
    Case,
    alloc_rows,
    calibrate,
    run_cases,
    time_fn,
)
from h3lab.bench.micro.middleware import bench_middleware
from h3lab.bench.micro.pool import bench_pool
from h3lab.bench.micro.protocol import bench_protocol
from h3lab.bench.micro.router import bench_router
from h3lab.bench.micro.stage_report import stage_table
from h3lab.bench.micro.stages import bench_stages
from h3lab.bench.micro.targets import TARGETS, run_micro

__all__ = [
    "TARGETS",
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
    "bench_stages",
    "calibrate",
    "run_cases",
    "run_micro",
    "stage_table",
    "time_fn",
]
