"""TinyLFU's frequency estimate: a doorkeeper bloom filter in front of a count-min sketch.

Theory of operation
-------------------
``increment(h)`` records one access of the key whose ``stable_hash()`` is
``h``; ``estimate(h)`` returns how often it was seen recently, possibly more
(counts only ever collide upwards), never less -- until aging halves everything.

Hash. ``stable_hash(key)``, not Python's ``hash()``: ``hash()`` of a ``str``
is salted per process (``PYTHONHASHSEED``), so which keys collide in the
sketch -- and with it W-TinyLFU's admissions and hit ratio -- changed from
one process to the next (0.575-0.576 and 0.751-0.754 across three processes
on one trace). ``stable_hash`` is CRC-32 (zlib, in C) of the key's UTF-8
bytes spread over 64 bits by a multiplication with an odd constant (the
golden-ratio one of Fibonacci hashing), so a run is reproducible anywhere.
An attacker who knows it could aim collisions at the sketch; the
``seed`` argument (CRC's initial value) makes the hash unpredictable where
that matters, at the cost of reproducibility.

Probes. Everything is derived from the one hash with cheap arithmetic on
small ints (under 2**30, CPython's one-digit fast path): ``base`` is the low 27
bits, ``step`` the top 27 bits (``h >> 37``), made odd so that the probes
``base + k * step`` of one key never coincide in a power-of-two table
(``& mask`` reduces them modulo the table size).

Doorkeeper. A blocked bloom filter that absorbs the first access of every key:
most keys of a scan or a long tail are seen once, and keeping them out of the
counters keeps the counters for keys that recur. A key owns two bits of one
byte (byte ``base & door_mask``, bits chosen by the top 6 bits of ``base``), so
a test is one read; about 8 bits per access of a sample period. An access whose bits are
already set goes to the sketch.

Sketch. One table of saturating counters (a byte each, capped at 15, so
"4-bit" in value if not in storage), ``16 * capacity`` rounded up to a power of
two, 4 probes per key at ``base + k * step``, ``k = 1..4`` (count-min with
shared rows). The estimate is the minimum of a key's 4 counters plus its
doorkeeper bit.

Aging. Every ``10 * capacity`` increments every counter is halved (one
``bytearray.translate``, in C) and the doorkeeper is cleared, so the sketch
describes recent traffic: yesterday's hot route fades within a few periods.

Memory: ``16 * capacity`` bytes of counters plus ``10 * capacity`` bytes of
doorkeeper, each rounded up to a power of two.
"""

from __future__ import annotations

import sys
from zlib import crc32

COUNTER_MAX = 15
SAMPLE_FACTOR = 10  # accesses per aging period, per unit of capacity
COUNTERS_FACTOR = 16  # counters per unit of capacity
_LOW27 = (1 << 27) - 1
# bytearray.translate table that maps every counter value to its half.
_HALVE = bytes(value >> 1 for value in range(256))
# The doorkeeper bits of a key inside its byte, by a 6-bit selector (1/8 of
# the selectors name the same bit twice: those keys own a single bit).
_DOOR_FLAGS = bytes((1 << (selector & 7)) | (1 << (selector >> 3)) for selector in range(64))


_GOLDEN = 0x9E3779B97F4A7C15  # 2**64 / phi, odd: a bijection modulo 2**64
_MASK64 = (1 << 64) - 1


def _key_bytes(key: object) -> bytes:
    if type(key) is str:
        return key.encode("utf-8", "surrogatepass")
    if type(key) is bytes:
        return key
    if type(key) is tuple:
        return b"\0".join(_key_bytes(part) for part in key)
    return repr(key).encode("utf-8", "surrogatepass")


def stable_hash(key: object, seed: int = 0) -> int:
    """A 64-bit hash of ``key`` that is the same in every process (see the module doc).

    Route keys ``(method, path)`` take a fast path: CRC-32 of
    ``"method\0path"``, the same bytes the general path hashes. Other keys
    hash their UTF-8 bytes (tuples joined by NUL; anything else by its
    ``repr``).
    """
    if type(key) is tuple and len(key) == 2 and type(key[0]) is str and type(key[1]) is str:
        c = crc32(f"{key[0]}\0{key[1]}".encode("utf-8", "surrogatepass"), seed)
    else:
        c = crc32(_key_bytes(key), seed)
    return ((c + 1) * _GOLDEN) & _MASK64


def _pow2_at_least(n: int) -> int:
    return 1 << max(n - 1, 1).bit_length()


class FrequencySketch:
    """Approximate, aging access counts for up to ~``capacity`` hot keys."""

    __slots__ = ("_additions", "_counters", "_door", "_door_mask", "_mask", "resets", "sample_size")

    def __init__(self, capacity: int) -> None:
        width = _pow2_at_least(COUNTERS_FACTOR * capacity)
        self._counters = bytearray(width)
        self._mask = width - 1
        self.sample_size = SAMPLE_FACTOR * capacity
        door_bytes = _pow2_at_least(self.sample_size)
        self._door = bytearray(door_bytes)
        self._door_mask = door_bytes - 1
        self._additions = 0
        self.resets = 0

    def increment(self, h: int) -> None:
        """Count one access of the key whose ``stable_hash`` is ``h``."""
        base = h & _LOW27
        step = (h >> 37) | 1
        door = self._door
        byte = base & self._door_mask
        flags = _DOOR_FLAGS[base >> 21]
        seen = door[byte]
        if seen & flags != flags:
            door[byte] = seen | flags
        else:
            # PERF: unrolled; a ``for`` over the 4 probes measured ~1.7x slower.
            counters = self._counters
            mask = self._mask
            probe = base + step
            index = probe & mask
            count = counters[index]
            if count < COUNTER_MAX:
                counters[index] = count + 1
            probe += step
            index = probe & mask
            count = counters[index]
            if count < COUNTER_MAX:
                counters[index] = count + 1
            probe += step
            index = probe & mask
            count = counters[index]
            if count < COUNTER_MAX:
                counters[index] = count + 1
            probe += step
            index = probe & mask
            count = counters[index]
            if count < COUNTER_MAX:
                counters[index] = count + 1
        self._additions += 1
        if self._additions >= self.sample_size:
            self._age()

    def estimate(self, h: int) -> int:
        """Recent accesses of the key hashing to ``h`` (an over-estimate at worst)."""
        base = h & _LOW27
        step = (h >> 37) | 1
        flags = _DOOR_FLAGS[base >> 21]
        seen = 1 if self._door[base & self._door_mask] & flags == flags else 0
        counters = self._counters
        mask = self._mask
        probe = base + step
        least = counters[probe & mask]
        for _ in range(3):
            probe += step
            count = counters[probe & mask]
            if count < least:
                least = count
        return least + seen

    def _age(self) -> None:
        """Halve every counter and forget the doorkeeper: recent traffic outweighs old."""
        self._counters = self._counters.translate(_HALVE)
        self._door = bytearray(len(self._door))
        self._additions = 0
        self.resets += 1

    def approx_bytes(self) -> int:
        return sys.getsizeof(self._counters) + sys.getsizeof(self._door)
