"""Request-side mappings: case-insensitive headers and multi-valued query params."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from urllib.parse import parse_qsl


class Headers(Mapping[str, str]):
    """Request headers, case-insensitive, built lazily from the raw byte pairs.

    ``headers["Content-Type"]`` gives the first value; ``getall`` gives every
    value in arrival order. Names are stored lower-case.
    """

    __slots__ = ("_items", "_map")

    def __init__(self, raw: list[tuple[bytes, bytes]] | None = None) -> None:
        # latin-1 maps every byte to one code point, so decoding never fails and
        # never changes what a later re-encode produces.
        self._items: list[tuple[str, str]] = [
            (name.decode("latin-1").lower(), value.decode("latin-1")) for name, value in raw or ()
        ]
        self._map: dict[str, str] | None = None

    def _mapping(self) -> dict[str, str]:
        if self._map is None:
            first: dict[str, str] = {}
            for name, value in self._items:
                first.setdefault(name, value)
            self._map = first
        return self._map

    def __getitem__(self, name: str) -> str:
        return self._mapping()[name.lower()]

    def get(self, name: str, default: str | None = None) -> str | None:  # type: ignore[override]
        return self._mapping().get(name.lower(), default)

    def getall(self, name: str) -> list[str]:
        name = name.lower()
        return [value for key, value in self._items if key == name]

    def items_all(self) -> list[tuple[str, str]]:
        """Every (name, value) pair in arrival order, duplicates included."""
        return list(self._items)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._mapping()

    def __iter__(self) -> Iterator[str]:
        return iter(self._mapping())

    def __len__(self) -> int:
        return len(self._mapping())

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


class QueryParams(Mapping[str, str]):
    """Query string parameters: ``q["a"]`` is the first value, ``getall`` every value."""

    __slots__ = ("_items", "_map")

    def __init__(self, query_string: str = "") -> None:
        self._items: list[tuple[str, str]] = (
            parse_qsl(query_string, keep_blank_values=True) if query_string else []
        )
        self._map: dict[str, str] | None = None

    def _mapping(self) -> dict[str, str]:
        if self._map is None:
            first: dict[str, str] = {}
            for key, value in self._items:
                first.setdefault(key, value)
            self._map = first
        return self._map

    def __getitem__(self, key: str) -> str:
        return self._mapping()[key]

    def getall(self, key: str) -> list[str]:
        return [value for name, value in self._items if name == key]

    def items_all(self) -> list[tuple[str, str]]:
        return list(self._items)

    def __iter__(self) -> Iterator[str]:
        return iter(self._mapping())

    def __len__(self) -> int:
        return len(self._mapping())

    def __repr__(self) -> str:
        return f"QueryParams({self._items!r})"
