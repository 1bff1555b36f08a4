"""Named implementations of one strategy family.

Each family (router matching, route cache policy, event pool policy, memory
strategy, middleware execution) keeps one `Registry` that maps a short name to
the class that implements it. The config validates against `registry.names()`,
the tuner derives its search space from it, and the test-suite parametrizes
its fixtures over it: a strategy that is not registered does not exist, and a
registered one cannot escape the behavioural suite.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """An ordered name -> implementation table for one strategy family."""

    def __init__(self, family: str) -> None:
        self.family = family
        self._table: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Class decorator: ``@ROUTERS.register("trie")``."""

        def decorate(impl: T) -> T:
            if name in self._table:
                raise ValueError(f"{self.family}: {name!r} is already registered")
            self._table[name] = impl
            return impl

        return decorate

    def get(self, name: str) -> T:
        try:
            return self._table[name]
        except KeyError:
            raise ValueError(f"{self.family} must be one of {self.names()}, got {name!r}") from None

    def names(self) -> tuple[str, ...]:
        return tuple(self._table)

    def __contains__(self, name: object) -> bool:
        return name in self._table

    def __iter__(self) -> Iterator[str]:
        return iter(self._table)

    def __len__(self) -> int:
        return len(self._table)
