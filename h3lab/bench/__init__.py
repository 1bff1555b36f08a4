"""h3lab's measurement suite.

Modules (import what you need; nothing heavy is imported here):

``workloads``  seeded route tables and request generators with expected answers
``apps``       the app load tests target (``h3lab.bench.apps:create_app``)
``stats``      medians, bootstrap CIs, pyperf-style stability checks, interleaving
``micro``      in-process micro-benchmarks per strategy family (``run_micro``)
``cachesim``   hit-ratio simulation with Belady/unbounded bounds and libCacheSim
``results``    the tidy results store (``RunWriter``, ``load_runs``)
``machine``    machine and git metadata recorded with every run

The load generator, server process, peers and the ``h3lab bench`` command
live in ``load``, ``histogram``, ``server``, ``peers``, ``wrk`` and ``cli``.
pandas, pyarrow and libcachesim are imported lazily, inside the functions
that need them.
"""

from __future__ import annotations

from h3lab.bench.stats import bootstrap_ci, interleave, ratio_ci, stability_warnings, summarize
from h3lab.bench.workloads import (
    WORKLOADS,
    BenchRequest,
    RouteSpec,
    Workload,
    make_workload,
    route_table,
)

__all__ = [
    "WORKLOADS",
    "BenchRequest",
    "RouteSpec",
    "Workload",
    "bootstrap_ci",
    "interleave",
    "make_workload",
    "ratio_ci",
    "route_table",
    "stability_warnings",
    "summarize",
]
