"""``h3lab bench``: micro, load, peers, soak and conformance.

::

    h3lab bench micro [--target router|cache|pool|middleware|dispatch|protocol|stages|all] [--quick]
    h3lab bench load --preset performance --workload zipf --connections 64 --duration 10
                     [--set k=v ...] [--config FILE] [--rate R] [--engine auto|aiohttp|wrk]
                     [--pipelining N] [--server-cpu 0 --load-cpu 1]
    h3lab bench peers [--quick] [--endpoints plaintext json params] [--duration S]
    h3lab bench soak --duration 600
    h3lab bench conformance
    h3lab bench trees --target protocol --against 03e8fa5 [REF ...] [--rounds N] [--quick]

Every command verifies responses before timing, shows a progress bar on a
terminal, prints a plain-text summary, writes its rows with ``RunWriter``
(studies ``bench-micro``, ``bench-load``, ``bench-peers``) and prints the run
directory. A bad argument is one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from typing import Any

from h3lab.bench.micro import TARGETS
from h3lab.cli import CLIError, Parser, add_alias, add_config_arguments, config_from_args

MICRO_TARGETS = tuple(TARGETS)  # one name per target, from h3lab.bench.micro.targets
ENGINES = ("aiohttp", "wrk")
COMMANDS = ("micro", "load", "peers", "soak", "conformance", "trees")


class BenchArgumentError(CLIError, ValueError):
    """A bad ``h3lab bench`` argument.

    Also a ValueError on purpose: under ``python -m h3lab.cli`` the running
    ``main`` is ``__main__.main``, whose ``except CLIError`` names a different
    class than ``h3lab.cli.CLIError``; ValueError is caught by both.
    """


class OneLineParser(Parser):
    """Argument errors as one line (``h3lab bench load: error: ...``) and exit status 2."""


def add_parser(subparsers: Any) -> None:
    bench = subparsers.add_parser(
        "bench",
        help="micro-benchmarks, load runs, peers, soak, conformance",
        description="Measure h3lab: each command prints a summary and writes its rows "
        "under --root (data/runs).",
    )
    bench.set_defaults(func=_missing_command)
    sub = bench.add_subparsers(dest="bench_command", parser_class=OneLineParser, metavar="COMMAND")

    micro = sub.add_parser("micro", help="in-process micro-benchmarks of each strategy family")
    micro.add_argument(
        "--target",
        default="all",
        choices=[*MICRO_TARGETS, "all"],
        help="which bench to run",
    )
    micro.add_argument("--quick", action="store_true", help="small grids and few samples (smoke)")
    _add_store_arguments(micro)
    micro.set_defaults(func=cmd_micro)

    load = sub.add_parser("load", help="load one h3lab server (started here) with a workload")
    add_config_arguments(load)
    load.add_argument("--app", default="h3lab.bench.apps:create_app", help="module:attr to serve")
    load.add_argument(
        "--workload",
        default="zipf",
        help="uniform, zipf, scan, adversarial, mixed or trace (with --param path=FILE)",
    )
    load.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="workload parameter, e.g. --param s=1.2 or --param path=trace.csv (repeatable)",
    )
    add_alias(load, "--workload-arg", "--param", "param")
    load.add_argument("--connections", type=int, default=64, help="concurrent connections")
    load.add_argument("--duration", type=float, default=10.0, help="seconds of timed load")
    load.add_argument(
        "--warmup", type=float, default=1.0, help="untimed seconds first (closed loop)"
    )
    load.add_argument("--rate", type=float, default=None, help="open loop at R req/s (wrk2 method)")
    load.add_argument(
        "--engine",
        default="auto",
        choices=["auto", *ENGINES],
        help="load generator (auto: wrk when installed and the workload is all GETs, else aiohttp)",
    )
    load.add_argument("--pipelining", type=int, default=1, help="requests in flight per connection")
    load.add_argument("--threads", type=int, default=1, help="wrk threads")
    load.add_argument("--timeout", type=float, default=5.0, help="per-request timeout (s)")
    load.add_argument("--repetitions", type=int, default=1, help="server restarted for each")
    load.add_argument("--server-cpu", type=int, default=_default_cpu(0), help="pin the server")
    load.add_argument("--load-cpu", type=int, default=_default_cpu(1), help="pin the load")
    _add_store_arguments(load)
    load.set_defaults(func=cmd_load)

    peers = sub.add_parser("peers", help="h3lab vs other Python servers on the same endpoints")
    peers.add_argument("--quick", action="store_true", help="1 s per cell, no priming")
    peers.add_argument(
        "--endpoints", nargs="+", default=None, help="among plaintext, json, params (default: all)"
    )
    peers.add_argument(
        "--peers", nargs="+", default=None, help="peer names (default: all available)"
    )
    peers.add_argument("--presets", nargs="+", default=["performance"], help="h3lab presets")
    peers.add_argument("--duration", type=float, default=None, help="seconds per cell (default 5)")
    peers.add_argument("--connections", type=int, default=64, help="concurrent connections")
    peers.add_argument(
        "--engine",
        default="auto",
        choices=["auto", *ENGINES],
        help="load generator (auto: wrk when installed)",
    )
    peers.add_argument("--repetitions", type=int, default=3, help="interleaved rounds (>= 3)")
    peers.add_argument("--server-cpu", type=int, default=_default_cpu(0), help="pin the servers")
    peers.add_argument("--load-cpu", type=int, default=_default_cpu(1), help="pin the load")
    _add_store_arguments(peers)
    peers.set_defaults(func=cmd_peers)

    # The hardening tools live in their own modules (issue 5) and add themselves.
    from h3lab.bench.hardening import conformance, soak

    soak.register(sub)
    conformance.register(sub)

    # Before/after across source trees (issue 9): its own package, which adds itself.
    from h3lab.bench.trees import command as trees_command

    trees_command.register(sub)


def _add_store_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", default="data/runs", help="results store root")
    add_alias(parser, "--results-root", "--root", "root")
    parser.add_argument("--run-id", default=None, help="run directory name (default: timestamp)")


def _default_cpu(cpu: int) -> int | None:
    # Pinning server and load apart needs two CPUs; with fewer, do not pin.
    try:
        return cpu if len(os.sched_getaffinity(0)) >= 2 else None
    except AttributeError:
        return None


def _missing_command(args: argparse.Namespace) -> int:
    raise BenchArgumentError(
        f"choose a bench command: {', '.join(COMMANDS)} (see h3lab bench --help)"
    )


def _check_cpu(name: str, cpu: int | None) -> None:
    if cpu is None:
        return
    allowed = os.sched_getaffinity(0)
    if cpu not in allowed:
        raise BenchArgumentError(f"{name} {cpu} is not an allowed CPU; allowed: {sorted(allowed)}")


def _positive(name: str, value: float | None, *, integer: bool = False) -> None:
    if value is not None and value <= 0:
        raise BenchArgumentError(
            f"{name} must be > 0, got {value:g}"
            if not integer
            else f"{name} must be >= 1, got {value}"
        )


# -- progress -------------------------------------------------------------------------


def _bar(total: float, desc: str, unit: str = "s") -> Any:
    from tqdm import tqdm

    # disable=None: a bar on a terminal, nothing in a pipe or a test.
    return tqdm(total=total, desc=desc, unit=unit, disable=None, leave=False, file=sys.stderr)


@contextlib.contextmanager
def _timed_bar(seconds: float, desc: str) -> Iterator[None]:
    """A bar that fills with wall-clock time while a blocking call runs."""
    bar = _bar(round(seconds, 1), desc)
    stop = threading.Event()

    def tick() -> None:
        start = time.monotonic()
        while not stop.wait(0.25):
            bar.n = min(round(time.monotonic() - start, 1), bar.total)
            bar.refresh()

    thread = threading.Thread(target=tick, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        bar.close()


def _write(
    study: str, rows: list[dict[str, Any]], args: argparse.Namespace, params: dict[str, Any]
) -> str:
    from h3lab.bench.results import RunWriter

    writer = RunWriter(study, run_id=args.run_id, root=args.root, params=params)
    writer.add_rows(rows)
    path = writer.write()
    print(f"results: {path}")
    return str(path)


def _params(args: argparse.Namespace) -> dict[str, Any]:
    return {k: v for k, v in vars(args).items() if k not in ("func",)}


# -- micro ------------------------------------------------------------------------------


def cmd_micro(args: argparse.Namespace) -> int:
    from h3lab.bench.micro import BenchmarkStabilityWarning, run_micro

    chosen = list(MICRO_TARGETS) if args.target == "all" else [args.target]
    rows: list[dict[str, Any]] = []
    unstable: list[str] = []
    bar = _bar(len(chosen), "micro", unit="target")
    for target in chosen:
        bar.set_postfix_str(target)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", BenchmarkStabilityWarning)
            rows += run_micro(target, quick=args.quick)
        unstable += [str(w.message) for w in caught if w.category is BenchmarkStabilityWarning]
        bar.update(1)
    bar.close()
    print(format_micro(rows))
    if any(row["target"] == "stages" for row in rows):
        from h3lab.bench.micro import stage_table

        print("\n" + stage_table(rows))
    if unstable:
        print(
            f"\n! {len(unstable)} of {len(micro_groups(rows))} results are unstable: their values "
            "spread by 10% or more (pyperf's test), so the machine was busy or the loops too "
            "short. Compare them with care, or rerun on a quiet machine without --quick."
        )
    _write("bench-micro", rows, args, _params(args))
    return 0


# What a micro target's ``param`` counts, for the table.
PARAM_NAMES = {
    "router": "routes",
    "cache": "entries",
    "pool": "held",
    "middleware": "layers",
    "dispatch": "endpoint",
    "protocol": "requests",
    "stages": "endpoint",
}


def _param_label(row: dict[str, Any]) -> str:
    target = row["target"]
    parts = [f"{PARAM_NAMES.get(target, 'param')}={row['param']}"]
    if target == "router" and row.get("cached") is not None:
        parts.append("cached" if row["cached"] else "uncached")
    if target == "pool" and row.get("pool_size") is not None:
        parts.append(f"pool={row['pool_size']}")
    if target == "middleware" and row.get("kind"):
        parts.append(str(row["kind"]))
    if target == "stages" and row.get("stage"):
        parts.append(str(row["stage"]))
    return ", ".join(parts)


def micro_groups(rows: list[dict[str, Any]]) -> dict[tuple[str, str, str], list[dict[str, Any]]]:
    """The ``ns_per_op`` rows of each (target, strategy, param label), in run order."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for row in rows:
        if row["metric"] == "ns_per_op":
            key = (row["target"], row["strategy"], _param_label(row))
            groups.setdefault(key, []).append(row)
    return groups


def format_micro(rows: list[dict[str, Any]]) -> str:
    """pyperf-style: median, std and the counts behind them; ! marks an unstable result."""
    head = (
        f"{'target':<10} {'strategy':<12} {'param':<24} {'median ns':>10} {'std ns':>9} "
        f"{'values':>6} {'loops':>9}"
    )
    lines = [head, "-" * len(head)]
    for (target, strategy, label), group in micro_groups(rows).items():
        values = [r["value"] for r in group]
        std = statistics.stdev(values) if len(values) > 1 else float("nan")
        flag = " !" if any(r.get("warning") for r in group) else ""
        lines.append(
            f"{target:<10} {strategy:<12} {label:<24} {statistics.median(values):>10.1f} "
            f"{std:>9.1f} {len(values):>6} {group[0].get('loops', 0):>9}{flag}"
        )
    lines.append(
        "median and std over the values (one per interleaved round); "
        "loops: operations per value; ns per operation."
    )
    return "\n".join(lines)


# -- load ---------------------------------------------------------------------------------


def cmd_load(args: argparse.Namespace) -> int:
    from h3lab.bench.load import resolve_requests, run_closed_loop, run_open_loop, verify
    from h3lab.bench.load.wrk import run_wrk, wrk_available
    from h3lab.bench.peers import pinned
    from h3lab.bench.results import config_columns
    from h3lab.bench.server import ServerProcess
    from h3lab.bench.workloads import make_workload
    from h3lab.cli import load_app
    from h3lab.config import Config
    from h3lab.server.core import describe_config

    # Every argument is checked before a server starts.
    try:
        config = config_from_args(args) or Config.preset("balanced")
    except (CLIError, OSError) as exc:
        raise BenchArgumentError(str(exc)) from None
    _positive("--connections", args.connections, integer=True)
    _positive("--duration", args.duration)
    _positive("--rate", args.rate)
    _positive("--pipelining", args.pipelining, integer=True)
    _positive("--repetitions", args.repetitions, integer=True)
    _positive("--timeout", args.timeout)
    if args.warmup < 0:
        raise BenchArgumentError(f"--warmup must be >= 0, got {args.warmup:g}")
    _check_cpu("--server-cpu", args.server_cpu)
    _check_cpu("--load-cpu", args.load_cpu)
    if args.rate is not None and (args.engine == "wrk" or args.pipelining > 1):
        raise BenchArgumentError("--rate (open loop) runs on the aiohttp engine without pipelining")
    if args.engine == "wrk" and not wrk_available():
        raise BenchArgumentError("--engine wrk: wrk is not installed")
    params = _workload_params(args.param)
    try:
        workload = make_workload(args.workload, **params)
    except TypeError as exc:  # a missing required parameter (trace needs path=...)
        raise BenchArgumentError(f"--workload {args.workload}: {exc}") from None
    name, reqs = resolve_requests(workload, 10_000)
    gets_only = all(r.method == "GET" and not r.body for r in reqs)
    if args.engine == "wrk" and not gets_only:
        raise BenchArgumentError(
            f"--engine wrk sends GETs only; workload {name!r} has other requests"
        )
    engine, why = args.engine, "asked for"
    if engine == "auto":
        if args.rate is not None:
            engine, why = "aiohttp", "open loop (--rate)"
        elif args.pipelining > 1:
            engine, why = "aiohttp", "--pipelining"
        elif not wrk_available():
            engine, why = "aiohttp", "wrk is not installed"
        elif not gets_only:
            engine, why = "aiohttp", "the workload is not all GETs"
        else:
            engine, why = "wrk", "installed"
    load_app(args.app, config)  # a bad --app is one line here, not a server's traceback

    cols = {**config_columns(config), "preset": args.preset or config.preset_name}
    shown = ", ".join(f"{k}={v}" for k, v in params.items())
    mode = f"open loop at {args.rate:g} req/s" if args.rate is not None else "closed loop"
    print(
        f"bench load: workload {name}{f' ({shown})' if shown else ''}, "
        f"config {describe_config(config)}, app {args.app}\n"
        f"  engine {engine} ({why}), {mode}, {args.connections} connections, "
        f"{args.warmup:g} s warm-up + {args.duration:g} s, {args.repetitions} repetition(s), "
        f"server cpu {args.server_cpu}, load cpu {args.load_cpu}",
        flush=True,
    )
    rows: list[dict[str, Any]] = []
    results = []
    for rep in range(args.repetitions):
        srv = ServerProcess(
            app=args.app,
            preset=None if args.config else (args.preset or "balanced"),
            overrides=args.set,
            config_file=args.config,
            cpu=args.server_cpu,
        )
        with _running(srv):
            verify(srv.url, reqs)
            if engine == "wrk" and args.warmup > 0:
                # wrk has no warm-up of its own: an untimed run first, outside the
                # server's count (the aiohttp engines warm up inside their run).
                with _timed_bar(args.warmup, f"{name} warm-up"):
                    run_wrk(
                        srv.url,
                        connections=args.connections,
                        threads=args.threads,
                        duration=args.warmup,
                        paths=[r.path for r in reqs],
                        cpu=args.load_cpu,
                        timeout=args.timeout,
                    )
            before = srv.fetch_stats() or {}
            fetches = srv.stats_fetches
            label = f"{name} rep {rep + 1}/{args.repetitions}"
            print(
                f"  rep {rep + 1}/{args.repetitions}: loading {srv.url} "
                f"for {args.duration + (args.warmup if args.rate is None else 0):g} s ...",
                flush=True,
            )
            with _timed_bar(args.duration + (args.warmup if args.rate is None else 0), label):
                if engine == "wrk":
                    result = run_wrk(
                        srv.url,
                        connections=args.connections,
                        threads=args.threads,
                        duration=args.duration,
                        paths=[r.path for r in reqs],
                        cpu=args.load_cpu,
                        pipelining=args.pipelining,
                        timeout=args.timeout,
                        workload=name,
                    )
                else:
                    with pinned(args.load_cpu):
                        if args.rate is not None:
                            result = run_open_loop(
                                srv.url,
                                reqs,
                                rate=args.rate,
                                duration=args.duration,
                                connections=args.connections,
                                timeout=args.timeout,
                            )
                        else:
                            result = run_closed_loop(
                                srv.url,
                                reqs,
                                connections=args.connections,
                                duration=args.duration,
                                pipelining=args.pipelining,
                                warmup=args.warmup,
                                timeout=args.timeout,
                            )
            result.workload = name
            sampler_fetches = srv.stats_fetches - fetches
            after = srv.fetch_stats() or {}
        served = _served(before, after, sampler_fetches)
        extra = {"server_cpu": args.server_cpu, "load_cpu": args.load_cpu}
        rows += result.rows("bench-load", "", cols, repetition=rep, extra=extra)
        if served is not None:
            rows.append(
                {
                    **cols,
                    "workload": name,
                    "metric": "server_requests",
                    "value": served,
                    "unit": "count",
                    "repetition": rep,
                    **extra,
                }
            )
        rows += srv.samples_rows("bench-load", "", cols, repetition=rep, extra={"workload": name})
        results.append((result, served, srv.returncode))
    _print_load_summary(results)
    _write("bench-load", rows, args, _params(args))
    return 0


@contextlib.contextmanager
def _running(srv: Any) -> Iterator[Any]:
    """A started ``ServerProcess``, always stopped; a failed start is one error line."""
    from h3lab.bench.server import ServerStartError

    try:
        srv.start()
    except ServerStartError as exc:
        srv.stop()
        tail = [line for line in str(exc).splitlines() if line.strip()]
        raise BenchArgumentError(f"the server did not start: {tail[-1]}") from None
    try:
        yield srv
    finally:
        srv.stop()


def _workload_params(items: list[str]) -> dict[str, Any]:
    """``["s=1.2", "path=t.csv"]`` -> ``{"s": 1.2, "path": "t.csv"}`` (int, then float, else text)."""
    params: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise BenchArgumentError(f"--param must look like key=value, got {item!r}")
        value: Any = raw.strip()
        for convert in (int, float):
            try:
                value = convert(value)
                break
            except ValueError:
                continue
        params[key.strip()] = value
    return params


def _served(before: dict[str, Any], after: dict[str, Any], sampler_fetches: int) -> int | None:
    """Requests the server counted for the load: between two stats fetches, minus the
    first fetch itself and the sampler's fetches in between (+-1 for a sample in flight)."""
    try:
        return (
            int(after["server"]["requests"])
            - int(before["server"]["requests"])
            - 1
            - sampler_fetches
        )
    except (KeyError, TypeError):
        return None


def _print_load_summary(results: list[tuple[Any, int | None, int | None]]) -> None:
    head = (
        f"{'rep':>3} {'engine':<8} {'mode':<6} {'conns':>5} {'req/s':>10} {'requests':>9} "
        f"{'errors':>6} {'p50 ms':>8} {'p99 ms':>8} {'p99.9 ms':>9} {'max ms':>8}"
    )
    print(head)
    print("-" * len(head))

    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f}"

    for i, (r, served, code) in enumerate(results):
        lat = r.latency
        print(
            f"{i:>3} {r.engine:<8} {r.loop_mode:<6} {r.connections:>5} {r.throughput_rps:>10.0f} "
            f"{r.requests:>9} {r.errors_total:>6} {ms(lat.get('p50_ms')):>8} "
            f"{ms(lat.get('p99_ms')):>8} {ms(lat.get('p99_9_ms')):>9} {ms(lat.get('max_ms')):>8}"
        )
        nonzero = {k: v for k, v in r.errors.items() if v}
        if nonzero:
            print(f"    errors: {nonzero}")
        if r.target_rate:
            print(f"    open loop: target {r.target_rate:.0f} req/s")
        for note in r.notes:
            print(f"    note: {note}")
        if served is not None:
            print(
                f"    server counted {served} requests (stored as 'server_requests'); exit code {code}"
            )


# -- peers --------------------------------------------------------------------------------


def cmd_peers(args: argparse.Namespace) -> int:
    from h3lab.bench.load.wrk import wrk_available
    from h3lab.bench.peers import (
        ENDPOINTS,
        available_peers,
        compare,
        endpoint_requests,
        format_ratio_table,
        ratio_table,
        targets,
    )
    from h3lab.config import PRESETS

    endpoints = args.endpoints or list(ENDPOINTS)
    for ep in endpoints:
        if ep not in ENDPOINTS:
            raise BenchArgumentError(f"--endpoints must be among {list(ENDPOINTS)}, got {ep!r}")
        endpoint_requests(ep)
    for preset in args.presets:
        if preset not in PRESETS:
            raise BenchArgumentError(f"--presets must be among {list(PRESETS)}, got {preset!r}")
    engine = args.engine if args.engine != "auto" else ("wrk" if wrk_available() else "aiohttp")
    if engine == "wrk" and not wrk_available():
        raise BenchArgumentError("--engine wrk: wrk is not installed")
    duration = args.duration if args.duration is not None else (1.0 if args.quick else 5.0)
    _positive("--duration", duration)
    _positive("--connections", args.connections, integer=True)
    _positive("--repetitions", args.repetitions, integer=True)
    _check_cpu("--server-cpu", args.server_cpu)
    _check_cpu("--load-cpu", args.load_cpu)
    peers = available_peers(args.peers)  # ValueError on an unknown name
    servers = targets(peers, args.presets)
    total = len(servers) * len(endpoints) * args.repetitions
    bar = _bar(total, "peers", unit="cell")

    def progress(label: str) -> None:
        bar.set_postfix_str(label)
        bar.update(1)

    from h3lab.studies import validity

    recorder = validity.begin()
    rows = compare(
        endpoints,
        peers=peers,
        h3lab_presets=args.presets,
        duration=duration,
        connections=args.connections,
        engine=engine,
        server_cpu=args.server_cpu,
        load_cpu=args.load_cpu,
        repetitions=args.repetitions,
        warmup=0.0 if args.quick else 1.0,
        progress=progress,
        recorder=recorder,
    )
    bar.close()
    print(
        f"engine={engine} duration={duration:g}s connections={args.connections} "
        f"repetitions={args.repetitions} server_cpu={args.server_cpu} load_cpu={args.load_cpu}"
    )
    verdict = recorder.result()
    if verdict.status == "invalid":
        # The figures are kept for diagnosis, but the table must not read as a result.
        print("INVALID RUN (figures for diagnosis only): " + "; ".join(verdict.reasons[:3]))
    print(format_ratio_table(ratio_table(rows)))
    path = _write(
        "bench-peers", rows, args, {**_params(args), "engine": engine, "duration": duration}
    )
    validity.save(path, recorder)
    print(
        f"validity: {verdict.status}"
        + (f" ({len(verdict.warnings)} warning(s))" if verdict.warnings else "")
    )
    return 0


__all__ = [
    "BenchArgumentError",
    "OneLineParser",
    "add_parser",
    "cmd_load",
    "cmd_micro",
    "cmd_peers",
]
