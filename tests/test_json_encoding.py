"""The ``response.json`` family: stdlib and orjson, and exactly where they differ."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import json
import math
import uuid
from typing import Any

import pytest

from h3lab import H3, Config
from h3lab.config import ResponseConfig
from h3lab.event import H3Event
from h3lab.json_encoding import JSON_ENCODERS, make_json_encoder

ENCODERS = list(JSON_ENCODERS.names())


@dataclasses.dataclass
class Point:
    x: int
    y: int


@dataclasses.dataclass
class Labelled:
    name: str

    def to_json(self) -> dict[str, str]:
        return {"label": self.name}


class Colour(enum.Enum):
    RED = "red"


def _cycle() -> dict[str, Any]:
    cyclic: dict[str, Any] = {}
    cyclic["self"] = cyclic
    return cyclic


def _nested(depth: int) -> list[Any]:
    root: list[Any] = []
    cur = root
    for _ in range(depth):
        cur.append([])
        cur = cur[0]
    return root


def test_family_shape_and_bad_values() -> None:
    assert ENCODERS == ["stdlib", "orjson"]
    assert Config().response.json == "stdlib"
    assert Config.preset("performance").response.json == "orjson"  # installed in the venv
    assert Config.preset("performance").label == "performance"
    with pytest.raises(ValueError, match=r"response\.json must be one of \['stdlib', 'orjson'\]"):
        Config().replace(**{"response.json": "ujson"})
    with pytest.raises(ValueError, match=r"response\.json"):
        Config.from_dict({"response": {"json": 3}})
    app = H3(Config.preset("performance"))
    assert app.stats()["json"] == {"encoder": "orjson", "fallbacks_to_stdlib": 0}
    assert H3().stats()["json"] == {"encoder": "stdlib"}


@pytest.mark.parametrize(
    "value, expected",
    [
        ({"message": "Hello, World!"}, b'{"message":"Hello, World!"}'),
        ({"é": "日本"}, '{"é":"日本"}'.encode()),  # UTF-8, no \u escapes
        ([1, 2.5, 0.1, True, None, "x"], b'[1,2.5,0.1,true,null,"x"]'),
        ({1: "a", None: "b", 2.5: "c", False: "d"}, b'{"1":"a","null":"b","2.5":"c","false":"d"}'),
        ([2**70, -(2**64)], b"[1180591620717411303424,-18446744073709551616]"),  # beyond 64 bits
        ({"t": (1, 2), "s": frozenset([3])}, b'{"t":[1,2],"s":[3]}'),
        ({"u": uuid.UUID(int=1)}, b'{"u":"00000000-0000-0000-0000-000000000001"}'),
        ([Colour.RED], b'["red"]'),
        (Labelled("a"), b'{"label":"a"}'),  # to_json() wins, dataclass or not
        ("text", b'"text"'),
    ],
)
@pytest.mark.parametrize("name", ENCODERS)
def test_both_encoders_agree(name: str, value: Any, expected: bytes) -> None:
    assert make_json_encoder(ResponseConfig(name)).encode(value) == expected


@pytest.mark.parametrize("name", ENCODERS)
def test_deep_nesting_is_encoded_by_both(name: str) -> None:
    # orjson stops at 254 levels: its encoder falls back to the stdlib one.
    assert (
        make_json_encoder(ResponseConfig(name)).encode(_nested(300))
        == b"[" * 300 + b"[]" + b"]" * 300
    )


@pytest.mark.parametrize(
    "value",
    [_cycle(), datetime.datetime(2020, 1, 1), datetime.date(2020, 1, 1), Point(1, 2), object()],
    ids=["cycle", "datetime", "date", "dataclass", "object"],
)
@pytest.mark.parametrize("name", ENCODERS)
def test_both_encoders_refuse(name: str, value: Any) -> None:
    with pytest.raises((TypeError, ValueError, RecursionError)):
        make_json_encoder(ResponseConfig(name)).encode(value)


def test_the_documented_differences() -> None:
    stdlib, fast = (
        make_json_encoder(ResponseConfig("stdlib")),
        make_json_encoder(ResponseConfig("orjson")),
    )
    values = [math.nan, math.inf, -math.inf]
    assert stdlib.encode(values) == b"[NaN,Infinity,-Infinity]"  # Python's, not valid JSON
    assert fast.encode(values) == b"[null,null,null]"
    # A negative exponent: Python pads it to two digits, orjson does not (the same number).
    assert stdlib.encode([1e-7, 1e16]) == b"[1e-07,1e+16]"
    assert fast.encode([1e-7, 1e16]) == b"[1e-7,1e+16]"
    assert json.loads(stdlib.encode([1e-7])) == json.loads(fast.encode([1e-7]))


@pytest.mark.parametrize("name", ENCODERS)
async def test_both_transports_use_the_configured_encoder(transport: Any, name: str) -> None:
    app = H3(Config().replace(**{"response.json": name}))

    @app.get("/nan")
    def nan(event: H3Event) -> list[float]:
        return [math.nan]

    @app.get("/nan-status")
    def nan_status(event: H3Event) -> list[float]:
        event.status = 201  # the general path, not the server's fast path
        return [math.nan]

    @app.get("/cycle")
    async def cycle(event: H3Event) -> dict[str, Any]:
        return _cycle()

    @app.get("/when")
    def when(event: H3Event) -> dict[str, Any]:
        return {"at": datetime.datetime(2020, 1, 1)}

    @app.get("/big")
    def big(event: H3Event) -> dict[str, Any]:
        return {"n": 2**70, 3: "k"}

    live = await transport(app)
    want = b"[NaN]" if name == "stdlib" else b"[null]"
    for path, status in (("/nan", 200), ("/nan-status", 201)):
        async with live.session.get(live.url + path) as resp:
            assert resp.status == status
            assert resp.headers["content-type"] == "application/json"
            assert await resp.read() == want
    for path in ("/cycle", "/when"):  # a 500, never a hang; the connection stays usable
        async with live.session.get(live.url + path) as resp:
            assert resp.status == 500
    async with live.session.get(live.url + "/big") as resp:
        assert await resp.read() == b'{"n":1180591620717411303424,"3":"k"}'
