"""Route matching strategies, by name: ``make_router("trie", "lru", 1024)``.

Every strategy implements ``h3lab.routing.base.Router`` with the same
semantics (see the theory of operation there) and is registered in
``ROUTERS``; the test-suite runs the behavioural table and a differential
property test against ``linear`` over ``ROUTERS.names()``.

``stats()["lookups"]`` is counted only by routers with a cache in front
(``CachedRouter``, ``hybrid``); the bare strategies report None, because an
increment in their hot path costs about 15% of a static hit.
"""

from __future__ import annotations

from h3lab.registry import Registry
from h3lab.routing.base import ANY_METHOD, Handler, Match, Params, Route, Router
from h3lab.routing.cached import CachedRouter
from h3lab.routing.compiled import CompiledRouter
from h3lab.routing.hybrid import HybridRouter
from h3lab.routing.linear import LinearRouter
from h3lab.routing.pattern import ParsedPattern, decode_param, parse_pattern, routing_path
from h3lab.routing.trie import TrieRouter

__all__ = [
    "ANY_METHOD",
    "ROUTERS",
    "CachedRouter",
    "CompiledRouter",
    "Handler",
    "HybridRouter",
    "LinearRouter",
    "Match",
    "Params",
    "ParsedPattern",
    "Route",
    "Router",
    "TrieRouter",
    "decode_param",
    "make_router",
    "parse_pattern",
    "routing_path",
]

ROUTERS: Registry[type[Router]] = Registry("router.matching")

for _strategy in (LinearRouter, TrieRouter, CompiledRouter, HybridRouter):
    ROUTERS.register(_strategy.name)(_strategy)
del _strategy


def make_router(matching: str, cache_policy: str = "none", cache_size: int = 1024) -> Router:
    """The ``matching`` strategy, behind a ``cache_policy`` cache unless "none".

    ``hybrid`` *is* a cache in front of a trie, so it needs a real policy.
    """
    from h3lab.cache import CACHES  # the cache package never imports routing; lazy anyway

    router_class = ROUTERS.get(matching)
    if matching == HybridRouter.name:
        if cache_policy == "none":
            raise ValueError(
                "router.matching 'hybrid' is a route cache in front of a trie: it needs "
                "a cache policy other than 'none' (or use matching 'trie' without a cache)"
            )
        return HybridRouter(CACHES.get(cache_policy)(cache_size))
    router = router_class()
    if cache_policy == "none":
        return router
    return CachedRouter(router, CACHES.get(cache_policy)(cache_size))
