"""The micro-benchmark harness: calibrate, warm up, sample interleaved, count allocations.

Theory of operation
-------------------
A *case* is one configuration of one target (a router strategy at a table
size, a cache policy at a capacity, ...) packaged as ``fn(loops) -> ops``: a
closure that performs ``loops`` operations of the thing measured and returns
how many operations that was (a pool "cycle" at concurrency 16 is 16
acquire/release operations). The harness follows pyperf and asv:

1. **Correctness first.** Each bench checks its answers once before timing
   (the router matched the expected route with the expected params, the
   dispatch produced the expected body, the chain did not suspend): a fast
   wrong answer raises ``BenchmarkError`` instead of producing a number.
2. **Calibration.** ``calibrate`` doubles ``loops`` until one sample lasts at
   least ``min_time`` (10 ms by default, asv's ``sample_time``), so the
   resolution and overhead of ``time.perf_counter_ns`` are negligible. The
   loop count is then fixed for every sample of that case.
3. **Warm-up.** ``warmups`` samples per case are run and discarded (caches
   filled, pools populated, code paths specialised by the interpreter).
4. **Interleaving.** The cases of one bench are sampled round-robin
   (``stats.interleave``: A B C A B C ...), so slow drift on a shared machine
   (thermal throttling, a neighbour's test run) spreads over every
   configuration instead of biasing whichever ran last.
5. **Reporting.** Each sample becomes one tidy row (ns per operation, plus
   per-sample ratios such as the cache hit ratio); the GC state during the
   sample is recorded (``gc_enabled``, ``gc_threshold``): it is never changed
   by the harness, but a memory strategy under test may change it. pyperf's
   stability checks run on each case; a coefficient of variation over 10%
   (or min/max 50% off the mean) emits a ``BenchmarkStabilityWarning`` and
   fills the rows' ``warning`` field.
6. **Allocations** are counted in a *separate* pass with ``tracemalloc``
   (which slows everything down, so it never runs during timing):
   ``alloc_bytes_per_op`` is the mean over single operations of the peak of
   traced memory above its level before the operation -- the transient
   memory one operation needs, including ~100 bytes of harness overhead (a
   one-item slice) that is the same for every case -- and
   ``alloc_blocks_per_op`` is the net change of ``sys.getallocatedblocks()``
   per operation after a full collection: about 0 for an operation that
   keeps nothing, positive when state grows; ``gc_objects_per_op`` counts the
   objects per operation that only the cyclic GC could reclaim (what drives
   collections, and so pauses).

Inner loops are written out per target (no per-operation function call
through the harness), so the measured time is the strategy plus a loop
iteration that is the same for every strategy of a target. Numbers from a
noisy machine are only comparable within one run (interleaved); compare runs
with ``stats.ratio_ci``.

The targets themselves (one module each: ``router``, ``cache``, ``pool``,
``middleware``, ``dispatch``, ``protocol``, ``stages``) build their cases with the helpers
at the end of this module and hand them to ``run_cases``; ``targets`` names
them. The harness imports none of them.
"""

from __future__ import annotations

import gc
import sys
import time
import tracemalloc
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from types import CoroutineType
from typing import Any

from h3lab.bench import stats as bstats
from h3lab.bench.workloads import RouteSpec, Workload, make_workload
from h3lab.registry import strategy_columns

Op = Callable[[int], int | None]
Observer = Callable[[], Callable[[], list[tuple[str, float, str]]]]

STRATEGY_COLUMNS = strategy_columns()  # the family table's: left out of case labels


class BenchmarkError(RuntimeError):
    """A benchmark produced a wrong answer (or could not run as specified)."""


class BenchmarkStabilityWarning(UserWarning):
    """pyperf-style: the samples of a case vary too much to trust a small difference."""


# ---------------------------------------------------------------------------
# timer
# ---------------------------------------------------------------------------


def time_fn(fn: Op, loops: int) -> tuple[int, int]:
    """``(elapsed ns, operations)`` of one call ``fn(loops)``."""
    start = time.perf_counter_ns()
    ops = fn(loops)
    elapsed = time.perf_counter_ns() - start
    return elapsed, (ops if ops else loops)


def calibrate(fn: Op, min_time: float = 0.01, max_loops: int = 1 << 30) -> int:
    """The loop count at which one ``fn(loops)`` call lasts at least ``min_time`` seconds."""
    if min_time <= 0:
        raise ValueError(f"min_time must be > 0, got {min_time}")
    target = min_time * 1e9
    loops = 1
    while loops < max_loops:
        elapsed, _ = time_fn(fn, loops)
        if elapsed >= target:
            break
        # At least double; jump closer when the estimate says we're far off,
        # but never more than 10x on one (possibly interrupted) measurement.
        estimate = int(loops * target / max(elapsed, 1) * 1.2)
        loops = min(max_loops, max(loops * 2, min(estimate, loops * 10)))
    return loops


@dataclass
class Case:
    """One configuration of one target, ready to be sampled."""

    target: str
    strategy: str
    param: Any
    workload: str
    fn: Op
    columns: dict[str, Any] = field(default_factory=dict)
    observe: Observer | None = None
    setup: Callable[[], None] | None = None
    teardown: Callable[[], None] | None = None
    null: Op | None = None
    """The same harness with no operation (its allocations are subtracted)."""
    loops: int = 0

    def label(self) -> str:
        extra = ",".join(f"{k}={v}" for k, v in self.columns.items() if k not in STRATEGY_COLUMNS)
        return f"{self.target}/{self.strategy}/{self.param}" + (f"[{extra}]" if extra else "")


def _gc_state() -> dict[str, Any]:
    return {"gc_enabled": gc.isenabled(), "gc_threshold": ",".join(map(str, gc.get_threshold()))}


def _sample(case: Case) -> tuple[float, list[tuple[str, float, str]], dict[str, Any]]:
    if case.setup is not None:
        case.setup()
    try:
        gc_state = _gc_state()
        finish = case.observe() if case.observe is not None else None
        elapsed, ops = time_fn(case.fn, case.loops)
        extra = finish() if finish is not None else []
    finally:
        if case.teardown is not None:
            case.teardown()
    return elapsed / ops, extra, gc_state


def _row(
    case: Case, metric: str, value: float, unit: str, repetition: int, **more: Any
) -> dict[str, Any]:
    return {
        "target": case.target,
        "strategy": case.strategy,
        "param": case.param,
        "workload": case.workload,
        "metric": metric,
        "value": float(value),
        "unit": unit,
        "repetition": repetition,
        **case.columns,
        "loops": case.loops,
        **more,
    }


def run_cases(
    cases: Sequence[Case],
    *,
    repetitions: int = 10,
    warmups: int = 1,
    min_time: float = 0.01,
    track_alloc: bool = False,
    alloc_ops: int = 200,
) -> list[dict[str, Any]]:
    """Calibrate, warm up and sample ``cases`` interleaved; tidy rows."""
    if repetitions < 1:
        raise ValueError(f"repetitions must be >= 1, got {repetitions}")
    for case in cases:
        if case.setup is not None:
            case.setup()
        try:
            case.loops = calibrate(case.fn, min_time)
        finally:
            if case.teardown is not None:
                case.teardown()
        for _ in range(warmups):
            _sample(case)
    rows: list[dict[str, Any]] = []
    timing: dict[int, list[dict[str, Any]]] = {id(case): [] for case in cases}
    for case, rep in bstats.interleave(list(cases), repetitions):
        ns, extra, gc_state = _sample(case)
        row = _row(case, "ns_per_op", ns, "ns", rep, **gc_state, warning=None)
        timing[id(case)].append(row)
        rows.append(row)
        rows.extend(
            _row(case, metric, value, unit, rep, **gc_state) for metric, value, unit in extra
        )
    for case in cases:
        _check_stability(case, timing[id(case)])
    if track_alloc:
        for case in cases:
            rows.extend(alloc_rows(case, alloc_ops))
    return rows


def _check_stability(case: Case, rows: list[dict[str, Any]]) -> None:
    values = [row["value"] for row in rows]
    if len(values) < 2:
        return
    problems = [w for w in bstats.stability_warnings(values) if not w.startswith("too few")]
    if problems:
        message = "; ".join(problems)
        for row in rows:
            row["warning"] = message
        warnings.warn(f"{case.label()}: {message}", BenchmarkStabilityWarning, stacklevel=3)


def _peak_per_call(fn: Op, calls: int) -> tuple[int, int]:
    """Sum over ``calls`` calls ``fn(1)`` of the traced-memory peak above the level
    before the call, and the operations they ran (tracemalloc must be on)."""
    peak_total = 0
    done = 0
    get_traced_memory = tracemalloc.get_traced_memory
    reset_peak = tracemalloc.reset_peak
    for _ in range(calls):
        level = get_traced_memory()[0]
        reset_peak()
        done += fn(1) or 1
        peak_total += max(0, get_traced_memory()[1] - level)
    return peak_total, done


def alloc_rows(case: Case, ops: int = 200) -> list[dict[str, Any]]:
    """The allocation pass (tracemalloc), run apart from timing.

    Rows: ``alloc_bytes_per_op`` (peak transient bytes of one operation, the
    harness's own share measured with ``case.null`` and subtracted),
    ``alloc_blocks_per_op`` (net blocks still allocated after a full
    collection, per operation: state that grows) and ``gc_objects_per_op``
    (objects that only the cyclic collector reclaimed: reference cycles each
    operation leaves for the GC, e.g. an unpooled event and its bound
    ``next`` method).
    """
    was_tracing = tracemalloc.is_tracing()
    was_enabled = gc.isenabled()
    if case.setup is not None:
        case.setup()
    if not was_tracing:
        tracemalloc.start()
    try:
        case.fn(min(max(case.loops, 1), ops))  # steady state before counting
        gc.collect()
        # No collection in the middle of the pass: it would free unrelated
        # garbage and hide the cycles the operations create.
        gc.disable()
        blocks_before = sys.getallocatedblocks()
        peak_total, done = _peak_per_call(case.fn, ops)
        # The return value counts unreachable objects found: exactly the
        # cyclic garbage (free-list clearing changes the block count, not it).
        cyclic = gc.collect()
        blocks_after = sys.getallocatedblocks()
        if case.null is not None:
            null_total, null_done = _peak_per_call(case.null, ops)
            peak_total = max(0, peak_total - null_total * done // max(null_done, 1))
    finally:
        if was_enabled:
            gc.enable()
        if not was_tracing:
            tracemalloc.stop()
        if case.teardown is not None:
            case.teardown()
    # fn(1) may run several operations (a pool cycle holds `concurrency`
    # events at once): spread each call's peak over its operations.
    return [
        _row(case, "alloc_bytes_per_op", peak_total / done, "bytes", 0),
        _row(case, "alloc_blocks_per_op", (blocks_after - blocks_before) / done, "blocks", 0),
        _row(case, "gc_objects_per_op", cyclic / done, "objects", 0),
    ]


# ---------------------------------------------------------------------------
# what the targets build their cases from
# ---------------------------------------------------------------------------


def null_stream(items: Sequence[Any]) -> Op:
    """The stream harness doing nothing: its allocations are subtracted from a case's."""
    stream = Stream(items)

    def run(loops: int) -> int:
        for chunk in stream.chunks(loops):
            for _ in chunk:
                pass
        return loops

    return run


def null_loop(per_loop: int = 1) -> Op:
    def run(loops: int) -> int:
        for _ in range(loops):
            pass
        return loops * per_loop

    return run


class Stream:
    """Endless round-robin over ``items`` handed out in chunks (no per-item call)."""

    __slots__ = ("items", "pos")

    def __init__(self, items: Sequence[Any]) -> None:
        if not items:
            raise ValueError("nothing to replay")
        self.items = list(items)
        self.pos = 0

    def chunks(self, loops: int) -> Iterator[list[Any]]:
        items = self.items
        n = len(items)
        pos = self.pos
        while loops > 0:
            take = min(loops, n - pos)
            yield items if take == n else items[pos : pos + take]
            loops -= take
            pos = (pos + take) % n
        self.pos = pos


def drive(value: Any) -> Any:
    """Run a coroutine to completion the way the server does, refusing to suspend."""
    if type(value) is CoroutineType:
        try:
            value.send(None)
        except StopIteration as stop:
            return stop.value
        value.close()
        raise BenchmarkError("the chain suspended: micro-benchmarks drive it with send(None) only")
    return value


def workload_for(name: str, table: Sequence[RouteSpec], seed: int, **params: Any) -> Workload:
    """A workload over ``table`` (passing table/seed only to factories that take them)."""
    import inspect

    from h3lab.bench.workloads import WORKLOADS

    if name not in WORKLOADS:
        raise ValueError(f"workload must be one of {sorted(WORKLOADS)}, got {name!r}")
    accepted = inspect.signature(WORKLOADS[name]).parameters
    if "table" in accepted:
        params["table"] = table
    if "seed" in accepted:
        params["seed"] = seed
    return make_workload(name, **params)
