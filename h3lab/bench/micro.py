"""In-process micro-benchmarks of each strategy family (no server, no sockets).

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
"""

from __future__ import annotations

import gc
import statistics
import sys
import time
import tracemalloc
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from types import CoroutineType
from typing import Any

from h3lab.bench import stats as bstats
from h3lab.bench.workloads import BenchRequest, RouteSpec, Workload, make_workload, route_table
from h3lab.registry import family, strategy_columns
from h3lab.routing import routing_path

Op = Callable[[int], int | None]
Observer = Callable[[], Callable[[], list[tuple[str, float, str]]]]

TARGETS = ("router", "cache", "pool", "middleware", "dispatch")
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


def _null_stream(items: Sequence[Any]) -> Op:
    """The stream harness doing nothing: its allocations are subtracted from a case's."""
    stream = _Stream(items)

    def run(loops: int) -> int:
        for chunk in stream.chunks(loops):
            for _ in chunk:
                pass
        return loops

    return run


def _null_loop(per_loop: int = 1) -> Op:
    def run(loops: int) -> int:
        for _ in range(loops):
            pass
        return loops * per_loop

    return run


class _Stream:
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


def _drive(value: Any) -> Any:
    """Run a coroutine to completion the way the server does, refusing to suspend."""
    if type(value) is CoroutineType:
        try:
            value.send(None)
        except StopIteration as stop:
            return stop.value
        value.close()
        raise BenchmarkError("the chain suspended: micro-benchmarks drive it with send(None) only")
    return value


def _workload(name: str, table: Sequence[RouteSpec], seed: int, **params: Any) -> Workload:
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


# ---------------------------------------------------------------------------
# router
# ---------------------------------------------------------------------------


def _router_extra_routes(
    requests: Sequence[BenchRequest], table: Sequence[RouteSpec]
) -> list[tuple[str, str]]:
    """Routes the workload targets outside the table (adversarial's /users/:id, mixed's /echo)."""
    from h3lab.bench.workloads import ADVERSARIAL_PREFIX, ECHO_PATH

    known = {spec.pattern for spec in table}
    extra: list[tuple[str, str]] = []
    for request in requests:
        if request.route is None or request.route in known:
            continue
        if request.route == f"{ADVERSARIAL_PREFIX}/:id":
            extra.append(("GET", request.route))
        elif request.route == ECHO_PATH:
            extra.append(("POST", request.route))
        else:
            raise BenchmarkError(
                f"workload targets {request.route!r}, which the router bench lacks"
            )
        known.add(request.route)
    return extra


def _verify_router(
    router: Any, requests: Sequence[BenchRequest], label: str, limit: int | None = None
) -> None:
    """Each distinct key (the first ``limit`` of them) matches the expected route and params."""
    seen: set[tuple[str, str]] = set()
    for request in requests:
        key = request.key
        if key in seen:
            continue
        if limit is not None and len(seen) >= limit:
            break
        seen.add(key)
        found = router.match(*key)
        if request.expect_status == 404:
            if found is not None:
                raise BenchmarkError(f"{label}: {key} should not match, got {found[0]!r}")
        elif request.route is not None and (
            found is None or found[0].pattern != request.route or found[1] != dict(request.params)
        ):
            got = None if found is None else (found[0].pattern, found[1])
            raise BenchmarkError(
                f"{label}: {key} should match {request.route} {dict(request.params)}, got {got}"
            )


def _router_loop(router: Any, keys: list[tuple[str, str]]) -> Op:
    stream = _Stream(keys)
    match = router.match

    def run(loops: int) -> int:
        for chunk in stream.chunks(loops):
            for method, path in chunk:
                match(method, path)
        return loops

    return run


def _cache_observer(cache: Any) -> Observer:
    def observe() -> Callable[[], list[tuple[str, float, str]]]:
        s = cache.stats()
        hits, misses = s["hits"], s["misses"]

        def done() -> list[tuple[str, float, str]]:
            after = cache.stats()
            dh, dm = after["hits"] - hits, after["misses"] - misses
            return [("hit_ratio", dh / (dh + dm) if dh + dm else 0.0, "ratio")]

        return done

    return observe


def bench_router(
    strategies: Sequence[str] | None = None,
    sizes: Sequence[int] = (10, 100, 1000, 10000),
    cached: Sequence[bool] = (False, True),
    workload: str = "zipf",
    *,
    cache_policy: str = "lru",
    cache_size: int = 1024,
    n_requests: int = 20_000,
    seed: int = 0,
    verify_limit: int | None = 1000,
    **timing: Any,
) -> list[dict[str, Any]]:
    """ns per ``router.match`` per strategy x table size, bare and behind the route cache.

    A name that requires the cache (``hybrid``) only runs in the ``cached=True`` rows.
    The samples replay the first ``n_requests`` requests of the workload in a
    loop: keep it long enough that its distinct keys outnumber ``cache_size``,
    or the cache holds the whole replayed trace and hits every time. Before
    timing, the first ``verify_limit`` distinct keys (None: all) are checked
    on every case (a capped check: a bare ``linear`` router at 10,000 routes
    takes milliseconds per lookup). ``hit_ratio`` is the route cache's own:
    static paths are answered from the exact dict in front of the cache and
    never reach it.
    """
    from h3lab.config import CacheConfig, RouterConfig
    from h3lab.routing import ROUTERS, Route, make_router

    strategies = tuple(family("router.matching").names() if strategies is None else strategies)
    cases: list[Case] = []
    for size in sizes:
        table = route_table(size, seed=seed)
        requests = list(_workload(workload, table, seed).requests(n_requests))
        extra = _router_extra_routes(requests, table)
        keys = [request.key for request in requests]
        for strategy in strategies:
            for with_cache in cached:
                if ROUTERS.get(strategy).requires_cache and not with_cache:
                    continue
                policy = cache_policy if with_cache else "none"
                router = make_router(RouterConfig(strategy), CacheConfig(policy, cache_size))
                for i, spec in enumerate(table):
                    router.add(Route(spec.method, spec.pattern, spec.handler(), index=i))
                for j, (method, pattern) in enumerate(extra):
                    router.add(Route(method, pattern, lambda event: None, index=len(table) + j))
                label = f"router {strategy} cache={policy} size={size}"
                _verify_router(router, requests, label, verify_limit)
                cache = getattr(router, "cache", None)
                cases.append(
                    Case(
                        "router",
                        strategy,
                        size,
                        workload,
                        _router_loop(router, keys),
                        {
                            "router": strategy,
                            "cache_policy": policy,
                            "cache_size": cache_size if with_cache else None,
                            "cached": bool(with_cache),
                        },
                        observe=_cache_observer(cache) if cache is not None else None,
                        null=_null_stream(keys),
                    )
                )
    return run_cases(cases, **timing)


# ---------------------------------------------------------------------------
# cache
# ---------------------------------------------------------------------------


def _cache_loop(cache: Any, keys: list[tuple[str, str]]) -> Op:
    stream = _Stream(keys)
    get = cache.get
    put = cache.put

    def run(loops: int) -> int:
        # The route-cache access pattern: get, and on a miss put the answer.
        for chunk in stream.chunks(loops):
            for key in chunk:
                if get(key) is None:
                    put(key, key)
        return loops

    return run


def bench_cache(
    policies: Sequence[str] | None = None,
    sizes: Sequence[int] = (64, 256, 1024, 4096),
    workload: str = "zipf",
    *,
    routes: int = 1000,
    n_requests: int = 20_000,
    seed: int = 0,
    **timing: Any,
) -> list[dict[str, Any]]:
    """ns per get (+ put on a miss) replaying a workload's keys; hit ratio and approx_bytes."""
    from h3lab.cache import CACHES

    policies = tuple(family("cache.policy").names() if policies is None else policies)
    table = route_table(routes, seed=seed)
    keys = _workload(workload, table, seed).keys(n_requests)
    cases = []
    for size in sizes:
        for policy in policies:
            cache = CACHES.get(policy)(size)
            hit_ratio = _cache_observer(cache)

            def observe(cache: Any = cache, hit_ratio: Observer = hit_ratio) -> Any:
                done_ratio = hit_ratio()

                def done() -> list[tuple[str, float, str]]:
                    if len(cache) > cache.capacity:
                        raise BenchmarkError(
                            f"cache {cache.name} holds {len(cache)} > {cache.capacity}"
                        )
                    return [*done_ratio(), ("approx_bytes", float(cache.approx_bytes()), "bytes")]

                return done

            cases.append(
                Case(
                    "cache",
                    policy,
                    size,
                    workload,
                    _cache_loop(cache, keys),
                    {"cache_policy": policy, "cache_size": size},
                    observe=observe,
                    null=_null_stream(keys),
                )
            )
    return run_cases(cases, **timing)


# ---------------------------------------------------------------------------
# pool
# ---------------------------------------------------------------------------


def _pool_loop(pool: Any, concurrency: int) -> Op:
    acquire = pool.acquire
    release = pool.release
    slots = range(concurrency)

    def run(loops: int) -> int:
        for _ in range(loops):
            held = [acquire() for _ in slots]
            for event in held:
                # what a transport writes into every event before dispatch
                event.method = "GET"
                event.raw_path = event.route_path = event.path = "/plaintext"
                release(event)
        return loops * concurrency

    return run


def _pool_observer(pool: Any) -> Observer:
    def observe() -> Callable[[], list[tuple[str, float, str]]]:
        s = pool.stats()
        reused, acquired = s["reused"], s["acquired"]

        def done() -> list[tuple[str, float, str]]:
            after = pool.stats()
            dr, da = after["reused"] - reused, after["acquired"] - acquired
            return [("reuse_ratio", dr / da if da else 0.0, "ratio")]

        return done

    return observe


def _guard_loop(guarded: bool) -> Op:
    """The release guard alone (``pool.py``): the ``wait_until`` check and the
    ``ReleasedEvent`` class switch at release, the switch back at acquire.
    ``guarded=False`` is the same loop without them (subtract it)."""
    from h3lab.event import H3Event, ReleasedEvent

    event = H3Event()
    set_attribute = object.__setattr__

    def run(loops: int) -> int:
        if not guarded:
            for _ in range(loops):
                pass
            return loops
        for _ in range(loops):
            if event._waiting:
                raise BenchmarkError("no wait_until work was registered")
            event.__class__ = ReleasedEvent
            set_attribute(event, "__class__", H3Event)
        return loops

    return run


def bench_pool(
    policies: Sequence[str] | None = None,
    sizes: Sequence[int] = (16, 256),
    concurrency: Sequence[int] = (1, 16, 64),
    guard: bool = False,
    **timing: Any,
) -> list[dict[str, Any]]:
    """ns per event acquire+release with ``concurrency`` events held at once.

    ``none`` (a fresh event each time) is the plain-allocation baseline; its
    size is meaningless, so it runs once per concurrency with ``pool_size`` 0.
    ``guard=True`` adds the ``release-guard`` rows: what the use-after-release
    guard costs per request (``guarded`` minus ``bare``), under every policy
    (off by default: the event-pool study's rows keep their shape).
    """
    from h3lab.config import PoolConfig
    from h3lab.event import H3Event
    from h3lab.pool import make_pool

    policies = tuple(family("pool.policy").names() if policies is None else policies)
    cases = []
    for c in concurrency:
        if c < 1:
            raise ValueError(f"concurrency must be >= 1, got {c}")
        for policy in policies:
            for size in (0,) if policy == "none" else sizes:
                pool = make_pool(PoolConfig(policy, size, warmup=0, trim_interval=0.0), H3Event)
                cases.append(
                    Case(
                        "pool",
                        policy,
                        c,
                        f"hold-{c}",
                        _pool_loop(pool, c),
                        {"pool_policy": policy, "pool_size": size, "concurrency": c},
                        observe=_pool_observer(pool),
                        null=_null_loop(c),
                    )
                )
    if guard:
        cases += [
            Case("pool", "release-guard", name, "guard", _guard_loop(name == "guarded"))
            for name in ("guarded", "bare")
        ]
    return run_cases(cases, **timing)


# ---------------------------------------------------------------------------
# middleware
# ---------------------------------------------------------------------------

_MW_PATH = "/mw"
_MW_BODY = "ok"


def _middleware_app(execution: str, n: int, kind: str) -> Any:
    from h3lab.app import H3
    from h3lab.bench.apps import noop_middleware
    from h3lab.config import Config

    app = H3(Config().replace("middleware.execution", execution))
    middleware = noop_middleware(kind)
    for _ in range(n):
        app.use(middleware)
    app.get(_MW_PATH, lambda event: _MW_BODY)
    app.prepare()
    return app


def _middleware_loop(app: Any) -> Op:
    from h3lab.event import H3Event

    event = H3Event(app)
    event.method = "GET"
    event.raw_path = event.route_path = event.path = _MW_PATH
    handle = app.handle
    if _drive(handle(event)) != _MW_BODY:
        raise BenchmarkError("middleware chain returned a wrong value")

    def run(loops: int) -> int:
        for _ in range(loops):
            value = handle(event)
            if type(value) is CoroutineType:
                try:
                    value.send(None)
                except StopIteration:
                    continue
                value.close()
                raise BenchmarkError("the middleware chain suspended")
        return loops

    return run


def bench_middleware(
    executions: Sequence[str] | None = None,
    counts: Sequence[int] = (0, 1, 2, 4, 8, 16, 32),
    kinds: Sequence[str] = ("onion", "before"),
    **timing: Any,
) -> list[dict[str, Any]]:
    """ns per request through ``n`` no-op middlewares (+ ``overhead_ns`` = ns(n) - ns(0))."""
    cases = []
    for execution in family("middleware.execution").names() if executions is None else executions:
        for kind in kinds:
            for n in counts:
                app = _middleware_app(execution, n, kind)
                cases.append(
                    Case(
                        "middleware",
                        execution,
                        n,
                        f"noop-{kind}",
                        _middleware_loop(app),
                        {
                            "middleware": execution,
                            "kind": kind,
                            "router": app.config.router.matching,
                        },
                        null=_null_loop(),
                    )
                )
    rows = run_cases(cases, **timing)
    return rows + _overhead_rows(rows)


def _overhead_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """ns(n) - ns(0) per execution, kind and repetition (samples of one round are adjacent in time)."""
    base = {
        (r["middleware"], r["kind"], r["repetition"]): r["value"]
        for r in rows
        if r["metric"] == "ns_per_op" and r["param"] == 0
    }
    out = []
    for row in rows:
        if row["metric"] != "ns_per_op":
            continue
        zero = base.get((row["middleware"], row["kind"], row["repetition"]))
        if zero is not None:
            out.append(
                {
                    **row,
                    "metric": "overhead_ns",
                    "value": row["value"] - zero,
                    "unit": "ns",
                    "warning": None,
                }
            )
    return out


# ---------------------------------------------------------------------------
# dispatch
# ---------------------------------------------------------------------------


def _dispatch_requests(endpoint: str, n_ids: int) -> list[BenchRequest]:
    from h3lab.bench.apps import BENCHMARK_ENDPOINTS, user_request

    if endpoint not in BENCHMARK_ENDPOINTS:
        raise ValueError(f"endpoint must be one of {list(BENCHMARK_ENDPOINTS)}, got {endpoint!r}")
    if endpoint == "/users/:id":
        return [user_request(i) for i in range(n_ids)]
    return [BENCHMARK_ENDPOINTS[endpoint]()]


def _verify_dispatch(app: Any, request: BenchRequest, label: str) -> None:
    from h3lab.bench.apps import check_in_process

    problem = check_in_process(app, request)
    if problem is not None:
        raise BenchmarkError(f"{label}: {problem}")


def _dispatch_loop(app: Any, requests: Sequence[BenchRequest]) -> Op:
    stream = _Stream([(r.path, routing_path(r.path)) for r in requests])
    acquire = app.pool.acquire
    release = app.pool.release
    handle = app.handle
    response_for = app.response_for

    def run(loops: int) -> int:
        for chunk in stream.chunks(loops):
            for raw, route_path in chunk:
                event = acquire()
                event.method = "GET"
                event.raw_path = event.path = raw
                event.route_path = route_path
                value = handle(event)
                if type(value) is CoroutineType:
                    try:
                        value.send(None)
                    except StopIteration as stop:
                        value = stop.value
                    else:
                        value.close()
                        raise BenchmarkError("dispatch suspended")
                response_for(event, value)
                release(event)
        return loops

    return run


def bench_dispatch(
    presets: Sequence[str] | None = None,
    endpoints: Sequence[str] = ("/plaintext", "/json", "/users/:id"),
    *,
    n_ids: int = 64,
    **timing: Any,
) -> list[dict[str, Any]]:
    """Full in-process dispatch per preset (no parsing): pool, route, chain, response, release.

    The bench app (``h3lab.bench.apps.build_app``) under each preset; the
    preset's memory strategy is installed around each sample, as the server
    installs it for its lifetime. ``/users/:id`` rotates over ``n_ids`` ids.
    """
    from h3lab.bench.apps import build_app
    from h3lab.bench.results import config_columns
    from h3lab.config import PRESETS, Config

    presets = tuple(PRESETS if presets is None else presets)
    cases = []
    for preset in presets:
        config = Config.preset(preset)
        app = build_app(config)
        app.prepare()
        for endpoint in endpoints:
            requests = _dispatch_requests(endpoint, n_ids)
            for request in requests[:4]:
                _verify_dispatch(app, request, f"dispatch {preset}")
            cases.append(
                Case(
                    "dispatch",
                    preset,
                    endpoint,
                    "single-endpoint",
                    _dispatch_loop(app, requests),
                    config_columns(config),
                    setup=app.memory.install,
                    teardown=app.memory.close,
                    null=_null_stream(requests),
                )
            )
    return run_cases(cases, **timing)


# ---------------------------------------------------------------------------
# entry point
# ---------------------------------------------------------------------------


def bench_protocol(**kw: Any) -> list[dict[str, Any]]:
    """ns per request through the server's protocol, parsing included (``h3lab.bench.wire``)."""
    from h3lab.bench.wire import bench_protocol as bench

    return bench(**kw)


BENCHES: dict[str, Callable[..., list[dict[str, Any]]]] = {
    "router": bench_router,
    "cache": bench_cache,
    "pool": bench_pool,
    "middleware": bench_middleware,
    "dispatch": bench_dispatch,
    "protocol": bench_protocol,
}

_QUICK_TIMING = {"repetitions": 3, "warmups": 1, "min_time": 0.002, "alloc_ops": 50}
_QUICK: dict[str, dict[str, Any]] = {
    "router": {"sizes": (10, 100), "n_requests": 500},
    "cache": {"sizes": (16, 128), "routes": 100, "n_requests": 1000},
    "pool": {"sizes": (16,), "concurrency": (1, 16)},
    "middleware": {"counts": (0, 1, 4)},
    "dispatch": {"n_ids": 16},
    "protocol": {"presets": ("baseline", "performance")},
}


def run_micro(target: str, quick: bool = False, **kw: Any) -> list[dict[str, Any]]:
    """Run one target's bench: "router", "cache", "pool", "middleware", "dispatch" or "protocol".

    ``quick=True`` shrinks grids and samples (all five together take a few
    seconds: smoke tests and CI, not measurements). Keyword arguments go to
    the bench (and the timing: ``repetitions``, ``warmups``, ``min_time``,
    ``track_alloc``, ``alloc_ops``) and override the quick defaults.
    """
    try:
        bench = BENCHES[target]
    except KeyError:
        raise ValueError(f"micro target must be one of {list(BENCHES)}, got {target!r}") from None
    params = {**_QUICK_TIMING, **_QUICK[target]} if quick else {}
    params.update(kw)
    return bench(**params)


def medians(
    rows: Sequence[dict[str, Any]], metric: str = "ns_per_op"
) -> dict[tuple[Any, ...], float]:
    """``{(strategy, param, workload, extra...): median value}`` for a quick look at rows."""
    groups: dict[tuple[Any, ...], list[float]] = {}
    for row in rows:
        if row["metric"] != metric:
            continue
        extra = tuple(
            row.get(k) for k in ("cached", "concurrency", "pool_size", "kind", "cache_size")
        )
        groups.setdefault((row["target"], row["strategy"], row["param"], *extra), []).append(
            row["value"]
        )
    return {key: statistics.median(values) for key, values in groups.items()}
