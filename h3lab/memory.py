"""Memory strategies: buffer arenas and garbage-collector policy.

Theory of operation
-------------------
CPython frees most objects by reference counting the moment they die; what
costs a server under load is the *cyclic* garbage collector, which runs every
``threshold0`` net container allocations and, in its older generations,
traverses every tracked object in the heap -- a pause that grows with the heap
(routes, caches, pooled events, imported modules) while requests wait. The
strategies trade memory for fewer and shorter pauses:

=============  ============================================================
minimal        interpreter defaults: GC thresholds untouched, no arena;
               the smallest footprint, the most collections.
balanced       gen-0 threshold raised to 10,000 (fewer young collections);
               a small arena (64 buffers) reuses bytearrays for request
               bodies that arrive in several pieces.
performance    gen-0 threshold 50,000; after ``warmup_requests`` requests the
               long-lived heap (app, routes, warmed pools and caches) is moved
               out of the collector's reach with ``gc.freeze()`` so older-
               generation collections no longer traverse it; a larger arena
               (1,024 buffers).
=============  ============================================================

Every collection is timed through ``gc.callbacks``, so the pause distribution
each strategy produces is measured, not assumed. The GC is process-global:
``install()`` remembers the previous thresholds and ``close()`` restores
them, and only one strategy per process should be installed at a time (the
server process runs one app).
"""

from __future__ import annotations

import ctypes
import gc
import os
import time
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from h3lab.registry import Registry, registry

if TYPE_CHECKING:
    from h3lab.config import MemoryConfig

MEMORY_STRATEGIES: Registry[type[MemoryStrategy]] = registry("memory.strategy")

_PAUSE_SAMPLES = 4096  # recent pause durations kept for percentiles


class BufferArena:
    """A free list of reusable ``bytearray`` buffers.

    Used to accumulate request bodies that arrive in several ``data_received``
    calls: appending to a reused bytearray avoids building a list of chunks and
    joining it, and avoids a fresh growing buffer per request. Buffers larger
    than ``max_keep`` are not kept, so one large upload does not pin memory.
    """

    __slots__ = ("_free", "acquired", "bytes_reused", "capacity", "max_keep", "reused")

    def __init__(self, capacity: int, max_keep: int = 256 * 1024) -> None:
        self.capacity = capacity
        self.max_keep = max_keep
        self._free: list[bytearray] = []
        self.acquired = 0
        self.reused = 0
        self.bytes_reused = 0

    def acquire(self) -> bytearray:
        self.acquired += 1
        if self._free:
            self.reused += 1
            return self._free.pop()
        return bytearray()

    def release(self, buf: bytearray) -> None:
        size = len(buf)
        if size <= self.max_keep and len(self._free) < self.capacity:
            self.bytes_reused += size
            buf.clear()  # clear() keeps the allocation in CPython: the point of reuse
            self._free.append(buf)

    def stats(self) -> dict[str, Any]:
        return {
            "buffers_free": len(self._free),
            "capacity": self.capacity,
            "acquired": self.acquired,
            "reused": self.reused,
            "bytes_reused": self.bytes_reused,
        }


class GCMonitor:
    """Counts and times every garbage collection via ``gc.callbacks``."""

    def __init__(self) -> None:
        self.collections = [0, 0, 0]
        self.collected = 0
        self.pause_total = 0.0
        self.pause_max = 0.0
        self.pauses: list[float] = []
        self._start = 0.0
        self._installed = False

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
            return
        pause = time.perf_counter() - self._start
        self.collections[info.get("generation", 0)] += 1
        self.collected += info.get("collected", 0)
        self.pause_total += pause
        if pause > self.pause_max:
            self.pause_max = pause
        pauses = self.pauses
        if len(pauses) >= _PAUSE_SAMPLES:
            del pauses[: _PAUSE_SAMPLES // 2]
        pauses.append(pause)

    def install(self) -> None:
        if not self._installed:
            gc.callbacks.append(self._callback)
            self._installed = True

    def uninstall(self) -> None:
        if self._installed:
            gc.callbacks.remove(self._callback)
            self._installed = False

    def stats(self) -> dict[str, Any]:
        pauses = sorted(self.pauses)
        n = len(pauses)

        def pct(p: float) -> float:
            return pauses[min(n - 1, int(p * n))] * 1e6 if n else 0.0

        return {
            "collections": list(self.collections),
            "collections_total": sum(self.collections),
            "collected": self.collected,
            "pause_total_ms": self.pause_total * 1e3,
            "pause_max_us": self.pause_max * 1e6,
            "pause_p50_us": pct(0.50),
            "pause_p99_us": pct(0.99),
            "pauses_us_recent": [p * 1e6 for p in self.pauses[-256:]],
        }


def rss_bytes() -> int:
    """Resident set size of this process (Linux /proc; 0 where unavailable)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


class _Mallinfo2(ctypes.Structure):
    # glibc's ``struct mallinfo2`` (2.33+): every field a size_t
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                     "fsmblks", "uordblks", "fordblks", "keepcost")
    ]  # fmt: skip


def _load_mallinfo2() -> Any:
    try:
        fn = ctypes.CDLL(None).mallinfo2
    except (AttributeError, OSError):  # not glibc, or glibc < 2.33
        return None
    fn.restype = _Mallinfo2
    fn.argtypes = []
    return fn


_mallinfo2 = _load_mallinfo2()


def heap_stats() -> dict[str, Any] | None:
    """The C allocator's heap, from glibc's ``mallinfo2()`` (None elsewhere).

    Request bodies, response buffers and every object over pymalloc's 512-byte
    limit live in this heap, so it is where an arena (or its absence) shows.
    ``heap_bytes`` is what malloc holds from the OS outside mmapped chunks,
    ``in_use_bytes`` what live allocations occupy in it, ``free_bytes`` the
    rest. Free space at the top of the main heap (``trimmable_bytes``) can be
    given back with ``malloc_trim``; free space *below* live chunks cannot,
    however much of it there is. ``fragmentation`` is that trapped share:
    ``(free - trimmable) / heap``, 0 when every free byte sits at the top.
    Chunks over the mmap threshold (``mmapped_bytes``) are returned to the OS
    when freed and never fragment the heap, so they are reported apart.
    """
    if _mallinfo2 is None:
        return None
    info = _mallinfo2()
    heap = int(info.arena)
    free = int(info.fordblks)
    trimmable = min(int(info.keepcost), free)
    return {
        "heap_bytes": heap,
        "in_use_bytes": int(info.uordblks),
        "free_bytes": free,
        "trimmable_bytes": trimmable,
        "mmapped_bytes": int(info.hblkhd),
        "free_chunks": int(info.ordblks),
        "fragmentation": (free - trimmable) / heap if heap else 0.0,
    }


class MemoryStrategy(Protocol):
    """A memory strategy. Registered in ``h3lab.memory.MEMORY_STRATEGIES``."""

    name: ClassVar[str]
    freeze_after_warmup: ClassVar[bool]
    """Whether it calls ``gc.freeze()`` once ``warmup_requests`` are served."""
    arena: BufferArena | None
    """Reusable body buffers (the server reads it), or None for no arena."""

    def __init__(self, gc_threshold0: int, arena_buffers: int, warmup_requests: int) -> None:
        """0 for ``gc_threshold0`` or ``arena_buffers`` keeps the strategy's own choice."""

    def install(self) -> None:
        """Apply the GC policy to this process (the server calls it at start)."""

    def on_requests(self, count: int) -> None:
        """Count ``count`` more requests served (for the warm-up)."""

    def tick(self, now: float) -> None:
        """Periodic upkeep (the server's ticker): freeze the heap once warm."""

    def close(self) -> None:
        """Undo ``install`` (thresholds back, heap unfrozen)."""

    def stats(self) -> dict[str, Any]: ...


class TunedGC:
    """The one implementation behind the registered names: a gen-0 GC
    threshold, an optional arena and an optional heap freeze after warm-up.
    Each strategy is a subclass that only sets the class attributes (its
    preset), so the three differ in nothing but those numbers."""

    name: ClassVar[str] = "tuned"
    gc_threshold0: ClassVar[int | None] = None  # None: leave the interpreter default
    arena_buffers: ClassVar[int] = 0
    freeze_after_warmup: ClassVar[bool] = False

    def __init__(
        self, gc_threshold0: int = 0, arena_buffers: int = 0, warmup_requests: int = 1000
    ) -> None:
        self.threshold0 = gc_threshold0 or self.gc_threshold0
        buffers = arena_buffers or self.arena_buffers
        self.arena: BufferArena | None = BufferArena(buffers) if buffers else None
        self.warmup_requests = warmup_requests
        self.monitor = GCMonitor()
        self.frozen = 0
        self._saved_threshold: tuple[int, int, int] | None = None
        self._requests = 0
        self._installed = False

    def install(self) -> None:
        if self._installed:
            return
        self._installed = True
        self.monitor.install()
        if self.threshold0 is not None:
            self._saved_threshold = gc.get_threshold()
            _, t1, t2 = self._saved_threshold
            gc.set_threshold(self.threshold0, t1, t2)
        if self.freeze_after_warmup and self.warmup_requests == 0:
            self._freeze()

    def on_requests(self, count: int) -> None:
        self._requests += count

    def tick(self, now: float) -> None:
        # Frozen from the ticker, not from a request: gc.collect() before the
        # freeze is a full collection, a pause no request should wait behind.
        if (
            self.freeze_after_warmup
            and not self.frozen
            and self._installed
            and self._requests >= self.warmup_requests
        ):
            self._freeze()

    def _freeze(self) -> None:
        # Collect first so garbage is not frozen forever, then move every
        # surviving object to the permanent generation.
        gc.collect()
        gc.freeze()
        self.frozen = gc.get_freeze_count()

    def close(self) -> None:
        if not self._installed:
            return
        self._installed = False
        self.monitor.uninstall()
        if self._saved_threshold is not None:
            gc.set_threshold(*self._saved_threshold)
            self._saved_threshold = None
        if self.frozen:
            gc.unfreeze()
            self.frozen = 0

    def stats(self) -> dict[str, Any]:
        return {
            "strategy": self.name,
            "rss_bytes": rss_bytes(),
            "heap": heap_stats(),
            "gc_threshold": list(gc.get_threshold()),
            "gc_frozen_objects": self.frozen,
            "gc": self.monitor.stats(),
            "arena": self.arena.stats() if self.arena else None,
        }


@MEMORY_STRATEGIES.register
class MinimalMemory(TunedGC):
    name = "minimal"


@MEMORY_STRATEGIES.register
class BalancedMemory(TunedGC):
    name = "balanced"
    gc_threshold0 = 10_000
    arena_buffers = 64


@MEMORY_STRATEGIES.register
class PerformanceMemory(TunedGC):
    name = "performance"
    gc_threshold0 = 50_000
    arena_buffers = 1024
    freeze_after_warmup = True


def make_memory(memory: MemoryConfig) -> MemoryStrategy:
    """The strategy ``memory.strategy`` names, with the section's overrides."""
    return MEMORY_STRATEGIES.get(memory.strategy)(
        memory.gc_threshold0, memory.arena_buffers, memory.warmup_requests
    )
