"""The strategy families: one name -> implementation table per axis.

The internals are strategies chosen by name in the frozen ``Config`` (uvicorn
does the same with one table per axis: ``http``, ``loop``, ``ws``). Every
family has the same shape:

* a ``Protocol`` (``Router``, ``RouteCache``, ``EventPool``,
  ``MemoryStrategy``, ``MiddlewareExecution``, ``JsonEncoder``) whose
  implementations are classes with a ``name`` class attribute, a ``stats()``
  method and a ``tick(now)`` method (periodic upkeep, a no-op where nothing is
  periodic);
* a ``Registry`` filled with ``@REGISTRY.register`` on each class, keyed by
  the class's own ``name`` (so a name is written once, on its class);
* a factory that takes the family's config section (``make_pool(cfg.pool,
  factory)``, ``make_router(cfg.router, cfg.cache)``...).

``FAMILIES`` below is the one table of the families: which config field names
the strategy, which module registers its implementations, and which results
columns record it. ``Config`` validation, the test fixtures that enumerate
strategies, the results columns and the micro targets all read it, so adding
a family (or a strategy to one) needs no edit anywhere else.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar

if TYPE_CHECKING:
    from h3lab.config import Config


class Named(Protocol):
    """What a registered implementation must have: its name, on the class."""

    name: ClassVar[str]


T = TypeVar("T", bound=type[Named])


class Registry(Generic[T]):
    """An ordered name -> implementation table for one strategy family."""

    def __init__(self, family: str) -> None:
        self.family = family
        self._table: dict[str, T] = {}

    def register(self, impl: T) -> T:
        """Class decorator: ``@ROUTERS.register`` files the class under ``impl.name``."""
        name = impl.name
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self.family}: {impl.__name__} needs a non-empty str name")
        if name in self._table:
            raise ValueError(f"{self.family}: {name!r} is already registered")
        self._table[name] = impl
        return impl

    def get(self, name: str) -> T:
        try:
            return self._table[name]
        except KeyError:
            raise ValueError(
                f"{self.family} must be one of {list(self.names())}, got {name!r}"
            ) from None

    def names(self) -> tuple[str, ...]:
        return tuple(self._table)

    def __contains__(self, name: object) -> bool:
        return name in self._table

    def __iter__(self) -> Iterator[str]:
        return iter(self._table)

    def __len__(self) -> int:
        return len(self._table)


@dataclass(frozen=True)
class Family:
    """One strategy family: the config field that names the strategy, the
    module whose import registers the implementations, and its results
    columns."""

    field: str
    """The dotted config field holding the strategy name, e.g. ``"cache.policy"``."""
    module: str
    """The module that registers the implementations. Imported lazily, on the
    first question about names: the strategy modules import this one (and
    some type-annotate with ``Config``), so importing them here would cycle."""
    column: str
    """The results column recording the strategy name (``cache_policy``)."""
    options: tuple[tuple[str, str], ...] = ()
    """Integer fields of the same section recorded in results too, as
    ``(config field, column)``: ``(("cache.size", "cache_size"),)``."""
    registry: Registry[Any] = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "registry", Registry(self.field))

    @property
    def section(self) -> str:
        """The config section (``"cache"``)."""
        return self.field.partition(".")[0]

    @property
    def attribute(self) -> str:
        """The field's name inside its section (``"policy"``)."""
        return self.field.partition(".")[2]

    def names(self) -> tuple[str, ...]:
        """The registered names, in registration order (the order studies list them)."""
        importlib.import_module(self.module)
        return self.registry.names()

    def check(self, value: Any) -> None:
        """``ValueError`` naming the field and the allowed values unless ``value`` is one."""
        names = self.names()
        if value not in names:
            raise ValueError(f"{self.field} must be one of {list(names)}, got {value!r}")


# The one table. Order is the results columns' order.
FAMILIES: tuple[Family, ...] = (
    Family("router.matching", "h3lab.routing", "router"),
    Family("cache.policy", "h3lab.cache", "cache_policy", (("cache.size", "cache_size"),)),
    Family("pool.policy", "h3lab.pool", "pool_policy", (("pool.size", "pool_size"),)),
    Family("memory.strategy", "h3lab.memory", "memory_strategy"),
    Family("middleware.execution", "h3lab.middleware", "middleware"),
    Family("response.json", "h3lab.json_encoding", "json"),
)

_BY_FIELD = {f.field: f for f in FAMILIES}


def family(name: str) -> Family:
    """The family chosen by config field ``name`` (``"cache.policy"``)."""
    try:
        return _BY_FIELD[name]
    except KeyError:
        raise ValueError(
            f"strategy family must be one of {list(_BY_FIELD)}, got {name!r}"
        ) from None


def registry(name: str) -> Registry[Any]:
    """The (possibly not yet filled) registry of family ``name``, for the
    module that fills it: ``POOLS = registry("pool.policy")``."""
    return family(name).registry


def strategy_columns() -> tuple[str, ...]:
    """The results columns of every family, in table order
    (``router, cache_policy, cache_size, ...``)."""
    return tuple(col for f in FAMILIES for col in (f.column, *(c for _, c in f.options)))


def option_columns() -> tuple[str, ...]:
    """The integer option columns (``cache_size``, ``pool_size``)."""
    return tuple(c for f in FAMILIES for _, c in f.options)


def strategy_values(config: Config) -> dict[str, Any]:
    """``{column: value}`` for every strategy column of ``config``."""
    flat = config.flat()
    return {col: flat[key] for f in FAMILIES for key, col in ((f.field, f.column), *f.options)}
