"""h3lab's measurement suite.

Three packages, by what is measured and how:

``micro``      in-process micro-benchmarks per strategy family (``run_micro``):
               the harness, then one module per target; no server, no sockets
``load``       load against a server on a socket: result, verification, closed
               loop, open loop, wrk
``hardening``  hostile requests, conformance against peers, soak, body costs

and flat modules, one concept each, that several of those (and the studies
and ``h3lab tune``) share, so none of the packages owns them:

``workloads``  seeded route tables and request generators with expected
               answers: replayed by micro targets, sent by load engines,
               simulated by ``cachesim``
``apps``       the app the benchmarks target (``h3lab.bench.apps:create_app``):
               served to load runs, dispatched in-process by micro targets
``stats``      medians, bootstrap CIs, pyperf-style stability checks,
               interleaving (the micro harness and the studies)
``histogram``  HdrHistogram latency recording and the over-time metrics: the
               load engines write it, the studies decode stored histograms
``cachesim``   hit-ratio simulation with Belady/unbounded bounds and
               libCacheSim: a replay without a timer, neither micro nor load
``server``     ``ServerProcess``: a server under test in its own process group,
               sampled (load runs, peers, rounds, conformance, soak, tune)
``rounds``     repeated, interleaved, paired load rounds over fresh servers: the
               one way servers are compared (peers, studies, tune)
``peers``      h3lab against other Python servers on rounds; ``peer_apps/``
               holds their apps
``results``    the tidy results store (``RunWriter``, ``load_runs``)
``machine``    machine and git metadata recorded with every run
``cli``        the ``h3lab bench`` command

Import what you need; nothing heavy is imported here. pandas, pyarrow and
libcachesim are imported lazily, inside the functions that need them.
"""

from __future__ import annotations

from h3lab.bench.route_tables import BenchRequest, RouteSpec, route_table
from h3lab.bench.stats import bootstrap_ci, interleave, ratio_ci, stability_warnings, summarize
from h3lab.bench.workloads import WORKLOADS, Workload, make_workload

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
