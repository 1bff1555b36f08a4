"""The ``lru`` policy: evict the entry least recently used (read or written).

LRU is good at traffic with recency -- a route requested now is likely to be
requested again soon -- and it is cheap: ``OrderedDict`` is implemented in C,
so a hit is one lookup plus ``move_to_end``. It is bad at scans: a burst of
one-time paths (a crawler, a ``/users/<id>`` sweep) pushes the whole hot set
out, because LRU admits everything and has no memory of frequency. It is also
bad when the hot set is slightly larger than the capacity (looping access
misses every time).
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from typing import Any, ClassVar

from h3lab.cache.base import Key
from h3lab.cache.none import MISSING, base_stats, checked_capacity, keys_bytes, route_key_error


class LRURouteCache:
    """Least recently used eviction; ``get`` and ``put`` both refresh an entry."""

    __slots__ = ("_entries", "capacity", "evictions", "hits", "misses")

    name: ClassVar[str] = "lru"

    def __init__(self, capacity: int) -> None:
        self.capacity = checked_capacity(capacity)
        # Oldest use first: the front is the next victim.
        self._entries: OrderedDict[Key, Any] = OrderedDict()
        self.hits = 0
        self.misses = 0
        self.evictions = 0

    def get(self, key: Key) -> Any | None:
        entries = self._entries
        value = entries.get(key, MISSING)
        if value is MISSING:
            self.misses += 1
            return None
        entries.move_to_end(key)
        self.hits += 1
        return value

    def put(self, key: Key, value: Any) -> None:
        if not (
            type(key) is tuple and len(key) == 2 and type(key[0]) is str and type(key[1]) is str
        ):
            raise route_key_error(key)
        entries = self._entries
        if key in entries:
            entries[key] = value
            entries.move_to_end(key)
            return
        if len(entries) >= self.capacity:
            entries.popitem(last=False)
            self.evictions += 1
        entries[key] = value

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def stats(self) -> dict[str, Any]:
        return base_stats(
            self.name, self.hits, self.misses, self.evictions, len(self._entries), self.capacity
        )

    def approx_bytes(self) -> int:
        """Approximate: the OrderedDict (table and link nodes, shallow) plus the keys."""
        return sys.getsizeof(self._entries) + keys_bytes(self._entries)
