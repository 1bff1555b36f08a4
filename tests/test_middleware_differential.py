"""``middleware.execution``: ``legacy`` and ``fast`` give identical answers.

A Hypothesis test builds random programs -- middleware stacks of every shape
(onion, sync/async "before", callable objects, short-circuits, errors, path
scopes, route-level middleware) over a small route table -- serves the same
program under both executions through ``app.asgi`` in process, and compares
status, headers and body of every request. Percent-encoded route patterns
are left out here: their scopes are the routing work of issue 10 item 13,
which has its own differential test.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from h3lab import H3, Config, HTTPError
from h3lab.event import H3Event
from tests.conftest import asgi_request

PREFIXES = ("", "", "/api", "/api/v1", "/other", "/api/v1/items")
KINDS = (
    "onion-tag",
    "onion-wrap",
    "onion-short",
    "onion-raise",
    "onion-sync-next",
    "before-sync",
    "before-async",
    "before-callable-async",
    "before-callable-sync",
)
ROUTES = (
    ("GET", "/"),
    ("GET", "/api"),
    ("GET", "/api/v1/items/:id"),
    ("POST", "/api/v1/items/:id"),
    ("*", "/api/**"),
    ("GET", "/other/x"),
    ("GET", "/files/**:path"),
)
PATHS = (
    "/",
    "/api",
    "/api/",
    "/api/v1/items/7",
    "/api/v1/items/7/",
    "/api/v1",
    "/api/zz/deep",
    "/other/x",
    "/other",
    "/others/x",
    "/files/a/b",
    "/missing",
)
FLAGS = ("s0", "s1", "s2", "e0", "e1", "b0", "b1", "b2", "sync-handler-error")


@dataclass(frozen=True)
class Spec:
    kind: str
    index: int
    prefix: str


def _trail(event: H3Event, mark: str) -> None:
    event.append_header("x-trail", mark)


def make_middleware(spec: Spec) -> Callable[..., Any]:
    i, kind = spec.index, spec.kind
    flag_s, flag_e, flag_b = f"s{i % 3}", f"e{i % 2}", f"b{i % 3}"
    if kind == "onion-tag":

        async def tag(event: H3Event, next: Any) -> Any:
            _trail(event, f"o{i}>")
            result = await next()
            _trail(event, f"o{i}<")
            return result

        return tag
    if kind == "onion-wrap":

        async def wrap(event: H3Event, next: Any) -> Any:
            value = await next()
            return {"wrapped": i, "inner": value} if isinstance(value, dict) else value

        return wrap
    if kind == "onion-short":

        async def short(event: H3Event, next: Any) -> Any:
            if flag_s in event.query:
                return f"short-o{i}"
            return await next()

        return short
    if kind == "onion-raise":

        async def fail(event: H3Event, next: Any) -> Any:
            if flag_e in event.query:
                raise HTTPError(400 + i, f"raised by {i}")
            return await next()

        return fail
    if kind == "onion-sync-next":

        def passthrough(event: H3Event, next: Any) -> Any:  # returns next()'s awaitable
            event.context.setdefault("seen", []).append(i)
            return next()

        return passthrough
    if kind == "before-sync":

        def before(event: H3Event) -> Any:
            event.context.setdefault("seen", []).append(i)
            return f"short-b{i}" if flag_b in event.query else None

        return before
    if kind == "before-async":

        async def before_async(event: H3Event) -> Any:
            await asyncio.sleep(0)
            event.context.setdefault("seen", []).append(i)
            return f"short-ab{i}" if flag_b in event.query else None

        return before_async
    if kind == "before-callable-async":

        class AsyncGuard:
            async def __call__(self, event: H3Event) -> Any:
                event.context.setdefault("seen", []).append(i)
                return {"guard": i} if flag_b in event.query else None

        return AsyncGuard()

    class SyncGuard:
        def __call__(self, event: H3Event) -> Any:
            event.context.setdefault("seen", []).append(i)
            return None

    return SyncGuard()


def build(execution: str, global_mw: list[Spec], route_mw: dict[int, list[Spec]]) -> H3:
    app = H3(Config().replace("middleware.execution", execution))
    for spec in global_mw:
        mw = make_middleware(spec)
        if spec.prefix:
            app.use(spec.prefix, mw)
        else:
            app.use(mw)
    for n, (method, pattern) in enumerate(ROUTES):
        is_async = n % 2 == 0

        def answer(event: H3Event, n: int = n) -> Any:
            if "sync-handler-error" in event.query:
                raise RuntimeError("handler failed")
            return {
                "route": n,
                "params": dict(event.params),
                "seen": event.context.get("seen", []),
                "method": event.method,
            }

        if is_async:

            async def handler(event: H3Event, answer: Any = answer) -> Any:
                await asyncio.sleep(0)
                return answer(event)

        else:
            handler = answer  # type: ignore[assignment]
        middleware = [make_middleware(spec) for spec in route_mw.get(n, [])]
        app.on(method, pattern, handler, middleware=middleware)
    return app


specs = st.builds(
    Spec,
    kind=st.sampled_from(KINDS),
    index=st.integers(0, 5),
    prefix=st.sampled_from(PREFIXES),
)
requests = st.lists(
    st.tuples(
        st.sampled_from(("GET", "POST", "HEAD", "PUT")),
        st.sampled_from(PATHS),
        st.lists(st.sampled_from(FLAGS), max_size=3, unique=True),
    ),
    min_size=1,
    max_size=6,
)


async def _answers(app: H3, reqs: list[tuple[str, str, list[str]]]) -> list[Any]:
    out = []
    for method, path, flags in reqs:
        query = "&".join(flags)
        status, headers, body = await asgi_request(app, method, f"{path}?{query}")
        out.append((method, path, query, status, headers, body))
    return out


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    global_mw=st.lists(specs, max_size=6),
    route_mw=st.dictionaries(
        st.integers(0, len(ROUTES) - 1),
        st.lists(specs.map(lambda s: Spec(s.kind, s.index, "")), max_size=2),
        max_size=3,
    ),
    reqs=requests,
)
def test_legacy_and_fast_answer_identically(
    global_mw: list[Spec], route_mw: dict[int, list[Spec]], reqs: list[Any]
) -> None:
    legacy = asyncio.run(_answers(build("legacy", global_mw, route_mw), reqs))
    fast = asyncio.run(_answers(build("fast", global_mw, route_mw), reqs))
    for old, new in zip(legacy, fast, strict=True):
        assert old == new, f"legacy {old}\n   fast {new}"
