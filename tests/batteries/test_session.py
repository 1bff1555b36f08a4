"""Sealed sessions and chunked cookies (issue 12 item 4)."""

from __future__ import annotations

import asyncio
import base64
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from h3lab import H3
from h3lab.event import H3Event
from h3lab.utils import get_chunked_cookie, set_chunked_cookie, use_session
from h3lab.utils import session as session_module
from h3lab.utils.seal import seal, unseal

SECRET = "s" * 16 + "e" * 16 + "c" * 8
OLD_SECRET = "o" * 40
OTHER_SECRET = "x" * 40


def build(password: Any = SECRET, **options: Any) -> H3:
    app = H3()
    options.setdefault("secure", False)  # the test transports speak plain http
    app.seen = []  # type: ignore[attr-defined]

    @app.get("/count")
    async def count(event: H3Event) -> dict[str, Any]:
        session = await use_session(event, password=password, **options)
        visits = session.data.get("visits", 0) + 1
        await session.update({"visits": visits})
        return {"id": session.id, "visits": visits}

    @app.get("/peek")
    async def peek(event: H3Event) -> dict[str, Any]:
        session = await use_session(event, password=password, **options)
        return {"id": session.id, "data": session.data}

    @app.post("/big")
    async def big(event: H3Event) -> dict[str, int]:
        size = int(event.query["size"])
        session = await use_session(event, password=password, **options)
        await session.update({"blob": "x" * size})
        return {"size": size}

    @app.get("/clear")
    async def clear(event: H3Event) -> dict[str, Any]:
        session = await use_session(event, password=password, **options)
        await session.clear()
        return {"id": session.id, "data": session.data}

    @app.get("/twice")
    async def twice(event: H3Event) -> dict[str, Any]:
        first = await use_session(event, password=password, **options)
        await first.update({"a": 1})
        second = await use_session(event, password=password, **options)
        await second.update(lambda data: {"b": data["a"] + 1})
        return {"same": first is second, "data": second.data}

    @app.get("/keep")
    async def keep(event: H3Event) -> str:
        app.seen.append(await use_session(event, password=password, **options))  # type: ignore[attr-defined]
        return "kept"

    return app


def set_cookie_names(reply: Any) -> list[str]:
    return [value.split("=", 1)[0] for value in reply.header_all("set-cookie")]


async def test_session_persists_across_requests(connect: Any) -> None:
    client = await connect(build())
    first = (await client.request("GET", "/count")).json()
    second = (await client.request("GET", "/count")).json()
    assert first["visits"] == 1 and second["visits"] == 2
    assert first["id"] == second["id"] and len(first["id"]) == 36  # a UUID
    assert client.cookie("h3").startswith("h3s1.")
    assert "visits" not in client.cookie("h3")  # sealed, not readable


async def test_fresh_session_is_sealed_at_once_with_secure_defaults(connect: Any) -> None:
    client = await connect(build(secure=True, max_age=600))
    reply = await client.request("GET", "/peek")
    assert reply.json()["data"] == {}
    (cookie,) = reply.header_all("set-cookie")
    attributes = [part.strip() for part in cookie.split(";")[1:]]
    assert {"HttpOnly", "Secure", "SameSite=Lax", "Path=/"} <= set(attributes)
    assert any(a.startswith("Expires=") for a in attributes)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda token: token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB"),  # tag
        lambda token: token[:20],  # truncated
        lambda token: "h3s1.!!!not-base64!!!",
        lambda token: "h3s1." + base64.urlsafe_b64encode(b"\0" * 60).decode(),
        lambda token: "garbage",
        lambda token: token.replace("h3s1.", "h3s2."),
    ],
    ids=["flipped-tag", "truncated", "bad-base64", "zero-bytes", "garbage", "wrong-version"],
)
async def test_tampered_cookie_gives_a_fresh_session(connect: Any, mangle: Any) -> None:
    client = await connect(build())
    first = (await client.request("GET", "/count")).json()
    token = client.cookie("h3")
    client.clear_cookies()
    reply = await client.request("GET", "/count", headers={"cookie": f"h3={mangle(token)}"})
    assert reply.status == 200
    assert reply.json()["visits"] == 1 and reply.json()["id"] != first["id"]
    assert "set-cookie" in {k for k, _ in reply.headers}


async def test_foreign_cookie_gives_a_fresh_session(connect: Any) -> None:
    # Sealed by another app (other password) and under another cookie name.
    other = seal({"id": "intruder", "created_at": time.time(), "data": {"admin": True}},
                 [OTHER_SECRET], context="h3")  # fmt: skip
    renamed = seal({"id": "intruder", "created_at": time.time(), "data": {"admin": True}},
                   [SECRET], context="other")  # fmt: skip
    client = await connect(build())
    for token in (other, renamed):
        reply = await client.request("GET", "/peek", headers={"cookie": f"h3={token}"})
        assert reply.json()["data"] == {} and reply.json()["id"] != "intruder"


async def test_expired_session_is_refused_server_side(
    connect: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = await connect(build(max_age=60))
    first = (await client.request("GET", "/count")).json()
    token = client.cookie("h3")
    client.clear_cookies()
    now = time.time()
    monkeypatch.setattr(session_module.time, "time", lambda: now + 61)
    # The browser would have dropped it; a client replaying it gets nothing.
    reply = await client.request("GET", "/count", headers={"cookie": f"h3={token}"})
    assert reply.json()["visits"] == 1 and reply.json()["id"] != first["id"]


async def test_key_rotation(connect: Any) -> None:
    old_app_client = await connect(build(password=OLD_SECRET))
    old = (await old_app_client.request("GET", "/count")).json()
    token = old_app_client.cookie("h3")
    rotated = await connect(build(password=[SECRET, OLD_SECRET]))
    reply = await rotated.request("GET", "/count", headers={"cookie": f"h3={token}"})
    assert reply.json() == {"id": old["id"], "visits": 2}  # opened with the old key
    resealed = reply.header("set-cookie").split(";")[0].split("=", 1)[1]
    assert unseal(resealed, [SECRET], context="h3")["data"] == {"visits": 2}  # new key
    assert unseal(resealed, [OLD_SECRET], context="h3") is None
    retired = await connect(build(password=SECRET))
    gone = await retired.request("GET", "/peek", headers={"cookie": f"h3={token}"})
    assert gone.json()["data"] == {}


async def test_large_session_is_chunked_and_rejoined(connect: Any) -> None:
    client = await connect(build())
    # 5000 characters seal to ~6.8 KB: two chunks, and the Cookie line that
    # carries them back stays under the server's 8 KiB limits.max_header_line.
    reply = await client.request("POST", "/big?size=5000")
    names = set_cookie_names(reply)
    count = len(names) - 1
    assert count >= 2
    assert names == ["h3"] + [f"h3.{n}" for n in range(1, count + 1)]
    assert client.cookie("h3") == f"__chunked__{count}"
    for value in reply.header_all("set-cookie"):
        assert len(value.split(";")[0]) < 4096  # what a browser keeps
    peek = await client.request("GET", "/peek")
    assert peek.json()["data"]["blob"] == "x" * 5000
    # Shrinking deletes the chunks it no longer needs.
    small = await client.request("POST", "/big?size=10")
    deleted = [v.split("=", 1)[0] for v in small.header_all("set-cookie") if "Max-Age=0" in v]
    assert deleted == [f"h3.{n}" for n in range(1, count + 1)]
    assert not client.cookie("h3").startswith("__chunked__")
    assert (await client.request("GET", "/peek")).json()["data"]["blob"] == "x" * 10


async def test_missing_chunk_gives_a_fresh_session(connect: Any) -> None:
    client = await connect(build())
    big = await client.request("POST", "/big?size=5000")
    client.clear_cookies()
    pairs = [value.split(";")[0] for value in big.header_all("set-cookie")]
    header = "; ".join(pair for pair in pairs if not pair.startswith("h3.2="))
    reply = await client.request("GET", "/peek", headers={"cookie": header})
    assert reply.json()["data"] == {}


async def test_clear_deletes_cookie_and_chunks(connect: Any) -> None:
    client = await connect(build())
    big = await client.request("POST", "/big?size=5000")
    chunks = int(client.cookie("h3").removeprefix("__chunked__"))
    client.clear_cookies()
    sent = "; ".join(value.split(";")[0] for value in big.header_all("set-cookie"))
    reply = await client.request("GET", "/clear", headers={"cookie": sent})
    assert reply.json() == {"id": None, "data": {}}
    deleted = [v.split("=", 1)[0] for v in reply.header_all("set-cookie")]
    assert deleted == ["h3"] + [f"h3.{n}" for n in range(1, chunks + 1)]
    assert all("Max-Age=0" in v for v in reply.header_all("set-cookie"))
    assert client.cookie("h3") in (None, "")


async def test_one_session_per_request_and_one_cookie(connect: Any) -> None:
    client = await connect(build())
    reply = await client.request("GET", "/twice")
    assert reply.json() == {"same": True, "data": {"a": 1, "b": 2}}
    assert set_cookie_names(reply) == ["h3"]  # updated three times, sent once


async def test_session_header_for_non_browser_clients(connect: Any) -> None:
    client = await connect(build())
    first = (await client.request("GET", "/count")).json()
    token = client.cookie("h3")
    client.clear_cookies()
    reply = await client.request(
        "GET", "/peek", headers={"x-h3-session": token, "cookie": "h3=junk"}
    )
    assert reply.json()["id"] == first["id"]


async def test_session_used_after_its_request_is_refused(connect: Any) -> None:
    app = build()
    client = await connect(app)
    await client.request("GET", "/keep")
    await client.request("GET", "/count")  # the pooled event serves another request
    with pytest.raises(RuntimeError, match="after its request ended"):
        await app.seen[0].update({"late": True})  # type: ignore[attr-defined]


def test_configuration_errors_name_the_option() -> None:
    event = H3Event()
    with pytest.raises(ValueError, match="password"):
        asyncio.run(use_session(event, password="short"))
    with pytest.raises(ValueError, match="max_age"):
        asyncio.run(use_session(H3Event(), password=SECRET, max_age=-1))
    with pytest.raises(ValueError, match="samesite"):
        asyncio.run(use_session(H3Event(), password=SECRET, samesite="sometimes"))
    with pytest.raises(ValueError, match="password"):
        asyncio.run(use_session(H3Event(), password=[]))


def test_seal_round_trip_and_context_binding() -> None:
    token = seal({"a": [1, "é"]}, [SECRET], context="h3")
    assert unseal(token, [SECRET], context="h3") == {"a": [1, "é"]}
    assert unseal(token, [SECRET], context="h4") is None
    assert unseal(token, [OTHER_SECRET], context="h3") is None
    assert seal({"a": 1}, [SECRET]) != seal({"a": 1}, [SECRET])  # fresh salt and nonce


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_unseal_never_raises_on_hostile_input(token: str) -> None:
    assert unseal(token, [SECRET], context="h3") is None
    assert unseal("h3s1." + token, [SECRET], context="h3") is None


def test_chunked_cookie_helpers_on_an_event() -> None:
    event = H3Event()
    set_chunked_cookie(event, "big", "a" * 25, chunk_max_length=10, httponly=True)
    values = [v for k, v in event.response_headers if k == "set-cookie"]
    assert [v.split(";")[0] for v in values] == [
        "big=__chunked__3",
        "big.1=aaaaaaaaaa",
        "big.2=aaaaaaaaaa",
        "big.3=aaaaa",
    ]
    reader = H3Event()
    reader._raw_headers = [(b"cookie", "; ".join(v.split(";")[0] for v in values).encode())]
    assert get_chunked_cookie(reader, "big") == "a" * 25
    with pytest.raises(ValueError, match="chunks"):
        set_chunked_cookie(H3Event(), "big", "a" * 101, chunk_max_length=1)
    forged = H3Event()
    forged._raw_headers = [(b"cookie", b"big=__chunked__999")]
    assert get_chunked_cookie(forged, "big") is None


# -- idle_timeout (h3's idleTimeout) -----------------------------------------------


class Clock:
    """``time.time`` as the session module sees it, moved by hand."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now = time.time()
        monkeypatch.setattr(session_module.time, "time", lambda: self.now)


async def visit(client: Any, path: str, token: str | None) -> tuple[dict[str, Any], str | None]:
    """One request carrying ``token`` by hand (the jar is bypassed, so that
    only the server's clock decides); the reply and the token to send next."""
    client.clear_cookies()
    headers = {"cookie": f"h3={token}"} if token else {}
    reply = await client.request("GET", path, headers=headers)
    cookie = reply.header("set-cookie")
    if cookie is not None:
        token = cookie.split(";", 1)[0].removeprefix("h3=")
    return {**reply.json(), "resealed": cookie is not None}, token


async def test_idle_timeout_slides_and_ends_an_idle_session(
    connect: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock(monkeypatch)
    client = await connect(build(idle_timeout=100))
    first, token = await visit(client, "/count", None)
    assert first["visits"] == 1
    clock.now += 40  # under half the window: read, not resealed (h3's shouldSlide)
    seen, token = await visit(client, "/peek", token)
    assert seen["data"] == {"visits": 1} and not seen["resealed"]
    clock.now += 20  # 60 s idle: past half the window, the read reseals it
    seen, token = await visit(client, "/peek", token)
    assert seen["data"] == {"visits": 1} and seen["resealed"]
    clock.now += 90  # 150 s after the first seal, 90 after the last: still alive
    seen, token = await visit(client, "/peek", token)
    assert seen["id"] == first["id"] and seen["data"] == {"visits": 1}
    clock.now += 101  # idle for longer than the window: a fresh session
    seen, token = await visit(client, "/peek", token)
    assert seen["id"] != first["id"] and seen["data"] == {}


async def test_max_age_caps_an_active_session_under_idle_timeout(
    connect: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock(monkeypatch)
    client = await connect(build(idle_timeout=100, max_age=120))
    first, token = await visit(client, "/count", None)
    for _ in range(2):
        clock.now += 55  # active: every read slides the idle window
        seen, token = await visit(client, "/peek", token)
        assert seen["id"] == first["id"]
    clock.now += 15  # 125 s after creation: past max_age however active
    seen, token = await visit(client, "/peek", token)
    assert seen["id"] != first["id"]


async def test_idle_timeout_cookie_expiry_and_header_sessions(
    connect: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock(monkeypatch)
    client = await connect(build(idle_timeout=100, max_age=1000))
    reply = await client.request("GET", "/count")
    cookie = reply.header("set-cookie") or ""
    expires = next(p.strip() for p in cookie.split(";") if p.strip().startswith("Expires="))
    when = datetime.strptime(expires.removeprefix("Expires="), "%a, %d %b %Y %H:%M:%S GMT")
    # The cookie expires with the idle window (the earlier of the two).
    assert abs(when.replace(tzinfo=UTC).timestamp() - (clock.now + 100)) < 2
    token = cookie.split(";", 1)[0].removeprefix("h3=")
    # Sent in the header, a session is never resealed: it ends idle_timeout after its seal.
    client.clear_cookies()
    clock.now += 60
    reply = await client.request("GET", "/peek", headers={"x-h3-session": token})
    assert reply.json()["data"] == {"visits": 1} and reply.header("set-cookie") is None
    clock.now += 50
    reply = await client.request("GET", "/peek", headers={"x-h3-session": token})
    assert reply.json()["data"] == {}


def test_idle_timeout_errors_name_the_option() -> None:
    for bad in (0, -1, True, "60"):
        with pytest.raises(ValueError, match="idle_timeout"):
            asyncio.run(use_session(H3Event(), password=SECRET, idle_timeout=bad))
