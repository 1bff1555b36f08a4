"""Section 2: limits counted as bytes arrive, over raw sockets, for every preset.

The one-shot variants (a 9 KiB target, 101 headers, a 2 MiB Content-Length...)
are rows of the case table (test_framing). These are the ones where *when*
the refusal comes matters: a head trickled in small pieces must be refused
as soon as a cap is crossed, with the server holding no more than the cap.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from tests.hostile.conftest import PRESET_NAMES, exchange, statuses, still_serves


async def trickle_until_answered(
    port: int, head: bytes, piece: bytes, max_bytes: int
) -> tuple[bytes, int, bool]:
    """Send ``head`` then ``piece`` repeatedly until the server answers.

    Returns (answer, bytes of ``piece`` sent before it came, closed).
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    sent = 0
    answer = b""
    try:
        writer.write(head)
        while sent < max_bytes:
            try:
                writer.write(piece)
                await writer.drain()
            except (ConnectionError, OSError):
                break
            sent += len(piece)
            try:
                answer = await asyncio.wait_for(reader.read(65536), 0.002)
            except TimeoutError:
                continue
            break
        while True:  # the rest of the answer, then EOF
            try:
                chunk = await asyncio.wait_for(reader.read(65536), 3)
            except (TimeoutError, ConnectionError, OSError):
                return answer, sent, False
            if not chunk:
                return answer, sent, True
            answer += chunk
    finally:
        writer.close()


@pytest.mark.parametrize("preset", PRESET_NAMES)
async def test_trickled_megabyte_header_refused_at_the_line_cap(serving: Any, preset: str) -> None:
    server, _ = await serving(preset)
    answer, sent, closed = await trickle_until_answered(
        server.port, b"GET /ok HTTP/1.1\r\nHost: t\r\nX-Big: ", b"v" * 512, 1024 * 1024
    )
    assert statuses(answer) == [431] and closed
    # Refused as soon as the 8 KiB line cap was crossed (a few pieces of slack
    # for the server's read and the ticker), not at a megabyte.
    assert sent <= 8 * 1024 + 16 * 512, sent
    await still_serves(server)


@pytest.mark.parametrize("preset", PRESET_NAMES)
async def test_trickled_small_headers_refused_at_the_section_cap(serving: Any, preset: str) -> None:
    server, _ = await serving(preset)
    line = b"X-Pad: " + b"v" * 200 + b"\r\n"  # 209 bytes: 100 of them exceed 32 KiB? no: 20 KiB
    answer, sent, closed = await trickle_until_answered(
        server.port,
        b"GET /ok HTTP/1.1\r\nHost: t\r\n",
        line * 4,
        1024 * 1024,
    )
    assert statuses(answer) == [431] and closed
    # 101 fields or 32 KiB, whichever first: well before a megabyte.
    assert sent <= 40 * 1024, sent
    await still_serves(server)


@pytest.mark.parametrize("preset", PRESET_NAMES)
async def test_trickled_target_refused_at_the_target_cap(serving: Any, preset: str) -> None:
    server, _ = await serving(preset)
    answer, sent, closed = await trickle_until_answered(
        server.port, b"GET /", b"a" * 512, 1024 * 1024
    )
    assert statuses(answer) == [414] and closed
    assert sent <= 8 * 1024 + 16 * 512, sent
    await still_serves(server)


@pytest.mark.parametrize("preset", PRESET_NAMES)
async def test_head_section_memory_is_bounded_while_it_arrives(serving: Any, preset: str) -> None:
    # While a head arrives, the connection's count of buffered head bytes
    # never exceeds the caps (plus one read).
    server, _ = await serving(preset, **{"limits.max_header_line": 2048})
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(b"GET /ok HTTP/1.1\r\nHost: t\r\nX: ")
        for _ in range(3):
            writer.write(b"v" * 500)
            await writer.drain()
            await asyncio.sleep(0.01)
        conn = next(iter(server.connections))
        assert 1500 <= conn._hdr_line <= 2048, conn._hdr_line
        writer.write(b"v" * 1000)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(65536), 2)
        assert statuses(answer) == [431]
    finally:
        writer.close()
    await still_serves(server)


@pytest.mark.parametrize("preset", PRESET_NAMES)
async def test_body_refused_while_it_streams(serving: Any, preset: str) -> None:
    # A chunked body with no declared size is cut at the body cap as it
    # arrives, not after it is complete.
    server, _ = await serving(preset, **{"limits.max_body_size": 64 * 1024})
    answer, sent, closed = await trickle_until_answered(
        server.port,
        b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"400\r\n" + b"x" * 1024 + b"\r\n",
        4 * 1024 * 1024,
    )
    assert statuses(answer) == [413] and closed
    assert sent <= 64 * 1024 + 64 * 1030, sent
    await still_serves(server)


@pytest.mark.parametrize("preset", PRESET_NAMES)
async def test_one_byte_chunks_cost_linear_time(serving: Any, preset: str) -> None:
    server, _ = await serving(preset)

    async def post(n: int) -> float:
        body = b"1\r\nx\r\n" * n + b"0\r\n\r\n"
        started = time.perf_counter()
        result = await exchange(
            server.port,
            b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
            b"Connection: close\r\n\r\n" + body,
            timeout=20,
        )
        assert result.statuses == [200] and result.data.endswith(b"\r\n\r\n" + b"x" * n)
        return time.perf_counter() - started

    await post(1000)  # warm up
    small = min([await post(10_000) for _ in range(2)])
    large = min([await post(80_000) for _ in range(2)])
    # 8x the chunks: linear is ~8x; quadratic would be ~64x. Generous for a noisy box.
    assert large < small * 24 + 0.5, (small, large)
    await still_serves(server)


@pytest.mark.parametrize("preset", PRESET_NAMES)
async def test_chunk_extension_flood_is_bounded(serving: Any, preset: str) -> None:
    # Chunk extensions carry no data, so the body cap alone would not bound
    # them: the chunked framing overhead has its own cap.
    server, _ = await serving(preset, **{"limits.max_chunked_overhead": 64 * 1024})
    answer, sent, closed = await trickle_until_answered(
        server.port,
        b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"1;" + b"e" * 4000 + b"=v\r\nx\r\n",
        8 * 1024 * 1024,
    )
    assert statuses(answer) == [413] and closed
    assert sent <= 2 * 1024 * 1024, sent
    await still_serves(server)


@pytest.mark.parametrize("preset", PRESET_NAMES)
async def test_declared_body_too_large_gets_no_100_continue(serving: Any, preset: str) -> None:
    server, _ = await serving(preset)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(
            b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1048577\r\n"
            b"Expect: 100-continue\r\n\r\n"
        )
        answer = await asyncio.wait_for(reader.read(), 3)
        assert b"100 Continue" not in answer and statuses(answer) == [413]
    finally:
        writer.close()
    await still_serves(server)


async def test_limits_are_configurable(serving: Any) -> None:
    server, _ = await serving(
        "balanced",
        **{
            "limits.max_request_target": 100,
            "limits.max_header_count": 3,
            "limits.max_body_size": 10,
        },
    )
    too_long = await exchange(server.port, b"GET /" + b"a" * 120 + b" HTTP/1.1\r\nHost: t\r\n\r\n")
    assert too_long.statuses == [414]
    many = await exchange(
        server.port, b"GET /ok HTTP/1.1\r\nHost: t\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n"
    )
    assert many.statuses == [431]
    big = await exchange(
        server.port, b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\n"
    )
    assert big.statuses == [413]
    await still_serves(server)
