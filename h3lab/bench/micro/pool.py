"""The ``pool`` target: ns per event acquire + release per pool policy, size and concurrency."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from h3lab.bench.micro.harness import BenchmarkError, Case, Observer, Op, null_loop, run_cases
from h3lab.registry import family


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
            # Nothing may still reference a released event when it is acquired
            # again, or the pool retires it (h3lab.pool): as when a request's
            # frames end.
            del held, event
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
                        null=null_loop(c),
                    )
                )
    if guard:
        cases += [
            Case("pool", "release-guard", name, "guard", _guard_loop(name == "guarded"))
            for name in ("guarded", "bare")
        ]
    return run_cases(cases, **timing)
