"""One trial = one real measurement of one configuration.

``measure(config, settings)`` writes the config to a file, starts
``h3lab serve --config FILE`` through ``ServerProcess`` (on ``server_cpu``),
verifies the workload's answers (status, content type, body), warms up, runs
the load for ``duration`` seconds and returns a ``Measurement``:

* ``throughput`` -- closed loop, maximised. The engine is wrk when it is
  installed and the workload is bodiless GETs (a C load generator: the
  Python one saturates its own core long before an h3lab server does, and
  would measure itself), else the aiohttp engine of ``h3lab.bench.load``.
* ``p99`` -- open loop at ``rate`` requests/s (latency from each request's
  intended start, no coordinated omission), minimised.

Anything that goes wrong -- the server does not start or dies, a response is
wrong, any request errs -- raises ``TrialFailure`` with the reason; the trial
is then recorded as *failed* with that reason (``trial.user_attrs
["fail_reason"]``), never as a zero that would look like a measurement.

``max_rss_mb`` is a constraint, not a failure: the trial keeps its value and
records ``rss_peak_mb`` and ``rss_excess_mb`` (> 0 means over the cap), set
as the trial's Optuna constraint (TPE models it); the selection skips
infeasible candidates.
"""

from __future__ import annotations

import functools
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from h3lab.bench.rounds import cpus, pinned
from h3lab.config import Config

if TYPE_CHECKING:
    import optuna

    from h3lab.bench.load import LoadResult
    from h3lab.bench.route_tables import BenchRequest
    from h3lab.studies.stats import Direction
    from h3lab.tune.space import SearchSpace

DEFAULT_APP = "h3lab.bench.apps:create_app"
OBJECTIVES: dict[str, Direction] = {"throughput": "maximize", "p99": "minimize"}
UNITS: dict[str, str] = {"throughput": "req/s", "p99": "ms"}
ENGINES = ("auto", "wrk", "aiohttp")
DEFAULT_RATE = 2000.0
"""Open-loop rate for ``p99`` when none is given: one the Python generator sustains on one core."""

SAMPLE_REQUESTS = 20_000
"""Requests drawn from a workload with a small key space (enough to keep its distribution)."""
WRK_PEAK_RPS = 120_000
"""Paths generated per second of wrk load for a huge key space, so no path repeats within a run."""
AIOHTTP_PEAK_RPS = 25_000
"""The same for the Python engines (they never go faster on one core)."""
STATUS_MIX_TOLERANCE = 0.02
"""wrk cannot check each answer: the share of non-2xx answers must match the workload's."""


class TrialFailure(Exception):
    """A measurement that must not count: the message is the reason recorded."""


@dataclass(frozen=True)
class TrialSettings:
    """Everything a trial's measurement depends on besides the config."""

    workload: str = "zipf"
    workload_params: Mapping[str, Any] = field(default_factory=dict)
    """Passed to ``make_workload`` (for ``trace``: ``{"path": FILE}``)."""
    objective: str = "throughput"
    rate: float | None = None
    """Open-loop arrival rate for ``p99`` (req/s); ``DEFAULT_RATE`` when None."""
    duration: float = 2.0
    warmup: float = 1.0
    connections: int = 64
    engine: str = "auto"
    server_cpu: int | None = None
    load_cpu: int | None = None
    max_rss_mb: float | None = None
    app: str = DEFAULT_APP
    verify_requests: int = 200
    """Distinct requests among the first this-many of the workload are verified before timing."""

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {list(OBJECTIVES)}, got {self.objective!r}")
        if self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {list(ENGINES)}, got {self.engine!r}")
        if not self.duration > 0:
            raise ValueError(f"trial duration must be > 0 s, got {self.duration}")
        if self.warmup < 0:
            raise ValueError(f"warm-up must be >= 0 s, got {self.warmup}")
        if self.connections < 1:
            raise ValueError(f"connections must be >= 1, got {self.connections}")
        if self.rate is not None and not self.rate > 0:
            raise ValueError(f"rate must be > 0 req/s, got {self.rate}")
        if self.max_rss_mb is not None and not self.max_rss_mb > 0:
            raise ValueError(f"max RSS must be > 0 MB, got {self.max_rss_mb}")
        if self.engine == "wrk" and self.objective == "p99":
            raise ValueError("the p99 objective needs the open-loop engine (wrk is closed loop)")
        for name in ("server_cpu", "load_cpu"):
            cpu = getattr(self, name)
            if cpu is not None and cpu not in _available_cpus():
                raise ValueError(f"{name} {cpu} is not in this process's CPUs {_available_cpus()}")

    @property
    def direction(self) -> Direction:
        return OBJECTIVES[self.objective]

    @property
    def unit(self) -> str:
        return UNITS[self.objective]

    @property
    def arrival_rate(self) -> float:
        return float(self.rate) if self.rate is not None else DEFAULT_RATE

    def describe(self) -> dict[str, Any]:
        """JSON-shaped, for the study's attributes and the results' metadata."""
        out = asdict(self)
        out["workload_params"] = dict(self.workload_params)
        out["direction"] = self.direction
        # The rate is part of what a p99 study measures, and meaningless for throughput.
        out["rate"] = self.arrival_rate if self.objective == "p99" else None
        return out

    def better(self, a: float, b: float) -> bool:
        """Is objective value ``a`` better than ``b``?"""
        return a > b if self.direction == "maximize" else a < b


def _available_cpus() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return list(range(os.cpu_count() or 1))


def default_cpus() -> tuple[int | None, int | None]:
    """Server on the first CPU, load on the second, when this process may use two."""
    return cpus()


@dataclass
class Measurement:
    value: float
    """The objective: req/s (throughput) or ms (p99)."""
    throughput_rps: float
    p50_ms: float | None
    p99_ms: float | None
    rss_peak_mb: float
    requests: int
    duration_s: float
    engine: str
    loop_mode: str
    notes: list[str] = field(default_factory=list)
    server_cpu_percent: float | None = None
    """The server's CPU over the timed load (% of one core; psutil by pid)."""
    client_cpu_percent: float | None = None
    """The load generator's CPU over the timed load (this process + wrk)."""

    def attrs(self) -> dict[str, Any]:
        """For ``trial.user_attrs`` (JSON-shaped)."""
        return asdict(self)


# -- the traffic -----------------------------------------------------------------------


@dataclass(frozen=True)
class Traffic:
    """What the load generator sends: requests (Python engines) or paths (wrk)."""

    name: str
    requests: tuple[BenchRequest, ...]
    """The whole stream (Python engines), empty for wrk."""
    warm_count: int
    """The first this-many of ``requests`` are the warm-up's (open loop)."""
    warm_paths: tuple[str, ...]
    paths: tuple[str, ...]
    """wrk: a warm-up slice and a measured slice, disjoint (a replay would warm the cache)."""
    non2xx_share: float
    """Share of answers the workload expects outside 2xx/3xx (wrk counts them as errors)."""
    verify: tuple[BenchRequest, ...]
    wrk_ok: bool
    """Every request is a bodiless GET: wrk can send it."""


def _workload(settings: TrialSettings) -> Any:
    from h3lab.bench.workloads import make_workload

    return make_workload(settings.workload, **dict(settings.workload_params))


def _is_ok_status(status: int) -> bool:
    return 200 <= status < 400


@functools.lru_cache(maxsize=4)
def _traffic(
    workload: str,
    params: tuple[tuple[str, Any], ...],
    wrk: bool,
    seconds: float,
    warm_seconds: float,
    verify_requests: int,
) -> Traffic:
    from h3lab.bench.workloads import make_workload

    wl = make_workload(workload, **dict(params))
    length = int(wl.params.get("length") or 0)  # a trace replays all of itself
    huge = wl.working_set() > SAMPLE_REQUESTS
    peak = WRK_PEAK_RPS if wrk else AIOHTTP_PEAK_RPS
    measured = max(SAMPLE_REQUESTS, length, int(seconds * peak) if huge else 0)
    warm = max(length, int(warm_seconds * peak) if huge else SAMPLE_REQUESTS) if warm_seconds else 0
    verify = tuple(wl.requests(verify_requests))
    if not wrk:
        reqs = tuple(wl.requests(warm + measured))
        return Traffic(wl.name, reqs, warm, (), (), 0.0, verify, False)
    paths: list[str] = []
    bad = 0
    ok = True
    for req in wl.requests(warm + measured):
        if req.method != "GET" or req.body:
            ok = False
            break
        paths.append(req.path)
        if not _is_ok_status(req.expect_status) and len(paths) > warm:
            bad += 1
    if not ok:
        return Traffic(wl.name, (), 0, (), (), 0.0, verify, False)
    return Traffic(
        wl.name,
        (),
        0,
        tuple(paths[:warm]),
        tuple(paths[warm:]),
        bad / max(1, measured),
        verify,
        True,
    )


def traffic(settings: TrialSettings, engine: str) -> Traffic:
    params = tuple(sorted((k, _hashable(v)) for k, v in settings.workload_params.items()))
    return _traffic(
        settings.workload,
        params,
        engine == "wrk",
        settings.duration,
        settings.warmup,
        settings.verify_requests,
    )


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def choose_engine(settings: TrialSettings) -> str:
    """``wrk`` or ``aiohttp`` for these settings (``auto`` prefers wrk for throughput)."""
    if settings.objective == "p99":
        return "aiohttp"
    if settings.engine == "aiohttp":
        return "aiohttp"
    from h3lab.bench.load.wrk import wrk_available

    if settings.engine == "wrk":
        if not wrk_available():
            raise ValueError("--engine wrk: wrk is not installed (apt-get install wrk)")
        if not traffic(settings, "wrk").wrk_ok:
            raise ValueError(f"--engine wrk: workload {settings.workload!r} is not bodiless GETs")
        return "wrk"
    if wrk_available() and traffic(settings, "wrk").wrk_ok:
        return "wrk"
    return "aiohttp"


# -- one measurement ----------------------------------------------------------------------


def _check_errors(result: LoadResult, expected_non2xx: float = 0.0) -> None:
    errors = dict(result.errors)
    status = errors.pop("status_mismatch", 0)
    if result.engine == "wrk" and expected_non2xx > 0:
        # wrk counts every non-2xx/3xx answer as an error; the workload wants
        # some (404 junk). Accept exactly the expected share, within noise.
        total = result.requests + status
        share = status / total if total else 0.0
        slack = STATUS_MIX_TOLERANCE + 3 * math.sqrt(
            expected_non2xx * (1 - expected_non2xx) / max(1, total)
        )
        if abs(share - expected_non2xx) > slack:
            raise TrialFailure(
                f"non-2xx share {share:.3f} differs from the workload's {expected_non2xx:.3f}"
            )
        status = 0
    if status:
        errors["status_mismatch"] = status
    bad = {k: v for k, v in errors.items() if v}
    if bad:
        total = sum(bad.values())
        detail = ", ".join(f"{k}={v}" for k, v in sorted(bad.items()))
        raise TrialFailure(f"{total} request error(s) under load ({detail})")


def _run_load(srv: Any, settings: TrialSettings, engine: str, tr: Traffic) -> LoadResult:
    from h3lab.bench import load

    if engine == "wrk":
        from h3lab.bench.load.wrk import WrkError, run_wrk

        try:
            if tr.warm_paths:
                run_wrk(
                    srv.url,
                    connections=settings.connections,
                    duration=settings.warmup,
                    paths=list(tr.warm_paths),
                    cpu=settings.load_cpu,
                )
            result = run_wrk(
                srv.url,
                connections=settings.connections,
                duration=settings.duration,
                paths=list(tr.paths),
                cpu=settings.load_cpu,
                workload=tr.name,
            )
        except WrkError as exc:
            raise TrialFailure(f"wrk failed: {exc}") from None
        ok_total = result.requests + (
            result.errors.get("status_mismatch", 0) if tr.non2xx_share else 0
        )
        _check_errors(result, tr.non2xx_share)
        # Every correct answer counts, the expected 404s included.
        result.throughput_rps = ok_total / result.duration_s
        return result
    with pinned(settings.load_cpu):
        if settings.objective == "throughput":
            result = load.run_closed_loop(
                srv.url,
                list(tr.requests),
                connections=settings.connections,
                duration=settings.duration,
                warmup=settings.warmup,
            )
        else:
            # Disjoint slices: replaying the warm-up's requests would pre-fill the cache.
            warm, measured = tr.requests[: tr.warm_count], tr.requests[tr.warm_count :]
            if warm:
                load.run_open_loop(
                    srv.url,
                    list(warm),
                    rate=settings.arrival_rate,
                    duration=settings.warmup,
                    connections=settings.connections,
                )
            result = load.run_open_loop(
                srv.url,
                list(measured),
                rate=settings.arrival_rate,
                duration=settings.duration,
                connections=settings.connections,
            )
    _check_errors(result)
    return result


def measure(
    config: Config, settings: TrialSettings, workdir: str | Path | None = None
) -> Measurement:
    """Serve ``config`` in a subprocess, verify it, load it; raises ``TrialFailure``."""
    from h3lab.bench.load import VerificationError, verify
    from h3lab.bench.server import ServerProcess, ServerStartError

    engine = choose_engine(settings)
    tr = traffic(settings, engine)
    tmp = tempfile.mkdtemp(prefix="h3lab-tune-", dir=workdir)
    try:
        config_file = config.dump(Path(tmp) / "trial.toml")
        server = ServerProcess(
            settings.app,
            preset=None,
            config_file=config_file,
            cpu=settings.server_cpu,
            sample_interval=0.5,
            stats_path=None,  # RSS comes from psutil; stats GETs would be counted as load
            name="h3lab-tune",
        )
        try:
            server.start()
        except ServerStartError as exc:
            raise TrialFailure(f"server did not start: {_one_line(exc)}") from None
        try:
            try:
                verify(server.url, tr.verify)
            except VerificationError as exc:
                raise TrialFailure(f"verification failed: {_one_line(exc)}") from None
            from h3lab.studies.validity import PhaseCpu

            # Includes wrk's short warm-up: a little conservative for the server share.
            with PhaseCpu(server.pid) as cpu:
                result = _run_load(server, settings, engine, tr)
            if not server.alive():
                raise TrialFailure(f"server died under load: {_one_line(server.stderr_tail())}")
            rss = [s["rss_bytes"] for s in server.samples]
            rss.append(server.sample()["rss_bytes"])
        finally:
            server.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if result.requests == 0:
        raise TrialFailure("no request completed")
    p99 = result.latency.get("p99_ms")
    if settings.objective == "p99":
        if p99 is None:
            raise TrialFailure("no latency was measured")
        value = float(p99)
    else:
        value = float(result.throughput_rps)
    notes = list(result.notes)
    if (
        settings.objective == "throughput"
        and cpu.server_percent is not None
        and cpu.server_percent < 90.0
    ):
        notes.append(
            f"server at {cpu.server_percent:.0f}% of a core under saturating load (< 90%): "
            "client-bound or disturbed"
        )
    if result.loop_mode == "open" and result.throughput_rps < 0.9 * settings.arrival_rate:
        notes.append(
            f"achieved {result.throughput_rps:.0f} req/s of {settings.arrival_rate:.0f}: overloaded"
        )
    return Measurement(
        value=value,
        throughput_rps=float(result.throughput_rps),
        p50_ms=result.latency.get("p50_ms"),
        p99_ms=p99,
        rss_peak_mb=max(rss) / 2**20,
        requests=int(result.requests),
        duration_s=float(result.duration_s),
        engine=result.engine,
        loop_mode=result.loop_mode,
        notes=notes,
        server_cpu_percent=cpu.server_percent,
        client_cpu_percent=cpu.client_percent,
    )


def _one_line(exc: object) -> str:
    text = " | ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    return text[:600]


# -- one trial -------------------------------------------------------------------------------

MeasureFn = Callable[[Config, TrialSettings], Measurement]


def config_key(config: Config) -> str:
    """Configs that serve identically compare equal (the preset name is left out)."""
    import json

    return json.dumps(config.to_dict(), sort_keys=True)


def _find_duplicate(study: optuna.Study, key: str, number: int) -> optuna.trial.FrozenTrial | None:
    from optuna.trial import TrialState

    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if t.number != number and t.user_attrs.get("config_key") == key:
            return t
    return None


@functools.cache
def _code_commit() -> str | None:
    """The commit of the h3lab that measures (None outside a git checkout), once per process."""
    from h3lab.bench.machine import git_info

    info = git_info()
    commit = info["commit"]
    return None if commit is None else commit + ("-dirty" if info["dirty"] else "")


def run_trial(
    study: optuna.Study,
    space: SearchSpace,
    settings: TrialSettings,
    measure_fn: MeasureFn | None = None,
) -> optuna.trial.FrozenTrial:
    """Ask for a trial, sample its config, measure it, tell the outcome.

    A config already measured in this study (samplers do propose repeats in
    a categorical space) is not measured again: the trial reuses that value
    and says so in ``duplicate_of``.
    """
    from optuna.trial import TrialState

    measure_fn = measure_fn or measure
    trial = study.ask()
    # A resumed study keeps trials measured by older code: each says which.
    trial.set_user_attr("commit", _code_commit())
    try:
        config = space.sample(trial)
        key = config_key(config)
        trial.set_user_attr("config", config.to_dict())
        trial.set_user_attr("config_key", key)
        trial.set_user_attr("knobs", {k: config.flat()[k] for k in space.keys})
        dup = _find_duplicate(study, key, trial.number)
        if dup is not None:
            for name, value in dup.user_attrs.items():
                if name not in ("config", "config_key", "knobs", "duplicate_of"):
                    trial.set_user_attr(name, value)
            trial.set_user_attr("duplicate_of", dup.number)
            assert dup.value is not None
            return study.tell(trial, dup.value)
        m = measure_fn(config, settings)
    except TrialFailure as exc:
        trial.set_user_attr("fail_reason", str(exc))
        return study.tell(trial, state=TrialState.FAIL)
    except KeyboardInterrupt:
        trial.set_user_attr("fail_reason", "interrupted")
        study.tell(trial, state=TrialState.FAIL)
        raise
    except Exception as exc:  # a bug or an environment problem: recorded, not fatal
        trial.set_user_attr("fail_reason", f"{type(exc).__name__}: {_one_line(exc)}")
        return study.tell(trial, state=TrialState.FAIL)
    for name, value in m.attrs().items():
        trial.set_user_attr(name, value)
    if settings.max_rss_mb is not None:
        excess = m.rss_peak_mb - settings.max_rss_mb
        trial.set_user_attr("rss_excess_mb", excess)
        # Optuna's convention: feasible when <= 0. TPE learns from it, best_trial honours it.
        trial.set_constraint("rss_excess_mb", excess)
    if not math.isfinite(m.value):
        trial.set_user_attr("fail_reason", f"objective value is {m.value}")
        return study.tell(trial, state=TrialState.FAIL)
    return study.tell(trial, m.value)


def feasible(trial: optuna.trial.FrozenTrial, max_rss_mb: float | None) -> bool:
    """Within the RSS cap (always, without a cap)."""
    if max_rss_mb is None:
        return True
    rss = trial.user_attrs.get("rss_peak_mb")
    return rss is not None and float(rss) <= max_rss_mb


__all__ = [
    "DEFAULT_APP",
    "OBJECTIVES",
    "Measurement",
    "TrialFailure",
    "TrialSettings",
    "choose_engine",
    "config_key",
    "default_cpus",
    "feasible",
    "measure",
    "run_trial",
    "traffic",
]
