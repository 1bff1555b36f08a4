"""Event pools: reuse, bounds, trimming, and -- above all -- no leaks between requests."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import pytest

from h3lab import H3
from h3lab.config import PoolConfig
from h3lab.event import H3Event
from h3lab.pool import POOLS, BoundedEventPool, NoEventPool, make_pool


@pytest.fixture(params=POOLS.names())
def pool(request: pytest.FixtureRequest) -> object:
    return make_pool(PoolConfig(request.param, size=4, warmup=2, trim_interval=0.0), H3Event)


def _dirty(event: H3Event) -> None:
    event.method = "POST"
    event.path = event.raw_path = event.route_path = "/secret/42"
    event.query_string = "token=abc"
    event.params = {"id": "42"}
    event.context["user"] = "alice"
    event._raw_headers = [(b"Cookie", b"session=alice"), (b"Authorization", b"Bearer x")]
    _ = event.headers, event.query, event.cookies
    event._body = b'{"card": "4111"}'
    event._json = {"card": "4111"}
    event.status = 418
    event.set_header("x-user", "alice")
    event.set_cookie("session", "alice")
    event.remote = ("10.0.0.1", 5555)
    event.keep_alive = False
    event.http_version = "1.0"


FRESH = H3Event()


def _assert_clean(event: H3Event) -> None:
    for name in H3Event.__slots__:
        if name in ("app", "next"):
            continue
        assert getattr(event, name) == getattr(FRESH, name) or (
            name == "_json" and event._json is not None and not isinstance(event._json, dict)
        ), f"{name} leaked: {getattr(event, name)!r}"
    assert event.params == {} and event.context == {} and len(event.headers) == 0
    assert event.cookies == {} and event.status == 200 and event._resp_headers is None


def _assert_reused_if_pooled(pool: object) -> None:
    stats = pool.stats()  # type: ignore[attr-defined]
    if stats["policy"] != "none":
        assert stats["reused"] >= 1 and stats["retired"] == 0, stats


async def test_nothing_leaks_to_the_next_request(pool: object) -> None:
    first = pool.acquire()  # type: ignore[attr-defined]
    _dirty(first)
    assert await first.body() == b'{"card": "4111"}'
    pool.release(first)  # type: ignore[attr-defined]
    del first  # nothing kept it: a pooling policy hands the same event out again
    second = pool.acquire()  # type: ignore[attr-defined]
    _assert_reused_if_pooled(pool)
    _assert_clean(second)
    assert await second.body() == b""


async def _touch_json(event: H3Event) -> None:
    event._body = b'{"card": "4111"}'
    assert await event.json() == {"card": "4111"}


async def _touch_form(event: H3Event) -> None:
    event._raw_headers = [(b"Content-Type", b"application/x-www-form-urlencoded")]
    event._body = b"card=4111"
    assert (await event.form())["card"] == "4111"


# Every way a lazily built field gets a value. ``reset`` clears those fields
# only when one of them was built, so each one must say so on its own.
LAZY_WRITERS: dict[str, Any] = {
    "headers": lambda e: e.headers,
    "query": lambda e: e.query,
    "context": lambda e: e.context.update(user="alice"),
    "cookies": lambda e: e.cookies,
    "json": _touch_json,
    "form": _touch_form,
    "set_header": lambda e: e.set_header("x-user", "alice"),
    "append_header": lambda e: e.append_header("x-user", "alice"),
    "response_headers": lambda e: e.response_headers.append(("x-user", "alice")),
    "set_cookie": lambda e: e.set_cookie("session", "alice"),
    "delete_cookie": lambda e: e.delete_cookie("session"),
}


@pytest.mark.parametrize("writer", list(LAZY_WRITERS.values()), ids=list(LAZY_WRITERS))
async def test_each_lazily_built_field_alone_is_cleared(pool: object, writer: Any) -> None:
    event = pool.acquire()  # type: ignore[attr-defined]
    event._raw_headers = [(b"Cookie", b"session=alice")]
    event.query_string = "token=abc"
    result = writer(event)
    if inspect.isawaitable(result):
        await result
    pool.release(event)  # type: ignore[attr-defined]
    del event, result
    _assert_clean(pool.acquire())  # type: ignore[attr-defined]
    _assert_reused_if_pooled(pool)


async def test_wait_until_work_is_cleared_when_it_releases_the_event(pool: object) -> None:
    event = pool.acquire()  # type: ignore[attr-defined]
    event.query_string = "token=abc"
    future = event.wait_until(asyncio.sleep(0))
    pool.release(event)  # type: ignore[attr-defined]  # deferred: the work is pending
    await future
    await asyncio.sleep(0)  # the done callbacks, the last of which releases the event
    assert type(event).__name__ == "ReleasedEvent"
    del event, future
    _assert_clean(pool.acquire())  # type: ignore[attr-defined]
    _assert_reused_if_pooled(pool)


def test_bounded_pool_reuses_and_counts() -> None:
    pool = BoundedEventPool(H3Event, size=4, warmup=2)
    assert pool.stats()["created"] == 2 and pool.stats()["pool_size"] == 2
    events = [pool.acquire() for _ in range(3)]  # 2 warm + 1 new
    assert pool.stats()["reused"] == 2 and pool.stats()["created"] == 3
    for e in events:
        pool.release(e)
    del events, e  # nothing keeps them: reused, not retired
    for _ in range(10):
        pool.release(pool.acquire())
    stats = pool.stats()
    assert stats["retired"] == 0
    assert stats["reused"] == 12 and stats["created"] == 3 and stats["acquired"] == 13
    assert stats["reuse_ratio"] == pytest.approx(12 / 13)
    assert stats["high_water"] == 3 and stats["in_use"] == 0


def test_bounded_pool_never_exceeds_its_size() -> None:
    pool = BoundedEventPool(H3Event, size=3, warmup=0)
    held = [pool.acquire() for _ in range(10)]
    for e in held:
        pool.release(e)
    assert pool.stats()["pool_size"] == 3 and pool.stats()["dropped"] == 7


def test_trim_follows_recent_high_water() -> None:
    pool = BoundedEventPool(H3Event, size=100, warmup=0)
    burst = [pool.acquire() for _ in range(50)]
    for e in burst:
        pool.release(e)
    del burst, e
    assert pool.stats()["pool_size"] == 50
    pool.trim()  # the window that just ended peaked at 50 in use: keep 50
    assert pool.stats()["pool_size"] == 50
    for _ in range(5):
        pool.release(pool.acquire())  # quiet window: 1 in use at most
    assert pool.trim() == 49
    assert pool.stats()["pool_size"] == 1 and pool.stats()["trimmed"] == 49


def test_a_kept_event_is_retired_never_handed_out_again() -> None:
    pool = BoundedEventPool(H3Event, size=4, warmup=0)
    kept = pool.acquire()
    kept.path = "/alice"
    pool.release(kept)  # released, but something still holds it
    other = pool.acquire()
    assert other is not kept and pool.stats()["retired"] == 1
    other.path = "/bob"
    with pytest.raises(RuntimeError, match="wait_until"):
        _ = kept.path  # never becomes another request's event
    pool.release(other)
    del other  # nothing holds this one: it is reused
    again = pool.acquire()
    stats = pool.stats()
    assert stats["reused"] == 1 and stats["retired"] == 1 and stats["created"] == 2
    assert again.path == "/"


def test_the_unshared_count_is_measured_on_this_interpreter() -> None:
    from h3lab.pool import UNSHARED_REFS, _refs_after_pop

    assert _refs_after_pop([object()]) == UNSHARED_REFS
    held = object()
    assert _refs_after_pop([held]) == UNSHARED_REFS + 1


def test_no_pool_creates_every_time() -> None:
    pool = NoEventPool(H3Event)
    a = pool.acquire()
    pool.release(a)
    b = pool.acquire()
    assert a is not b and pool.stats()["created"] == 2 and pool.stats()["reuse_ratio"] == 0.0


def test_bad_warmup_is_refused() -> None:
    with pytest.raises(ValueError, match=r"pool\.warmup"):
        BoundedEventPool(H3Event, size=2, warmup=3)


def test_app_pools_are_per_instance() -> None:
    a, b = H3(), H3()
    assert a.pool is not b.pool and a.router is not b.router
