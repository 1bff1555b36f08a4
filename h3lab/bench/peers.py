"""Peer comparison: h3lab and other Python servers, same endpoints, same run.

Each server (h3lab under one or more presets, and every available peer in
``PEERS``) is started in its own process pinned to ``server_cpu``, verified
(status, content type, exact body, Date header) on every endpoint, then
loaded endpoint by endpoint with the load generator pinned to ``load_cpu``
(wrk when installed, else the aiohttp engine). The servers are measured in
``repetitions`` rounds by ``h3lab.bench.rounds.run_rounds``: interleaved,
the order rotated each round, each server restarted every round, so slow
drift on a shared machine spreads over every server instead of biasing one,
and the rounds pair up for intervals.

``ratio_table`` turns the rows into "h3lab req/s / peer req/s" per endpoint
(medians over repetitions; >1 means h3lab served more).
"""

from __future__ import annotations

import importlib.util
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from h3lab.bench.load import LoadResult, run_closed_loop, verify
from h3lab.bench.load.wrk import run_wrk, wrk_available
from h3lab.bench.peer_apps import FLOOR_NAME
from h3lab.bench.rounds import QUICK_ROUNDS, Arm, ArmRun, pinned, run_rounds
from h3lab.bench.route_tables import BenchRequest
from h3lab.bench.server import ServerProcess

if TYPE_CHECKING:
    from h3lab.studies.validity import ValidityRecorder

H3LAB_APP = "h3lab.bench.peer_apps.h3lab_app:create_app"
N_USER_IDS = 100
"""/users/:id is loaded round-robin over this many ids."""


@dataclass(frozen=True)
class Peer:
    name: str
    command: tuple[str, ...]
    """argv with ``{host}`` and ``{port}`` placeholders."""
    modules: tuple[str, ...]
    """Importable modules it needs (``available_peers`` checks them)."""
    description: str
    require_headers: tuple[str, ...] = ("date", "server")
    env: dict[str, str] = field(default_factory=dict)


def _python(args: str) -> tuple[str, ...]:
    """``python ARGS`` with this interpreter (so every server runs in the same venv)."""
    return (sys.executable, *args.split())


_UVICORN = (
    "--host {host} --port {port} --loop uvloop --http httptools --no-access-log --log-level warning"
)

PEERS: dict[str, Peer] = {
    p.name: p
    for p in (
        Peer(
            "aiohttp",
            _python("-m h3lab.bench.peer_apps.aiohttp_app --host {host} --port {port}"),
            ("aiohttp", "uvloop"),
            "aiohttp.web on aiohttp's own server (uvloop, access log off)",
        ),
        Peer(
            "starlette-uvicorn",
            _python(f"-m uvicorn h3lab.bench.peer_apps.starlette_app:app {_UVICORN}"),
            ("starlette", "uvicorn", "uvloop", "httptools"),
            "Starlette on uvicorn (uvloop, httptools, no access log)",
        ),
        Peer(
            "starlette-granian",
            # One worker and one runtime thread (granian's defaults, stated):
            # the same single core every other server gets.
            _python(
                "-m granian --interface asgi --host {host} --port {port} --workers 1 "
                "--runtime-threads 1 --loop uvloop --no-access-log --log-level warning "
                "h3lab.bench.peer_apps.starlette_app:app"
            ),
            ("starlette", "granian", "uvloop"),
            "Starlette on granian (ASGI, 1 worker, 1 runtime thread, uvloop, no access log)",
        ),
        Peer(
            "falcon-uvicorn",
            _python(f"-m uvicorn h3lab.bench.peer_apps.falcon_app:app {_UVICORN}"),
            ("falcon", "uvicorn", "uvloop", "httptools"),
            "Falcon ASGI on uvicorn (uvloop, httptools, no access log)",
        ),
        Peer(
            "blacksheep-uvicorn",
            _python(f"-m uvicorn h3lab.bench.peer_apps.blacksheep_app:app {_UVICORN}"),
            ("blacksheep", "uvicorn", "uvloop", "httptools"),
            "BlackSheep on uvicorn (uvloop, httptools, no access log)",
        ),
        Peer(
            "raw",
            _python("-m h3lab.bench.peer_apps.raw --host {host} --port {port}"),
            ("httptools", "uvloop"),
            "the ceiling: a bare httptools protocol on uvloop with fixed responses",
        ),
        Peer(
            FLOOR_NAME,
            _python("-m h3lab.bench.peer_apps.floor --host {host} --port {port}"),
            ("httptools", "uvloop"),
            "the framework floor: raw plus what any framework must do (a request object, "
            "a route table, the handler in its own context, its result encoded); no checks",
        ),
    )
}


def missing_modules(peer: Peer) -> list[str]:
    return [m for m in peer.modules if importlib.util.find_spec(m) is None]


def available_peers(
    names: Sequence[str] | None = None, on_skip: Callable[[str], None] | None = None
) -> list[Peer]:
    """The peers (all, or ``names``) whose modules are installed; each skip is reported."""
    if names is None:
        names = list(PEERS)
    unknown = [n for n in names if n not in PEERS]
    if unknown:
        raise ValueError(f"unknown peer(s) {unknown}; known: {list(PEERS)}")
    report = on_skip if on_skip is not None else (lambda msg: print(msg, file=sys.stderr))
    out = []
    for name in names:
        peer = PEERS[name]
        missing = missing_modules(peer)
        if missing:
            report(
                f"skipping peer {name!r}: missing module(s) {missing} (pip install h3lab[peers])"
            )
        else:
            out.append(peer)
    return out


# -- endpoints -------------------------------------------------------------------------


def endpoint_requests(endpoint: str) -> list[BenchRequest]:
    """The requests of an endpoint ("plaintext", "json", "params"), with expectations."""
    from h3lab.bench.apps import json_request, plaintext_request, user_request

    if endpoint == "plaintext":
        return [plaintext_request()]
    if endpoint == "json":
        return [json_request()]
    if endpoint == "params":
        return [user_request(i) for i in range(1, N_USER_IDS + 1)]
    raise ValueError(f"endpoint must be one of {list(ENDPOINTS)}, got {endpoint!r}")


ENDPOINTS = ("plaintext", "json", "params")


# -- servers -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """One server of a comparison: an h3lab preset or a peer."""

    name: str
    preset: str | None = None
    peer: Peer | None = None

    def process(self, cpu: int | None, sample_interval: float | None = 1.0) -> ServerProcess:
        if self.peer is not None:
            return ServerProcess(
                command=self.peer.command,
                cpu=cpu,
                env=self.peer.env or None,
                sample_interval=sample_interval,
                name=self.name,
            )
        return ServerProcess(
            app=H3LAB_APP,
            preset=self.preset,
            cpu=cpu,
            sample_interval=sample_interval,
            name=self.name,
        )

    @property
    def require_headers(self) -> tuple[str, ...]:
        return self.peer.require_headers if self.peer is not None else ("date", "server")

    def config_cols(self) -> dict[str, Any]:
        if self.preset is None:
            return {}
        from h3lab.bench.results import config_columns
        from h3lab.config import Config

        return config_columns(Config.preset(self.preset))


def targets(
    peers: Sequence[Peer] | Sequence[str] | None, h3lab_presets: Sequence[str]
) -> list[Target]:
    if peers is None:
        peer_list = available_peers()
    else:
        peer_list = [PEERS[p] if isinstance(p, str) else p for p in peers]
    out = [Target(f"h3lab-{preset}", preset=preset) for preset in h3lab_presets]
    out += [Target(p.name, peer=p) for p in peer_list]
    return out


def load_once(
    url: str,
    reqs: list[BenchRequest],
    *,
    engine: str,
    duration: float,
    connections: int,
    load_cpu: int | None,
    warmup: float,
    threads: int = 1,
) -> LoadResult:
    """One timed load of ``reqs`` on ``url`` with ``engine`` (a short untimed priming first)."""
    name = reqs[0].route or reqs[0].path
    if engine == "wrk":
        paths = [r.path for r in reqs]
        if warmup > 0:
            run_wrk(
                url,
                connections=connections,
                threads=threads,
                duration=warmup,
                paths=paths,
                cpu=load_cpu,
            )
        return run_wrk(
            url,
            connections=connections,
            threads=threads,
            duration=duration,
            paths=paths,
            cpu=load_cpu,
            workload=name,
        )
    if engine == "aiohttp":
        with pinned(load_cpu):
            result = run_closed_loop(
                url, reqs, connections=connections, duration=duration, warmup=warmup
            )
        result.workload = name
        return result
    raise ValueError(f"engine must be 'wrk' or 'aiohttp', got {engine!r}")


def compare(
    endpoints: Sequence[str] = ENDPOINTS,
    peers: Sequence[Peer] | Sequence[str] | None = None,
    h3lab_presets: Sequence[str] = ("performance",),
    duration: float = 5.0,
    connections: int = 64,
    engine: str | None = None,
    server_cpu: int | None = 0,
    load_cpu: int | None = 1,
    repetitions: int = QUICK_ROUNDS,
    *,
    warmup: float = 1.0,
    study: str = "bench-peers",
    run_id: str = "",
    progress: Callable[[str], None] | None = None,
    recorder: ValidityRecorder | None = None,
) -> list[dict[str, Any]]:
    """Every server x endpoint in ``repetitions`` interleaved rounds (``run_rounds``).

    Tidy rows with ``server``, ``endpoint``, ``arm`` and ``round``; each
    server restarted for every round; CPU phase rows and validity checks
    (server saturated, client headroom, machine quiet) go to ``recorder``
    (default: the process-wide one). ``peers`` None = every available peer.
    A server that fails to start or to verify raises (a comparison with a
    wrong answer in it is not a result).
    """
    engine = engine or ("wrk" if wrk_available() else "aiohttp")
    if engine not in ("wrk", "aiohttp"):
        raise ValueError(f"engine must be 'wrk' or 'aiohttp', got {engine!r}")
    for ep in endpoints:
        endpoint_requests(ep)  # validates the names before anything starts
    if repetitions < 1:
        raise ValueError(f"repetitions must be >= 1, got {repetitions}")
    by_name = {t.name: t for t in targets(peers, h3lab_presets)}

    def measure(run: ArmRun) -> list[dict[str, Any]]:
        target = by_name[run.arm.label]
        srv = run.server
        assert srv is not None
        for ep in endpoints:
            verify(srv.url, endpoint_requests(ep), require_headers=target.require_headers)
        out: list[dict[str, Any]] = []
        for ep in endpoints:
            reqs = endpoint_requests(ep)
            if warmup > 0:
                load_once(srv.url, reqs, engine=engine, duration=warmup, connections=connections,
                          load_cpu=run.load_cpu, warmup=0.0)  # fmt: skip
            with run.phase(f"closed {ep}", saturating=True):
                result = load_once(srv.url, reqs, engine=engine, duration=duration,
                                   connections=connections, load_cpu=run.load_cpu, warmup=0.0)  # fmt: skip
            extra = {
                "server": target.name,
                "endpoint": ep,
                "server_cpu": run.server_cpu,
                "load_cpu": run.load_cpu,
            }
            out += result.rows(
                study, run_id, target.config_cols(), repetition=run.round, extra=extra
            )
            if progress is not None:
                progress(
                    f"{study} | {target.name} | round {run.round + 1}/{repetitions} | {ep}: "
                    f"{result.throughput_rps:.0f} req/s"
                )
        out += srv.samples_rows(
            study, run_id, target.config_cols(), repetition=run.round, extra={"server": target.name}
        )
        for row in run.rows:
            row["server"] = target.name
        return out

    arms = [
        Arm(t.name, server=None, start=t.process, columns={"server": t.name})
        for t in by_name.values()
    ]
    result = run_rounds(
        arms,
        rounds=repetitions,
        measure=measure,
        progress=None,
        server_cpu=server_cpu,
        load_cpu=load_cpu,
        recorder=recorder,
    )
    return result.rows


def ratio_table(
    rows: Sequence[dict[str, Any]], reference: str | None = None
) -> list[dict[str, Any]]:
    """Per endpoint and server: median req/s over rounds and ``reference / server``.

    ``reference`` defaults to the first server whose name starts with
    ``h3lab`` (the first preset given, never the best-measured one). A ratio
    above 1 means the reference served more requests per second than that
    server; ``ratio_lo``/``ratio_hi`` is its paired interval over the rounds
    (geometric mean of per-round ratios) and ``significant`` whether it
    excludes 1.
    """
    rps: dict[tuple[str, str], list[float]] = {}
    order: list[str] = []
    for row in rows:
        if row.get("metric") != "throughput_rps" or row.get("endpoint") is None:
            continue
        key = (row["endpoint"], row["server"])
        rps.setdefault(key, []).append(float(row["value"]))
        if row["server"] not in order:
            order.append(row["server"])
    if reference is None:
        reference = next((s for s in order if s.startswith("h3lab")), None)
    by_round = _by_round(rows)
    out = []
    endpoints = list(dict.fromkeys(ep for ep, _ in rps))
    for ep in endpoints:
        ref = rps.get((ep, reference)) if reference else None
        ref_median = statistics.median(ref) if ref else None
        for server in order:
            values = rps.get((ep, server))
            if not values:
                continue
            med = statistics.median(values)
            out.append(
                {
                    "endpoint": ep,
                    "server": server,
                    "rps": med,
                    "n": len(values),
                    "min": min(values),
                    "max": max(values),
                    "ratio": (ref_median / med) if ref_median is not None and med > 0 else None,
                    **_paired_ratio(by_round, ep, reference, server),
                }
            )
    return out


def _by_round(rows: Sequence[dict[str, Any]]) -> dict[tuple[str, str], dict[int, float]]:
    out: dict[tuple[str, str], dict[int, float]] = {}
    for row in rows:
        if row.get("metric") != "throughput_rps" or row.get("endpoint") is None:
            continue
        rnd = row.get("round", row.get("repetition"))
        if rnd is not None:
            out.setdefault((row["endpoint"], row["server"]), {})[int(rnd)] = float(row["value"])
    return out


def _paired_ratio(
    by_round: dict[tuple[str, str], dict[int, float]], ep: str, reference: str | None, server: str
) -> dict[str, Any]:
    """``ratio_lo``/``ratio_hi``/``significant``: paired over the rounds both were measured
    in (``h3lab.studies.stats.paired_comparison``; None without two rounds or scipy)."""
    empty: dict[str, Any] = {"ratio_lo": None, "ratio_hi": None, "significant": None}
    if reference is None or server == reference:
        return empty
    ref, other = by_round.get((ep, reference), {}), by_round.get((ep, server), {})
    common = sorted(set(ref) & set(other))
    if len(common) < 2:
        return empty
    try:
        from h3lab.studies.stats import paired_comparison
    except ImportError:  # pragma: no cover - scipy is in the studies extra
        return empty
    c = paired_comparison(
        [other[r] for r in common], [ref[r] for r in common], higher_is_better=True
    )
    return {"ratio_lo": c.lo, "ratio_hi": c.hi, "significant": c.significant}


def format_ratio_table(table: Sequence[dict[str, Any]], reference: str = "h3lab") -> str:
    """A plain-text table: endpoint, server, req/s (median, min-max), reference ratio."""
    header = f"{'endpoint':<10} {'server':<22} {'req/s':>10} {'min..max':>19} {'n':>2} {reference + ' x [interval]':>24}"
    lines = [header, "-" * len(header)]
    for r in table:
        ratio = f"{r['ratio']:.2f}" if r["ratio"] is not None else "-"
        if r.get("ratio_lo") is not None:
            ratio += f" [{r['ratio_lo']:.2f}, {r['ratio_hi']:.2f}]"
        span = f"{r['min']:.0f}..{r['max']:.0f}"
        lines.append(
            f"{r['endpoint']:<10} {r['server']:<22} {r['rps']:>10.0f} {span:>19} {r['n']:>2} {ratio:>24}"
        )
    return "\n".join(lines)


__all__ = [
    "ENDPOINTS",
    "H3LAB_APP",
    "PEERS",
    "Peer",
    "Target",
    "available_peers",
    "compare",
    "endpoint_requests",
    "format_ratio_table",
    "load_once",
    "missing_modules",
    "pinned",
    "ratio_table",
    "targets",
]
