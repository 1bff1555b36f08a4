"""The measurements behind each study, as functions returning tidy rows.

Notebooks call these and nothing else measures: the grids, the servers, the
load. Each study has a *plan* (``plan(study, quick, **given)``): its default
sizes, shrunk when ``quick`` so the notebook runs in well under a minute, and
overridden by any parameter the notebook received that is not None.

Load methodology (studies 03-07)
--------------------------------
* The server under test runs in its own process (``ServerProcess``) pinned to
  CPU 0; the load generator is pinned to CPU 1 (when the machine has two).
* Every server is verified (status, content type, body, Date/Server headers)
  on the requests it will be sent before anything is timed.
* Throughput comes from a *saturating* closed loop. wrk (C) is used when
  installed: the Python client saturates long before the server does, which
  would hide every server-side difference. A sustained run is a sequence of
  back-to-back ``chunk_s`` wrk runs, which yields a throughput and p99 series
  (wrk keeps none itself). Without wrk, the aiohttp engine's per-second series.
* Latency distributions (ECDF, percentiles) come from an *open* loop at a fixed
  rate (wrk2 method, no coordinated omission), below every server's capacity.
* All of it is bounded in time and only ever targets 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

Rows = list[dict[str, Any]]

TRACE_SAMPLE = "data/traces/sample.csv"

# study -> (full plan, quick overrides)
PLANS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "route_cache": (
        {
            "policies": ["lru", "lfu", "fifo", "wtinylfu"],
            "workloads": ["uniform", "zipf", "scan", "adversarial", "trace"],
            "zipf_skews": [0.6, 0.8, 1.0, 1.2],
            "fractions": [0.01, 0.02, 0.05, 0.1, 0.2, 0.5],
            "routes": 1000,
            "n_requests": 30_000,
            "lookup_sizes": [64, 256, 1024, 4096],
            "lookup_workloads": ["uniform", "zipf", "scan", "adversarial"],
            "repetitions": 7,
            "min_time": 0.01,
            "bound_size": 1024,
            "bound_requests": 200_000,
            "libcachesim_policies": ["lru", "lfu", "fifo"],
            "trace_path": TRACE_SAMPLE,
        },
        {
            "zipf_skews": [0.8, 1.2],
            "fractions": [0.02, 0.1, 0.5],
            "routes": 200,
            "n_requests": 5_000,
            "lookup_sizes": [64, 512],
            "lookup_workloads": ["zipf", "adversarial"],
            "repetitions": 3,
            "min_time": 0.002,
            "bound_size": 256,
            "bound_requests": 20_000,
        },
    ),
    "router_scaling": (
        {
            "strategies": None,
            "sizes": [10, 100, 1000, 10000],
            "workload": "zipf",
            "cache_policy": "lru",
            "cache_size": 1024,
            "n_requests": 2000,
            "repetitions": 7,
            "min_time": 0.01,
        },
        {"sizes": [10, 100, 1000], "n_requests": 500, "repetitions": 3, "min_time": 0.002},
    ),
    "event_pool": (
        {
            "policies": None,
            "sizes": [16, 64, 256, 1024],
            "concurrency": [1, 16, 64, 256],
            "repetitions": 7,
            "min_time": 0.01,
            "e2e_pools": [["none", 0], ["bounded", 16], ["bounded", 256]],
            "e2e_connections": [16, 64],
            "e2e_repetitions": 3,
            "duration": 2.0,
            "warmup": 0.5,
            "engine": "auto",
        },
        {
            "sizes": [16, 256],
            "concurrency": [1, 16, 64],
            "repetitions": 3,
            "min_time": 0.002,
            "e2e_pools": [["none", 0], ["bounded", 256]],
            "e2e_connections": [32],
            "e2e_repetitions": 1,
            "duration": 1.0,
            "warmup": 0.3,
        },
    ),
    "memory_strategies": (
        {
            "strategies": None,
            "preset": "balanced",
            "duration": 15.0,
            "chunk_s": 1.0,
            "warmup": 1.0,
            "connections": 32,
            "workload": "zipf",
            "window_s": 3,
            "open_rate": 2000.0,
            "open_duration": 4.0,
            "engine": "auto",
        },
        {"duration": 3.0, "warmup": 0.3, "window_s": 1, "open_rate": 500.0, "open_duration": 1.0},
    ),
    "middleware": (
        {
            "executions": ["legacy", "fast"],
            "counts": [0, 1, 2, 4, 8, 16, 32],
            "kinds": ["onion", "before"],
            "repetitions": 7,
            "min_time": 0.01,
            "e2e_counts": [0, 8, 32],
            "e2e_kind": "onion",
            "e2e_repetitions": 3,
            "duration": 2.0,
            "warmup": 0.5,
            "connections": 32,
            "engine": "auto",
        },
        {
            "counts": [0, 4, 32],
            "kinds": ["onion"],
            "repetitions": 3,
            "min_time": 0.002,
            "e2e_counts": [0, 32],
            "e2e_repetitions": 1,
            "duration": 1.0,
            "warmup": 0.3,
        },
    ),
    "load_degradation": (
        {
            "presets": ["baseline", "minimal", "balanced", "performance"],
            "duration": 15.0,
            "chunk_s": 1.0,
            "warmup": 1.0,
            "connections": 64,
            "workload": "zipf",
            "window_s": 5,
            "open_rate": 2000.0,
            "open_duration": 5.0,
            "adversarial_duration": 3.0,
            "engine": "auto",
        },
        {
            "presets": ["baseline", "performance"],
            "duration": 3.0,
            "warmup": 0.3,
            "connections": 32,
            "window_s": 1,
            "open_rate": 500.0,
            "open_duration": 1.0,
            "adversarial_duration": 1.0,
        },
    ),
    "peers": (
        {
            "presets": ["baseline", "performance"],
            "peers": None,
            "endpoints": ["plaintext", "json", "params"],
            "duration": 2.0,
            "warmup": 0.5,
            "connections": 64,
            "repetitions": 1,
            "engine": "auto",
        },
        {
            "presets": ["performance"],
            "peers": ["aiohttp", "starlette-uvicorn", "falcon-uvicorn", "raw"],
            "endpoints": ["plaintext"],
            "duration": 1.0,
            "warmup": 0.3,
            "connections": 32,
        },
    ),
}


def plan(study: str, quick: bool = False, **given: Any) -> dict[str, Any]:
    """The study's sizes: full defaults, shrunk when ``quick``, then every non-None ``given``."""
    if study not in PLANS:
        raise ValueError(f"no plan for study {study!r}; known: {sorted(PLANS)}")
    full, small = PLANS[study]
    unknown = sorted(set(given) - set(full))
    if unknown:
        raise ValueError(f"{study} has no parameter(s) {unknown}; known: {sorted(full)}")
    values = {**full, **(small if quick else {})}
    values.update({k: v for k, v in given.items() if v is not None})
    return values


# -- shared helpers ------------------------------------------------------------------


def cpus() -> tuple[int | None, int | None]:
    """(server CPU, load CPU): 0 and 1 when this process may use both, else no pinning."""
    try:
        usable = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None, None
    if len(usable) < 2:
        return None, None
    return usable[0], usable[1]


@contextlib.contextmanager
def pinned(cpu: int | None) -> Iterator[None]:
    """Pin the calling thread (and the threads it starts: the load engines') to ``cpu``."""
    if cpu is None or not hasattr(os, "sched_setaffinity"):
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def resolve_engine(engine: str) -> str:
    from h3lab.bench.wrk import wrk_available

    if engine == "auto":
        return "wrk" if wrk_available() else "aiohttp"
    if engine not in ("wrk", "aiohttp"):
        raise ValueError(f"engine must be auto, wrk or aiohttp, got {engine!r}")
    return engine


def interleave(configs: Sequence[Any], repetitions: int) -> list[tuple[Any, int]]:
    from h3lab.bench.stats import interleave as bench_interleave

    return bench_interleave(list(configs), max(1, repetitions))


def _timing(p: Mapping[str, Any]) -> dict[str, Any]:
    return {"repetitions": int(p["repetitions"]), "min_time": float(p["min_time"])}


def _log(message: str) -> None:
    print(message, flush=True)


def _server_config_cols(preset: str, overrides: Sequence[str]) -> dict[str, Any]:
    from h3lab.bench.results import config_columns
    from h3lab.config import Config

    config = Config.preset(preset).with_overrides(list(overrides))
    cols = config_columns(config)
    cols["preset"] = preset if not overrides else f"{preset}+"
    return cols


def get_requests(workload: str, count: int = 2000, **params: Any) -> list[Any]:
    from h3lab.bench.workloads import make_workload

    if workload.startswith("/"):
        from h3lab.bench.workloads import BenchRequest

        return [BenchRequest("GET", workload)]
    return list(make_workload(workload, **params).requests(count))


def verify_requests(url: str, requests: Sequence[Any], limit: int = 200) -> None:
    """TechEmpower-style check of (up to ``limit``) distinct requests before timing."""
    from h3lab.bench.load import verify

    seen: dict[tuple[str, str], Any] = {}
    for req in requests:
        seen.setdefault((req.method, req.path), req)
        if len(seen) >= limit:
            break
    verify(url, list(seen.values()))


def saturating_load(
    url: str,
    requests: Sequence[Any],
    *,
    duration: float,
    connections: int,
    engine: str,
    load_cpu: int | None,
    warmup: float = 0.0,
    chunk_s: float | None = None,
    workload: str = "custom",
) -> tuple[list[Any], Rows]:
    """Closed-loop load for ``duration`` s: ``(LoadResults, series rows)``.

    With wrk and ``chunk_s``, back-to-back wrk runs of ``chunk_s`` seconds; each
    chunk is one point of the series (``series_rps``, ``series_p99_ms`` at its
    start time). With aiohttp, one run and its per-second series.
    """
    from h3lab.bench.load import run_closed_loop
    from h3lab.bench.wrk import run_wrk

    results = []
    series: Rows = []
    if engine == "wrk":
        paths = [r.path for r in requests if r.method == "GET"]
        if len(paths) != len(requests):
            raise ValueError("the wrk engine sends GET requests only; use engine='aiohttp'")
        if warmup > 0:
            run_wrk(
                url, connections=connections, duration=max(1.0, warmup), paths=paths, cpu=load_cpu
            )
        step = max(1.0, float(chunk_s or duration))
        t = 0.0
        while t < duration - 1e-9:
            result = run_wrk(
                url,
                connections=connections,
                duration=step,
                paths=paths,
                cpu=load_cpu,
                workload=workload,
            )
            results.append(result)
            series.append(
                {"metric": "series_rps", "value": result.throughput_rps, "unit": "req/s", "t": t}
            )
            if result.latency.get("p99_ms") is not None:
                series.append(
                    {
                        "metric": "series_p99_ms",
                        "value": result.latency["p99_ms"],
                        "unit": "ms",
                        "t": t,
                    }
                )
            series.append(
                {"metric": "series_errors", "value": result.errors_total, "unit": "count", "t": t}
            )
            t += step
        return results, series
    with pinned(load_cpu):
        result = run_closed_loop(
            url, list(requests), connections=connections, duration=duration, warmup=warmup
        )
    result.workload = workload
    for s in result.series:
        if s.get("partial"):
            continue
        series.append(
            {
                "metric": "series_rps",
                "value": float(s["requests"]),
                "unit": "req/s",
                "t": float(s["t"]),
            }
        )
        if s.get("p99_ms") is not None:
            series.append(
                {"metric": "series_p99_ms", "value": s["p99_ms"], "unit": "ms", "t": float(s["t"])}
            )
        series.append(
            {
                "metric": "series_errors",
                "value": float(s["errors"]),
                "unit": "count",
                "t": float(s["t"]),
            }
        )
    return [result], series


def combine_results(results: Sequence[Any]) -> dict[str, Any]:
    """Totals over the chunks of a sustained run (requests, errors, req/s, worst p99)."""
    requests = sum(r.requests for r in results)
    duration = sum(r.duration_s for r in results) or 1e-9
    p99s = [r.latency.get("p99_ms") for r in results if r.latency.get("p99_ms") is not None]
    return {
        "requests": requests,
        "duration_s": duration,
        "throughput_rps": requests / duration,
        "errors_total": sum(r.errors_total for r in results),
        "p99_ms_median_chunk": sorted(p99s)[len(p99s) // 2] if p99s else None,
        "p99_ms_max_chunk": max(p99s) if p99s else None,
    }


QUANTILES = (
    *[q / 100 for q in range(1, 100)],
    0.995,
    0.999,
    0.9995,
    0.9999,
)


def quantile_rows(histoblob: str | None) -> Rows:
    """Latency at fixed quantiles from an HdrHistogram blob: ``latency_quantile_ms`` rows."""
    from h3lab.bench.histogram import decode

    if not histoblob:
        return []
    hist = decode(histoblob)
    if hist.get_total_count() == 0:
        return []
    return [
        {
            "metric": "latency_quantile_ms",
            "value": hist.get_value_at_percentile(q * 100) / 1000.0,
            "unit": "ms",
            "quantile": q,
        }
        for q in QUANTILES
    ]


def open_loop_rows(
    url: str, requests: Sequence[Any], rate: float, duration: float, load_cpu: int | None
) -> tuple[Any, Rows]:
    """An open-loop run (wrk2 method) and its summary + quantile rows (``loop_mode`` open)."""
    from h3lab.bench.load import run_open_loop

    with pinned(load_cpu):
        result = run_open_loop(url, list(requests), rate=rate, duration=duration, connections=32)
    rows: Rows = [
        {"metric": "open_throughput_rps", "value": result.throughput_rps, "unit": "req/s"},
        {"metric": "open_errors_total", "value": result.errors_total, "unit": "count"},
    ]
    for key, value in result.latency.items():
        if value is not None:
            rows.append({"metric": f"open_latency_{key}", "value": value, "unit": "ms"})
    rows += quantile_rows(result.histoblob)
    for row in rows:
        row.update(loop_mode="open", target_rate=float(rate))
    return result, rows


def server_rows(srv: Any, extra: Mapping[str, Any]) -> Rows:
    """RSS / CPU / fds over time, from the server's samples (``server_*`` metrics)."""
    rows = []
    for s in srv.samples:
        rows.append(
            {
                "metric": "server_rss_mb",
                "value": s["rss_bytes"] / 2**20,
                "unit": "MiB",
                "t": s["t"],
                **extra,
            }
        )
        rows.append(
            {
                "metric": "server_cpu_percent",
                "value": s["cpu_percent"],
                "unit": "%",
                "t": s["t"],
                **extra,
            }
        )
    return rows


def stats_rows(stats: Mapping[str, Any] | None, extra: Mapping[str, Any]) -> Rows:
    """The server's final ``app.stats()``: pool, cache, GC counters and pause samples."""
    if not stats:
        return []
    rows: Rows = []

    def add(metric: str, value: Any, unit: str, **more: Any) -> None:
        if isinstance(value, int | float) and not isinstance(value, bool):
            rows.append({"metric": metric, "value": float(value), "unit": unit, **extra, **more})

    pool = stats.get("pool") or {}
    add("pool_reuse_ratio", pool.get("reuse_ratio"), "ratio")
    add("pool_created", pool.get("created"), "count")
    add("pool_acquired", pool.get("acquired"), "count")
    add("pool_high_water", pool.get("high_water"), "count")
    cache = stats.get("cache") or {}
    add("cache_entries", cache.get("size"), "count")
    add("cache_capacity", cache.get("capacity"), "count")
    add("cache_hit_ratio", cache.get("hit_ratio"), "ratio")
    add("cache_evictions", cache.get("evictions"), "count")
    memory = stats.get("memory") or {}
    gc_stats = memory.get("gc") or {}
    for gen, count in enumerate(gc_stats.get("collections") or []):
        add("gc_collections", count, "count", generation=gen)
    add("gc_pause_total_ms", gc_stats.get("pause_total_ms"), "ms")
    add("gc_pause_max_us", gc_stats.get("pause_max_us"), "us")
    for pause in gc_stats.get("pauses_us_recent") or []:
        add("gc_pause_us", pause, "us")
    add("rss_mb_final", (memory.get("rss_bytes") or 0) / 2**20, "MiB")
    errors = stats.get("errors") or {}
    add("server_errors_unhandled", errors.get("unhandled"), "count")
    return rows


def _tag(rows: Rows, **columns: Any) -> Rows:
    for row in rows:
        for key, value in columns.items():
            row.setdefault(key, value)
    return rows


# -- 01 route cache ------------------------------------------------------------------


def cache_workloads(p: Mapping[str, Any], seed: int = 0) -> list[tuple[str, Any, dict[str, Any]]]:
    """``(label, Workload, extra columns)`` for the hit-ratio grid (zipf once per skew)."""
    from h3lab.bench.workloads import make_workload, route_table

    table = route_table(int(p["routes"]), seed=seed)
    out: list[tuple[str, Any, dict[str, Any]]] = []
    for name in p["workloads"]:
        if name == "zipf":
            for s in p["zipf_skews"]:
                out.append(
                    (
                        f"zipf-{s:g}",
                        make_workload("zipf", table=table, s=float(s), seed=seed),
                        {"skew": float(s)},
                    )
                )
        elif name == "adversarial":
            out.append(
                (
                    "adversarial",
                    make_workload("adversarial", seed=seed, junk_share=0.0),
                    {"skew": None},
                )
            )
        elif name == "trace":
            from h3lab.studies.registry import repo_root

            path = Path(p.get("trace_path") or TRACE_SAMPLE)
            # relative to the repository, wherever the kernel was started (Lab: notebooks/)
            path = path if path.is_absolute() else repo_root() / path
            if path.is_file():
                out.append(("trace", make_workload("trace", path=path), {"skew": None}))
            else:
                _log(f"trace {path} not found: the trace workload is skipped")
        else:
            out.append(
                (
                    name,
                    make_workload(name, table=table, seed=seed),
                    {"skew": 0.0 if name == "uniform" else None},
                )
            )
    return out


def route_cache_hit_ratios(p: Mapping[str, Any], seed: int = 0) -> Rows:
    """Simulated hit ratios (h3lab policies + Belady + unbounded) and libCacheSim's, per workload."""
    from h3lab.bench import cachesim

    rows: Rows = []
    for label, workload, extra in cache_workloads(p, seed):
        keys = workload.keys(int(p["n_requests"]))
        sim = cachesim.simulate(
            keys, list(p["policies"]), fractions=list(p["fractions"]), workload_name=label
        )
        sizes = sorted({r["size"] for r in sim})
        for r in sim:
            base = {
                "cache_policy": r["policy"],
                "cache_size": r["size"],
                "workload": label,
                "fraction": r["fraction"],
                "engine": "h3lab",
                "working_set": len(set(keys)),
                **extra,
            }
            rows.append({**base, "metric": "hit_ratio", "value": r["hit_ratio"], "unit": "ratio"})
            rows.append(
                {**base, "metric": "max_entries", "value": r["max_entries"], "unit": "count"}
            )
        lcs_policies = [q for q in p.get("libcachesim_policies") or [] if q]
        if lcs_policies:
            try:
                lcs = cachesim.libcachesim_hit_ratios(
                    keys, lcs_policies, sizes, workload_name=label
                )
            except ImportError as exc:
                _log(f"libcachesim unavailable ({exc}): no cross-check")
                lcs = []
            ws = len(set(keys))
            for r in lcs:
                rows.append(
                    {
                        "cache_policy": r["policy"],
                        "cache_size": r["size"],
                        "workload": label,
                        "fraction": r["size"] / ws,
                        "engine": "libcachesim",
                        "working_set": ws,
                        **extra,
                        "metric": "hit_ratio",
                        "value": r["hit_ratio"],
                        "unit": "ratio",
                    }
                )
    return rows


def route_cache_lookup(p: Mapping[str, Any], seed: int = 0) -> Rows:
    """ns per get(+put on miss), hit ratio and bytes held, per policy x size x workload (micro)."""
    from h3lab.bench.micro import run_micro

    rows: Rows = []
    for workload in p["lookup_workloads"]:
        rows += run_micro(
            "cache",
            policies=list(p["policies"]),
            sizes=list(p["lookup_sizes"]),
            workload=workload,
            routes=int(p["routes"]),
            n_requests=min(int(p["n_requests"]), 20_000),
            seed=seed,
            **_timing(p),
        )
    return rows


def route_cache_boundedness(p: Mapping[str, Any], seed: int = 0, checkpoints: int = 20) -> Rows:
    """Adversarial never-repeating paths through each real cache: entries and bytes held over time.

    An unbounded dict fed the same keys is the contrast: it grows with every request.
    """
    import sys

    from h3lab.bench.workloads import make_workload
    from h3lab.cache import CACHES

    n = int(p["bound_requests"])
    size = int(p["bound_size"])
    keys = make_workload("adversarial", seed=seed, junk_share=0.0).keys(n)
    every = max(1, n // checkpoints)
    rows: Rows = []
    for policy in [*p["policies"], "unbounded"]:
        cache = None if policy == "unbounded" else CACHES.get(policy)(size)
        plain: dict[Any, Any] = {}
        worst = 0
        for i, key in enumerate(keys, start=1):
            if cache is None:
                plain.setdefault(key, key)
                held = len(plain)
            else:
                if cache.get(key) is None:
                    cache.put(key, key)
                held = len(cache)
            worst = max(worst, held)
            if i % every == 0 or i == n:
                if cache is None:
                    approx = sys.getsizeof(plain) + sum(sys.getsizeof(k[1]) for k in plain)
                else:
                    approx = cache.approx_bytes()
                base = {
                    "cache_policy": policy,
                    "cache_size": size,
                    "workload": "adversarial",
                    "requests_seen": i,
                }
                rows.append({**base, "metric": "entries", "value": held, "unit": "count"})
                rows.append({**base, "metric": "approx_bytes", "value": approx, "unit": "bytes"})
        rows.append(
            {
                "cache_policy": policy,
                "cache_size": size,
                "workload": "adversarial",
                "metric": "bound_violations",
                "value": 0 if cache is None or worst <= size else 1,
                "unit": "count",
                "max_entries": worst,
            }
        )
    return rows


# -- 02 router scaling ----------------------------------------------------------------


def router_scaling(p: Mapping[str, Any], seed: int = 0) -> Rows:
    from h3lab.bench.micro import run_micro

    return run_micro(
        "router",
        strategies=p["strategies"],
        sizes=list(p["sizes"]),
        cached=(False, True),
        workload=p["workload"],
        cache_policy=p["cache_policy"],
        cache_size=int(p["cache_size"]),
        n_requests=int(p["n_requests"]),
        seed=seed,
        **_timing(p),
    )


# -- 03 event pool ----------------------------------------------------------------------


def event_pool_micro(p: Mapping[str, Any]) -> Rows:
    """ns per acquire+release (``none`` = plain allocation), reuse ratio, allocations per op."""
    from h3lab.bench.micro import run_micro

    return run_micro(
        "pool",
        policies=p["policies"],
        sizes=list(p["sizes"]),
        concurrency=list(p["concurrency"]),
        track_alloc=True,
        **_timing(p),
    )


def event_pool_e2e(p: Mapping[str, Any], progress: Callable[[str], None] = _log) -> Rows:
    """Served req/s and the server's pool reuse ratio per pool config x connections."""
    engine = resolve_engine(p["engine"])
    server_cpu, load_cpu = cpus()
    requests = get_requests("zipf")
    rows: Rows = []
    configs = [
        (str(policy), int(size), int(c))
        for policy, size in p["e2e_pools"]
        for c in p["e2e_connections"]
    ]
    # Interleaved rounds (A B C, A B C...): a neighbour's burst on the shared machine
    # lands on every configuration instead of on whichever ran during it.
    for (policy, size, connections), rep in interleave(configs, int(p["e2e_repetitions"])):
        overrides = [f"pool.policy={policy}", f"pool.size={size}", f"pool.warmup={min(32, size)}"]
        cols = _server_config_cols("balanced", overrides)
        rows += _one_server_load(
            overrides, "balanced", requests, engine, server_cpu, load_cpu, p, connections, cols,
            {"connections": connections, "repetition": rep}, progress,
            label=f"pool {policy}/{size} c={connections} #{rep}",
        )  # fmt: skip
    return rows


def _one_server_load(
    overrides: Sequence[str],
    preset: str,
    requests: Sequence[Any],
    engine: str,
    server_cpu: int | None,
    load_cpu: int | None,
    p: Mapping[str, Any],
    connections: int,
    cols: Mapping[str, Any],
    extra: Mapping[str, Any],
    progress: Callable[[str], None],
    label: str,
    env: Mapping[str, str] | None = None,
) -> Rows:
    """Start, verify, load (saturating), read the final stats, stop: rows."""
    from h3lab.bench.server import ServerProcess

    rows: Rows = []
    with ServerProcess(
        preset=preset,
        overrides=list(overrides),
        cpu=server_cpu,
        env=dict(env or {}),
        sample_interval=None,
    ) as srv:
        verify_requests(srv.url, requests)
        results, series = saturating_load(
            srv.url, requests, duration=float(p["duration"]), connections=connections, engine=engine,
            load_cpu=load_cpu, warmup=float(p["warmup"]), chunk_s=1.0, workload=str(extra.get("workload", "zipf")),
        )  # fmt: skip
        total = combine_results(results)
        stats = srv.fetch_stats()
    base = {**cols, "engine": engine, **extra}
    rows.append(
        {**base, "metric": "throughput_rps", "value": total["throughput_rps"], "unit": "req/s"}
    )
    rows.append({**base, "metric": "errors_total", "value": total["errors_total"], "unit": "count"})
    if total["p99_ms_median_chunk"] is not None:
        rows.append(
            {
                **base,
                "metric": "latency_p99_ms",
                "value": total["p99_ms_median_chunk"],
                "unit": "ms",
            }
        )
    rows += [{**base, **row} for row in series]
    rows += stats_rows(stats, base)
    progress(
        f"{label}: {total['throughput_rps']:.0f} req/s ({engine}), {total['errors_total']} errors"
    )
    return rows


# -- 04 memory strategies ------------------------------------------------------------------


def memory_strategies(p: Mapping[str, Any], progress: Callable[[str], None] = _log) -> Rows:
    """Each memory strategy under sustained load: series, RSS over time, GC pauses, open-loop p99."""
    from h3lab.config import strategy_names

    strategies = p["strategies"] or list(strategy_names("memory.strategy"))
    rows: Rows = []
    for strategy in strategies:
        rows += sustained_run(
            p["preset"],
            [f"memory.strategy={strategy}"],
            p,
            label=f"memory {strategy}",
            progress=progress,
        )
    return rows


def sustained_run(
    preset: str,
    overrides: Sequence[str],
    p: Mapping[str, Any],
    *,
    label: str,
    progress: Callable[[str], None] = _log,
    adversarial_duration: float = 0.0,
) -> Rows:
    """One server: saturating sustained load, then an open-loop latency run, then (optionally)
    adversarial paths; RSS sampled every second throughout; final stats."""
    from h3lab.bench.load import run_closed_loop
    from h3lab.bench.server import ServerProcess
    from h3lab.bench.workloads import make_workload

    engine = resolve_engine(p["engine"])
    server_cpu, load_cpu = cpus()
    requests = get_requests(p["workload"])
    cols = _server_config_cols(preset, overrides)
    base = {
        **cols,
        "engine": engine,
        "workload": p["workload"],
        "connections": int(p["connections"]),
    }
    rows: Rows = []
    with ServerProcess(
        preset=preset, overrides=list(overrides), cpu=server_cpu, sample_interval=1.0
    ) as srv:
        verify_requests(srv.url, requests)
        results, series = saturating_load(
            srv.url, requests, duration=float(p["duration"]), connections=int(p["connections"]), engine=engine,
            load_cpu=load_cpu, warmup=float(p["warmup"]), chunk_s=float(p.get("chunk_s") or 1.0), workload=p["workload"],
        )  # fmt: skip
        total = combine_results(results)
        stats_sustained = srv.fetch_stats()
        _, open_rows = open_loop_rows(
            srv.url, requests, float(p["open_rate"]), float(p["open_duration"]), load_cpu
        )
        adversarial: Any = None
        if adversarial_duration > 0:
            adv = make_workload("adversarial", junk_share=0.1)
            with pinned(load_cpu):
                adversarial = run_closed_loop(
                    srv.url, adv, connections=16, duration=adversarial_duration, warmup=0.0
                )
        stats_final = srv.fetch_stats()
        samples = server_rows(srv, {})
    rows.append(
        {**base, "metric": "throughput_rps", "value": total["throughput_rps"], "unit": "req/s"}
    )
    rows.append({**base, "metric": "errors_total", "value": total["errors_total"], "unit": "count"})
    rows.append({**base, "metric": "requests", "value": total["requests"], "unit": "count"})
    if total["p99_ms_median_chunk"] is not None:
        rows.append(
            {
                **base,
                "metric": "latency_p99_ms",
                "value": total["p99_ms_median_chunk"],
                "unit": "ms",
            }
        )
    rows += [{**base, **row} for row in series]
    rows += [{**base, **row} for row in open_rows]
    rows += [{**base, **row} for row in samples]
    rows += stats_rows(stats_sustained, {**base, "phase": "sustained"})
    if adversarial is not None:
        adv_base = {**base, "workload": "adversarial", "engine": "aiohttp", "phase": "adversarial"}
        rows.append(
            {
                **adv_base,
                "metric": "throughput_rps",
                "value": adversarial.throughput_rps,
                "unit": "req/s",
            }
        )
        rows.append(
            {
                **adv_base,
                "metric": "errors_total",
                "value": adversarial.errors_total,
                "unit": "count",
            }
        )
        rows += stats_rows(stats_final, adv_base)
    progress(
        f"{label}: {total['throughput_rps']:.0f} req/s ({engine}), {total['errors_total']} errors"
        + (f"; adversarial {adversarial.errors_total} errors" if adversarial is not None else "")
    )
    return rows


# -- 05 middleware ---------------------------------------------------------------------------


def middleware_micro(p: Mapping[str, Any]) -> Rows:
    from h3lab.bench.micro import run_micro

    return run_micro(
        "middleware",
        executions=list(p["executions"]),
        counts=list(p["counts"]),
        kinds=list(p["kinds"]),
        **_timing(p),
    )


def middleware_e2e(p: Mapping[str, Any], progress: Callable[[str], None] = _log) -> Rows:
    """Served req/s of /plaintext behind N no-op middlewares, per execution."""
    from h3lab.bench.apps import MIDDLEWARE_KIND_ENV, MIDDLEWARES_ENV, plaintext_request

    engine = resolve_engine(p["engine"])
    server_cpu, load_cpu = cpus()
    requests = [plaintext_request()]
    rows: Rows = []
    configs = [(int(n), str(execution)) for n in p["e2e_counts"] for execution in p["executions"]]
    for (n, execution), rep in interleave(configs, int(p["e2e_repetitions"])):
        overrides = [f"middleware.execution={execution}"]
        cols = _server_config_cols("balanced", overrides)
        env = {MIDDLEWARES_ENV: str(n), MIDDLEWARE_KIND_ENV: p["e2e_kind"]}
        extra = {
            "middlewares": n,
            "kind": p["e2e_kind"],
            "workload": "/plaintext",
            "repetition": rep,
        }
        rows += _one_server_load(
            overrides, "balanced", requests, engine, server_cpu, load_cpu, p, int(p["connections"]),
            cols, extra, progress, label=f"middleware {execution} n={n} #{rep}", env=env,
        )  # fmt: skip
    return rows


# -- 06 load degradation ------------------------------------------------------------------------


def load_degradation(p: Mapping[str, Any], progress: Callable[[str], None] = _log) -> Rows:
    rows: Rows = []
    for preset in p["presets"]:
        rows += sustained_run(
            preset, [], p, label=f"preset {preset}", progress=progress,
            adversarial_duration=float(p.get("adversarial_duration") or 0.0),
        )  # fmt: skip
    return rows


# -- 07 peers ---------------------------------------------------------------------------------


def peers(
    p: Mapping[str, Any], notes: list[str] | None = None, progress: Callable[[str], None] = _log
) -> Rows:
    """h3lab presets and every available peer on the same endpoints (skips noted)."""
    from h3lab.bench import peers as bench_peers

    notes = notes if notes is not None else []
    available = bench_peers.available_peers(p["peers"], on_skip=notes.append)
    server_cpu, load_cpu = cpus()
    engine = resolve_engine(p["engine"])
    return bench_peers.compare(
        endpoints=list(p["endpoints"]),
        peers=available,
        h3lab_presets=list(p["presets"]),
        duration=float(p["duration"]),
        connections=int(p["connections"]),
        engine=engine,
        server_cpu=server_cpu,
        load_cpu=load_cpu,
        repetitions=int(p["repetitions"]),
        warmup=float(p["warmup"]),
        study="peers",
        progress=progress,
    )
