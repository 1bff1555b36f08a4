"""The ``fifo`` policy: evict the entry inserted first, whatever its use.

FIFO is good at being cheap and predictable: a hit changes nothing (no
reordering, so the hit path is a bare lookup), and an entry's lifetime is
exactly ``capacity`` insertions, which bounds staleness. It is bad at keeping
a hot route: the most requested path is evicted on schedule like any other
and must be matched (and re-inserted) again; and like LRU it admits every scan
key.
"""

from __future__ import annotations

from typing import Any, ClassVar

from h3lab.cache.base import Key
from h3lab.cache.none import MISSING, route_key_error
from h3lab.cache.ordered import OrderedDictCache


class FIFORouteCache(OrderedDictCache):
    """First in, first out; neither ``get`` nor a replacing ``put`` reorders."""

    __slots__ = ()

    name: ClassVar[str] = "fifo"

    def get(self, key: Key) -> Any | None:
        value = self._entries.get(key, MISSING)
        if value is MISSING:
            self.misses += 1
            return None
        self.hits += 1
        return value

    def put(self, key: Key, value: Any) -> None:
        if not (
            type(key) is tuple and len(key) == 2 and type(key[0]) is str and type(key[1]) is str
        ):
            raise route_key_error(key)
        entries = self._entries
        if key in entries:
            # Assigning to an existing key keeps its place in the order.
            entries[key] = value
            return
        if len(entries) >= self.capacity:
            entries.popitem(last=False)
            self.evictions += 1
        entries[key] = value
