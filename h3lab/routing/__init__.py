"""Route matching strategies, by name: ``make_router(cfg.router, cfg.cache)``.

Every strategy implements ``h3lab.routing.base.Router`` with the same
semantics (see the theory of operation there) and is registered in
``ROUTERS``; the test-suite runs the behavioural table and a differential
property test against ``linear`` over ``ROUTERS.names()``.

The route cache is not a strategy of its own: ``make_router`` puts
``CachedRouter`` in front of whichever matcher is named when
``cache.policy`` is not ``"none"``. ``hybrid`` is the trie under a name that
promises that cache (see ``h3lab.routing.hybrid``).

``stats()["lookups"]`` is counted only by ``CachedRouter``; the bare
strategies report None, because an increment in their hot path costs about
15% of a static hit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from h3lab.registry import Registry, registry
from h3lab.routing.base import ANY_METHOD, Handler, Match, Params, Route, Router
from h3lab.routing.cached import CachedRouter
from h3lab.routing.compiled import CompiledRouter
from h3lab.routing.hybrid import HybridRouter
from h3lab.routing.linear import LinearRouter
from h3lab.routing.pattern import ParsedPattern, decode_param, parse_pattern, routing_path
from h3lab.routing.trie import TrieRouter

if TYPE_CHECKING:
    from h3lab.config import CacheConfig, RouterConfig

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
    "router_class",
    "routing_path",
]

ROUTERS: Registry[type[Router]] = registry("router.matching")

# Registration order is the order studies, the tuner and the tests list them in.
ROUTERS.register(LinearRouter)
ROUTERS.register(TrieRouter)
ROUTERS.register(CompiledRouter)
ROUTERS.register(HybridRouter)


def router_class(router: RouterConfig, cache: CacheConfig | None = None) -> type[Router]:
    """The matcher ``router.matching`` names, checked against ``cache``.

    A name whose class sets ``requires_cache`` (``hybrid``) refuses
    ``cache.policy = "none"``: it would silently be its bare matcher, and a
    study comparing the two would measure nothing. ``Config`` calls this too,
    so the rule lives here once.
    """
    cls = ROUTERS.get(router.matching)
    if cls.requires_cache and (cache is None or cache.policy == "none"):
        from h3lab.cache import CACHES

        cached = [name for name in CACHES.names() if name != "none"]
        got = "none" if cache is None else cache.policy
        raise ValueError(
            f"cache.policy must be one of {cached} when router.matching is "
            f"{router.matching!r} (it puts the route cache in front of its matcher), got {got!r}"
        )
    return cls


def make_router(router: RouterConfig, cache: CacheConfig | None = None) -> Router:
    """The matcher ``router`` names, behind the route cache ``cache`` names unless
    it is None or its policy is ``"none"``."""
    matcher = router_class(router, cache)()
    if cache is None or cache.policy == "none":
        return matcher
    from h3lab.cache import make_cache  # the cache package never imports routing; lazy anyway

    return CachedRouter(matcher, make_cache(cache))
