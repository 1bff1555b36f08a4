"""Latency recording (HdrHistogram) and the over-time metrics built on it.

Every load engine records each request's latency, in microseconds, into one
``HdrHistogram(1 us, 60 s, 3 significant digits)``: fixed memory, ~0.1 %
value precision, lossless merging and a compact base64 encoding (the
"histoblob" stored with each run). Percentiles are read from the histogram
and never averaged across runs -- merge the histograms instead.

Alongside it, a ``TimeSeries`` keeps one bucket per wall-clock second since
the start of the run: requests completed, errors, and a small HdrHistogram per
second for that second's p50/p99. Two headline metrics are computed from the
series (the project's "throughput degradation 21.3% -> 2.5%" claim uses the
first one):

Throughput degradation
    ``degradation(series, window_s, warmup_s)``::

        degradation = 1 - throughput(last window) / throughput(first window)

    The series' per-second rows are first filtered: rows whose second starts
    before ``warmup_s`` are dropped (a second that overlaps the warm-up is
    warm-up), and the trailing partial second (flagged ``partial`` by
    ``TimeSeries``: the run ended inside it) is dropped. Of what remains, the
    *first window* is the first ``window_s`` seconds and the *last window* the
    last ``window_s`` seconds; throughput of a window = requests completed in
    it / ``window_s``. The windows must not overlap (at least ``2 * window_s``
    complete seconds after warm-up), else ``ValueError``. 0.0 = no
    degradation, 0.213 = the last window served 21.3 % fewer requests per
    second than the first; negative = it got faster.

p99 slope
    ``p99_slope(series, warmup_s)``: the ordinary least-squares slope of the
    per-second p99 latency (ms) against time (s), over the same rows (after
    warm-up, trailing partial second dropped, seconds with no completed
    request skipped since they have no p99). Unit: ms per second. A server
    whose tail latency creeps up (heap growth, GC pressure, cache pollution)
    has a positive slope.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from hdrh.histogram import HdrHistogram

LOWEST_US = 1
HIGHEST_US = 60 * 1_000_000
SIGNIFICANT_DIGITS = 3

#: percentile -> the key it is reported under (values in milliseconds).
PERCENTILES: dict[float, str] = {50.0: "p50_ms", 90.0: "p90_ms", 99.0: "p99_ms", 99.9: "p99_9_ms"}


def new_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)


def _to_us(latency_s: float) -> int:
    # Clamp instead of raising: a latency below 1 us is a clock artefact, one
    # above 60 s is recorded as 60 s (and the engine's timeout is far below).
    us = round(latency_s * 1_000_000)
    return min(max(us, LOWEST_US), HIGHEST_US)


def histogram_percentiles(hist: HdrHistogram) -> dict[str, float | None]:
    """p50/p90/p99/p99.9/max (ms) of ``hist``; None everywhere when it is empty."""
    if hist.get_total_count() == 0:
        return {**dict.fromkeys(PERCENTILES.values()), "max_ms": None}
    out: dict[str, float | None] = {
        key: hist.get_value_at_percentile(p) / 1000.0 for p, key in PERCENTILES.items()
    }
    out["max_ms"] = hist.get_max_value() / 1000.0
    return out


@dataclass(slots=True)
class SecondBucket:
    """One wall-clock second of a run."""

    t: int
    requests: int = 0
    errors: int = 0
    hist: HdrHistogram = field(default_factory=new_histogram)


class TimeSeries:
    """Per-second buckets since ``start`` (a ``clock()`` reading).

    ``add(latency_s, at)`` files a completed request under the second in which
    it *completed*; ``error(at)`` files an error. ``finish(end)`` records when
    the run ended so the trailing partial second can be flagged.
    """

    def __init__(self, start: float | None = None, clock: Callable[[], float] = time.perf_counter):
        self.clock = clock
        self.start = clock() if start is None else start
        self.end: float | None = None
        self.buckets: list[SecondBucket] = []

    def _bucket(self, at: float | None) -> SecondBucket:
        at = self.clock() if at is None else at
        index = max(0, int(at - self.start))
        buckets = self.buckets
        while len(buckets) <= index:
            buckets.append(SecondBucket(len(buckets)))
        return buckets[index]

    def add(self, latency_s: float, at: float | None = None) -> None:
        bucket = self._bucket(at)
        bucket.requests += 1
        bucket.hist.record_value(_to_us(latency_s))

    def error(self, at: float | None = None) -> None:
        self._bucket(at).errors += 1

    def finish(self, end: float | None = None) -> None:
        self.end = self.clock() if end is None else end
        self._bucket(self.end)  # make sure every second up to the end exists

    def rows(self) -> list[dict[str, Any]]:
        """``[{"t", "requests", "errors", "p50_ms", "p99_ms", "partial"}, ...]``."""
        elapsed = None if self.end is None else self.end - self.start
        out = []
        for b in self.buckets:
            count = b.hist.get_total_count()
            out.append(
                {
                    "t": b.t,
                    "requests": b.requests,
                    "errors": b.errors,
                    "p50_ms": b.hist.get_value_at_percentile(50) / 1000.0 if count else None,
                    "p99_ms": b.hist.get_value_at_percentile(99) / 1000.0 if count else None,
                    # A second the run did not last through entirely.
                    "partial": elapsed is not None and b.t + 1 > elapsed + 1e-9,
                }
            )
        return out


class LatencyRecorder:
    """The whole run's latency histogram plus its per-second series."""

    def __init__(self, start: float | None = None, clock: Callable[[], float] = time.perf_counter):
        self.hist = new_histogram()
        self.series = TimeSeries(start, clock)

    def record(self, latency_s: float, at: float | None = None) -> None:
        """Record one completed request; ``at`` = its completion time (default: now)."""
        self.hist.record_value(_to_us(latency_s))
        self.series.add(latency_s, at)

    def error(self, at: float | None = None) -> None:
        self.series.error(at)

    def finish(self, end: float | None = None) -> None:
        self.series.finish(end)

    @property
    def count(self) -> int:
        return self.hist.get_total_count()

    def percentiles(self) -> dict[str, float | None]:
        """``{"p50_ms", "p90_ms", "p99_ms", "p99_9_ms", "max_ms"}``."""
        return histogram_percentiles(self.hist)

    def merge(self, other: LatencyRecorder) -> None:
        """Add ``other``'s histogram (lossless); the series stay separate."""
        self.hist.add(other.hist)

    def encode(self) -> str:
        """The histogram as HdrHistogram's compressed base64 text ("histoblob")."""
        return encode(self.hist)

    @staticmethod
    def decode(blob: str | bytes) -> HdrHistogram:
        return decode(blob)


def encode(hist: HdrHistogram) -> str:
    return hist.encode().decode("ascii")


def decode(blob: str | bytes) -> HdrHistogram:
    """A histogram back from ``encode`` (percentiles are exactly preserved)."""
    data = blob.encode("ascii") if isinstance(blob, str) else blob
    return HdrHistogram.decode(data)


# -- metrics over time --------------------------------------------------------

SeriesLike = TimeSeries | Sequence[Mapping[str, Any]] | Sequence[float]


def _rows(series: SeriesLike) -> list[dict[str, Any]]:
    """Normalise: a TimeSeries, per-second row dicts, or plain per-second counts."""
    if isinstance(series, TimeSeries):
        return series.rows()
    rows = []
    # Cast: mypy joins the two sequences' items to object.
    items = cast("Sequence[Mapping[str, Any] | float]", series)
    for i, item in enumerate(items):
        if isinstance(item, Mapping):
            rows.append(dict(item))
        else:
            rows.append({"t": i, "requests": float(item), "partial": False})
    return rows


def _complete_after_warmup(series: SeriesLike, warmup_s: float) -> list[dict[str, Any]]:
    rows = sorted(_rows(series), key=lambda r: r["t"])
    # Only the *trailing* partial second is dropped; a partial flag anywhere
    # else would be a bug in whoever built the rows, so it is not hidden.
    while rows and rows[-1].get("partial"):
        rows.pop()
    return [r for r in rows if r["t"] >= warmup_s]


def degradation(series: SeriesLike, window_s: int, warmup_s: float = 0.0) -> float:
    """``1 - throughput(last window) / throughput(first window)`` (see module doc)."""
    if window_s < 1 or int(window_s) != window_s:
        raise ValueError(f"window_s must be a whole number of seconds >= 1, got {window_s!r}")
    window_s = int(window_s)
    if warmup_s < 0:
        raise ValueError(f"warmup_s must be >= 0, got {warmup_s!r}")
    rows = _complete_after_warmup(series, warmup_s)
    if len(rows) < 2 * window_s:
        raise ValueError(
            f"degradation needs at least 2 x {window_s} complete seconds after a "
            f"{warmup_s} s warm-up, got {len(rows)}"
        )
    first = sum(r["requests"] for r in rows[:window_s]) / window_s
    last = sum(r["requests"] for r in rows[-window_s:]) / window_s
    if first <= 0:
        raise ValueError("degradation is undefined: no request completed in the first window")
    return 1.0 - last / first


def p99_slope(series: SeriesLike, warmup_s: float = 0.0) -> float:
    """Least-squares slope of per-second p99 (ms) over time (s): ms per second."""
    rows = _complete_after_warmup(series, warmup_s)
    points = [(float(r["t"]), float(r["p99_ms"])) for r in rows if r.get("p99_ms") is not None]
    return _ols_slope(points)


def _ols_slope(points: Iterable[tuple[float, float]]) -> float:
    pts = list(points)
    if len(pts) < 2:
        raise ValueError(f"a slope needs at least 2 seconds with a p99, got {len(pts)}")
    n = len(pts)
    mx = sum(x for x, _ in pts) / n
    my = sum(y for _, y in pts) / n
    sxx = sum((x - mx) ** 2 for x, _ in pts)
    if sxx == 0:
        raise ValueError("a slope needs at least 2 distinct seconds")
    sxy = sum((x - mx) * (y - my) for x, y in pts)
    slope = sxy / sxx
    return 0.0 if math.isclose(slope, 0.0, abs_tol=1e-12) else slope


__all__ = [
    "PERCENTILES",
    "LatencyRecorder",
    "SecondBucket",
    "TimeSeries",
    "decode",
    "degradation",
    "encode",
    "histogram_percentiles",
    "new_histogram",
    "p99_slope",
]
