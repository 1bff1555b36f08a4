"""Validated body, query and params (issue 12 item 3) on both transports."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from typing import Any

import pydantic
import pytest

from h3lab import H3, HTTPError
from h3lab.event import H3Event
from h3lab.examples.demo import build as build_demo
from h3lab.utils import get_validated_params, get_validated_query, read_validated_body
from h3lab.utils.validation import validate_data


class Item(pydantic.BaseModel):
    name: str
    price: float
    tags: list[str] = []


class Page(pydantic.BaseModel):
    limit: int = 10
    offset: int = 0


class UserParams(pydantic.BaseModel):
    id: int


def parse_limit(data: dict[str, Any]) -> int:
    limit = int(data.get("limit", "3"))  # ValueError on "abc"
    if not 0 < limit <= 100:
        raise ValueError("limit must be in 1..100")
    return limit


def build() -> H3:
    app = H3()
    app.calls = []  # type: ignore[attr-defined]

    @app.post("/items")
    async def create(event: H3Event) -> dict[str, Any]:
        item = await read_validated_body(event, Item)
        app.calls.append("items")  # type: ignore[attr-defined]
        return {"type": type(item).__name__, **item.model_dump()}

    @app.get("/items")
    def listing(event: H3Event) -> dict[str, Any]:
        page = get_validated_query(event, Page)
        app.calls.append("list")  # type: ignore[attr-defined]
        return page.model_dump()

    @app.get("/users/:id")
    def user(event: H3Event) -> dict[str, Any]:
        return get_validated_params(event, UserParams).model_dump()

    @app.get("/limit")
    def limit(event: H3Event) -> dict[str, int]:
        return {"limit": get_validated_query(event, parse_limit)}

    @app.post("/async")
    async def async_validated(event: H3Event) -> Any:
        async def check(data: Any) -> Any:
            if data.get("ok") is not True:
                raise TypeError("ok must be true")
            return {"checked": True}

        return await read_validated_body(event, check)

    @app.post("/bool")
    async def boolean(event: H3Event) -> Any:
        return await read_validated_body(event, lambda data: "x" in data)

    @app.get("/tags")
    def tags(event: H3Event) -> Any:
        return get_validated_query(event, lambda data: data)

    return app


async def test_valid_body_becomes_the_model(connect: Any) -> None:
    client = await connect(build())
    reply = await client.request("POST", "/items", json={"name": "pen", "price": "1.5"})
    assert reply.status == 200
    assert reply.json() == {"type": "Item", "name": "pen", "price": 1.5, "tags": []}


async def test_invalid_body_is_400_listing_each_field_and_handler_never_runs(connect: Any) -> None:
    app = build()
    client = await connect(app)
    reply = await client.request("POST", "/items", json={"price": "free", "tags": [1, "a"]})
    assert reply.status == 400
    body = reply.json()
    assert body["message"] == "Validation failed"
    assert body["data"]["source"] == "body"
    issues = {issue["field"]: issue for issue in body["data"]["issues"]}
    assert set(issues) == {"name", "price", "tags.0"}
    assert issues["name"]["type"] == "missing"
    assert issues["price"]["path"] == ["price"]
    assert "number" in issues["price"]["message"]
    assert "free" not in reply.text  # the offending input is not reflected
    assert app.calls == []  # type: ignore[attr-defined]


async def test_form_body_is_validated_too(connect: Any) -> None:
    client = await connect(build())
    reply = await client.request(
        "POST", "/items", data="name=pen&price=2&tags=a&tags=b",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )  # fmt: skip
    assert reply.status == 200
    assert reply.json()["tags"] == ["a", "b"]  # a repeated field is a list


async def test_broken_json_is_400_invalid_json(connect: Any) -> None:
    client = await connect(build())
    reply = await client.request(
        "POST", "/items", data=b"{nope", headers={"content-type": "application/json"}
    )
    assert reply.status == 400
    assert reply.json()["message"] == "Invalid JSON body"


async def test_query_validation(connect: Any) -> None:
    app = build()
    client = await connect(app)
    ok = await client.request("GET", "/items?limit=5")
    assert ok.status == 200 and ok.json() == {"limit": 5, "offset": 0}
    bad = await client.request("GET", "/items?limit=abc&offset=-x")
    assert bad.status == 400
    fields = sorted(issue["field"] for issue in bad.json()["data"]["issues"])
    assert fields == ["limit", "offset"]
    assert bad.json()["data"]["source"] == "query"
    assert app.calls == ["list"]  # type: ignore[attr-defined]


async def test_repeated_query_key_becomes_a_list(connect: Any) -> None:
    client = await connect(build())
    reply = await client.request("GET", "/tags?t=a&t=b&one=1")
    assert reply.json() == {"t": ["a", "b"], "one": "1"}


async def test_params_validation(connect: Any) -> None:
    client = await connect(build())
    assert (await client.request("GET", "/users/42")).json() == {"id": 42}
    bad = await client.request("GET", "/users/abc")
    assert bad.status == 400
    assert bad.json()["data"]["source"] == "params"
    assert bad.json()["data"]["issues"][0]["field"] == "id"


async def test_plain_callable_validator(connect: Any) -> None:
    client = await connect(build())
    assert (await client.request("GET", "/limit?limit=7")).json() == {"limit": 7}
    bad = await client.request("GET", "/limit?limit=abc")
    assert bad.status == 400
    issue = bad.json()["data"]["issues"][0]
    assert issue["field"] is None and issue["type"] == "ValueError"
    assert "abc" in issue["message"]  # a callable's own message is the reason
    out_of_range = await client.request("GET", "/limit?limit=500")
    assert out_of_range.json()["data"]["issues"][0]["message"] == "limit must be in 1..100"


async def test_async_validator_and_false_result(connect: Any) -> None:
    client = await connect(build())
    assert (await client.request("POST", "/async", json={"ok": True})).json() == {"checked": True}
    bad = await client.request("POST", "/async", json={"ok": False})
    assert bad.status == 400 and bad.json()["data"]["issues"][0]["type"] == "TypeError"
    # True keeps the data as it is; False rejects it.
    assert (await client.request("POST", "/bool", json={"x": 1})).json() == {"x": 1}
    assert (await client.request("POST", "/bool", json={"y": 1})).status == 400


async def test_demo_limit_abc_is_400_not_500(connect: Any) -> None:
    client = await connect(build_demo())
    reply = await client.request("GET", "/api/items?limit=abc")
    assert reply.status == 400
    assert reply.json()["data"]["issues"][0]["field"] == "limit"
    for limit in ("0", "101"):
        assert (await client.request("GET", f"/api/items?limit={limit}")).status == 400
    ok = await client.request("GET", "/api/items?limit=2")
    assert ok.status == 200 and len(ok.json()) == 2
    assert len((await client.request("GET", "/api/items")).json()) == 3


def test_validation_error_is_chained_and_bugs_propagate() -> None:
    with pytest.raises(HTTPError) as info:
        validate_data({"limit": "x"}, parse_limit, "query")
    assert info.value.status == 400
    assert isinstance(info.value.__cause__, ValueError)

    def buggy(data: Any) -> Any:
        raise KeyError("a bug, not bad input")

    with pytest.raises(KeyError):
        validate_data({}, buggy)
    with pytest.raises(TypeError, match="pydantic model or a callable"):
        validate_data({}, 42)  # type: ignore[arg-type]


def test_sync_helpers_refuse_async_validators() -> None:
    async def check(data: Any) -> Any:
        return data

    with pytest.raises(TypeError, match="async"):
        validate_data({}, check, "query")


def test_pydantic_type_adapter_is_a_validator() -> None:
    adapter = pydantic.TypeAdapter(list[int])
    assert validate_data(["1", 2], adapter) == [1, 2]
    with pytest.raises(HTTPError) as info:
        validate_data(["x"], adapter)
    assert info.value.data["issues"][0]["field"] == "0"


def test_works_without_pydantic_installed() -> None:
    """In a fresh interpreter where ``import pydantic`` fails: no import, callables work."""
    script = textwrap.dedent(
        """
        import sys
        sys.modules["pydantic"] = None  # any import of it now raises ImportError
        from h3lab import H3
        from h3lab.testing import TestClient
        from h3lab.utils import get_validated_query
        from h3lab.examples.demo import build
        assert "pydantic" not in {m for m in sys.modules if sys.modules[m] is not None}
        app = H3()
        app.get("/n", lambda e: {"n": get_validated_query(e, lambda d: int(d["n"]))})
        with TestClient(app) as client:
            assert client.get("/n?n=4").json() == {"n": 4}
            bad = client.get("/n?n=four")
            assert bad.status_code == 400, bad.text
        with TestClient(build()) as client:
            assert client.get("/api/items?limit=abc").status_code == 400
        print("ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_invalid_input_names_fields() -> None:
    from h3lab.utils import InvalidInput

    def check(data: Any) -> Any:
        raise InvalidInput("bad page", limit="must be an int", offset="must be >= 0")

    with pytest.raises(HTTPError) as info:
        validate_data({}, check, "query")
    issues = info.value.data["issues"]
    assert [(i["field"], i["message"]) for i in issues] == [
        (None, "bad page"),
        ("limit", "must be an int"),
        ("offset", "must be >= 0"),
    ]
