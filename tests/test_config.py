from __future__ import annotations

import json
from pathlib import Path

import pytest

from h3lab import Config
from h3lab.config import PRESETS, parse_value
from h3lab.registry import FAMILIES


def test_default_is_balanced() -> None:
    config = Config()
    assert config.router.matching == "hybrid" and config.memory.strategy == "balanced"
    assert Config.preset("balanced").to_dict() == config.to_dict()


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_are_valid_and_named(name: str) -> None:
    config = Config.preset(name)
    assert config.preset_name == name


def test_baseline_is_the_naive_before() -> None:
    c = Config.preset("baseline")
    assert (c.router.matching, c.cache.policy, c.pool.policy, c.middleware.execution) == (
        "linear",
        "none",
        "none",
        "legacy",
    )
    assert c.memory.strategy == "minimal"


def test_config_is_frozen() -> None:
    config = Config()
    with pytest.raises(AttributeError):
        config.cache.size = 3  # type: ignore[misc]


def test_replace_derives_variants_without_touching_the_original() -> None:
    base = Config.preset("performance")
    variant = base.replace("cache.size", 512)
    assert variant.cache.size == 512 and base.cache.size == 4096
    assert variant.preset_name == "performance" and variant.label == "performance+1"
    assert variant.overrides() == {"cache.size": 512}
    assert base.label == "performance" and base.overrides() == {}
    both = base.replace(**{"cache.policy": "lfu", "pool.size": 8, "pool.warmup": 4})
    assert (both.cache.policy, both.pool.size, both.pool.warmup) == ("lfu", 8, 4)


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("cache.policy", "mru", "cache.policy must be one of ['none', 'lru'"),
        ("router.matching", "regex", "router.matching must be one of"),
        ("pool.policy", "unbounded", "pool.policy must be one of ['none', 'bounded']"),
        ("memory.strategy", "huge", "memory.strategy must be one of"),
        ("middleware.execution", "turbo", "middleware.execution must be one of ['legacy', 'fast']"),
        ("cache.size", 0, "cache.size must be in 1.."),
        ("cache.size", "12", "cache.size must be an integer"),
        ("cache.size", True, "cache.size must be an integer"),
        ("pool.warmup", 10_000, "pool.warmup must be <= pool.size"),
        ("limits.max_body_size", -1, "limits.max_body_size must be >= 1"),
        ("limits.header_timeout", 0, "limits.header_timeout must be >= 0.001"),
        ("server.stats_path", "stats", "server.stats_path must be None or a path"),
    ],
)
def test_bad_values_name_the_field_and_allowed_values(
    key: str, value: object, fragment: str
) -> None:
    with pytest.raises(ValueError) as info:
        Config().replace(key, value)
    assert fragment in str(info.value)


def test_unknown_keys_and_presets_are_refused() -> None:
    with pytest.raises(ValueError, match="cache has no field 'polcy'"):
        Config().replace("cache.polcy", "lru")
    with pytest.raises(ValueError, match=r"section\.field"):
        Config().replace("nothing", 1)
    with pytest.raises(ValueError, match="preset must be one of"):
        Config.preset("turbo")


def test_hybrid_needs_a_cache() -> None:
    with pytest.raises(ValueError, match="hybrid"):
        Config().replace("cache.policy", "none")
    assert Config().replace(**{"cache.policy": "none", "router.matching": "trie"})


def test_every_strategy_name_is_accepted() -> None:
    for strategy in FAMILIES:
        for name in strategy.names():
            overrides = {strategy.field: name}
            if strategy.field == "cache.policy":
                overrides["router.matching"] = "trie"  # the default, hybrid, refuses "none"
            assert Config().replace(**overrides).flat()[strategy.field] == name


def test_cli_style_overrides_are_typed() -> None:
    config = Config().with_overrides(
        [
            "cache.size=512",
            "server.access_log=true",
            "limits.header_timeout=2.5",
            "server.stats_path=/s",
        ]
    )
    assert config.cache.size == 512 and config.server.access_log is True
    assert config.limits.header_timeout == 2.5 and config.server.stats_path == "/s"
    assert parse_value("server.stats_path", "none") is None
    with pytest.raises(ValueError, match=r"cache\.size must be int"):
        Config().with_overrides(["cache.size=big"])
    with pytest.raises(ValueError, match=r"section\.field=value"):
        Config().with_overrides(["cache.size"])


@pytest.mark.parametrize("suffix", [".toml", ".json"])
def test_dump_and_load_round_trip(tmp_path: Path, suffix: str) -> None:
    config = Config.preset("performance").replace(
        **{"cache.policy": "wtinylfu", "server.stats_path": "/st"}
    )
    path = config.dump(tmp_path / f"best{suffix}")
    loaded = Config.load(path)
    assert loaded.to_dict() == config.to_dict()


def test_from_dict_with_preset_and_errors(tmp_path: Path) -> None:
    config = Config.from_dict({"preset": "minimal", "cache": {"size": 77}})
    assert config.router.matching == "trie" and config.cache.size == 77
    with pytest.raises(ValueError, match="unknown config section 'caches'"):
        Config.from_dict({"caches": {"size": 1}})
    bad = tmp_path / "x.yaml"
    bad.write_text("{}")
    with pytest.raises(ValueError, match=r"\.toml or \.json"):
        Config.load(bad)
    (tmp_path / "c.json").write_text(json.dumps({"cache": {"policy": "nope"}}))
    with pytest.raises(ValueError, match=r"cache\.policy must be one of"):
        Config.load(tmp_path / "c.json")
