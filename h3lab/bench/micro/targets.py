"""The micro targets by name, their quick-mode grids, and ``run_micro``.

``TARGETS`` is the one list of targets: ``h3lab bench micro --target``
offers its keys, and a new target is one module plus one entry here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from h3lab.bench.micro.cache import bench_cache
from h3lab.bench.micro.dispatch import bench_dispatch
from h3lab.bench.micro.middleware import bench_middleware
from h3lab.bench.micro.pool import bench_pool
from h3lab.bench.micro.protocol import bench_protocol
from h3lab.bench.micro.router import bench_router
from h3lab.bench.micro.stages import bench_stages

TARGETS: dict[str, Callable[..., list[dict[str, Any]]]] = {
    "router": bench_router,
    "cache": bench_cache,
    "pool": bench_pool,
    "middleware": bench_middleware,
    "dispatch": bench_dispatch,
    "protocol": bench_protocol,
    "stages": bench_stages,
}

_QUICK_TIMING = {"repetitions": 3, "warmups": 1, "min_time": 0.002, "alloc_ops": 50}
_QUICK: dict[str, dict[str, Any]] = {
    "router": {"sizes": (10, 100), "n_requests": 500},
    "cache": {"sizes": (16, 128), "routes": 100, "n_requests": 1000},
    "pool": {"sizes": (16,), "concurrency": (1, 16)},
    "middleware": {"counts": (0, 1, 4)},
    "dispatch": {"n_ids": 16},
    "protocol": {"presets": ("baseline", "performance")},
    "stages": {"presets": ("performance",)},
}


def run_micro(target: str, quick: bool = False, **kw: Any) -> list[dict[str, Any]]:
    """Run one target's bench by name (a key of ``TARGETS``).

    ``quick=True`` shrinks grids and samples (all seven together take a few
    seconds: smoke tests and CI, not measurements). Keyword arguments go to
    the bench (and the timing: ``repetitions``, ``warmups``, ``min_time``,
    ``track_alloc``, ``alloc_ops``) and override the quick defaults.
    """
    try:
        bench = TARGETS[target]
    except KeyError:
        raise ValueError(f"micro target must be one of {list(TARGETS)}, got {target!r}") from None
    params = {**_QUICK_TIMING, **_QUICK[target]} if quick else {}
    params.update(kw)
    return bench(**params)
