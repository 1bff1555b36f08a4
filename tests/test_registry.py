"""The family table and the one shape every strategy family has."""

from __future__ import annotations

import asyncio
import time
from typing import Any, ClassVar

import pytest

from h3lab import H3, Config
from h3lab.bench.results import SCHEMA_COLUMNS, STRATEGY_COLUMNS, config_columns
from h3lab.config import PRESETS, CacheConfig, RouterConfig
from h3lab.event import H3Event
from h3lab.json_encoding import make_json_encoder
from h3lab.memory import make_memory
from h3lab.middleware import make_execution
from h3lab.pool import make_pool
from h3lab.registry import FAMILIES, Registry, family, strategy_columns
from h3lab.routing import Route, make_router


class _Thing:
    name: ClassVar[str] = "thing"


def test_register_files_a_class_under_its_own_name() -> None:
    things: Registry[Any] = Registry("thing.kind")
    assert things.register(_Thing) is _Thing  # usable as a bare decorator
    assert things.names() == ("thing",) and things.get("thing") is _Thing
    with pytest.raises(ValueError, match="'thing' is already registered"):
        things.register(_Thing)
    with pytest.raises(ValueError, match=r"thing\.kind must be one of \['thing'\], got 'other'"):
        things.get("other")

    class Nameless:
        name: ClassVar[str] = ""

    with pytest.raises(ValueError, match="non-empty str name"):
        things.register(Nameless)


def test_the_table_names_real_config_fields_and_unique_columns() -> None:
    flat = Config().flat()
    for strategy in FAMILIES:
        assert strategy.field in flat
        assert strategy.registry.family == strategy.field
        assert all(key in flat for key, _ in strategy.options)
    assert len(set(STRATEGY_COLUMNS)) == len(STRATEGY_COLUMNS)
    with pytest.raises(ValueError, match="strategy family must be one of"):
        family("cache.size")


@pytest.mark.parametrize("strategy", FAMILIES, ids=lambda f: f.field)
def test_every_implementation_has_the_one_shape(strategy: Any) -> None:
    names = strategy.names()
    assert names, f"{strategy.field} has no strategy"
    for name in names:
        cls = strategy.registry.get(name)
        assert cls.name == name  # keyed by the class's own name, written once
        assert callable(cls.stats) and callable(cls.tick)


def _built(config: Config) -> list[Any]:
    """One instance per family, each through its factory and config section."""
    return [
        make_router(config.router, config.cache),
        make_pool(config.pool, H3Event),
        make_memory(config.memory),
        make_execution(config.middleware),
        make_json_encoder(config.response),
    ]


@pytest.mark.parametrize("preset", PRESETS)
def test_factories_take_their_section_and_everything_ticks(preset: str) -> None:
    config = Config.preset(preset)
    for strategy in _built(config):
        strategy.tick(0.0)
        assert isinstance(strategy.stats(), dict)
    router = _built(config)[0]
    assert router.stats()["strategy"] == config.router.matching


def test_a_bad_strategy_name_names_the_field_and_the_table_s_values() -> None:
    for strategy in FAMILIES:
        allowed = list(strategy.names())
        with pytest.raises(ValueError) as raised:
            Config().replace(strategy.field, "nope")
        assert str(raised.value) == f"{strategy.field} must be one of {allowed}, got 'nope'"


def test_results_columns_come_from_the_table() -> None:
    assert strategy_columns() == STRATEGY_COLUMNS
    assert SCHEMA_COLUMNS[2 : 2 + len(STRATEGY_COLUMNS)] == STRATEGY_COLUMNS
    columns = config_columns(Config.preset("performance"))
    assert list(columns) == [*STRATEGY_COLUMNS, "preset"]
    assert columns["router"] == "hybrid" and columns["cache_size"] == 4096


def test_hybrid_is_the_cached_trie_and_loads_from_old_dumps(tmp_path: Any) -> None:
    old = tmp_path / "old.toml"
    old.write_text('[router]\nmatching = "hybrid"\n\n[cache]\npolicy = "lfu"\nsize = 64\n')
    config = Config.load(old)
    assert (config.router.matching, config.cache.policy) == ("hybrid", "lfu")
    dumped = Config.load(config.dump(tmp_path / "again.json"))
    assert dumped == config
    with pytest.raises(ValueError, match=r"cache\.policy must be one of \['lru'"):
        Config().replace("cache.policy", "none")  # the default router is hybrid
    # Same routes, same answers as the trie behind the same cache.
    hybrid = make_router(RouterConfig("hybrid"), CacheConfig("lru", 8))
    trie = make_router(RouterConfig("trie"), CacheConfig("lru", 8))
    for router in (hybrid, trie):
        for i, pattern in enumerate(("/a", "/users/:id", "/files/**:rest")):
            router.add(Route("GET", pattern, lambda event: None, index=i))

    def seen(found: Any) -> Any:
        return None if found is None else (found[0].pattern, found[1])

    for path in ("/a", "/users/7", "/files/x/y", "/nope", "/users/7"):
        assert seen(hybrid.match("GET", path)) == seen(trie.match("GET", path))
    assert seen(hybrid.match("GET", "/users/7")) == ("/users/:id", {"id": "7"})


def test_tick_is_the_one_periodic_path() -> None:
    app = H3(Config.preset("performance").replace("memory.warmup_requests", 3))
    app.pool.trim_interval = 0.001  # due at the next tick
    app.memory.install()
    try:
        app.pool.release(app.pool.acquire())
        assert app.pool.stats()["pool_size"] > 1  # the warm-up
        app.tick(time.monotonic() + 1.0, served=5)
        assert app.memory.stats()["gc_frozen_objects"] > 0  # warm after 5 >= 3 requests
        assert app.pool.stats()["pool_size"] == 1  # trimmed to the high-water mark
    finally:
        app.memory.close()


async def test_the_server_ticks_every_strategy(live_factory: Any) -> None:
    # A real server whose ticker runs every 50 ms (a quarter of the shortest
    # deadline): its one call, app.tick, must trim the pool and warm memory.
    config = Config.preset("performance").replace(
        **{
            "memory.warmup_requests": 2,
            "pool.trim_interval": 0.05,
            "limits.linger_timeout": 0.2,
        }
    )
    app = H3(config)
    app.get("/", lambda event: "ok")
    live = await live_factory(app)
    for _ in range(3):
        assert (await live.fetch("GET", "/"))[0] == 200
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline and not (
        app.memory.stats()["gc_frozen_objects"] and app.pool.stats()["trimmed"]
    ):
        await asyncio.sleep(0.02)
    assert app.memory.stats()["gc_frozen_objects"] > 0
    assert app.pool.stats()["trimmed"] > 0
