"""The request lifecycle (issue 10, items 0 and 0b): every request in its own
Task and context, ``event.wait_until``, and released events that fail loudly.

Each behaviour runs on both transports (the built-in server and ``app.asgi``
under uvicorn, the ``transport`` fixture) and under every preset or pool
policy where the server's machinery differs.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
from typing import Any

import aiohttp
import pytest

from h3lab import H3, Config, Server
from h3lab.config import PRESETS, PoolConfig
from h3lab.errors import HTTPError
from h3lab.event import H3Event
from h3lab.pool import POOLS, make_pool

USER: contextvars.ContextVar[str | None] = contextvars.ContextVar("user", default=None)


def isolation_app(config: Config, upstream: str = "") -> H3:
    app = H3(config)

    @app.get("/task")
    async def in_task(event: H3Event) -> dict[str, Any]:
        task = asyncio.current_task()
        await asyncio.sleep(0)
        return {"task": task is not None, "same": task is asyncio.current_task()}

    @app.get("/task-sync")
    def in_task_sync(event: H3Event) -> dict[str, Any]:
        return {"task": asyncio.current_task() is not None}

    @app.get("/timeout")
    async def with_timeout(event: H3Event) -> dict[str, Any]:
        async with asyncio.timeout(1):
            await asyncio.sleep(0)
        try:
            async with asyncio.timeout(0.01):
                await asyncio.sleep(5)
        except TimeoutError:
            return {"fired": True, "cancelling": asyncio.current_task().cancelling()}  # type: ignore[union-attr]
        return {"fired": False}

    @app.get("/set/:user")
    async def set_user(event: H3Event) -> dict[str, Any]:
        before = USER.get()
        USER.set(event.params["user"])
        return {"before": before}

    @app.get("/set-sync/:user")
    def set_user_sync(event: H3Event) -> dict[str, Any]:
        before = USER.get()
        USER.set(event.params["user"])
        return {"before": before}

    @app.get("/get")
    def get_user(event: H3Event) -> dict[str, Any]:
        return {"user": USER.get()}

    @app.get("/upstream")
    async def call_upstream(event: H3Event) -> dict[str, Any]:
        timeout = aiohttp.ClientTimeout(total=5)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(upstream + "/pong") as resp,
        ):
            return {"status": resp.status, "body": await resp.text()}

    return app


async def fetch_json(session: aiohttp.ClientSession, url: str) -> Any:
    async with session.get(url) as resp:
        assert resp.status == 200, await resp.text()
        return json.loads(await resp.read())


@pytest.mark.parametrize("preset", list(PRESETS))
async def test_every_request_has_its_own_task_and_context(transport: Any, preset: str) -> None:
    upstream_app = H3()
    upstream_app.get("/pong", lambda e: "pong")
    async with Server(upstream_app, "127.0.0.1", 0) as upstream:
        app = isolation_app(Config.preset(preset), upstream.url)
        live = await transport(app)
        assert await fetch_json(live.session, live.url + "/task") == {"task": True, "same": True}
        # A synchronous chain cannot await, so the built-in server runs it in its
        # own context without a Task (deliberate: see h3lab.server.cycle);
        # an ASGI server gives every request a task.
        in_task = transport.name != "builtin"
        assert await fetch_json(live.session, live.url + "/task-sync") == {"task": in_task}
        assert await fetch_json(live.session, live.url + "/timeout") == {
            "fired": True,
            "cancelling": 0,
        }
        assert await fetch_json(live.session, live.url + "/upstream") == {
            "status": 200,
            "body": "pong",
        }
        # A ContextVar set by one request is never seen by the next one, on the
        # same keep-alive connection or on another.
        other = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True))
        try:
            for path in ("/set/alice", "/set-sync/bob"):
                assert await fetch_json(live.session, live.url + path) == {"before": None}
                assert await fetch_json(live.session, live.url + "/get") == {"user": None}
                assert await fetch_json(other, live.url + "/get") == {"user": None}
        finally:
            await other.close()
    assert USER.get() is None  # nor does it leak into the server's own context


async def test_request_tasks_start_eagerly_in_a_copied_context() -> None:
    # The mechanism itself, on this interpreter: the first step runs inside
    # the call, in a copy of the caller's context; a suspending one goes on.
    from h3lab.server import tasks

    loop = asyncio.get_running_loop()
    seen: list[Any] = []

    async def quick() -> str:
        seen.append(asyncio.current_task())
        USER.set("inside")
        return "done"

    done = asyncio.Event()

    async def slow() -> str:
        await done.wait()
        return "later"

    task = tasks.start_request_task(loop, quick())
    assert task.done() and task.result() == "done" and seen == [task]
    assert USER.get() is None
    outer = asyncio.current_task()
    pending = tasks.start_request_task(loop, slow())
    assert asyncio.current_task() is outer and not pending.done()
    done.set()
    assert await pending == "later"


# -- 0b: wait_until, and released events fail loudly ----------------------------


def lifetime_app(config: Config, seen: list[Any], errors: list[BaseException]) -> H3:
    app = H3(config)

    async def audit(event: H3Event) -> None:
        await asyncio.sleep(0.05)
        seen.append((event.path, dict(event.params)))

    async def leak(event: H3Event) -> None:
        await asyncio.sleep(0.05)
        try:
            seen.append(event.path)
        except RuntimeError as exc:
            errors.append(exc)

    @app.get("/audited/:id")
    def audited(event: H3Event) -> str:
        event.wait_until(audit(event))
        return "ok"

    @app.get("/leaky/:id")
    async def leaky(event: H3Event) -> str:
        asyncio.get_running_loop().create_task(leak(event))
        return "ok"

    return app


@pytest.mark.parametrize("policy", POOLS.names())
async def test_wait_until_keeps_the_event_for_its_own_request(transport: Any, policy: str) -> None:
    seen: list[Any] = []
    app = lifetime_app(Config.preset("performance").replace(**{"pool.policy": policy}), seen, [])
    live = await transport(app)
    statuses = await asyncio.gather(
        *(live.fetch("GET", f"/audited/{i}") for i in range(30)),
    )
    assert [s for s, _, _ in statuses] == [200] * 30
    for _ in range(100):
        if len(seen) == 30:
            break
        await asyncio.sleep(0.02)
    assert sorted(seen) == sorted((f"/audited/{i}", {"id": str(i)}) for i in range(30))
    for _ in range(50):
        if app.pool.stats()["in_use"] == 0 and not app.background:
            break
        await asyncio.sleep(0.02)
    assert app.pool.stats()["in_use"] == 0 and not app.background


@pytest.mark.parametrize("policy", POOLS.names())
async def test_a_released_event_fails_loudly(transport: Any, policy: str) -> None:
    seen: list[Any] = []
    errors: list[BaseException] = []
    app = lifetime_app(
        Config.preset("performance").replace(**{"pool.policy": policy}), seen, errors
    )
    live = await transport(app)
    for i in range(10):
        assert (await live.fetch("GET", f"/leaky/{i}"))[0] == 200
    for _ in range(100):
        if len(errors) == 10:
            break
        await asyncio.sleep(0.02)
    assert seen == [] and len(errors) == 10
    assert all("wait_until" in str(exc) for exc in errors)


@pytest.mark.parametrize("policy", POOLS.names())
async def test_an_event_kept_past_its_response_never_serves_another(
    transport: Any, policy: str
) -> None:
    # A handler that keeps its event (a global, a task without wait_until) must
    # never see another request through it: the pool retires such an event
    # instead of handing it out again, so the holder fails loudly for good.
    app = H3(Config.preset("performance").replace(**{"pool.policy": policy}))
    kept: list[H3Event] = []

    @app.get("/keep")
    def keep(event: H3Event) -> str:
        kept.append(event)
        return "kept"

    @app.get("/echo/:id")
    def echo(event: H3Event) -> str:
        return "shared" if any(k is event for k in kept) else event.path

    live = await transport(app)
    for i in range(3):
        assert (await live.fetch("GET", "/keep"))[2] == b"kept"
        for j in range(3):
            assert (await live.fetch("GET", f"/echo/{i}{j}"))[2] == f"/echo/{i}{j}".encode()
    assert len({id(k) for k in kept}) == 3
    for event in kept:
        with pytest.raises(RuntimeError, match="wait_until"):
            _ = event.path
    stats = app.pool.stats()
    assert stats["retired"] == (3 if policy == "bounded" else 0)
    if policy == "bounded":
        # every event nothing kept was reused, on both transports
        assert stats["reused"] >= 6


async def test_events_nothing_kept_are_reused_on_every_path(transport: Any) -> None:
    # The pool retires an event still referenced when it leaves the free list:
    # the server's own paths (a synchronous chain, a task, an awaiting task, an
    # error answered as JSON, a 404) must hold no reference once they release it.
    app = H3(Config.preset("performance"))

    @app.get("/sync")
    def sync_route(event: H3Event) -> str:
        return event.path

    @app.get("/async")
    async def async_route(event: H3Event) -> str:
        return event.path

    @app.get("/awaits")
    async def awaits(event: H3Event) -> str:
        await asyncio.sleep(0)
        return event.path

    @app.get("/refuses")
    def refuses(event: H3Event) -> str:
        raise HTTPError(418, "no")

    @app.get("/fails")
    def fails(event: H3Event) -> str:
        raise ValueError("boom")

    live = await transport(app)
    for _ in range(5):
        for path, status in (("/sync", 200), ("/async", 200), ("/awaits", 200),
                             ("/refuses", 418), ("/missing", 404)):  # fmt: skip
            assert (await live.fetch("GET", path))[0] == status
    stats = app.pool.stats()
    assert stats["retired"] == 0, stats
    assert stats["reused"] >= 20, stats
    # An unhandled error is logged with its traceback, whose frames hold the
    # event: while a handler keeps that record (pytest's log capture does), the
    # event is referenced, so it is retired rather than reused. Safe either way.
    assert (await live.fetch("GET", "/fails"))[0] == 500
    assert (await live.fetch("GET", "/sync"))[2] == b"/sync"


@pytest.mark.parametrize("policy", POOLS.names())
def test_released_event_refuses_every_use(policy: str) -> None:
    from h3lab.event import ReleasedEvent

    pool = make_pool(PoolConfig(policy, size=4, warmup=1, trim_interval=0.0), H3Event)
    event = pool.acquire()
    event.path = "/mine"
    pool.release(event)
    assert type(event) is ReleasedEvent and repr(event) == "<H3Event (released)>"
    for use in (
        lambda: event.path,
        lambda: event.params,
        lambda: event.headers,
        lambda: event.set_header("x", "y"),
        lambda: setattr(event, "status", 201),
        lambda: event.wait_until(asyncio.sleep(0)),
    ):
        with pytest.raises(RuntimeError, match="wait_until"):
            use()
    with pytest.raises(RuntimeError, match="wait_until"):
        pool.release(event)  # a double release is a bug too
    again = pool.acquire()
    assert type(again) is H3Event and again.path == "/"


async def test_graceful_shutdown_waits_for_wait_until(caplog: Any) -> None:
    app = H3()
    finished: list[str] = []

    async def slow_audit(label: str) -> None:
        await asyncio.sleep(0.2)
        finished.append(label)

    async def forever() -> None:
        await asyncio.sleep(60)

    @app.get("/work")
    def work(event: H3Event) -> str:
        event.wait_until(slow_audit("audit"))
        return "ok"

    @app.get("/forever")
    def start_forever(event: H3Event) -> str:
        event.wait_until(forever())
        return "ok"

    server = Server(app, "127.0.0.1", 0)
    await server.start()
    async with aiohttp.ClientSession() as session:
        for path in ("/work", "/forever"):
            async with session.get(server.url + path) as resp:
                assert resp.status == 200
    assert len(app.background) == 2
    caplog.set_level(logging.WARNING)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await server.shutdown(grace=0.5)
    assert finished == ["audit"]  # waited for
    assert not app.background and loop.time() - started < 3  # the endless one cancelled
    assert any("wait_until" in r.getMessage() for r in caplog.records)
    assert app.pool.stats()["in_use"] == 0


def sync_chain_app(config: Config) -> H3:
    """Synchronous chains (a before layer, a handler) that set ContextVars,
    beside the cases a synchronous chain hands to a Task."""
    app = H3(config)

    def tag(event: H3Event) -> None:
        if USER.get() is not None:  # a value left by an earlier request
            event.set_header("x-leak", str(USER.get()))
        USER.set("before")

    app.use(tag)

    @app.get("/set-sync/:user")
    def set_user_sync(event: H3Event) -> dict[str, Any]:
        before = USER.get()
        USER.set(event.params["user"])
        return {"before": before}

    @app.get("/get")
    def get_user(event: H3Event) -> dict[str, Any]:
        return {"user": USER.get(), "task": asyncio.current_task() is not None}

    async def later() -> dict[str, Any]:
        await asyncio.sleep(0)
        return {"user": USER.get(), "task": asyncio.current_task() is not None}

    # A synchronous handler that returns a coroutine: awaited in a Task that
    # sees what the chain set.
    app.get("/coro", lambda event: later())

    @app.get("/quick")
    async def quick(event: H3Event) -> dict[str, Any]:
        # async and never suspends: still a Task (asyncio.timeout needs one)
        async with asyncio.timeout(1):
            return {"task": asyncio.current_task() is not None}

    return app


@pytest.mark.parametrize("execution", ["fast", "legacy"])
@pytest.mark.parametrize("preset", list(PRESETS))
async def test_sync_chains_are_isolated_without_a_task(
    transport: Any, preset: str, execution: str
) -> None:
    app = sync_chain_app(Config.preset(preset).replace(**{"middleware.execution": execution}))
    live = await transport(app)
    builtin = transport.name == "builtin"
    other = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True))
    try:
        for user in ("alice", "bob"):
            async with live.session.get(live.url + f"/set-sync/{user}") as resp:
                assert resp.status == 200 and "x-leak" not in resp.headers
                assert json.loads(await resp.read()) == {"before": "before"}
            for session in (live.session, other):  # same connection, then another
                async with session.get(live.url + "/get") as resp:
                    assert "x-leak" not in resp.headers
                    assert json.loads(await resp.read()) == {"user": "before", "task": not builtin}
        assert await fetch_json(live.session, live.url + "/coro") == {
            "user": "before",
            "task": True,
        }
        assert await fetch_json(live.session, live.url + "/quick") == {"task": True}
    finally:
        await other.close()
    assert USER.get() is None


async def test_sync_chains_pipelined_never_see_each_other() -> None:
    # Many pipelined requests in one read: each sync chain gets its own context.
    app = sync_chain_app(Config.preset("performance"))
    async with Server(app, "127.0.0.1", 0) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        batch = b"".join(
            b"GET /set-sync/u%d HTTP/1.1\r\nHost: x\r\n\r\nGET /get HTTP/1.1\r\nHost: x\r\n\r\n" % i
            for i in range(20)
        )
        writer.write(batch)
        data = b""
        while data.count(b"HTTP/1.1 200") < 40:
            chunk = await asyncio.wait_for(reader.read(65536), 5)
            assert chunk, data
            data += chunk
        writer.close()
    assert b"x-leak" not in data
    assert data.count(b'{"user":"before","task":false}') == 20
    assert data.count(b'{"before":"before"}') == 20


def test_chain_kind_is_decided_from_the_registered_callables() -> None:
    from h3lab.middleware import Layer, chain_is_sync

    def before(event: Any) -> None:
        return None

    async def abefore(event: Any) -> None:
        return None

    async def onion(event: Any, next: Any) -> Any:
        return await next()

    assert chain_is_sync([Layer.of(before)], False, "/x")
    assert not chain_is_sync([Layer.of(before)], True, "/x")
    assert not chain_is_sync([Layer.of(abefore)], False, "/x")
    assert not chain_is_sync([Layer.of(onion)], False, "/x")
    # A layer scoped where the route never goes does not count; an undecided one does.
    assert chain_is_sync([Layer.of(onion, "/admin")], False, "/users")
    assert not chain_is_sync([Layer.of(onion, "/admin")], False, "/:any/x")
    assert not chain_is_sync([Layer.of(before), Layer.of(onion)], False, None)
