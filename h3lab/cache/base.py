"""The route-cache contract shared by every cache policy.

A route cache maps an immutable key -- ``(method, routing_path)``, two ``str``
objects that the request owns outright, never a view into a reused buffer --
to the router's answer for it. The origin project (h3z, in Zig) crashed because
its cache stored *borrowed* slices of the request buffer as keys; in Python a
``str`` is immutable, but a ``memoryview`` or ``bytearray`` key would reproduce
the bug, so ``put`` refuses anything but a tuple of str.

Every policy is bounded: ``len(cache) <= capacity`` holds after every call,
whatever the traffic. Stats are plain integers so ``stats()`` is cheap.
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol, runtime_checkable

Key = tuple[str, str]


@runtime_checkable
class RouteCache(Protocol):
    """A bounded key -> value cache. Registered in ``h3lab.cache.CACHES``."""

    name: ClassVar[str]
    capacity: int

    def __init__(self, capacity: int) -> None:
        """``capacity >= 1`` entries at most (``ValueError`` otherwise)."""

    def get(self, key: Key) -> Any | None:
        """The cached value, or None on a miss (counts a hit or a miss)."""

    def put(self, key: Key, value: Any) -> None:
        """Insert or replace; evicts (or declines admission) to stay within capacity."""

    def clear(self) -> None:
        """Drop every entry (routes changed); keeps the counters."""

    def __len__(self) -> int: ...

    def __contains__(self, key: object) -> bool:
        """Membership without touching recency/frequency or the counters."""

    def stats(self) -> dict[str, Any]:
        """hits, misses, evictions, size, capacity, hit_ratio (and policy extras)."""

    def approx_bytes(self) -> int:
        """An estimate of the memory held by entries and bookkeeping (sys.getsizeof)."""

    def tick(self, now: float) -> None:
        """Periodic upkeep (the server's ticker): none; policies age by traffic."""
