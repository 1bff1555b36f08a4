"""Route cache policies, by name: ``CACHES.get("lru")(capacity=1024)``.

Every policy implements ``h3lab.cache.base.RouteCache`` and is registered here;
the test-suite runs the whole behavioural suite over ``CACHES.names()``.
"""

from __future__ import annotations

from h3lab.cache.base import Key, RouteCache
from h3lab.cache.fifo import FIFORouteCache
from h3lab.cache.lfu import LFURouteCache
from h3lab.cache.lru import LRURouteCache
from h3lab.cache.none import NoRouteCache
from h3lab.cache.wtinylfu import WTinyLFURouteCache
from h3lab.registry import Registry

__all__ = [
    "CACHES",
    "FIFORouteCache",
    "Key",
    "LFURouteCache",
    "LRURouteCache",
    "NoRouteCache",
    "RouteCache",
    "WTinyLFURouteCache",
]

CACHES: Registry[type[RouteCache]] = Registry("cache.policy")

# Registration order is the order studies and the tuner list the policies in.
CACHES.register(NoRouteCache.name)(NoRouteCache)
CACHES.register(LRURouteCache.name)(LRURouteCache)
CACHES.register(LFURouteCache.name)(LFURouteCache)
CACHES.register(FIFORouteCache.name)(FIFORouteCache)
CACHES.register(WTinyLFURouteCache.name)(WTinyLFURouteCache)
