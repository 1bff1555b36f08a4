"""Section 1: request framing and parsing, over raw sockets, for every preset.

Each row of ``h3lab.bench.hardening.hostile.CASES`` is sent as raw bytes, followed by a
complete ``GET /smuggled`` request. The test asserts the exact status, that
the connection is closed when it must be (read until EOF), that the smuggled
request was never interpreted (no second response, its handler never ran),
and that a normal request on a new connection then succeeds.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from h3lab.bench.hardening.hostile import CASE_IDS, CASES, Case
from tests.hostile.conftest import PRESET_NAMES, body_of, exchange, still_serves

CLOSE_OK = b"GET /ok HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"


@pytest.mark.parametrize("preset", PRESET_NAMES)
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
async def test_hostile_request(serving: Any, preset: str, case: Case) -> None:
    server, state = await serving(preset)
    if case.closes:
        result = await exchange(server.port, case.wire)
        expected = [case.status] if case.status is not None else []
        assert result.statuses == expected, result.data[:300]
        assert result.closed, "the connection must be closed after this request"
        if case.status is not None and case.status >= 400:
            head, _, body = result.data.partition(b"\r\n\r\n")
            assert b"connection: close" in head.lower()
            assert json.loads(body)["status"] == case.status
    else:
        # Served, and the connection stays usable: a second request is answered.
        result = await exchange(server.port, case.wire + CLOSE_OK)
        assert result.statuses == [case.status, 200], result.data[:300]
        assert result.data.endswith(b"\r\n\r\nok") and result.closed
    assert state["smuggled"] == 0, "bytes after a refusal were interpreted as a request"
    await still_serves(server)


@pytest.mark.parametrize("preset", PRESET_NAMES)
async def test_get_body_is_consumed_never_parsed_as_a_request(serving: Any, preset: str) -> None:
    server, state = await serving(preset)
    hidden = b"GET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n"
    payload = b"GET /ok HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n%s" % (len(hidden), hidden)
    result = await exchange(server.port, payload + CLOSE_OK)
    assert result.statuses == [200, 200] and result.closed
    assert result.data.count(b"\r\n\r\nok") == 2 and state["smuggled"] == 0
    await still_serves(server)


@pytest.mark.parametrize("preset", PRESET_NAMES)
async def test_error_after_pipelined_requests_keeps_their_answers(
    serving: Any, preset: str
) -> None:
    # Valid requests before a bad one are answered in order, the bad one gets
    # its 400 after them, and nothing after it is interpreted.
    server, state = await serving(preset)
    payload = (
        b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n"
        b"GET /users/7 HTTP/1.1\r\nHost: t\r\n\r\n"
        b"GET /ok HTTP/1.1\r\nHost : t\r\n\r\n"
    )
    result = await exchange(server.port, payload + b"GET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n")
    assert result.statuses == [200, 200, 400] and result.closed
    assert result.data.index(b"slow") < result.data.index(b'{"id":"7"}')
    assert state["smuggled"] == 0
    await still_serves(server)


@pytest.mark.parametrize("preset", PRESET_NAMES)
async def test_expect_100_continue(serving: Any, preset: str) -> None:
    server, _ = await serving(preset)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(
            b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"
        )
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(b"body")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
        assert head.startswith(b"HTTP/1.1 200") and await reader.readexactly(4) == b"body"
    finally:
        writer.close()
    await still_serves(server)


@pytest.mark.parametrize("preset", PRESET_NAMES)
async def test_no_100_continue_without_a_body_or_for_http10(serving: Any, preset: str) -> None:
    server, _ = await serving(preset)
    for request in (
        b"GET /ok HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
        b"POST /echo HTTP/1.0\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\nab",
    ):
        result = await exchange(server.port, request)
        assert b"100 Continue" not in result.data and result.statuses == [200]
    await still_serves(server)


@pytest.mark.parametrize("preset", PRESET_NAMES)
async def test_options_asterisk_lists_the_methods(serving: Any, preset: str) -> None:
    server, _ = await serving(preset)
    result = await exchange(
        server.port, b"OPTIONS * HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    head = result.data.lower()
    assert result.statuses == [200] and b"\r\nallow: get, head, post" in head
    assert b"content-length: 0" in head and body_of(result.data) == b""
    await still_serves(server)


@pytest.mark.parametrize("preset", PRESET_NAMES)
async def test_chunked_trailers_never_join_the_headers(serving: Any, preset: str) -> None:
    server, _ = await serving(preset)
    result = await exchange(
        server.port,
        b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\n" + CLOSE_OK,
    )
    assert result.statuses == [200, 200] and b"\r\n\r\nhello" in result.data
    await still_serves(server)


@pytest.mark.parametrize("preset", PRESET_NAMES)
async def test_absolute_form_routes_by_path_and_keeps_the_query(serving: Any, preset: str) -> None:
    server, _ = await serving(preset)
    result = await exchange(
        server.port,
        b"GET https://example.com:8443/slow-echo/9?a=b HTTP/1.1\r\nHost: t\r\n"
        b"Connection: close\r\n\r\n",
    )
    assert result.statuses == [200]
    assert json.loads(body_of(result.data)) == {"id": "9", "q": "a=b"}
    await still_serves(server)
