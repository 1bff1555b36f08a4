"""Route cache policies, by name: ``make_cache(cfg.cache)``.

Every policy implements ``h3lab.cache.base.RouteCache`` and is registered here;
the test-suite runs the whole behavioural suite over ``CACHES.names()``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from h3lab.cache.base import Key, RouteCache
from h3lab.cache.fifo import FIFORouteCache
from h3lab.cache.lfu import LFURouteCache
from h3lab.cache.lru import LRURouteCache
from h3lab.cache.none import NoRouteCache
from h3lab.cache.wtinylfu import WTinyLFURouteCache
from h3lab.registry import Registry, registry

if TYPE_CHECKING:
    from h3lab.config import CacheConfig

__all__ = [
    "CACHES",
    "FIFORouteCache",
    "Key",
    "LFURouteCache",
    "LRURouteCache",
    "NoRouteCache",
    "RouteCache",
    "WTinyLFURouteCache",
    "make_cache",
]

CACHES: Registry[type[RouteCache]] = registry("cache.policy")

# Registration order is the order studies and the tuner list the policies in.
CACHES.register(NoRouteCache)
CACHES.register(LRURouteCache)
CACHES.register(LFURouteCache)
CACHES.register(FIFORouteCache)
CACHES.register(WTinyLFURouteCache)


def make_cache(cache: CacheConfig) -> RouteCache:
    """The policy ``cache.policy`` names, holding at most ``cache.size`` entries."""
    return CACHES.get(cache.policy)(cache.size)
