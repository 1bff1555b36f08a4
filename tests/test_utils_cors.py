from __future__ import annotations

import importlib
import re
from typing import Any

import pytest

from h3lab.event import H3Event
from h3lab.response import Response, to_response
from h3lab.utils.cors import CorsOptions, append_cors_headers, cors, is_preflight

# The module (h3lab.utils re-exports the function under the same name).
cors_module = importlib.import_module("h3lab.utils.cors")

ORIGIN = "https://a.example"


def make_event(method: str = "GET", **headers: str) -> H3Event:
    event = H3Event()
    event.method = method
    event._raw_headers = [
        (name.replace("_", "-").encode(), value.encode()) for name, value in headers.items()
    ]
    return event


def preflight_event(origin: str = ORIGIN, **extra: str) -> H3Event:
    return make_event("OPTIONS", Origin=origin, Access_Control_Request_Method="PUT", **extra)


class Downstream:
    """A fake ``next`` that records whether the chain continued."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self) -> Any:
        self.calls += 1
        return "downstream"


def header_dict(headers: list[tuple[str, str]]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers}


async def run(mw: Any, event: H3Event) -> tuple[Any, Downstream]:
    downstream = Downstream()
    return await mw(event, downstream), downstream


# -- preflight ---------------------------------------------------------------------------


def test_is_preflight() -> None:
    assert is_preflight(preflight_event())
    assert not is_preflight(make_event("OPTIONS", Origin=ORIGIN))
    assert not is_preflight(make_event("OPTIONS", Access_Control_Request_Method="PUT"))
    assert not is_preflight(make_event("POST", Origin=ORIGIN, Access_Control_Request_Method="PUT"))


async def test_preflight_wildcard_answered_without_next() -> None:
    result, downstream = await run(cors(max_age=600), preflight_event())
    assert downstream.calls == 0
    assert isinstance(result, Response)
    assert result.status == 204
    assert result.body == b""
    # h3 v2: no Access-Control-Request-Headers, no Allow-Headers (never a bare '*').
    assert header_dict(result.headers) == {
        # "*" here, the requested headers echoed when there are some: it varies.
        "vary": "Access-Control-Request-Headers",
        "access-control-allow-origin": "*",
        "access-control-allow-methods": "*",
        "access-control-max-age": "600",
    }


async def test_preflight_echoes_requested_headers_for_wildcard() -> None:
    event = preflight_event(Access_Control_Request_Headers="authorization, x-trace")
    result, _ = await run(cors(), event)
    assert result.header("access-control-allow-headers") == "authorization, x-trace"
    # The answer depends on that request header: a shared cache must key on it.
    assert result.header("vary") == "Access-Control-Request-Headers"
    listed = preflight_event(Access_Control_Request_Headers="x-trace")
    result, _ = await run(cors(origin=[ORIGIN]), listed)
    assert result.header("vary") == "Origin, Access-Control-Request-Headers"


async def test_preflight_listed_origin_and_explicit_lists() -> None:
    mw = cors(
        origin=[ORIGIN, "https://b.example"],
        methods=["get", "put"],
        allow_headers=["content-type", "x-token"],
    )
    result, downstream = await run(mw, preflight_event())
    assert downstream.calls == 0
    assert header_dict(result.headers) == {
        "vary": "Origin",
        "access-control-allow-origin": ORIGIN,
        "access-control-allow-methods": "GET, PUT",
        "access-control-allow-headers": "content-type, x-token",
    }


async def test_preflight_disallowed_origin_gets_204_without_allow_headers() -> None:
    result, downstream = await run(cors(origin=[ORIGIN]), preflight_event("https://evil.example"))
    assert downstream.calls == 0
    assert result.status == 204
    assert header_dict(result.headers) == {"vary": "Origin"}


async def test_preflight_with_credentials_echoes_method_and_headers() -> None:
    event = preflight_event(Access_Control_Request_Headers="authorization")
    result, _ = await run(cors(origin=[ORIGIN], credentials=True), event)
    headers = header_dict(result.headers)
    assert headers["access-control-allow-origin"] == ORIGIN
    assert headers["access-control-allow-credentials"] == "true"
    assert headers["access-control-allow-methods"] == "PUT"
    assert headers["access-control-allow-headers"] == "authorization"
    assert headers["vary"] == (
        "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"
    )
    assert "*" not in headers.values()


async def test_credentials_with_wildcard_origin_is_a_literal_star() -> None:
    """h3 v2: '*' is sent as is (browsers refuse it with credentials) and a
    warning says so; the request's origin is never echoed for '*'."""
    result, _ = await run(cors(credentials=True), preflight_event())
    assert result.header("access-control-allow-origin") == "*"
    event = make_event("GET", Origin=ORIGIN)
    await run(cors(credentials=True), event)
    headers = header_dict(event.response_headers)
    assert headers["access-control-allow-origin"] == "*"
    assert "access-control-expose-headers" not in headers  # '*' is useless with credentials
    assert "vary" not in headers
    # Warned once per process (h3 v2 warns too).
    assert any("origin='*'" in message for message in cors_module._warned)
    assert any("expose_headers='*'" in message for message in cors_module._warned)


async def test_options_without_request_method_goes_downstream() -> None:
    result, downstream = await run(cors(), make_event("OPTIONS", Origin=ORIGIN))
    assert (result, downstream.calls) == ("downstream", 1)


# -- actual requests ---------------------------------------------------------------------


async def test_simple_request_allowed_origin_sets_headers_and_continues() -> None:
    event = make_event("GET", Origin=ORIGIN)
    mw = cors(origin=[ORIGIN], expose_headers=["x-total", "x-page"])
    result, downstream = await run(mw, event)
    assert (result, downstream.calls) == ("downstream", 1)
    assert header_dict(event.response_headers) == {
        "vary": "Origin",
        "access-control-allow-origin": ORIGIN,
        "access-control-expose-headers": "x-total, x-page",
    }


async def test_simple_request_wildcard_has_no_vary() -> None:
    event = make_event("POST", Origin=ORIGIN)
    await run(cors(), event)
    assert event.response_headers == [
        ("access-control-allow-origin", "*"),
        ("access-control-expose-headers", "*"),  # h3 v2's default
    ]


async def test_simple_request_disallowed_origin_continues_without_cors_headers() -> None:
    event = make_event("GET", Origin="https://evil.example")
    result, downstream = await run(cors(origin=[ORIGIN]), event)
    assert (result, downstream.calls) == ("downstream", 1)
    assert event.response_headers == [("vary", "Origin")]


async def test_request_without_origin_still_varies_for_listed_origins() -> None:
    event = make_event("GET")
    await run(cors(origin=[ORIGIN]), event)
    assert event.response_headers == [("vary", "Origin")]
    plain = make_event("GET")
    await run(cors(), plain)
    # The '*' policy answers the same to everyone, Origin or not (h3 v2).
    assert header_dict(plain.response_headers) == {
        "access-control-allow-origin": "*",
        "access-control-expose-headers": "*",
    }


async def test_credentials_echo_a_listed_origin() -> None:
    event = make_event("GET", Origin=ORIGIN)
    await run(cors(origin=[ORIGIN], credentials=True), event)
    headers = header_dict(event.response_headers)
    assert headers["access-control-allow-origin"] == ORIGIN
    assert headers["access-control-allow-credentials"] == "true"
    assert headers["vary"] == "Origin"


async def test_credentials_wildcard_never_echoes_null_origin() -> None:
    event = make_event("GET", Origin="null")
    await run(cors(credentials=True), event)
    assert header_dict(event.response_headers)["access-control-allow-origin"] == "*"
    uncredentialed = make_event("GET", Origin="null")
    await run(cors(), uncredentialed)
    assert header_dict(uncredentialed.response_headers)["access-control-allow-origin"] == "*"


@pytest.mark.parametrize(
    ("policy", "origin", "allowed"),
    [
        (ORIGIN, ORIGIN, True),
        (ORIGIN, "https://a.example.evil.com", False),
        ([re.compile(r"https://[a-z]+\.example")], "https://b.example", True),
        ([re.compile(r"https://[a-z]+\.example")], "https://b.example.evil.com", False),
        (lambda o: o.endswith(".trusted.dev"), "https://x.trusted.dev", True),
        (lambda o: o.endswith(".trusted.dev"), "https://x.trusted.dev.evil", False),
    ],
)
async def test_origin_policies(policy: Any, origin: str, allowed: bool) -> None:
    event = make_event("GET", Origin=origin)
    await run(cors(origin=policy), event)
    got = header_dict(event.response_headers).get("access-control-allow-origin")
    assert got == (origin if allowed else None)


async def test_existing_vary_is_kept_and_not_duplicated() -> None:
    event = make_event("GET", Origin=ORIGIN)
    event.append_header("Vary", "Accept-Encoding")
    mw = cors(origin=[ORIGIN])
    await run(mw, event)
    await run(mw, event)  # e.g. the middleware mounted twice
    assert [v for k, v in event.response_headers if k.lower() == "vary"] == [
        "Accept-Encoding",
        "Origin",
    ]


async def test_headers_reach_the_final_response() -> None:
    event = make_event("GET", Origin=ORIGIN)
    result, _ = await run(cors(origin=[ORIGIN]), event)
    response = to_response(event, result)
    assert response.header("access-control-allow-origin") == ORIGIN


def test_append_cors_headers_directly() -> None:
    event = make_event("GET", Origin=ORIGIN)
    append_cors_headers(event, CorsOptions.build(origin=[ORIGIN], credentials=True))
    assert header_dict(event.response_headers)["access-control-allow-credentials"] == "true"


def test_configuration_is_validated() -> None:
    with pytest.raises(ValueError, match="expose_headers"):
        cors(expose_headers=["x-a\r\nSet-Cookie: a=1"])
    with pytest.raises(ValueError, match="methods"):
        cors(methods=["GET\n"])
    with pytest.raises(TypeError, match="max_age"):
        cors(max_age="600")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="origin"):
        cors(origin=42)  # type: ignore[arg-type]


async def test_origin_list_is_copied_at_build_time() -> None:
    origins = [ORIGIN]
    mw = cors(origin=origins)
    origins.append("https://evil.example")
    event = make_event("GET", Origin="https://evil.example")
    await run(mw, event)
    assert "access-control-allow-origin" not in header_dict(event.response_headers)
