"""Basic auth middleware (issue 12 item 5) on both transports."""

from __future__ import annotations

import asyncio
import base64
import hmac
import logging
from typing import Any

import pytest

from h3lab import H3
from h3lab.event import H3Event
from h3lab.utils import auth as auth_module
from h3lab.utils import basic_auth, require_basic_auth

PASSWORD = "correct horse battery staple"


def header(user: str, password: str, scheme: str = "Basic") -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"authorization": f"{scheme} {token}"}


def build(**options: Any) -> H3:
    app = H3()
    app.ran = 0  # type: ignore[attr-defined]
    options.setdefault("realm", "admin area")
    guard = basic_auth(**options)
    app.use("/admin", guard)

    @app.get("/admin/report")
    def report(event: H3Event) -> dict[str, Any]:
        app.ran += 1  # type: ignore[attr-defined]
        return {"user": event.context["basic_auth"]["username"]}

    app.get("/open", lambda e: "open")

    @app.get("/inline")
    async def inline(event: H3Event) -> str:
        user = await require_basic_auth(event, username="u", password="p")
        return f"hi {user}"

    return app


async def test_missing_wrong_and_right_credentials(connect: Any) -> None:
    app = build(username="admin", password=PASSWORD)
    client = await connect(app)
    missing = await client.request("GET", "/admin/report")
    assert missing.status == 401
    assert missing.header("www-authenticate") == 'Basic realm="admin area", charset="UTF-8"'
    for user, password in (("admin", "wrong"), ("root", PASSWORD), ("", ""), ("admin", "")):
        reply = await client.request("GET", "/admin/report", headers=header(user, password))
        assert reply.status == 401, (user, password)
        assert reply.header("www-authenticate")
    ok = await client.request("GET", "/admin/report", headers=header("admin", PASSWORD))
    assert ok.status == 200 and ok.json() == {"user": "admin"}
    assert app.ran == 1  # type: ignore[attr-defined]
    assert (await client.request("GET", "/open")).text == "open"  # outside the prefix


@pytest.mark.parametrize(
    "value",
    [
        "Bearer abc",
        "Basic",
        "Basic !!!!",
        "Basic " + base64.b64encode(b"no-colon").decode(),
        "Basic " + base64.b64encode(b"admin:" + PASSWORD.encode()).decode() + " extra",
    ],
)
async def test_malformed_authorization_is_401(connect: Any, value: str) -> None:
    client = await connect(build(username="admin", password=PASSWORD))
    reply = await client.request("GET", "/admin/report", headers={"authorization": value})
    assert reply.status == 401


async def test_scheme_is_case_insensitive_and_utf8(connect: Any) -> None:
    client = await connect(build(username="zoë", password="pässword"))
    reply = await client.request("GET", "/admin/report", headers=header("zoë", "pässword", "basic"))
    assert reply.status == 200 and reply.json() == {"user": "zoë"}


async def test_validate_callable_sync_and_async(connect: Any) -> None:
    seen: list[tuple[str, str]] = []

    def check(user: str, password: str) -> bool:
        seen.append((user, password))
        return user == "ann" and password == "pw"

    client = await connect(build(validate=check))
    assert (await client.request("GET", "/admin/report", headers=header("ann", "pw"))).status == 200
    assert (await client.request("GET", "/admin/report", headers=header("ann", "no"))).status == 401
    assert seen == [("ann", "pw"), ("ann", "no")]

    async def slow_check(user: str, password: str) -> bool:
        await asyncio.sleep(0)
        return password == "async-pw"

    client = await connect(build(validate=slow_check))
    good = await client.request("GET", "/admin/report", headers=header("x", "async-pw"))
    assert good.status == 200
    bad = await client.request("GET", "/admin/report", headers=header("x", "nope"))
    assert bad.status == 401


async def test_require_basic_auth_inside_a_handler(connect: Any) -> None:
    client = await connect(build(username="admin", password=PASSWORD))
    assert (await client.request("GET", "/inline")).status == 401
    assert (await client.request("GET", "/inline", headers=header("u", "p"))).text == "hi u"


async def test_comparisons_are_constant_time_and_both_always_run(
    connect: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth_module.hmac, "compare_digest", spy)
    client = await connect(build(username="admin", password=PASSWORD))
    await client.request("GET", "/admin/report", headers=header("intruder", "guess"))
    # The password is compared even though the user name was already wrong.
    assert calls == [(b"intruder", b"admin"), (b"guess", PASSWORD.encode())]


async def test_no_credentials_in_logs_or_bodies(connect: Any, caplog: Any) -> None:
    caplog.set_level(logging.DEBUG)
    client = await connect(build(username="admin", password=PASSWORD))
    reply = await client.request("GET", "/admin/report", headers=header("mallory", "hunter2"))
    assert reply.status == 401
    ok = await client.request("GET", "/admin/report", headers=header("admin", PASSWORD))
    assert ok.status == 200
    for secret in ("mallory", "hunter2", PASSWORD):
        assert secret not in caplog.text
        assert secret not in reply.text
    assert PASSWORD not in repr(auth_module._BasicAuth("admin", PASSWORD, None, "r"))


def test_realm_is_quoted_safely() -> None:
    challenge = auth_module._challenge('a "quoted" \\ realm\r\nX-Evil: 1')
    assert challenge["www-authenticate"] == (
        'Basic realm="a \\"quoted\\" \\\\ realmX-Evil: 1", charset="UTF-8"'
    )


def test_configuration_errors() -> None:
    with pytest.raises(ValueError, match="password"):
        basic_auth(username="admin")
    with pytest.raises(ValueError, match="':'"):
        basic_auth(username="a:b", password="x")
    with pytest.raises(TypeError, match="validate"):
        basic_auth(validate="yes")  # type: ignore[arg-type]
