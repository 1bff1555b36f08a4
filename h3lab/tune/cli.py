"""``h3lab tune``: search the configuration that serves a workload best.

Registered by ``h3lab.cli`` for every command (``h3lab serve`` included), so
this module imports only ``argparse``; optuna, pandas and the bench toolkit
are imported when ``h3lab tune`` actually runs.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

QUICK: dict[str, Any] = {
    "trials": 6,
    "trial_duration": 1.0,
    "warmup": 1.0,
    "top_k": 1,
    "repetitions": None,
}
FULL: dict[str, Any] = {
    "trials": 40,
    "trial_duration": 2.0,
    "warmup": 1.0,
    "top_k": 3,
    "repetitions": None,
}


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "tune",
        help="find the configuration that serves a workload best (Optuna), with intervals",
        description=(
            "Search the Config tree with Optuna, each trial a real measurement on loopback; "
            "re-measure the best candidates beside the balanced and performance presets "
            "(interleaved), and declare a winner only when its interval clears the noise. "
            "Rerunning the same command continues the study."
        ),
    )
    g = p.add_argument_group("workload and objective")
    g.add_argument("--workload", help="uniform, zipf, scan, adversarial or mixed (default: zipf)")
    g.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a workload parameter, e.g. --param s=1.2 (repeatable)",
    )
    _alias(g, "--workload-arg", "--param", "param")
    g.add_argument(
        "--trace", metavar="FILE", help="replay a recorded trace (CSV/Parquet) as the workload"
    )
    g.add_argument(
        "--objective",
        choices=["throughput", "p99"],
        default="throughput",
        help="throughput: closed loop, maximised; p99: open loop at --rate, minimised",
    )
    g.add_argument(
        "--rate", type=float, help="open-loop arrival rate for p99 (req/s, default 2000)"
    )
    g.add_argument("--max-rss-mb", type=float, help="a memory cap: trials above it are infeasible")
    g = p.add_argument_group("search")
    g.add_argument(
        "--trials",
        type=int,
        help="new trials to run now (default 40; quick 6; 0 = only re-measure)",
    )
    g.add_argument("--sampler", choices=["tpe", "random", "grid"], default="tpe")
    g.add_argument("--seed", type=int, default=0, help="sampler seed (give each worker its own)")
    g.add_argument(
        "--knobs", metavar="K1,K2", help="search only these config fields (default: all)"
    )
    g.add_argument("--study-name", metavar="N", help="default <workload>-<objective>[-<rate>rps]")
    g.add_argument(
        "--storage",
        metavar="URL",
        help="Optuna storage (default sqlite:///data/tuning/<study>.db; "
        "postgresql://... to share one study between machines)",
    )
    g = p.add_argument_group("measurement")
    g.add_argument(
        "--trial-duration",
        type=float,
        help="seconds of measured load per trial (default 2; quick 1)",
    )
    g.add_argument("--warmup", type=float, help="seconds of unmeasured load first (default 1)")
    g.add_argument("--connections", type=int, default=64, help="concurrent connections")
    g.add_argument(
        "--engine",
        choices=["auto", "wrk", "aiohttp"],
        default="auto",
        help="closed-loop load generator (auto: wrk when installed and the workload is GETs)",
    )
    g.add_argument("--server-cpu", type=int, help="pin the server (default: the first CPU)")
    g.add_argument("--load-cpu", type=int, help="pin the load generator (default: the second CPU)")
    g.add_argument("--no-pin", action="store_true", help="pin nothing")
    g.add_argument("--app", default="h3lab.bench.apps:create_app", help="module:factory to serve")
    g = p.add_argument_group("selection")
    g.add_argument(
        "--top-k", type=int, help="candidates re-measured beside the presets (default 3; quick 1)"
    )
    g.add_argument(
        "--repetitions",
        type=int,
        help="interleaved rounds (default: the fewest that can reach a verdict)",
    )
    g.add_argument("--confidence", type=float, default=0.95, help="of the intervals that decide")
    g.add_argument(
        "--min-gain",
        type=float,
        default=0.0,
        help="a win needs the interval's lower bound above 1 + this (e.g. 0.02)",
    )
    g.add_argument(
        "--no-select",
        action="store_true",
        help="search only (a worker of a shared study); no re-measurement",
    )
    g = p.add_argument_group("output")
    g.add_argument("--out", default="data/tuning", help="where studies and best configs go")
    g.add_argument("--root", default="data/runs", help="results store root (tidy rows)")
    _alias(g, "--results-root", "--root", "root")
    g.add_argument("--quick", action="store_true", help="a handful of short trials")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)


def _alias(parser: Any, old: str, new: str, dest: str) -> None:
    from h3lab.cli import add_alias

    add_alias(parser, old, new, dest)


def _workload_args(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--param must look like KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = json.loads(raw)
        except ValueError:
            out[key.strip()] = raw
    return out


def settings_from_args(args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    """(TrialSettings, run options) with quick/full defaults filled in."""
    from h3lab.tune.objective import TrialSettings, default_cpus

    base = QUICK if args.quick else FULL
    pick = {
        key: getattr(args, key) if getattr(args, key) is not None else base[key] for key in base
    }
    if pick["trials"] < 0:
        raise ValueError(f"--trials must be >= 0, got {pick['trials']}")
    if pick["top_k"] < 1:
        raise ValueError(f"--top-k must be >= 1, got {pick['top_k']}")
    if pick["repetitions"] is not None and pick["repetitions"] < 1:
        raise ValueError(f"--repetitions must be >= 1, got {pick['repetitions']}")
    if not 0.5 <= args.confidence < 1:
        raise ValueError(f"--confidence must be in [0.5, 1), got {args.confidence}")
    workload, params = args.workload or "zipf", _workload_args(args.param)
    if args.trace:
        if args.workload not in (None, "trace"):
            raise ValueError(
                "--trace replays a trace: leave out --workload (or say --workload trace)"
            )
        workload, params = "trace", {**params, "path": args.trace}
    elif workload == "trace":
        raise ValueError("--workload trace needs --trace FILE")
    server_cpu, load_cpu = (None, None) if args.no_pin else default_cpus()
    if args.server_cpu is not None:
        server_cpu = args.server_cpu
    if args.load_cpu is not None:
        load_cpu = args.load_cpu
    # Build the workload now so a bad name or parameter is one error line, before any study.
    from h3lab.bench.workloads import make_workload

    make_workload(workload, **params)
    settings = TrialSettings(
        workload=workload,
        workload_params=params,
        objective=args.objective,
        rate=args.rate,
        duration=pick["trial_duration"],
        warmup=pick["warmup"],
        connections=args.connections,
        engine=args.engine,
        server_cpu=server_cpu,
        load_cpu=load_cpu,
        max_rss_mb=args.max_rss_mb,
        app=args.app,
    )
    return settings, pick


def _run(args: argparse.Namespace) -> int:
    import optuna

    from h3lab.tune.objective import choose_engine
    from h3lab.tune.run import tune
    from h3lab.tune.space import parse_knobs

    settings, pick = settings_from_args(args)
    knobs = parse_knobs(args.knobs)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    engine = choose_engine(settings)
    what = (
        f"open loop at {settings.arrival_rate:g} req/s, minimise p99"
        if settings.objective == "p99"
        else f"closed loop ({engine}, {settings.connections} connections), maximise throughput"
    )
    print(
        f"h3lab tune: workload {settings.workload}, {what}; {pick['trials']} trial(s) of "
        f"{settings.warmup:g}+{settings.duration:g} s; server cpu {settings.server_cpu}, "
        f"load cpu {settings.load_cpu}"
    )
    result = tune(
        settings,
        trials=pick["trials"],
        study_name=args.study_name,
        storage=args.storage,
        sampler=args.sampler,
        seed=args.seed,
        knobs=knobs,
        top_k=pick["top_k"],
        repetitions=pick["repetitions"],
        confidence=args.confidence,
        min_gain=args.min_gain,
        select=not args.no_select,
        root=args.out,
        results_root=args.root,
        progress=not args.no_progress,
    )
    if result.validity is not None and result.validity.status == "invalid":
        print(
            "\nINVALID re-measurement (the table is for diagnosis only): "
            + "; ".join(result.validity.reasons[:3])
        )
    if result.table:
        print()
        print(result.table)
    if result.best_path is None and result.best_reason:
        print(f"\nno best config: {result.best_reason}")
    if result.best_path is not None:
        print(f"\nbest config: {result.best_path}")
        if result.best_reason:
            print(f"  {result.best_reason}")
        print(f"  serve it: h3lab serve APP --config {result.best_path}")
    if result.candidate_path is not None:
        print(f"best tuned candidate: {result.candidate_path}")
    if result.run_dir is not None:
        print(f"results: {result.run_dir}")
    if not result.completed:
        print("no trial completed: see the failure reasons above")
        return 1
    return 0


__all__ = ["add_parser", "settings_from_args"]
