"""Request info, cache headers, html, HTTPError headers/cause (issue 12 item 8)."""

from __future__ import annotations

import base64
import logging
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from h3lab import H3, HTTPError
from h3lab.event import H3Event
from h3lab.examples.demo import build as build_demo
from h3lab.utils import (
    get_request_host,
    get_request_ip,
    get_request_protocol,
    get_request_url,
    handle_cache_headers,
    html,
    not_modified,
    raw,
)

MODIFIED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def build() -> H3:
    app = H3()

    @app.get("/info/:name")
    def info(event: H3Event) -> dict[str, Any]:
        return {
            "url": event.url,
            "host": get_request_host(event),
            "ip": get_request_ip(event),
            "proto": get_request_protocol(event),
            "proxied": {
                "url": get_request_url(event, trust_proxy=True),
                "ip": get_request_ip(event, trust_proxy=True),
                "ip2": get_request_ip(event, trust_proxy=2),
            },
        }

    @app.get("/doc")
    def doc(event: H3Event) -> Any:
        if handle_cache_headers(event, etag='W/"v7"', last_modified=MODIFIED, max_age=30):
            return not_modified()
        return {"doc": 7}

    @app.get("/private")
    def private(event: H3Event) -> Any:
        if handle_cache_headers(event, last_modified=MODIFIED.timestamp(), cache_control="private"):
            return None  # event.status is 304 already
        return "private"

    @app.get("/page")
    def page(event: H3Event) -> Any:
        return html(
            "<h1>{title}</h1><div>{body}</div>",
            title=event.query.get("t", ""),
            body=raw("<b>trusted</b>"),
        )

    @app.get("/fail")
    def fail(event: H3Event) -> None:
        try:
            {}["missing"]
        except KeyError as exc:
            raise HTTPError(
                503, "Try later", {"why": "maintenance"}, headers={"retry-after": "120"}, cause=exc
            ) from None

    return app


async def test_url_host_ip_and_protocol(connect: Any) -> None:
    client = await connect(build())
    reply = await client.request("GET", "/info/a%20b?x=1&y=a%20b")
    info = reply.json()
    if client.kind == "builtin":
        host = client.url.split("://", 1)[1]
        assert info["ip"] == "127.0.0.1"
    else:
        host = "testserver"
        assert info["ip"] == "testclient"
    assert info["url"] == f"http://{host}/info/a%20b?x=1&y=a%20b"  # as sent, still encoded
    assert info["host"] == host and info["proto"] == "http"
    # No forwarded headers: trusting a proxy changes nothing.
    assert info["proxied"]["url"] == info["url"] and info["proxied"]["ip"] == info["ip"]


async def test_forwarded_headers_only_when_trusted(connect: Any) -> None:
    client = await connect(build())
    reply = await client.request(
        "GET",
        "/info/x",
        headers={
            "x-forwarded-for": "6.6.6.6, 203.0.113.7",  # client-written, then the proxy's view
            "x-forwarded-host": "public.example",
            "x-forwarded-proto": "https",
        },
    )
    info = reply.json()
    assert "public.example" not in info["url"] and info["ip"] != "203.0.113.7"  # untrusted
    assert info["proxied"]["url"] == "https://public.example/info/x"
    assert info["proxied"]["ip"] == "203.0.113.7"  # one trusted hop: the rightmost entry
    assert info["proxied"]["ip2"] == "6.6.6.6"  # two trusted hops


async def test_cache_headers_and_304(connect: Any) -> None:
    client = await connect(build())
    first = await client.request("GET", "/doc")
    assert first.status == 200 and first.json() == {"doc": 7}
    assert first.header("etag") == 'W/"v7"'
    assert first.header("last-modified") == "Fri, 02 Jan 2026 03:04:05 GMT"
    assert first.header("cache-control") == "public, max-age=30, s-maxage=30"
    for condition in ('"v7"', 'W/"v7"', '"other", W/"v7"', "*"):
        again = await client.request("GET", "/doc", headers={"if-none-match": condition})
        assert again.status == 304, condition
        assert again.body == b""
        assert again.header("etag") == 'W/"v7"'  # a 304 repeats the validators
        assert again.header("cache-control") == "public, max-age=30, s-maxage=30"
    miss = await client.request("GET", "/doc", headers={"if-none-match": '"v6"'})
    assert miss.status == 200
    # If-None-Match wins over If-Modified-Since (RFC 9110 §13.1.3).
    both = await client.request(
        "GET", "/doc", headers={"if-none-match": '"v6"', "if-modified-since": _http(MODIFIED)}
    )
    assert both.status == 200


async def test_if_modified_since(connect: Any) -> None:
    client = await connect(build())
    fresh = await client.request("GET", "/private", headers={"if-modified-since": _http(MODIFIED)})
    assert fresh.status == 304 and fresh.header("cache-control") == "private"
    older = datetime(2025, 1, 1, tzinfo=UTC)
    stale = await client.request("GET", "/private", headers={"if-modified-since": _http(older)})
    assert stale.status == 200 and stale.text == "private"
    junk = await client.request("GET", "/private", headers={"if-modified-since": "yesterday"})
    assert junk.status == 200


def _http(moment: datetime) -> str:
    return format_datetime(moment, usegmt=True)


async def test_html_escapes_values(connect: Any) -> None:
    client = await connect(build())
    reply = await client.request("GET", "/page?t=%3Cscript%3E%22x%22")
    assert reply.header("content-type") == "text/html; charset=utf-8"
    assert reply.text == "<h1>&lt;script&gt;&quot;x&quot;</h1><div><b>trusted</b></div>"


async def test_http_error_headers_and_cause(connect: Any, caplog: Any) -> None:
    caplog.set_level(logging.ERROR, logger="h3lab.error")
    client = await connect(build())
    reply = await client.request("GET", "/fail")
    assert reply.status == 503
    assert reply.header("retry-after") == "120"
    assert reply.json() == {"status": 503, "message": "Try later", "data": {"why": "maintenance"}}
    assert "missing" not in reply.text  # the cause is for logs, not for clients
    assert caplog.records == []  # an HTTPError is an answer, not an unhandled error


def test_http_error_cause_is_chained() -> None:
    cause = KeyError("k")
    error = HTTPError(400, "bad", cause=cause)
    assert error.__cause__ is cause
    assert HTTPError(400).__cause__ is None


async def test_demo_whoami_remote_is_an_object(connect: Any) -> None:
    client = await connect(build_demo())
    info = (await client.request("GET", "/whoami")).json()
    assert isinstance(info["remote"], dict) and set(info["remote"]) == {"ip", "port"}
    if client.kind == "builtin":
        assert info["remote"]["ip"] == "127.0.0.1" and isinstance(info["remote"]["port"], int)
        assert info["url"] == client.url + "/whoami"


async def test_demo_sessions_auth_and_cache(connect: Any) -> None:
    client = await connect(build_demo())
    assert (await client.request("GET", "/visits")).json()["visits"] == 1
    assert (await client.request("GET", "/visits")).json()["visits"] == 2
    assert (await client.request("GET", "/admin")).status == 401
    token = base64.b64encode(b"admin:demo").decode()
    admin = await client.request("GET", "/admin", headers={"authorization": f"Basic {token}"})
    assert admin.status == 200 and "Signed in as admin" in admin.text
    cached = await client.request("GET", "/cached")
    again = await client.request("GET", "/cached", headers={"if-none-match": cached.header("etag")})
    assert again.status == 304


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"etag": 'a"b'}, "etag"),
        ({"max_age": -1}, "max_age"),
        ({"last_modified": "not a date"}, "last_modified"),
        ({"cache_control": "x\r\ny"}, "cache_control"),
    ],
)
def test_cache_header_arguments_are_checked(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        handle_cache_headers(H3Event(), **kwargs)


def test_trust_proxy_value_is_checked() -> None:
    with pytest.raises(ValueError, match="trust_proxy"):
        get_request_ip(H3Event(), trust_proxy=-1)


@settings(max_examples=200, deadline=None)
@given(
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=60),
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=40),
)
def test_conditional_headers_never_raise(if_none_match: str, if_modified_since: str) -> None:
    event = H3Event()
    event._raw_headers = [
        (b"if-none-match", if_none_match.encode("latin-1")),
        (b"if-modified-since", if_modified_since.encode("latin-1")),
    ]
    fresh = handle_cache_headers(event, etag='"v1"', last_modified=MODIFIED)
    assert fresh is (event.status == 304)
    if if_none_match.strip() in ('"v1"', 'W/"v1"', "*"):
        assert fresh
