"""The ``H3`` application: routes, middleware, hooks, and the dispatch core.

Request flow (the server and the ASGI adapter both follow it):

1. the transport fills an ``H3Event`` from the pool (method, paths, headers,
   body) and calls ``app.handle(event)``;
2. ``handle`` finds the route (through the configured matching strategy and
   route cache), sets ``event.params`` and calls the route's compiled chain
   (middleware + handler) -- or the not-found chain, whose endpoint raises
   404/405 after the global middleware ran;
3. the chain returns a value, or a coroutine when something is asynchronous;
   the transport awaits it inside the request's own asyncio Task and
   ``contextvars`` context (the built-in server starts that task eagerly);
4. the value becomes a response with ``response_for``; an exception becomes
   a JSON error response with ``error_response``. Both are final (hooks run,
   staged headers merged) and never raise: the transports send them as they
   are, so both transports answer every failure the same way;
5. the event goes back to the pool (later, if ``event.wait_until`` work is
   still pending).

The app owns every strategy instance (router + cache, pool, memory strategy,
middleware execution): nothing is module-global, so two apps never share
state.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from typing import Any

from h3lab.callables import is_async_callable
from h3lab.config import Config
from h3lab.errors import HTTPError
from h3lab.event import NO_PARAMS, H3Event
from h3lab.json_encoding import make_json_encoder
from h3lab.memory import make_memory
from h3lab.methods import METHODS
from h3lab.middleware import Layer, chain_is_sync, make_execution
from h3lab.pool import make_pool
from h3lab.response import JSON_TYPE, Response, json_bytes, to_response
from h3lab.routing import ANY_METHOD, Route, TrieRouter, make_router, routing_path

error_logger = logging.getLogger("h3lab.error")

Handler = Callable[[H3Event], Any]
Hook = Callable[..., Any]


class H3:
    """An H3 application. ``H3(config=Config.preset("performance"))``."""

    def __init__(
        self,
        config: Config | None = None,
        *,
        debug: bool = False,
        on_request: Hook | None = None,
        on_response: Hook | None = None,
        on_error: Hook | None = None,
    ) -> None:
        self.config = config if config is not None else Config()
        if not isinstance(self.config, Config):
            raise TypeError(f"config must be an h3lab.Config, got {type(config).__name__}")
        self.debug = debug
        self.on_request_hook = on_request
        self.on_response_hook = on_response
        self.on_error_hook = on_error
        cfg = self.config
        self.router = make_router(cfg.router, cfg.cache)
        self.execution = make_execution(cfg.middleware)
        self.memory = make_memory(cfg.memory)
        self.pool = make_pool(cfg.pool, self._new_event)
        self.json = make_json_encoder(cfg.response)
        self.json_encode = self.json.encode  # both transports' JSON responses
        self._layers: list[Layer] = []
        self.startup_hooks: list[Hook] = []
        self.shutdown_hooks: list[Hook] = []
        self._ws_router: Any = None  # WebSocket routes (app.ws), built on the first one
        self._route_count = 0
        self._ready = False
        self._not_found_chain: Callable[[H3Event], Any] | None = None
        self._not_found_sync = False
        self._stats_path = cfg.server.stats_path
        self.server: Any = None  # set by the server that runs this app (for stats)
        self.errors_unhandled = 0
        self.errors_http = 0
        # event.wait_until work in flight (strong references: the loop keeps
        # only weak ones), waited for at graceful shutdown.
        self.background: set[asyncio.Future[Any]] = set()

    def _new_event(self) -> H3Event:
        return H3Event(self)

    # -- registration --------------------------------------------------------

    def on(
        self,
        method: str,
        pattern: str,
        handler: Handler | None = None,
        *,
        middleware: list[Callable[..., Any]] | tuple[Callable[..., Any], ...] = (),
        meta: dict[str, Any] | None = None,
    ) -> Any:
        """Register ``handler`` for ``method`` (or ``"*"``) and ``pattern``.

        Usable directly or as a decorator. Adding a route invalidates the
        route cache and the compiled middleware chains.
        """
        method = method.upper()
        if method != ANY_METHOD and method not in METHODS:
            raise ValueError(f"method must be one of {[*METHODS, ANY_METHOD]}, got {method!r}")
        if not pattern.startswith("/"):
            raise ValueError(f"route pattern must start with '/', got {pattern!r}")

        def register(fn: Handler) -> Handler:
            if not callable(fn):
                raise TypeError(f"handler for {method} {pattern} must be callable")
            route = Route(
                method,
                pattern,
                fn,
                index=self._route_count,
                middleware=tuple(Layer.of(m) for m in middleware),
                meta={**(meta or {}), "is_async": is_async_callable(fn)},
            )
            self.router.add(route)  # raises ValueError on a duplicate or a bad pattern
            self._route_count += 1
            self._ready = False
            return fn

        return register(handler) if handler is not None else register

    def get(self, pattern: str, handler: Handler | None = None, **kw: Any) -> Any:
        return self.on("GET", pattern, handler, **kw)

    def post(self, pattern: str, handler: Handler | None = None, **kw: Any) -> Any:
        return self.on("POST", pattern, handler, **kw)

    def put(self, pattern: str, handler: Handler | None = None, **kw: Any) -> Any:
        return self.on("PUT", pattern, handler, **kw)

    def patch(self, pattern: str, handler: Handler | None = None, **kw: Any) -> Any:
        return self.on("PATCH", pattern, handler, **kw)

    def delete(self, pattern: str, handler: Handler | None = None, **kw: Any) -> Any:
        return self.on("DELETE", pattern, handler, **kw)

    def options(self, pattern: str, handler: Handler | None = None, **kw: Any) -> Any:
        return self.on("OPTIONS", pattern, handler, **kw)

    def head(self, pattern: str, handler: Handler | None = None, **kw: Any) -> Any:
        return self.on("HEAD", pattern, handler, **kw)

    def query(self, pattern: str, handler: Handler | None = None, **kw: Any) -> Any:
        """A ``QUERY`` route: a safe, idempotent request that carries a body."""
        return self.on("QUERY", pattern, handler, **kw)

    def all(self, pattern: str, handler: Handler | None = None, **kw: Any) -> Any:
        return self.on(ANY_METHOD, pattern, handler, **kw)

    def use(
        self,
        prefix_or_fn: Any,
        fn: Callable[..., Any] | None = None,
        *,
        method: str | list[str] | tuple[str, ...] | None = None,
        match: Callable[[H3Event], bool] | None = None,
    ) -> H3:
        """``app.use(mw)`` for every request, ``app.use("/api", mw)`` under a path prefix.

        Options, as h3's ``use(route, fn, {method, match})``: ``method`` (a name
        or a list; GET also covers HEAD) and ``match(event) -> bool`` restrict
        the layer further. ``app.use("/api", sub_app)`` mounts an H3 app.
        """
        if fn is None:
            if isinstance(prefix_or_fn, H3):
                return self.mount("", prefix_or_fn)
            layer = Layer.of(prefix_or_fn, method=method, match=match)
        else:
            if not isinstance(prefix_or_fn, str):
                raise TypeError("app.use(prefix, middleware): prefix must be a str")
            if isinstance(fn, H3):
                return self.mount(prefix_or_fn, fn)
            layer = Layer.of(fn, routing_path(prefix_or_fn), method=method, match=match)
        self._layers.append(layer)
        self._ready = False
        return self

    def mount(self, prefix: str, app: Any) -> H3:
        """Serve ``app`` (an ``H3`` app or any ASGI application) under ``prefix``.

        See ``h3lab.mount``: the sub-app sees paths relative to the prefix
        (``event.full_path`` keeps the whole one) and answers its own 404/405;
        an ASGI app gets Starlette's ``root_path``/``path`` scope on both
        transports.
        """
        from h3lab.mount import ASGIMount, H3Mount, normalize_prefix

        prefix = normalize_prefix(prefix)
        if app is self:
            raise ValueError("an app cannot be mounted in itself")
        if isinstance(app, H3):
            handler: Any = H3Mount(prefix, app)
        elif callable(app):
            handler = ASGIMount(prefix, app)
        else:
            raise TypeError(f"app.mount needs an H3 app or an ASGI application, got {app!r}")
        self.on(ANY_METHOD, handler.pattern, handler, meta={"mount": handler})
        # Upgrades under the prefix go to the mount (an H3 sub-app's WebSocket
        # routes, asked at match time; an ASGI app's websocket scope).
        if self._ws_router is None:
            self._ws_router = TrieRouter()
        self._ws_router.add(Route("GET", handler.pattern, handler, meta={"mount": handler}))
        return self

    def mounted_apps(self) -> list[H3]:
        """The H3 sub-apps mounted here, in mount order."""
        routes = self.router.routes()
        return [route.meta["mount"].app for route in routes if _is_h3_mount(route.meta)]

    def remove_route(self, method: str, pattern: str) -> Route:
        """Unregister a route (h3's ``removeRoute``); ``ValueError`` naming it if absent.

        ``pattern`` is the registered text, or any pattern of the same shape
        (``/users/:name`` removes ``/users/:id``). The route cache is cleared.
        """
        method = method.upper()
        route = self.router.remove(method, pattern)
        self._ready = False
        return route

    # -- lifespan ------------------------------------------------------------

    def on_startup(self, fn: Hook) -> Hook:
        """Decorator: run ``fn()`` (or ``fn(app)``), sync or async, before serving."""
        from h3lab.lifespan import check_hook

        self.startup_hooks.append(check_hook(fn, "startup"))
        return fn

    def on_shutdown(self, fn: Hook) -> Hook:
        """Decorator: run ``fn()`` (or ``fn(app)``) after serving; in reverse order."""
        from h3lab.lifespan import check_hook

        self.shutdown_hooks.append(check_hook(fn, "shutdown"))
        return fn

    def ws(self, pattern: str, handler: Any = None) -> Any:
        """Register ``async def handler(ws)`` for WebSocket upgrades on ``pattern``.

        Routes live in a router of their own (same rou3 patterns and params as
        HTTP routes), looked at only for an upgrade request, so they cost a
        plain request nothing. A plain GET on a WebSocket-only path gets 426.
        """
        if not pattern.startswith("/"):
            raise ValueError(f"route pattern must start with '/', got {pattern!r}")

        def register(fn: Any) -> Any:
            if not is_async_callable(fn):
                raise TypeError(f"WebSocket handler for {pattern} must be an async function")
            if self._ws_router is None:
                self._ws_router = TrieRouter()
            self._ws_router.add(Route("GET", pattern, fn, index=self._route_count))
            self._route_count += 1
            return fn

        return register(handler) if handler is not None else register

    @property
    def has_ws_routes(self) -> bool:
        return self._ws_router is not None

    def ws_routes(self) -> list[Route]:
        return [] if self._ws_router is None else self._ws_router.routes()

    def match_ws(self, route_path: str) -> Any:
        """The WebSocket route and params for a routing path, or None."""
        if self._ws_router is None:
            return None
        match = self._ws_router.match("GET", route_path)
        if match is not None and "mount" in match[0].meta:
            return match[0].meta["mount"].match_ws(route_path)
        return match

    def routes(self) -> list[Route]:
        return self.router.routes()

    def clone(self, config: Config) -> H3:
        """The same routes, middleware and hooks on fresh strategies built from ``config``.

        ``h3lab serve module:app --preset performance`` uses it: the module builds
        its app once, and every run re-instantiates it under the chosen config.
        Mounted H3 sub-apps are cloned under the same config (ASGI apps are
        shared), middleware keep their options, startup and shutdown hooks
        carry over, and a removed route stays removed.
        """
        twin = H3(
            config,
            debug=self.debug,
            on_request=self.on_request_hook,
            on_response=self.on_response_hook,
            on_error=self.on_error_hook,
        )
        twin._layers = list(self._layers)  # Layers are immutable: options included
        twin.startup_hooks = list(self.startup_hooks)
        twin.shutdown_hooks = list(self.shutdown_hooks)
        for route in self.router.routes():
            mount = route.meta.get("mount")
            if mount is not None:
                target = mount.app.clone(config) if _is_h3_mount(route.meta) else mount.app
                twin.mount(mount.prefix, target)
                continue
            meta = {k: v for k, v in route.meta.items() if k != "is_async"}
            twin.on(
                route.method,
                route.pattern,
                route.handler,
                middleware=[layer.fn for layer in route.middleware],
                meta=meta,
            )
        for route in self.ws_routes():
            if "mount" not in route.meta:  # twin.mount above made its own
                twin.ws(route.pattern, route.handler)
        return twin

    # -- preparation ---------------------------------------------------------

    def prepare(self) -> None:
        """Compile every route's chain (done lazily on the first request)."""
        execution = self.execution
        layers = self._layers
        for route in self.router.routes():
            chain_layers = [*layers, *route.middleware]
            is_async = route.meta.get("is_async", True)
            route.chain = execution.compile(
                chain_layers, route.handler, is_async, route.pattern, route.method
            )
            route.sync = chain_is_sync(chain_layers, is_async, route.pattern)
        self._not_found_chain = execution.compile(layers, self._no_route, False, None)
        self._not_found_sync = chain_is_sync(layers, False, None)
        self._ready = True

    def _no_route(self, event: H3Event) -> Any:
        allowed = self.router.allowed_methods(event.route_path)
        if self._ws_router is not None and self._ws_router.match("GET", event.route_path):
            if event.method in ("GET", "HEAD"):
                raise HTTPError(
                    426,
                    f"{event.path} is a WebSocket endpoint: upgrade the connection",
                    headers={"upgrade": "websocket", "sec-websocket-version": "13"},
                )
            allowed = {*allowed, "GET"}
        if allowed:
            methods = set(allowed)
            if "GET" in methods:
                methods.add("HEAD")
            if ANY_METHOD in methods:
                methods = set(METHODS)
            raise HTTPError(
                405,
                f"Method {event.method} not allowed on {event.path}",
                headers={"allow": ", ".join(sorted(methods))},
            )
        raise HTTPError(404, f"Cannot find any route matching [{event.method}] {event.path}")

    # -- dispatch ------------------------------------------------------------

    def handle(self, event: H3Event) -> Any:
        """Route and run one event: a value, or a coroutine to be awaited.

        Exceptions propagate to the caller (the transport), which turns them
        into responses with ``error_response``.
        """
        chain, _ = self.resolve(event)
        return chain(event)

    def resolve(self, event: H3Event) -> tuple[Callable[[H3Event], Any], bool]:
        """Route ``event`` (as ``handle`` does) and return ``(chain, sync)``:
        ``chain(event)`` is what ``handle`` would return, and ``sync`` says that
        nothing in it can await (decided once per route, ``chain_is_sync``).

        The built-in server runs a ``sync`` chain in its own context copy
        without a Task, any other in a Task. An ``on_request`` hook always
        takes the Task path (it runs before routing, and may await).
        """
        if not self._ready:
            self.prepare()
        if self.on_request_hook is not None:
            return self._handle_with_hooks, False
        match = self.router.match(event.method, event.route_path)
        if match is None:
            if event.method == "HEAD":
                match = self.router.match("GET", event.route_path)
            if match is None:
                if self._stats_path is not None and event.route_path == self._stats_path:
                    return self._stats_response, True
                if event.params is NO_PARAMS:  # a mount keeps the outer route's
                    event.params = {}
                return self._not_found_chain, self._not_found_sync  # type: ignore[return-value]  # compiled at startup
        route, params = match
        event.route = route
        event.params = params
        return route.chain, route.sync

    def _stats_response(self, event: H3Event) -> Response:
        return Response(json_bytes(self.stats()), media_type="application/json")

    async def _handle_with_hooks(self, event: H3Event) -> Any:
        result = self.on_request_hook(event)  # type: ignore[misc]  # set: this path is chosen only with a hook
        if inspect.isawaitable(result):
            await result
        match = self.router.match(event.method, event.route_path)
        if match is None and event.method == "HEAD":
            match = self.router.match("GET", event.route_path)
        if match is None:
            if self._stats_path is not None and event.route_path == self._stats_path:
                return self._stats_response(event)
            if event.params is NO_PARAMS:
                event.params = {}
            value = self._not_found_chain(event)  # type: ignore[misc]  # compiled at startup
        else:
            event.route, event.params = match
            value = match[0].chain(event)
        if inspect.isawaitable(value):
            value = await value
        return value

    def error_response(self, event: H3Event, exc: BaseException) -> Response:
        """The final response for an exception raised while handling ``event``.

        An ``on_error`` replacement is sent as the hook returned it; otherwise
        the JSON error carries the headers staged on the event (CORS, cookies),
        as a converted value would. ``on_response`` sees it. Never raises: an
        error that cannot be encoded (a cyclic ``data``) or a failing hook
        ends in a plain 500.
        """
        if isinstance(exc, HTTPError):
            self.errors_http += 1
            error = exc
        else:
            self.errors_unhandled += 1
            error_logger.error("unhandled error in %s %s", event.method, event.path, exc_info=exc)
            error = HTTPError(500, "Internal Server Error", unhandled=True)
        response: Response | None = None
        if self.on_error_hook is not None:
            try:
                replacement = self.on_error_hook(event, error)
                if isinstance(replacement, Response):
                    response = replacement
            except Exception:  # a failing hook must not turn a 4xx into a crash
                error_logger.exception("on_error hook failed")
        if response is None:
            try:
                body = self.json_encode(error.to_json())
            except Exception as encode_exc:  # RecursionError, TypeError, ValueError
                error_logger.error(
                    "could not encode the %d error for %s %s",
                    error.status,
                    event.method,
                    event.path,
                    exc_info=encode_exc,
                )
                response = plain_500()
            else:
                headers = _with_staged(event, error.headers)
                response = Response(body, error.status, headers, JSON_TYPE)
        if self.on_response_hook is not None:
            try:
                self.on_response_hook(event, response)
            except Exception:
                # Already answering an error: the hook's own failure is logged.
                error_logger.exception("on_response hook failed on an error response")
        return response

    def response_for(self, event: H3Event, value: Any) -> Response:
        """The final response for a handler's value: conversion, then ``on_response``.

        Never raises: a value that cannot be converted or encoded, or a
        failing ``on_response`` hook, gives the error response instead.
        """
        try:
            response = to_response(event, value, self.json_encode)
            if self.on_response_hook is not None:
                self.on_response_hook(event, response)
        except Exception as exc:
            return self.error_response(event, exc)
        return response

    def keep_alive_until(self, future: asyncio.Future[Any]) -> None:
        """Track ``event.wait_until`` work until it is done (see ``wait_background``)."""
        self.background.add(future)
        future.add_done_callback(self.background.discard)

    async def wait_background(self, timeout: float) -> int:
        """Wait up to ``timeout`` s for ``event.wait_until`` work, then cancel what is left.

        Called at graceful shutdown (by the server, and by the ASGI adapter's
        lifespan shutdown); returns how many were cancelled.
        """
        pending = set(self.background)
        if not pending:
            return 0
        _, left = await asyncio.wait(pending, timeout=max(timeout, 0.0))
        for future in left:
            future.cancel()
        if left:
            error_logger.warning("cancelled %d event.wait_until task(s) at shutdown", len(left))
            await asyncio.wait(left, timeout=1.0)
        return len(left)

    # -- statistics ----------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """One JSON-able snapshot of every strategy's counters."""
        router_stats = self.router.stats()
        return {
            "preset": self.config.preset_name,
            "overrides": self.config.overrides(),
            "config": self.config.flat(),
            "router": {k: v for k, v in router_stats.items() if k != "cache"},
            "cache": router_stats.get("cache", {"policy": "none"}),
            "pool": self.pool.stats(),
            "memory": self.memory.stats(),
            "middleware": {**self.execution.stats(), "layers": len(self._layers)},
            "json": self.json.stats(),
            "errors": {"http": self.errors_http, "unhandled": self.errors_unhandled},
            "server": self.server.stats() if self.server is not None else None,
        }

    def tick(self, now: float, served: int = 0) -> None:
        """Periodic upkeep of every strategy; the server's ticker calls it.

        ``served``: requests answered since the last tick (the memory
        strategy's warm-up counts them).
        """
        if served:
            self.memory.on_requests(served)
        # The route cache is ticked by the router in front of it.
        for strategy in (self.router, self.pool, self.memory, self.execution, self.json):
            strategy.tick(now)

    # -- adapters ------------------------------------------------------------

    @property
    def asgi(self) -> Any:
        """This app as an ASGI 3 application (uvicorn, granian, gunicorn workers)."""
        from h3lab.asgi import ASGIAdapter

        return ASGIAdapter(self)


def _is_h3_mount(meta: dict[str, Any]) -> bool:
    mount = meta.get("mount")
    return mount is not None and isinstance(mount.app, H3)


def plain_500() -> Response:
    """The last resort: what is sent when even the error response cannot be built."""
    return Response(
        b'{"status":500,"message":"Internal Server Error","data":null}', 500, None, JSON_TYPE
    )


def _with_staged(event: H3Event, headers: dict[str, str]) -> list[tuple[str, str]]:
    """An error's headers plus those staged on the event (every Set-Cookie, and
    any other name the error does not set), as ``to_response`` merges them."""
    merged = list(headers.items())
    staged = event._resp_headers
    if staged:
        present = {name.lower() for name, _ in merged}
        merged += [
            (k, v) for k, v in staged if k.lower() == "set-cookie" or k.lower() not in present
        ]
    return merged
