"""What a load run produces: ``LoadResult``, and the accounting every engine shares.

Accounting (identical for every engine)
---------------------------------------
``requests``: exchanges that completed *and* passed the checks (expected
status, and content type/body when the request states them); their latencies
are in the histogram and ``throughput_rps = requests / duration_s``. Every
failure is counted in exactly one class of ``errors``: ``connect``,
``timeout`` (including requests abandoned at the hard wall-clock bound),
``reset`` (the server closed or reset the connection mid-exchange), ``read``
(unparsable or truncated response), ``status_mismatch``, ``body_mismatch``
(body or content type differs). ``status_counts`` counts every received
response by status. Errors are never retried silently.

``check_response`` classifies one received response; ``RunCounters`` keeps
the counts and the latency histogram of one run of the Python engines and
turns them into a ``LoadResult``. The wrk engine parses wrk's counters into
the same ``LoadResult`` (``h3lab.bench.load.wrk``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from h3lab.bench.histogram import LatencyRecorder, histogram_percentiles

if TYPE_CHECKING:
    from h3lab.bench.route_tables import BenchRequest

ERROR_CLASSES = ("connect", "timeout", "reset", "read", "status_mismatch", "body_mismatch")


@dataclass
class LoadResult:
    engine: str
    """"aiohttp" (also for the raw pipelining path) or "wrk"."""
    loop_mode: str
    """"closed" or "open"."""
    url: str
    workload: str
    connections: int
    pipelining: int
    duration_s: float
    """Measured seconds of the timed phase (from its start to the last completion)."""
    requests: int
    errors: dict[str, int]
    status_counts: dict[int | str, int]
    throughput_rps: float
    latency: dict[str, float | None]
    """p50_ms, p90_ms, p99_ms, p99_9_ms, max_ms (None when not measured)."""
    series: list[dict[str, Any]] = field(default_factory=list)
    target_rate: float | None = None
    histoblob: str | None = None
    warmup_s: float = 0.0
    warmup_requests: int = 0
    warmup_errors: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def errors_total(self) -> int:
        return sum(self.errors.values())

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def rows(
        self,
        study: str,
        run_id: str,
        config_cols: dict[str, Any] | None = None,
        *,
        repetition: int = 0,
        extra: dict[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """Tidy rows: one per summary metric (``t`` None) and per series second (``t``).

        ``t`` of a series row is the second since the timed phase started;
        summary rows leave ``t`` None (``RunWriter`` stamps them with the
        wall-clock time). The trailing partial second is left out of the
        series rows (every metric over time drops it anyway). ``extra`` adds
        columns to each row.
        """
        base: dict[str, Any] = {"study": study, "run_id": run_id, **(config_cols or {})}
        base["workload"] = self.workload
        base.update(
            engine=self.engine,
            loop_mode=self.loop_mode,
            connections=self.connections,
            pipelining=self.pipelining,
            target_rate=self.target_rate,
        )
        base.update(extra or {})
        base["repetition"] = repetition

        def row(metric: str, value: Any, unit: str, t: int | None = None) -> dict[str, Any]:
            return {**base, "metric": metric, "value": value, "unit": unit, "t": t}

        out = [
            row("throughput_rps", self.throughput_rps, "req/s"),
            row("requests", self.requests, "count"),
            row("duration_s", self.duration_s, "s"),
            row("errors_total", self.errors_total, "count"),
        ]
        for key in ("p50_ms", "p90_ms", "p99_ms", "p99_9_ms", "max_ms"):
            value = self.latency.get(key)
            if value is not None:
                out.append(row(f"latency_{key}", value, "ms"))
        out.extend(row(f"errors_{name}", count, "count") for name, count in self.errors.items())
        for s in self.series:
            if s.get("partial"):
                continue
            t = s["t"]
            out.append(row("series_requests", s["requests"], "req", t))
            out.append(row("series_errors", s["errors"], "count", t))
            for key in ("p50_ms", "p99_ms"):
                if s.get(key) is not None:
                    out.append(row(f"series_{key}", s[key], "ms", t))
        return out


def empty_errors() -> dict[str, int]:
    return dict.fromkeys(ERROR_CLASSES, 0)


def content_type_ok(expected: str | None, actual: str | None) -> bool:
    if expected is None:
        return True
    if actual is None:
        return False
    exp = expected.replace(" ", "").lower()
    act = actual.replace(" ", "").lower()
    # "text/plain" accepts "text/plain; charset=utf-8"; a stated parameter must match exactly.
    return act == exp if ";" in exp else act.split(";", 1)[0] == exp


def check_response(req: BenchRequest, status: int, ctype: str | None, body: bytes) -> str | None:
    """The error class of a received response, or None when it is as expected."""
    if status != req.expect_status:
        return "status_mismatch"
    if not content_type_ok(req.expect_content_type, ctype):
        return "body_mismatch"
    if req.expect_body is not None and body != req.expect_body:
        return "body_mismatch"
    return None


class RunCounters:
    """Counters of one run, split between the warm-up and the timed phase."""

    def __init__(self, clock: Callable[[], float], measure_start: float) -> None:
        self.clock = clock
        self.measure_start = measure_start
        self.recorder = LatencyRecorder(start=measure_start, clock=clock)
        self.errors = empty_errors()
        self.status_counts: dict[int | str, int] = {}
        self.requests = 0
        self.warmup_requests = 0
        self.warmup_errors = 0
        self.issued = 0
        self.notes: list[str] = []

    def measuring(self, sent_at: float) -> bool:
        return sent_at >= self.measure_start

    def response(
        self,
        req: BenchRequest,
        sent_at: float,
        status: int,
        ctype: str | None,
        body: bytes,
        latency_from: float | None = None,
    ) -> None:
        done = self.clock()
        self.status_counts[status] = self.status_counts.get(status, 0) + 1
        problem = check_response(req, status, ctype, body)
        if not self.measuring(sent_at):
            if problem is None:
                self.warmup_requests += 1
            else:
                self.warmup_errors += 1
            return
        if problem is None:
            self.requests += 1
            self.recorder.record(done - (sent_at if latency_from is None else latency_from), done)
        else:
            self.errors[problem] += 1
            self.recorder.error(done)

    def error(self, kind: str, sent_at: float, count: int = 1) -> None:
        if not self.measuring(sent_at):
            self.warmup_errors += count
            return
        self.errors[kind] += count
        done = self.clock()
        for _ in range(count):
            self.recorder.error(done)

    def result(self, **kw: Any) -> LoadResult:
        end = self.clock()
        self.recorder.finish(end)
        elapsed = max(end - self.measure_start, 1e-9)
        hist = self.recorder.hist
        return LoadResult(
            engine="aiohttp",
            requests=self.requests,
            errors=self.errors,
            status_counts=self.status_counts,
            throughput_rps=self.requests / elapsed,
            duration_s=elapsed,
            latency=histogram_percentiles(hist),
            series=self.recorder.series.rows(),
            histoblob=self.recorder.encode(),
            warmup_requests=self.warmup_requests,
            warmup_errors=self.warmup_errors,
            notes=self.notes,
            **kw,
        )
