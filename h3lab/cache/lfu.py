"""The ``lfu`` policy: evict the least frequently used entry (LRU among ties).

Every operation is O(1): entries are grouped in buckets by use count, each
bucket an ``OrderedDict`` in order of last use, and the smallest non-empty
count is tracked, so the victim is the front of one bucket. LFU is good at a
stable skewed workload (a few routes take most requests) and at scans: a
one-time key enters with count 1 and is the first to go, so it never displaces
a hot route. It is bad at change: counts never decay, so a route that was hot
an hour ago outlives today's hot routes; and a new key is always the next
victim, so a burst of new-but-soon-popular keys churns among themselves. Each
hit costs two bucket moves, several times an LRU hit.
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from typing import Any, ClassVar

from h3lab.cache.base import Key
from h3lab.cache.none import base_stats, checked_capacity, keys_bytes, route_key_error


class _Entry:
    """A cached value and how many times it was used (put counts as one use)."""

    __slots__ = ("freq", "value")

    def __init__(self, value: Any) -> None:
        self.value = value
        self.freq = 1


class LFURouteCache:
    """Least frequently used eviction; ties go to the least recently used."""

    __slots__ = ("_buckets", "_entries", "_min_freq", "capacity", "evictions", "hits", "misses")

    name: ClassVar[str] = "lfu"

    def __init__(self, capacity: int) -> None:
        self.capacity = checked_capacity(capacity)
        self._entries: dict[Key, _Entry] = {}
        # use count -> keys with that count, least recently used first.
        # Only non-empty buckets are kept, so memory is bounded by capacity.
        self._buckets: dict[int, OrderedDict[Key, None]] = {}
        # The smallest count with a bucket (meaningful only when non-empty).
        self._min_freq = 0
        self.hits = 0
        self.misses = 0
        self.evictions = 0

    def get(self, key: Key) -> Any | None:
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        self._bump(key, entry)
        self.hits += 1
        return entry.value

    def put(self, key: Key, value: Any) -> None:
        if not (
            type(key) is tuple and len(key) == 2 and type(key[0]) is str and type(key[1]) is str
        ):
            raise route_key_error(key)
        entry = self._entries.get(key)
        if entry is not None:
            entry.value = value
            self._bump(key, entry)
            return
        if len(self._entries) >= self.capacity:
            self._evict()
        self._entries[key] = _Entry(value)
        bucket = self._buckets.get(1)
        if bucket is None:
            bucket = self._buckets[1] = OrderedDict()
        bucket[key] = None
        self._min_freq = 1

    def _bump(self, key: Key, entry: _Entry) -> None:
        """Move ``key`` from its count's bucket to the back of the next one."""
        buckets = self._buckets
        freq = entry.freq
        bucket = buckets[freq]
        del bucket[key]
        if not bucket:
            del buckets[freq]
            if self._min_freq == freq:
                self._min_freq = freq + 1
        freq += 1
        entry.freq = freq
        next_bucket = buckets.get(freq)
        if next_bucket is None:
            next_bucket = buckets[freq] = OrderedDict()
        next_bucket[key] = None

    def _evict(self) -> None:
        """Drop the least recently used key of the lowest-count bucket."""
        bucket = self._buckets[self._min_freq]
        victim, _ = bucket.popitem(last=False)
        if not bucket:
            # _min_freq is now stale; the caller's insert resets it to 1.
            del self._buckets[self._min_freq]
        del self._entries[victim]
        self.evictions += 1

    def clear(self) -> None:
        self._entries.clear()
        self._buckets.clear()
        self._min_freq = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def tick(self, now: float) -> None:
        """Periodic upkeep (the server's ticker): none; policies age by traffic."""

    def stats(self) -> dict[str, Any]:
        stats = base_stats(
            self.name, self.hits, self.misses, self.evictions, len(self._entries), self.capacity
        )
        stats["buckets"] = len(self._buckets)
        stats["min_freq"] = self._min_freq if self._entries else 0
        return stats

    def approx_bytes(self) -> int:
        """Approximate: entry dict, entry objects, bucket dicts (shallow) plus the keys."""
        getsizeof = sys.getsizeof
        entry_size = getsizeof(_Entry(None))
        return (
            getsizeof(self._entries)
            + entry_size * len(self._entries)
            + getsizeof(self._buckets)
            + sum(getsizeof(bucket) for bucket in self._buckets.values())
            + keys_bytes(self._entries)
        )
