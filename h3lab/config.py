"""The frozen, validated configuration tree.

``Config`` is a tree of frozen dataclasses, one section per strategy family plus
the server's limits. Every value is checked when a section is built, and a bad
one raises ``ValueError`` naming the dotted field and what it accepts, so a
typo in ``--set cache.polcy=lru`` or a papermill parameter fails loudly at the
start instead of silently measuring the default.

Strategy names are not listed here: they are read from the family table
(``h3lab.registry.FAMILIES``) and each family's registry, so a strategy
registered in its module is accepted (and searched by the tuner) without edits
to this file.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import tomllib
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from h3lab.registry import FAMILIES, family


def strategy_names(name: str) -> tuple[str, ...]:
    """The registered names of a strategy family, e.g. ``"cache.policy"``."""
    return family(name).names()


def _check_int(path: str, value: Any, lo: int, hi: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{path} must be an integer, got {value!r}")
    if value < lo or (hi is not None and value > hi):
        bounds = f">= {lo}" if hi is None else f"in {lo}..{hi}"
        raise ValueError(f"{path} must be {bounds}, got {value!r}")


def _check_float(path: str, value: Any, lo: float, hi: float | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{path} must be a number, got {value!r}")
    if value < lo or (hi is not None and value > hi):
        bounds = f">= {lo}" if hi is None else f"in {lo}..{hi}"
        raise ValueError(f"{path} must be {bounds}, got {value!r}")


@dataclass(frozen=True, slots=True)
class RouterConfig:
    matching: str = "hybrid"
    """A matching strategy registered in ``h3lab.routing.ROUTERS``."""

    def validate(self) -> None:
        """The name is checked against the family table by ``Config``."""


@dataclass(frozen=True, slots=True)
class CacheConfig:
    policy: str = "lru"
    """A route cache policy registered in ``h3lab.cache.CACHES`` ("none": no cache)."""
    size: int = 1024
    """Maximum number of cached (method, path) entries; never exceeded."""

    def validate(self) -> None:
        _check_int("cache.size", self.size, 1, 10_000_000)


@dataclass(frozen=True, slots=True)
class PoolConfig:
    policy: str = "bounded"
    """An event pool policy registered in ``h3lab.pool.POOLS``."""
    size: int = 256
    """Most idle events kept for reuse."""
    warmup: int = 32
    """Events created up front when the app starts."""
    trim_interval: float = 30.0
    """Seconds between trims of the free list to the recent high-water mark (0 = never)."""

    def validate(self) -> None:
        _check_int("pool.size", self.size, 0, 1_000_000)
        _check_int("pool.warmup", self.warmup, 0, 1_000_000)
        _check_float("pool.trim_interval", self.trim_interval, 0.0)
        if self.warmup > self.size:
            raise ValueError(f"pool.warmup must be <= pool.size ({self.size}), got {self.warmup}")


@dataclass(frozen=True, slots=True)
class MemoryConfig:
    strategy: str = "balanced"
    """A memory strategy registered in ``h3lab.memory.MEMORY_STRATEGIES``."""
    gc_threshold0: int = 0
    """Generation-0 GC threshold; 0 keeps the strategy's own choice."""
    arena_buffers: int = 0
    """Reusable buffers kept by the arena; 0 keeps the strategy's own choice."""
    warmup_requests: int = 1000
    """Requests served before a strategy that freezes the heap calls gc.freeze()."""

    def validate(self) -> None:
        _check_int("memory.gc_threshold0", self.gc_threshold0, 0, 10_000_000)
        _check_int("memory.arena_buffers", self.arena_buffers, 0, 100_000)
        _check_int("memory.warmup_requests", self.warmup_requests, 0)


@dataclass(frozen=True, slots=True)
class MiddlewareConfig:
    execution: str = "fast"
    """A middleware execution registered in ``h3lab.middleware.MIDDLEWARE_EXECUTIONS``."""

    def validate(self) -> None:
        """The name is checked against the family table by ``Config``."""


@dataclass(frozen=True, slots=True)
class ResponseConfig:
    json: str = "stdlib"
    """A JSON encoder in ``h3lab.json_encoding.JSON_ENCODERS`` (orjson: ``h3lab[fast]``)."""

    def validate(self) -> None:
        if self.json == "orjson" and not _orjson_available():
            raise ValueError(
                "response.json 'orjson' needs the orjson package (pip install 'h3lab[fast]'); "
                "allowed here: ['stdlib']"
            )


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    """What one client may cost the server. Each breach has its own status."""

    max_request_target: int = 8 * 1024
    """Bytes of the request target (URL) -> 414."""
    max_header_line: int = 8 * 1024
    """Bytes of one header line -> 431."""
    max_headers_size: int = 32 * 1024
    """Bytes of the whole header section -> 431."""
    max_header_count: int = 100
    """Header fields -> 431."""
    max_body_size: int = 1024 * 1024
    """Bytes of a request body -> 413 (from Content-Length and while reading)."""
    header_timeout: float = 10.0
    """Seconds from a request's first byte to the end of its headers -> 408."""
    body_timeout: float = 60.0
    """Seconds from the end of the headers to the end of the body -> 408."""
    keepalive_timeout: float = 5.0
    """Idle seconds between requests before a keep-alive connection is closed."""
    max_connections: int = 2048
    """Open connections; past it new ones get 503 and are closed."""
    max_requests_per_connection: int = 0
    """Requests served on one connection before it is closed (0 = unlimited)."""
    max_pipeline: int = 64
    """Parsed requests queued on one connection before reading pauses."""
    write_buffer_high: int = 256 * 1024
    """Bytes buffered for a slow reader before the writer waits (backpressure)."""
    shutdown_grace: float = 10.0
    """Seconds in-flight requests get to finish on SIGTERM/SIGINT."""
    max_chunked_overhead: int = 1024 * 1024
    """Bytes of chunked framing (chunk sizes, extensions, CRLFs, trailers) a body
    may carry on top of its data -> 413. Bounds the wire cost of a body sent
    as 1-byte chunks or padded with huge chunk extensions."""
    send_timeout: float = 60.0
    """Seconds a response may make no write progress (a client that stopped
    reading) before the connection is aborted and its handler cancelled."""
    linger_timeout: float = 2.0
    """Seconds a connection keeps reading and discarding after its final
    response (a refusal, or Connection: close), so the client reads the answer
    instead of a reset."""
    max_websocket_message_size: int = 1024 * 1024
    """Bytes of one WebSocket message (all its fragments) -> close code 1009."""
    websocket_ping_interval: float = 20.0
    """Seconds between the keepalive Pings the built-in server sends on an open
    WebSocket (0 = none). Under ASGI the ASGI server pings (uvicorn's
    ``--ws-ping-interval``)."""
    websocket_ping_timeout: float = 20.0
    """Seconds after a keepalive Ping within which something (its Pong, or any
    frame) must arrive, else the WebSocket is closed with 1011."""

    def validate(self) -> None:
        for name in (
            "max_request_target",
            "max_header_line",
            "max_headers_size",
            "max_header_count",
            "max_body_size",
            "max_connections",
            "max_pipeline",
            "write_buffer_high",
            "max_websocket_message_size",
        ):
            _check_int(f"limits.{name}", getattr(self, name), 1)
        _check_int("limits.max_requests_per_connection", self.max_requests_per_connection, 0)
        _check_int("limits.max_chunked_overhead", self.max_chunked_overhead, 0)
        for name in (
            "header_timeout",
            "body_timeout",
            "keepalive_timeout",
            "shutdown_grace",
            "send_timeout",
            "linger_timeout",
            "websocket_ping_timeout",
        ):
            _check_float(f"limits.{name}", getattr(self, name), 0.001)
        _check_float("limits.websocket_ping_interval", self.websocket_ping_interval, 0.0)


@dataclass(frozen=True, slots=True)
class ServerConfig:
    stats_path: str | None = None
    """When set (e.g. "/__stats"), GET on it returns app.stats() as JSON. Off by default."""
    access_log: bool = False
    """Log one line per request (off by default: it costs throughput)."""
    backlog: int = 2048
    server_header: str = "h3lab"
    """Value of the Server header ('' to omit it)."""
    websocket_per_message_deflate: bool = True
    """Compress WebSocket messages (RFC 7692 permessage-deflate) when the client
    offers it, on the built-in server (under ASGI the ASGI server decides)."""

    def validate(self) -> None:
        if self.stats_path is not None and (
            not isinstance(self.stats_path, str) or not self.stats_path.startswith("/")
        ):
            raise ValueError(
                f"server.stats_path must be None or a path starting with '/', got {self.stats_path!r}"
            )
        if not isinstance(self.access_log, bool):
            raise ValueError(f"server.access_log must be true or false, got {self.access_log!r}")
        _check_int("server.backlog", self.backlog, 1)
        if not isinstance(self.websocket_per_message_deflate, bool):
            raise ValueError(
                "server.websocket_per_message_deflate must be true or false, "
                f"got {self.websocket_per_message_deflate!r}"
            )
        if not isinstance(self.server_header, str) or any(c in self.server_header for c in "\r\n"):
            raise ValueError(
                f"server.server_header must be a one-line string, got {self.server_header!r}"
            )


_SECTIONS: dict[str, type] = {
    "router": RouterConfig,
    "cache": CacheConfig,
    "pool": PoolConfig,
    "memory": MemoryConfig,
    "middleware": MiddlewareConfig,
    "response": ResponseConfig,
    "limits": LimitsConfig,
    "server": ServerConfig,
}


@dataclass(frozen=True, slots=True)
class Config:
    router: RouterConfig = field(default_factory=RouterConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    pool: PoolConfig = field(default_factory=PoolConfig)
    memory: MemoryConfig = field(default_factory=MemoryConfig)
    middleware: MiddlewareConfig = field(default_factory=MiddlewareConfig)
    response: ResponseConfig = field(default_factory=ResponseConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    server: ServerConfig = field(default_factory=ServerConfig)
    preset_name: str = "balanced"
    """The preset this config was derived from (the defaults are "balanced").
    ``overrides()`` says what differs from it; ``label`` names both."""

    def __post_init__(self) -> None:
        for name, cls in _SECTIONS.items():
            section = getattr(self, name)
            if not isinstance(section, cls):
                raise ValueError(f"{name} must be a {cls.__name__}, got {type(section).__name__}")
        for strategy in FAMILIES:
            strategy.check(getattr(getattr(self, strategy.section), strategy.attribute))
        for name in _SECTIONS:
            getattr(self, name).validate()
        # The one rule between families belongs to the router family: a router
        # name may promise the route cache in front of it (see h3lab.routing).
        from h3lab.routing import router_class

        router_class(self.router, self.cache)

    # -- construction ------------------------------------------------------

    @classmethod
    def preset(cls, name: str) -> Config:
        """One of ``PRESETS``: baseline, minimal, balanced (the default), performance."""
        try:
            overrides = PRESETS[name]
        except KeyError:
            raise ValueError(f"preset must be one of {list(PRESETS)}, got {name!r}") from None
        config = cls().replace(**overrides)
        return dataclasses.replace(config, preset_name=name)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Config:
        """Build from ``{"cache": {"size": 512}, ...}``; missing keys keep defaults.

        A top-level ``"preset"`` key starts from that preset instead of the defaults.
        """
        data = dict(data)
        name = data.pop("preset", None)
        data.pop("preset_name", None)
        base = cls.preset(name) if name is not None else cls()
        flat: dict[str, Any] = {}
        for section, values in data.items():
            if section not in _SECTIONS:
                raise ValueError(f"unknown config section {section!r}; known: {list(_SECTIONS)}")
            if not isinstance(values, dict):
                raise ValueError(f"config section {section!r} must be a table, got {values!r}")
            for key, value in values.items():
                flat[f"{section}.{key}"] = value
        return base.replace(**flat) if flat else base

    @classmethod
    def load(cls, path: str | Path) -> Config:
        """Read a ``.toml`` or ``.json`` file written by ``dump`` (or by hand)."""
        path = Path(path)
        text = path.read_text()
        if path.suffix == ".json":
            data = json.loads(text)
        elif path.suffix == ".toml":
            data = tomllib.loads(text)
        else:
            raise ValueError(f"config file must end in .toml or .json, got {path.name!r}")
        return cls.from_dict(data)

    # -- derivation --------------------------------------------------------

    def replace(self, path: str | None = None, value: Any = None, /, **dotted: Any) -> Config:
        """A copy with some values changed.

        ``config.replace("cache.size", 512)`` or
        ``config.replace(**{"cache.policy": "lfu", "cache.size": 512})``.
        """
        if path is not None:
            dotted = {path: value, **dotted}
        changes: dict[str, dict[str, Any]] = {}
        for key, val in dotted.items():
            section, _, name = key.partition(".")
            cls = _SECTIONS.get(section)
            if cls is None or not name:
                raise ValueError(
                    f"config key must be 'section.field' with section in {list(_SECTIONS)}, got {key!r}"
                )
            known = [f.name for f in fields(cls)]
            if name not in known:
                raise ValueError(f"{section} has no field {name!r}; fields: {known}")
            changes.setdefault(section, {})[name] = val
        sections = {
            section: dataclasses.replace(getattr(self, section), **vals)
            for section, vals in changes.items()
        }
        return dataclasses.replace(self, **sections)

    def with_overrides(self, assignments: list[str]) -> Config:
        """Apply CLI-style ``["cache.policy=lru", "cache.size=512"]``, typed per field."""
        dotted: dict[str, Any] = {}
        for item in assignments:
            key, sep, raw = item.partition("=")
            if not sep:
                raise ValueError(f"override must look like section.field=value, got {item!r}")
            key = key.strip()
            dotted[key] = parse_value(key, raw.strip())
        return self.replace(**dotted) if dotted else self

    # -- provenance --------------------------------------------------------

    def overrides(self) -> dict[str, Any]:
        """The dotted fields whose values differ from this config's base preset."""
        base = Config.preset(self.preset_name).flat() if self.preset_name in PRESETS else {}
        return {k: v for k, v in self.flat().items() if base.get(k, object()) != v}

    @property
    def label(self) -> str:
        """``performance`` or ``performance+2`` (two fields changed from it).

        ``performance[json=stdlib]`` when the preset fell back to the stdlib
        JSON encoder because orjson is not installed (the figures differ).
        """
        changed = len(self.overrides())
        label = self.preset_name + (f"+{changed}" if changed else "")
        if self.preset_name == "performance" and not _orjson_available():
            label += "[json=stdlib]"
        return label

    # -- export ------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {name: dataclasses.asdict(getattr(self, name)) for name in _SECTIONS}

    def flat(self) -> dict[str, Any]:
        """``{"cache.size": 1024, ...}``: handy for tables and search spaces."""
        return {
            f"{section}.{key}": value
            for section, values in self.to_dict().items()
            for key, value in values.items()
        }

    def dump(self, path: str | Path) -> Path:
        """Write as ``.toml`` or ``.json``; ``Config.load`` reads it back exactly."""
        path = Path(path)
        # The preset goes first (a TOML top-level key must precede the tables):
        # ``from_dict`` starts from it, so the label (``performance+2``) survives.
        data = {"preset": self.preset_name, **self.to_dict()}
        if path.suffix == ".json":
            path.write_text(json.dumps(data, indent=2) + "\n")
        elif path.suffix == ".toml":
            path.write_text(to_toml(data))
        else:
            raise ValueError(f"config file must end in .toml or .json, got {path.name!r}")
        return path


def field_type(key: str) -> Any:
    section, _, name = key.partition(".")
    cls = _SECTIONS.get(section)
    if cls is None:
        raise ValueError(f"unknown config section {section!r}; known: {list(_SECTIONS)}")
    hints = typing.get_type_hints(cls)
    if name not in hints:
        raise ValueError(f"{section} has no field {name!r}; fields: {list(hints)}")
    return hints[name]


def parse_value(key: str, raw: str) -> Any:
    """Turn the text of ``--set key=raw`` into the field's type."""
    hint = field_type(key)
    allowed = set(typing.get_args(hint)) if isinstance(hint, types.UnionType) else {hint}
    if type(None) in allowed and raw.lower() in ("", "none", "null"):
        return None
    try:
        if bool in allowed:
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if int in allowed:
            return int(raw.replace("_", ""))
        if float in allowed:
            return float(raw)
    except ValueError:
        names = "/".join(sorted(t.__name__ for t in allowed if t is not type(None)))
        raise ValueError(f"{key} must be {names}, got {raw!r}") from None
    return raw


def to_toml(data: dict[str, Any]) -> str:
    """A minimal TOML writer for the config tree (top-level scalars, then tables of scalars)."""
    lines: list[str] = [
        f"{key} = {json.dumps(value)}" for key, value in data.items() if not isinstance(value, dict)
    ]
    if lines:
        lines.append("")
    for section, values in data.items():
        if not isinstance(values, dict):
            continue
        lines.append(f"[{section}]")
        for key, value in values.items():
            if value is None:
                continue  # TOML has no null: an absent key means the default (None)
            lines.append(f"{key} = {json.dumps(value)}")
        lines.append("")
    return "\n".join(lines)


@functools.cache
def _orjson_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("orjson") is not None


# The presets, as overrides of the defaults. "baseline" is the naive "before"
# of the origin story; "performance" is everything the studies found to pay.
PRESETS: dict[str, dict[str, Any]] = {
    "baseline": {
        "router.matching": "linear",
        "cache.policy": "none",
        "pool.policy": "none",
        "pool.size": 0,
        "pool.warmup": 0,
        "memory.strategy": "minimal",
        "middleware.execution": "legacy",
    },
    "minimal": {
        "router.matching": "trie",
        "cache.policy": "lru",
        "cache.size": 128,
        "pool.policy": "bounded",
        "pool.size": 16,
        "pool.warmup": 0,
        "memory.strategy": "minimal",
        "middleware.execution": "fast",
    },
    "balanced": {},
    "performance": {
        "router.matching": "hybrid",
        "cache.policy": "lru",
        "cache.size": 4096,
        "pool.policy": "bounded",
        "pool.size": 1024,
        "pool.warmup": 256,
        "memory.strategy": "performance",
        "middleware.execution": "fast",
        # orjson when importable (the optional extra h3lab[fast]), else stdlib:
        # Config.label then says "performance[json=stdlib]".
        "response.json": "orjson" if _orjson_available() else "stdlib",
    },
}
