"""The ``none`` policy, and the small helpers every policy shares.

``NoRouteCache`` holds nothing: every ``get`` misses (and is counted), every
``put`` is validated and then dropped. It is the baseline that shows what a
cache buys: with it the router matches every request from scratch. It is good
at costing nothing in memory and at never serving a stale route; it is bad at
everything a cache is for.

The helpers (capacity check, key check message, stats dict, key bytes) live
here because this module is the one every policy already depends on
conceptually: the simplest policy that still honours the whole contract.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any, ClassVar

from h3lab.cache.base import Key

# A lookup default that no caller can store, so a cached ``None`` is still a hit.
MISSING: Any = object()


def checked_capacity(capacity: object) -> int:
    """``capacity`` if it is an int >= 1; ValueError naming it otherwise."""
    if not isinstance(capacity, int) or isinstance(capacity, bool) or capacity < 1:
        raise ValueError(f"cache capacity must be an int >= 1, got {capacity!r}")
    return capacity


def route_key_error(key: object) -> TypeError:
    """The error ``put`` raises for anything but a ``(str, str)`` tuple.

    Callers test the key inline (``type(key) is tuple`` ...): a helper call
    would about double the check's cost on every put. Only failures come here.
    """
    return TypeError(
        "route cache keys must be a tuple of exactly two str (method, path) owned "
        f"by the request, not a view into a buffer; got {type(key).__name__}: {key!r:.80}"
    )


def base_stats(
    policy: str, hits: int, misses: int, evictions: int, size: int, capacity: int
) -> dict[str, Any]:
    """The stats every policy reports; ``hit_ratio`` is 0.0 before any lookup."""
    lookups = hits + misses
    return {
        "policy": policy,
        "hits": hits,
        "misses": misses,
        "evictions": evictions,
        "size": size,
        "capacity": capacity,
        "hit_ratio": hits / lookups if lookups else 0.0,
    }


def keys_bytes(keys: Iterable[Key]) -> int:
    """Approximate bytes of the key tuples and their two strings.

    Approximate: ``sys.getsizeof`` is shallow, and a string shared with the
    router or the request is counted here as if the cache owned it.
    """
    getsizeof = sys.getsizeof
    return sum(getsizeof(key) + getsizeof(key[0]) + getsizeof(key[1]) for key in keys)


class NoRouteCache:
    """A cache of capacity ``capacity`` that never keeps anything."""

    __slots__ = ("capacity", "hits", "misses")

    name: ClassVar[str] = "none"

    def __init__(self, capacity: int) -> None:
        # Accepted (and checked) so every policy is built the same way.
        self.capacity = checked_capacity(capacity)
        self.hits = 0
        self.misses = 0

    def get(self, key: Key) -> Any | None:
        self.misses += 1
        return None

    def put(self, key: Key, value: Any) -> None:
        if not (
            type(key) is tuple and len(key) == 2 and type(key[0]) is str and type(key[1]) is str
        ):
            raise route_key_error(key)

    def clear(self) -> None:
        """Nothing to drop; the counters stay."""

    def __len__(self) -> int:
        return 0

    def __contains__(self, key: object) -> bool:
        return False

    def tick(self, now: float) -> None:
        """Periodic upkeep (the server's ticker): none; policies age by traffic."""

    def stats(self) -> dict[str, Any]:
        return base_stats(self.name, self.hits, self.misses, 0, 0, self.capacity)

    def approx_bytes(self) -> int:
        """The instance itself: it holds no entries."""
        return sys.getsizeof(self)
