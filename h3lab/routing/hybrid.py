"""The hybrid router: static dict, then the route cache, then the trie.

The h3z design ("cache first, then trie"), with the caching rules of
``CachedRouter``: static routes come from the exact dict and never touch the
cache, dynamic answers are cached as immutable values, misses are not cached,
and ``add`` clears the cache. On a miss it runs only the trie's tree walk, as
the static dict has already been checked.
"""

from __future__ import annotations

from typing import Any, ClassVar

from h3lab.cache.base import RouteCache
from h3lab.routing.cached import CachedRouter
from h3lab.routing.trie import TrieRouter


class HybridRouter(CachedRouter):
    """Route cache in front of the trie; needs a cache to be built."""

    name: ClassVar[str] = "hybrid"

    def __init__(self, cache: RouteCache) -> None:
        trie = TrieRouter()
        super().__init__(trie, cache)
        self._match_uncached = trie.match_dynamic

    def stats(self) -> dict[str, Any]:
        return {**super().stats(), "strategy": self.name}
