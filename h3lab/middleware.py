"""Middleware execution strategies: ``legacy`` and ``fast``.

Two middleware shapes are accepted by ``app.use``:

* *onion*: ``async def mw(event, next)`` -- runs code before and after the
  rest of the chain, may replace its result, or short-circuit by returning a
  value without calling ``next()``;
* *before*: ``def mw(event)`` (or ``async def``) -- h3 v1 style: returning
  anything but ``None`` ends the request with that value, ``None`` continues.

Both strategies give the same results for the same program (the behavioural
suite runs over both); they differ in what each request pays:

``legacy``
    the onion chain is built per request, Koa-style: every layer's ``next`` is
    a fresh closure, every layer (a *before* one too) runs as a coroutine, and
    path-prefix scopes are tested on every request. A chain of only
    synchronous callables (``chain_is_sync``) is composed the same way per
    request but without coroutines, so that the built-in server can run it
    without a Task under both executions.

``fast``
    the chain of every route is compiled once (at the first request after a
    route or middleware change): scopes decidable from the route's pattern are
    resolved at compile time, consecutive synchronous *before* middleware run
    in a plain loop with no coroutine at all, and ``next`` is one small cursor
    object per request (its place in the compiled steps; ``_Cursor``) instead
    of a closure per layer per request. A route with no middleware and a
    synchronous handler compiles to the handler itself.

Both executions also tell the transports which chains cannot await
(``chain_is_sync``, decided once per route from the registered callables):
synchronous *before* layers that may apply and a synchronous endpoint. The
built-in server runs such a request in its own ``contextvars`` context
without an asyncio Task; every other request gets a Task.

Options (h3's ``use(route, fn, {method, match})``): ``method`` (one or a list;
a GET layer also runs for HEAD, which GET routes answer) and ``match(event) ->
bool`` restrict a layer further. ``legacy`` tests them per request; ``fast``
decides ``method`` at compile time where the route's method settles it and
wraps the layer in a filter otherwise, so a layer without options (and every
app that uses none) runs exactly the code it ran before.

Calling ``next()`` more than once in one middleware invocation is an error in
both strategies (as in Koa); ``fast`` detects it once the downstream chain has
finished, ``legacy`` always.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import CoroutineType
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from h3lab.callables import is_async_callable
from h3lab.methods import METHODS
from h3lab.registry import Registry, registry
from h3lab.routing.pattern import STATIC, Segment, parse_pattern

if TYPE_CHECKING:
    from h3lab.config import MiddlewareConfig

MIDDLEWARE_EXECUTIONS: Registry[type[MiddlewareExecution]] = registry("middleware.execution")

ONION = "onion"
BEFORE = "before"

Endpoint = Callable[[Any], Any]  # event -> value or awaitable
Chain = Callable[[Any], Any]  # event -> value or awaitable


@dataclass(frozen=True, slots=True)
class Layer:
    """One ``app.use(...)`` registration."""

    fn: Callable[..., Any]
    prefix: str = ""  # "" = every path; else "/api" matches /api and /api/...
    kind: str = ONION
    is_async: bool = True
    methods: frozenset[str] | None = None  # None: every method
    match: Callable[[Any], bool] | None = None  # None: every request
    has_options: bool = False  # methods or match set (one cheap test per request)

    @classmethod
    def of(
        cls,
        fn: Callable[..., Any],
        prefix: str = "",
        *,
        method: str | Sequence[str] | None = None,
        match: Callable[[Any], bool] | None = None,
    ) -> Layer:
        if not callable(fn):
            raise TypeError(f"middleware must be callable, got {fn!r}")
        try:
            params = [
                p
                for p in inspect.signature(fn).parameters.values()
                if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
            ]
        except (TypeError, ValueError):
            params = []
        if len(params) == 2:
            kind = ONION
        elif len(params) == 1:
            kind = BEFORE
        else:
            raise TypeError(
                f"middleware {getattr(fn, '__name__', fn)!r} must take (event, next) or (event)"
            )
        prefix = prefix.rstrip("/")
        if prefix and not prefix.startswith("/"):
            raise ValueError(f"middleware prefix must start with '/', got {prefix!r}")
        if match is not None and not callable(match):
            raise TypeError(f"middleware match must be callable(event) -> bool, got {match!r}")
        methods = _method_set(method)
        has_options = methods is not None or match is not None
        return cls(fn, prefix, kind, is_async_callable(fn), methods, match, has_options)

    def accepts(self, event: Any) -> bool:
        """The options' verdict on one request (the prefix is ``applies``)."""
        methods = self.methods
        if methods is not None and not _method_in(event.method, methods):
            return False
        return self.match is None or bool(self.match(event))

    def applies(self, route_path: str) -> bool:
        prefix = self.prefix
        return (
            not prefix
            or route_path == prefix
            or (route_path.startswith(prefix) and route_path[len(prefix)] == "/")
        )


def _method_set(method: str | Sequence[str] | None) -> frozenset[str] | None:
    if method is None:
        return None
    names = [method] if isinstance(method, str) else list(method)
    if not names or not all(isinstance(name, str) for name in names):
        raise ValueError(
            f"middleware method must be a method name or a list of them, got {method!r}"
        )
    upper = frozenset(name.upper() for name in names)
    unknown = sorted(upper - set(METHODS))
    if unknown:
        raise ValueError(f"middleware method must be among {list(METHODS)}, got {unknown[0]!r}")
    return upper


def _method_in(method: str, methods: frozenset[str]) -> bool:
    # HEAD is answered by GET routes (RFC 9110), so a GET layer runs for it too (h3).
    return method in methods or (method == "HEAD" and "GET" in methods)


def method_relation(methods: frozenset[str] | None, route_method: str | None) -> bool | None:
    """Whether a ``method`` option admits every request a route can get.

    True: always; False: never; None: depends on the request. A route for
    ``M`` gets ``M`` requests, and a GET route HEAD ones too; an any-method
    route (and the no-route chain, ``route_method`` None) gets anything.
    """
    if methods is None:
        return True
    if route_method is None or route_method == "*":
        return None
    if route_method != "GET":
        return _method_in(route_method, methods)
    if "GET" in methods:
        return True  # GET and HEAD both pass
    return None if "HEAD" in methods else False


def prefix_relation(prefix: str, pattern: str | None) -> bool | None:
    """Whether a prefix scope applies to *every* path a route pattern matches.

    True: always; False: never; None: depends on the request path (the fast
    chain then tests the prefix per request, exactly as ``legacy`` does).
    ``pattern`` None stands for "no route" (404/405 chains): always undecided.

    The prefix is in routing form (``app.use`` passes it through
    ``routing_path``) and ``Layer.applies`` compares it with the routing path,
    so the pattern is compared in the same form: its parsed, decoded static
    segments, never its raw text (``/%61dmin/users`` and ``/caf%C3%A9/menu``
    are under ``/admin`` and ``/café``). Every variant of the pattern must
    agree; any dynamic segment within the prefix's reach (a param, a regex or
    mixed segment, an optional one, a wildcard) leaves it undecided.
    """
    if not prefix:
        return True
    if pattern is None:
        return None
    try:
        variants = parse_pattern(pattern)
    except ValueError:
        return None  # the router refuses it anyway; never guess
    want = prefix[1:].split("/")
    answers = {_variant_relation(want, variant.segments) for variant in variants}
    return answers.pop() if len(answers) == 1 else None


def _variant_relation(want: list[str], segments: Sequence[Segment]) -> bool | None:
    for k, text in enumerate(want):
        if k >= len(segments):
            return False  # every path of the variant is shorter than the prefix
        segment = segments[k]
        if segment.kind != STATIC:
            return None
        if segment.text != text:
            return False
    return True


def chain_is_sync(layers: Sequence[Layer], endpoint_is_async: bool, pattern: str | None) -> bool:
    """Whether a route's chain can never await: decided from the registered callables.

    True when the endpoint is synchronous and every layer that may apply to
    ``pattern`` is a synchronous *before* layer (an onion layer awaits
    ``next()``). Layers whose scope never covers the route do not count. The
    same answer for ``legacy`` and ``fast``.
    """
    if endpoint_is_async:
        return False
    for layer in layers:
        if prefix_relation(layer.prefix, pattern) is False:
            continue
        if layer.kind == ONION or layer.is_async:
            return False
    return True


async def _await_value(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


async def _continue_after(awaitable: Any, rest: Callable[[], Any]) -> Any:
    result = await awaitable
    if result is not None:
        return result
    return await _await_value(rest())


class NextCalledTwice(RuntimeError):
    def __init__(self) -> None:
        super().__init__("next() was called more than once in one middleware")


class MiddlewareExecution(Protocol):
    name: ClassVar[str]

    def compile(
        self,
        layers: Sequence[Layer],
        endpoint: Endpoint,
        endpoint_is_async: bool,
        pattern: str | None,
        method: str | None = None,
    ) -> Chain:
        """The callable that runs ``layers`` then ``endpoint`` for one route."""

    def stats(self) -> dict[str, Any]: ...

    def tick(self, now: float) -> None:
        """Periodic upkeep (the server's ticker): none; chains change only on compile."""


def _active_layers(layers: Sequence[Layer], event: Any) -> list[Layer]:
    """The layers that run for this request (``legacy`` decides per request):
    scope first, then the ``method``/``match`` options."""
    return [
        layer
        for layer in layers
        if layer.applies(event.route_path) and (not layer.has_options or layer.accepts(event))
    ]


@MIDDLEWARE_EXECUTIONS.register
class LegacyExecution:
    """Koa-compose: a closure per layer per request, scopes tested per request."""

    name: ClassVar[str] = "legacy"

    def __init__(self) -> None:
        self.compilations = 0
        self.chains_built = 0

    def compile(
        self,
        layers: Sequence[Layer],
        endpoint: Endpoint,
        endpoint_is_async: bool,
        pattern: str | None,
        method: str | None = None,
    ) -> Chain:
        self.compilations += 1
        layers = tuple(layers)
        execution = self
        if chain_is_sync(layers, endpoint_is_async, pattern):
            return self._compile_sync(layers, endpoint)

        async def run(event: Any) -> Any:
            execution.chains_built += 1
            active = _active_layers(layers, event)
            called = -1

            async def dispatch(i: int) -> Any:
                nonlocal called
                if i <= called:
                    raise NextCalledTwice()
                called = i
                if i == len(active):
                    return await _await_value(endpoint(event))
                layer = active[i]
                if layer.kind == ONION:
                    return await _await_value(layer.fn(event, lambda: dispatch(i + 1)))
                result = await _await_value(layer.fn(event))
                if result is not None:
                    return result
                return await dispatch(i + 1)

            return await dispatch(0)

        return run

    def _compile_sync(self, layers: tuple[Layer, ...], endpoint: Endpoint) -> Chain:
        """The same Koa-compose for a chain of synchronous callables, without
        coroutines (so it needs no Task): still a closure per layer per request
        and every scope tested per request."""
        execution = self

        def run(event: Any) -> Any:
            execution.chains_built += 1
            active = _active_layers(layers, event)
            called = -1

            def dispatch(i: int) -> Any:
                nonlocal called
                if i <= called:
                    raise NextCalledTwice()
                called = i
                if i == len(active):
                    return endpoint(event)  # an awaitable result is awaited by the transport
                result = active[i].fn(event)
                if result is None:
                    return dispatch(i + 1)
                if inspect.isawaitable(result):
                    # A synchronous callable gave an awaitable: the rest of the
                    # chain continues in a coroutine (the transport awaits it).
                    return _continue_after(result, lambda: dispatch(i + 1))
                return result

            return dispatch(0)

        return run

    def stats(self) -> dict[str, Any]:
        return {
            "execution": self.name,
            "compilations": self.compilations,
            "chains_built": self.chains_built,
        }

    def tick(self, now: float) -> None:
        """Nothing periodic."""


class _Step:
    __slots__ = ("fn", "kind", "prefix")

    def __init__(self, fn: Callable[..., Any], kind: str, prefix: str) -> None:
        self.fn = fn
        self.kind = kind
        self.prefix = prefix  # "" when decided at compile time


async def _ready(value: Any) -> Any:
    return value


class _Cursor:
    """One request's place in a ``FastChain``, and the ``next`` its onion layers get.

    It belongs to one run of the chain, not to the event: a pooled event
    carries no chain state, and a sub-app's chain run on the same event (a
    mount) has a cursor of its own.

    PERF: ``next`` is the bound method ``advance``, made once per run and kept
    on the cursor to be handed to each onion layer: Python 3.11 inlines a call
    to a bound method, not one to an instance with ``__call__`` (measured: that
    cost about 0.2 us more per onion layer, as did making the bound method per
    layer). Kept there it is a cycle (cursor -> method -> cursor), so it is
    dropped as soon as no later layer can need it: when the last onion layer
    is entered, or the chain ends (endpoint, a *before* layer's answer). Then
    reference counting frees the cursor when the layers holding ``next``
    return. Only a run that stops early (an outer onion layer that answers
    without calling ``next()``, or an exception) before its last onion layer
    leaves the cycle to the cyclic GC.
    """

    __slots__ = ("chain", "event", "index", "next")

    # Annotations only (no class attributes: they would clash with the slots).
    chain: FastChain
    event: Any
    index: int
    next: Callable[[], Any] | None

    def advance(self) -> Any:
        result = self.chain.step(self)
        if type(result) is CoroutineType or hasattr(result, "__await__"):
            return result
        return _ready(result)


class FastChain:
    """A route's compiled middleware steps, run with a ``_Cursor`` per request."""

    __slots__ = ("endpoint", "endpoint_is_async", "last_onion", "n", "steps")

    def __init__(
        self, steps: tuple[_Step, ...], endpoint: Endpoint, endpoint_is_async: bool
    ) -> None:
        self.steps = steps
        self.n = len(steps)
        self.endpoint = endpoint
        self.endpoint_is_async = endpoint_is_async
        # The cursor position just past the last onion layer (0: none).
        self.last_onion = max((k + 1 for k, s in enumerate(steps) if s.kind == ONION), default=0)

    def __call__(self, event: Any) -> Any:
        # PERF: stores instead of an __init__ frame.
        cursor = _Cursor()
        cursor.chain = self
        cursor.event = event
        cursor.index = 0
        cursor.next = cursor.advance
        return self.step(cursor)

    def step(self, cursor: _Cursor) -> Any:
        """Run from the cursor until an onion layer takes over or the endpoint.

        Returns an awaitable whenever it was entered through ``next()`` (the
        caller awaits it); from ``__call__`` it may return a plain value.
        """
        steps = self.steps
        n = self.n
        i = cursor.index
        event = cursor.event
        while i < n:
            step = steps[i]
            i += 1
            # Stored before each layer runs (not only before an onion one): an
            # outer onion that catches this layer's exception and calls next()
            # again resumes after it, as it always did.
            cursor.index = i
            prefix = step.prefix
            if prefix:
                route_path = event.route_path
                if not (
                    route_path == prefix
                    or (route_path.startswith(prefix) and route_path[len(prefix)] == "/")
                ):
                    continue
            if step.kind == ONION:
                next = cursor.next
                if i == self.last_onion:
                    cursor.next = None  # no later layer needs it: the cycle ends here
                return step.fn(event, next)
            # A synchronous "before" layer (async ones are compiled as onions).
            result = step.fn(event)
            if result is not None:
                cursor.index = n + 1
                cursor.next = None
                return result
        if i > n:
            raise NextCalledTwice()
        cursor.index = n + 1
        cursor.next = None
        return self.endpoint(event)


def _flat_before_chain(fns: tuple[Callable[..., Any], ...], endpoint: Endpoint) -> Chain:
    def run(event: Any) -> Any:
        for fn in fns:
            result = fn(event)
            if result is not None:
                return result
        return endpoint(event)

    return run


def _before_as_onion(fn: Callable[..., Any]) -> Callable[..., Any]:
    async def layer(event: Any, next: Callable[[], Any]) -> Any:
        result = await fn(event)
        if result is not None:
            return result
        return await next()

    layer.__name__ = getattr(fn, "__name__", "before")
    return layer


def _filtered(
    fn: Callable[..., Any],
    kind: str,
    methods: frozenset[str] | None,
    match: Callable[[Any], bool] | None,
) -> Callable[..., Any]:
    """``fn`` behind its per-request options: skipped (as an unmatched prefix
    is) when the method or ``match`` says no."""

    def accepts(event: Any) -> bool:
        if methods is not None and not _method_in(event.method, methods):
            return False
        return match is None or bool(match(event))

    if kind == ONION:

        def onion(event: Any, next: Callable[[], Any]) -> Any:
            return fn(event, next) if accepts(event) else next()

        return onion

    def before(event: Any) -> Any:
        return fn(event) if accepts(event) else None

    return before


@MIDDLEWARE_EXECUTIONS.register
class FastExecution:
    """Chains compiled once per route; no per-request closures."""

    name: ClassVar[str] = "fast"

    def __init__(self) -> None:
        self.compilations = 0
        self.resolved_at_compile_time = 0

    def compile(
        self,
        layers: Sequence[Layer],
        endpoint: Endpoint,
        endpoint_is_async: bool,
        pattern: str | None,
        method: str | None = None,
    ) -> Chain:
        self.compilations += 1
        steps: list[_Step] = []
        for layer in layers:
            relation = prefix_relation(layer.prefix, pattern)
            by_method = method_relation(layer.methods, method)
            if relation is False or by_method is False:
                self.resolved_at_compile_time += 1
                continue
            if relation is True and layer.prefix:
                self.resolved_at_compile_time += 1
            prefix = "" if relation else layer.prefix
            fn, kind = layer.fn, layer.kind
            if kind == BEFORE and layer.is_async:
                fn, kind = _before_as_onion(fn), ONION
            if by_method is None or layer.match is not None:
                # Only what the route leaves open is tested per request.
                fn = _filtered(fn, kind, layer.methods if by_method is None else None, layer.match)
            steps.append(_Step(fn, kind, prefix))
        if not steps:
            # PERF: nothing to run around the handler: the chain is the handler.
            return endpoint
        if all(step.kind == BEFORE and not step.prefix for step in steps):
            # PERF: only synchronous "before" layers, all known to apply: a flat
            # loop over a tuple, no cursor, no coroutine (h3z's FastMiddlewareChain).
            return _flat_before_chain(tuple(step.fn for step in steps), endpoint)
        if not endpoint_is_async and any(s.kind == ONION for s in steps):
            # An onion layer awaits next(): the endpoint must give an awaitable.
            sync_endpoint = endpoint

            async def endpoint_awaitable(event: Any) -> Any:
                result = sync_endpoint(event)
                if type(result) is CoroutineType:
                    result = await result
                return result

            endpoint = endpoint_awaitable
        return FastChain(tuple(steps), endpoint, endpoint_is_async)

    def stats(self) -> dict[str, Any]:
        return {
            "execution": self.name,
            "compilations": self.compilations,
            "scopes_resolved_at_compile_time": self.resolved_at_compile_time,
        }

    def tick(self, now: float) -> None:
        """Nothing periodic."""


def make_execution(middleware: MiddlewareConfig) -> MiddlewareExecution:
    """The execution ``middleware.execution`` names."""
    return MIDDLEWARE_EXECUTIONS.get(middleware.execution)()
