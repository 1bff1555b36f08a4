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

from typing import Any, ClassVar

from h3lab.cache.base import Key
from h3lab.cache.none import MISSING, route_key_error
from h3lab.cache.ordered import OrderedDictCache


class LRURouteCache(OrderedDictCache):
    """Least recently used eviction; ``get`` and ``put`` both refresh an entry."""

    __slots__ = ()

    name: ClassVar[str] = "lru"

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
