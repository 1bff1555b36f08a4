"""Load measurement shared by the studies: servers, engines, rows.

Method
------
* The server under test runs in its own process (``ServerProcess``), pinned
  to one CPU; the load generator to the other (when the machine has two).
* Every server is verified (status, content type, body, Date/Server headers)
  on the requests it will be sent before anything is timed.
* Comparisons run in *rounds* (``measure_rounds``): every arm once per round,
  in an order rotated each round, each on a freshly started server, so the
  values of one round are paired (``common.compare_arms``).
* Throughput comes from a *saturating* closed loop (wrk when installed: the
  Python client saturates long before the server does). Server CPU is sampled
  every second: a "saturating" phase in which the server did not use a core
  was client-bound or disturbed, and the validity record says so.
* Latency distributions come from an *open* loop at a fixed rate (wrk2
  method, no coordinated omission), below every server's capacity.
* A sustained run is *one* continuous load; its per-second throughput is read
  from the server's own request counter (``/__stats``), not from restarts.
* Everything is bounded in time and only ever targets 127.0.0.1.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from h3lab.bench import rounds
from h3lab.bench.rounds import ArmRun
from h3lab.studies.common import Progress, Rows, log

# The one pinning / engine choice of every load measurement (``bench.rounds``).
cpus = rounds.cpus
pinned = rounds.pinned
resolve_engine = rounds.resolve_engine

# -- shared helpers ------------------------------------------------------------------


def server_config_cols(preset: str, overrides: Sequence[str]) -> dict[str, Any]:
    from h3lab.bench.results import config_columns
    from h3lab.config import Config

    config = Config.preset(preset).with_overrides(list(overrides))
    cols = config_columns(config)
    cols["preset"] = preset if not overrides else f"{preset}+"
    return cols


def get_requests(workload: str, count: int = 2000, **params: Any) -> list[Any]:
    from h3lab.bench.workloads import make_workload

    if workload.startswith("/"):
        from h3lab.bench.route_tables import BenchRequest

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
    # Events something kept past their response (h3lab.pool): 0 unless a handler leaks.
    add("pool_retired", pool.get("retired"), "count")
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


# -- arms and rounds -------------------------------------------------------------------------


def arm(
    name: str,
    preset: str = "balanced",
    overrides: Sequence[str] = (),
    *,
    env: Mapping[str, str] | None = None,
    app: str = "h3lab.bench.apps:create_app",
    columns: Mapping[str, Any] | None = None,
) -> rounds.Arm:
    """A ``bench.rounds.Arm`` for an h3lab server: its config columns on every row."""
    return rounds.Arm(
        name,
        server={"app": app, "preset": preset, "overrides": list(overrides),
                "env": dict(env or {}), "sample_interval": None},
        columns={**server_config_cols(preset, overrides), **dict(columns or {})},
    )  # fmt: skip


def measure_rounds(
    arms: Sequence[rounds.Arm],
    n_rounds: int,
    measure: Callable[[ArmRun], Rows],
    *,
    study: str,
    progress: Progress = log,
) -> Rows:
    """``bench.rounds.run_rounds``: every arm once per round, order rotated, fresh servers."""
    return rounds.run_rounds(
        list(arms), rounds=int(n_rounds), measure=measure, study=study, progress=progress
    ).rows


def saturating(
    p: Mapping[str, Any],
    requests: Sequence[Any],
    *,
    engine: str,
    connections: int,
    workload: str = "zipf",
) -> Callable[[ArmRun], Rows]:
    """A ``measure``: verify the server, load it to saturation, read its counters.

    Answers are verified on each arm's first server (round 0): later rounds
    start the same code and configuration, and a server start is the
    costliest part of a short round.
    """

    def measure(run: ArmRun) -> Rows:
        if run.round == 0:
            verify_requests(run.url, requests)
        result = run.closed_loop(
            requests, duration=float(p["duration"]), connections=connections, engine=engine,
            warmup=float(p["warmup"]), workload=workload,
        )  # fmt: skip
        stats = run.server.fetch_stats() if run.server is not None else None
        base = {"engine": engine, "connections": connections, "workload": workload}
        return result_rows(result, base) + stats_rows(stats, base)

    return measure


def result_rows(result: Any, base: Mapping[str, Any]) -> Rows:
    """A closed-loop ``LoadResult`` as rows: req/s, errors, p99."""
    rows: Rows = [
        {**base, "metric": "throughput_rps", "value": result.throughput_rps, "unit": "req/s"},
        {**base, "metric": "errors_total", "value": result.errors_total, "unit": "count"},
    ]
    if result.latency.get("p99_ms") is not None:
        rows.append({**base, "metric": "latency_p99_ms", "value": result.latency["p99_ms"],
                     "unit": "ms"})  # fmt: skip
    return rows


# -- one continuous sustained run --------------------------------------------------------------


def _served(url: str, path: str = "/__stats") -> float | None:
    import json
    import urllib.request

    try:
        with urllib.request.urlopen(url + path, timeout=2.0) as resp:
            body = json.loads(resp.read())
    except (OSError, ValueError):
        return None
    server = body.get("server") or {}
    value = server.get("requests")
    return float(value) if isinstance(value, int | float) else None


def sustained(
    p: Mapping[str, Any],
    requests: Sequence[Any],
    *,
    engine: str,
    connections: int,
    workload: str = "zipf",
) -> Callable[[ArmRun], Rows]:
    """A ``measure``: one *continuous* saturating load of ``p["sustained_s"]`` seconds.

    A thread reads the server's own request counter every second: the
    per-second served rate (``served_rps`` rows with ``t``) is the series the
    degradation test compares, first window against last. Then an open-loop
    latency run at ``p["open_rate"]`` and a burst of never-repeated
    adversarial paths (``p["adversarial_duration"]``), when set.
    """

    def measure(run: ArmRun) -> Rows:
        from h3lab.bench.load import run_closed_loop
        from h3lab.bench.workloads import make_workload

        assert run.server is not None
        srv = run.server
        duration = float(p["sustained_s"])
        base = {"engine": engine, "connections": connections, "workload": workload}
        verify_requests(srv.url, requests)
        counts: list[tuple[float, float]] = []
        stop = threading.Event()

        t0 = time.monotonic()

        def poll() -> None:
            while not stop.wait(max(0.0, 1.0 - (time.monotonic() - t0) % 1.0)):
                served = _served(srv.url)
                if served is not None:
                    counts.append((time.monotonic() - t0, served))

        poller = threading.Thread(target=poll, name="h3lab-served-poller", daemon=True)
        rss0 = srv.sample().get("rss_bytes", 0)
        poller.start()
        try:
            result = run.closed_loop(requests, duration=duration, connections=connections,
                                     engine=engine, workload=workload)  # fmt: skip
        finally:
            ended = time.monotonic() - t0
            stop.set()
            poller.join(timeout=5)
        rss1 = srv.sample().get("rss_bytes", 0)
        rows: Rows = [{**base, **row, "phase": "sustained"} for row in result_rows(result, {})]
        # per-second served rate from consecutive counter reads (the stats request itself is
        # one of them: 1 req/s against thousands)
        # The first second holds the load's start (connections opening): left out, as is
        # anything read after the load stopped.
        for (t_a, c_a), (t_b, c_b) in itertools.pairwise(counts[1:]):
            if t_a < t_b <= ended:
                rows.append({**base, "metric": "served_rps", "value": (c_b - c_a) / (t_b - t_a),
                             "unit": "req/s", "t": round(t_b, 3)})  # fmt: skip
        rows.append({**base, "metric": "rss_start_mb", "value": rss0 / 2**20, "unit": "MiB"})
        rows.append({**base, "metric": "rss_end_mb", "value": rss1 / 2**20, "unit": "MiB"})
        rows += stats_rows(srv.fetch_stats(), {**base, "phase": "sustained"})
        if p.get("open_rate") and float(p.get("open_duration") or 0) > 0:
            rate = float(p["open_rate"])
            res = run.open_loop(requests, rate=rate, duration=float(p["open_duration"]),
                                workload=workload)  # fmt: skip
            rows += [{**base, **row, "loop_mode": "open", "target_rate": rate}
                     for row in open_rows(res)]  # fmt: skip
        if float(p.get("adversarial_duration") or 0) > 0:
            adv = make_workload("adversarial", junk_share=0.1)
            with pinned(run.load_cpu):
                res = run_closed_loop(srv.url, adv, connections=16,
                                      duration=float(p["adversarial_duration"]), warmup=0.0)  # fmt: skip
            adv_base = {**base, "workload": "adversarial", "engine": "aiohttp",
                        "phase": "adversarial"}  # fmt: skip
            rows += result_rows(res, adv_base)
            rows += stats_rows(srv.fetch_stats(), adv_base)
        return rows

    return measure


def open_rows(result: Any) -> Rows:
    """An open-loop ``LoadResult``: summary and quantile rows."""
    rows: Rows = [
        {"metric": "open_throughput_rps", "value": result.throughput_rps, "unit": "req/s"},
        {"metric": "open_errors_total", "value": result.errors_total, "unit": "count"},
    ]
    for key, value in result.latency.items():
        if value is not None:
            rows.append({"metric": f"open_latency_{key}", "value": value, "unit": "ms"})
    return rows + quantile_rows(result.histoblob)
