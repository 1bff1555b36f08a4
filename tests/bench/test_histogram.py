"""LatencyRecorder, TimeSeries, and the degradation / p99-slope definitions."""

from __future__ import annotations

import pytest

from h3lab.bench.histogram import (
    LatencyRecorder,
    TimeSeries,
    decode,
    degradation,
    histogram_percentiles,
    p99_slope,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_percentiles_in_ms_from_microsecond_histogram() -> None:
    rec = LatencyRecorder(start=0.0, clock=lambda: 0.0)
    for ms in range(1, 1001):  # 1..1000 ms, uniform
        rec.record(ms / 1000, at=0.5)
    p = rec.percentiles()
    # 3 significant digits: values are exact to 0.1 %.
    assert p["p50_ms"] == pytest.approx(500, rel=1e-3)
    assert p["p90_ms"] == pytest.approx(900, rel=1e-3)
    assert p["p99_ms"] == pytest.approx(990, rel=1e-3)
    assert p["p99_9_ms"] == pytest.approx(999, rel=1e-3)
    assert p["max_ms"] == pytest.approx(1000, rel=1e-3)
    assert rec.count == 1000


def test_empty_histogram_reports_none() -> None:
    rec = LatencyRecorder()
    assert set(rec.percentiles().values()) == {None}


def test_out_of_range_values_are_clamped_not_lost() -> None:
    rec = LatencyRecorder(start=0.0, clock=lambda: 0.0)
    rec.record(0.0)  # below 1 us
    rec.record(120.0)  # above 60 s
    assert rec.count == 2
    assert rec.percentiles()["max_ms"] == pytest.approx(60_000, rel=1e-3)


def test_encode_decode_round_trip_preserves_percentiles() -> None:
    rec = LatencyRecorder(start=0.0, clock=lambda: 0.0)
    for i in range(1, 5000):
        rec.record(i * 13 % 977 / 1000 + 0.0001)
    blob = rec.encode()
    assert isinstance(blob, str) and blob.isascii()
    back = decode(blob)
    assert back.get_total_count() == rec.count
    assert histogram_percentiles(back) == rec.percentiles()
    assert LatencyRecorder.decode(blob.encode()).get_total_count() == rec.count


def test_time_series_buckets_by_completion_second_and_flags_partial() -> None:
    clock = FakeClock()
    series = TimeSeries(start=100.0, clock=clock)
    for at, lat in [(100.1, 0.001), (100.9, 0.003), (101.2, 0.010), (103.5, 0.002)]:
        series.add(lat, at=at)
    series.error(at=101.7)
    series.finish(end=103.6)
    rows = series.rows()
    assert [r["t"] for r in rows] == [0, 1, 2, 3]
    assert [r["requests"] for r in rows] == [2, 1, 0, 1]
    assert [r["errors"] for r in rows] == [0, 1, 0, 0]
    assert rows[1]["p99_ms"] == pytest.approx(10, rel=1e-3)
    assert rows[2]["p50_ms"] is None  # an empty second has no percentile
    assert [r["partial"] for r in rows] == [False, False, False, True]


def test_recorder_feeds_both_histogram_and_series() -> None:
    clock = FakeClock()
    rec = LatencyRecorder(start=100.0, clock=clock)
    clock.now = 100.5
    rec.record(0.002)
    clock.now = 101.5
    rec.record(0.004)
    rec.error()
    rec.finish(end=102.0)
    rows = rec.series.rows()
    assert [(r["requests"], r["errors"]) for r in rows] == [(1, 0), (1, 1), (0, 0)]
    assert rows[-1]["partial"] is True  # the run ended exactly at 102.0: second 2 is empty/partial


# -- degradation ------------------------------------------------------------------------


def _rows(counts: list[float], partial_last: bool = False) -> list[dict]:
    rows = [{"t": i, "requests": c, "partial": False} for i, c in enumerate(counts)]
    if partial_last:
        rows[-1]["partial"] = True
    return rows


def test_degradation_known_value() -> None:
    # first window 1000/s, last window 787/s -> 21.3 % degradation
    counts = [1000] * 5 + [900] * 10 + [787] * 5
    assert degradation(_rows(counts), window_s=5) == pytest.approx(0.213)
    # plain lists of per-second counts are accepted too
    assert degradation(counts, window_s=5) == pytest.approx(0.213)


def test_degradation_no_change_and_improvement() -> None:
    assert degradation([500] * 10, window_s=3) == pytest.approx(0.0)
    assert degradation([100] * 5 + [150] * 5, window_s=5) == pytest.approx(-0.5)


def test_degradation_excludes_warmup() -> None:
    # a slow warm-up second (JIT-less start, cold caches) must not count as "first window"
    counts = [10, 20] + [1000] * 8
    assert degradation(counts, window_s=3, warmup_s=2) == pytest.approx(0.0)
    # without excluding it, the first window looks slow and the run "improves"
    assert degradation(counts, window_s=3) < 0
    # a fractional warm-up drops every second that overlaps it
    assert degradation(counts, window_s=3, warmup_s=1.5) == pytest.approx(0.0)


def test_degradation_drops_trailing_partial_second() -> None:
    # the run ended 0.1 s into the last second: its 100 requests are not a rate
    counts = [1000] * 6 + [100]
    assert degradation(_rows(counts, partial_last=True), window_s=3) == pytest.approx(0.0)
    # as a TimeSeries: finish() inside a second flags it
    series = TimeSeries(start=0.0, clock=lambda: 0.0)
    for second in range(6):
        for i in range(100):
            series.add(0.001, at=second + i / 100)
    series.add(0.001, at=6.05)
    series.finish(end=6.1)
    assert degradation(series, window_s=3) == pytest.approx(0.0)


def test_degradation_needs_two_disjoint_windows() -> None:
    with pytest.raises(ValueError, match="2 x 5"):
        degradation([100] * 9, window_s=5)
    with pytest.raises(ValueError, match="window_s"):
        degradation([100] * 9, window_s=0)
    with pytest.raises(ValueError, match="first window"):
        degradation([0] * 4, window_s=2)


# -- p99 slope ----------------------------------------------------------------------------


def test_p99_slope_known_slope() -> None:
    rows = [{"t": t, "requests": 100, "p99_ms": 2.0 + 0.5 * t, "partial": False} for t in range(10)]
    assert p99_slope(rows) == pytest.approx(0.5)


def test_p99_slope_flat_warmup_and_empty_seconds() -> None:
    rows = [{"t": 0, "requests": 10, "p99_ms": 50.0, "partial": False}]  # warm-up spike
    rows += [{"t": t, "requests": 100, "p99_ms": 3.0, "partial": False} for t in range(1, 8)]
    rows.append({"t": 8, "requests": 0, "p99_ms": None, "partial": False})  # no p99: skipped
    rows.append({"t": 9, "requests": 5, "p99_ms": 90.0, "partial": True})  # trailing partial
    assert p99_slope(rows, warmup_s=1) == pytest.approx(0.0)
    assert p99_slope(rows) < 0  # the warm-up spike tilts the fit when kept


def test_p99_slope_from_a_time_series() -> None:
    series = TimeSeries(start=0.0, clock=lambda: 0.0)
    for second in range(5):
        for _ in range(200):
            series.add((1 + second) / 1000, at=second + 0.5)  # p99 = 1, 2, 3, 4, 5 ms
    series.finish(end=5.0)
    assert p99_slope(series) == pytest.approx(1.0, rel=1e-2)


def test_p99_slope_needs_two_points() -> None:
    with pytest.raises(ValueError):
        p99_slope([{"t": 0, "requests": 1, "p99_ms": 1.0}])
