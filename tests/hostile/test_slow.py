"""Section 3: slow and greedy clients, over raw sockets, for every preset.

Deadlines here are shortened through ``limits.*`` so the tests are quick;
assertions on time are generous (a 2-core noisy machine) and only ever check
that something happened *at all* within a bound, never how fast.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import pytest

from tests.hostile.conftest import (
    GET_OK,
    PRESET_NAMES,
    exchange,
    parse_responses,
    reset,
    statuses,
    still_serves,
)


async def trickle(
    port: int, head: bytes, piece: bytes, every: float, limit: float
) -> tuple[bytes, float]:
    """Send ``head``, then ``piece`` every ``every`` s until the server answers.

    Returns the answer and how long after the first byte it came.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    received = b""
    try:
        writer.write(head)
        while time.monotonic() - started < limit:
            await asyncio.sleep(every)
            try:
                writer.write(piece)
            except (ConnectionError, OSError):
                break
            try:
                received += await asyncio.wait_for(reader.read(4096), 0.001)
            except TimeoutError:
                continue
            except (ConnectionError, OSError):
                break
            if received:
                break
        elapsed = time.monotonic() - started
        with contextlib.suppress(TimeoutError, ConnectionError, OSError):
            received += await asyncio.wait_for(reader.read(), 2)
        return received, elapsed
    finally:
        writer.close()


@pytest.mark.parametrize("preset", PRESET_NAMES)
async def test_slowloris_cut_by_absolute_header_deadline(serving: Any, preset: str) -> None:
    server, _state = await serving(preset, **{"limits.header_timeout": 0.4})
    # A header line every 50 ms: an inactivity timer would never fire.
    answer, elapsed = await trickle(
        server.port, b"GET /ok HTTP/1.1\r\nHost: t\r\n", b"X-a: b\r\n", 0.05, 10
    )
    assert statuses(answer) == [408], answer[:200]
    assert 0.3 <= elapsed < 5, elapsed
    await still_serves(server)


@pytest.mark.parametrize("preset", PRESET_NAMES)
async def test_slow_post_cut_by_absolute_body_deadline(serving: Any, preset: str) -> None:
    server, _ = await serving(preset, **{"limits.body_timeout": 0.4})
    answer, elapsed = await trickle(
        server.port,
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n",
        b"x",
        0.05,
        10,
    )
    assert statuses(answer) == [408], answer[:200]
    assert 0.3 <= elapsed < 5, elapsed
    await still_serves(server)


@pytest.mark.parametrize("preset", PRESET_NAMES)
async def test_keep_alive_idle_timeout(serving: Any, preset: str) -> None:
    server, _ = await serving(preset, **{"limits.keepalive_timeout": 0.2})
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(GET_OK)
        await asyncio.wait_for(reader.readuntil(b"ok"), 2)
        assert await asyncio.wait_for(reader.read(), 3) == b""  # closed by the server
    finally:
        writer.close()
    # A connection that never sends anything is idle too.
    quiet_reader, quiet_writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        assert await asyncio.wait_for(quiet_reader.read(), 3) == b""
    finally:
        quiet_writer.close()
    await still_serves(server)


@pytest.mark.parametrize("preset", PRESET_NAMES)
async def test_max_requests_per_connection(serving: Any, preset: str) -> None:
    server, state = await serving(preset, **{"limits.max_requests_per_connection": 2})
    result = await exchange(server.port, GET_OK * 2 + b"GET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n")
    assert result.statuses == [200, 200] and result.closed
    responses, _ = parse_responses(result.data)
    assert responses[-1].headers.get("connection") == "close"
    assert state["smuggled"] == 0, "a request past the cap was handled"
    await still_serves(server)


@pytest.mark.parametrize("preset", PRESET_NAMES)
async def test_max_connections_refuses_excess_fast(serving: Any, preset: str) -> None:
    server, _ = await serving(preset, **{"limits.max_connections": 3})
    held = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(3)]
    try:
        await asyncio.sleep(0.05)
        started = time.monotonic()
        refused = await exchange(server.port, GET_OK, timeout=2)
        assert refused.statuses == [503] and refused.closed
        assert time.monotonic() - started < 1.5
        for reader, writer in held:  # existing connections are unaffected
            writer.write(GET_OK)
            assert (await asyncio.wait_for(reader.readuntil(b"ok"), 2)).startswith(b"HTTP/1.1 200")
    finally:
        for _, writer in held:
            writer.close()
    await asyncio.sleep(0.1)
    await still_serves(server)


@pytest.mark.parametrize("preset", PRESET_NAMES)
async def test_pipeline_queue_is_capped_and_reading_pauses(serving: Any, preset: str) -> None:
    server, state = await serving(preset, **{"limits.max_pipeline": 8})
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    n = 1500
    try:
        # One request that waits on a gate, then 1500 more in the same write.
        writer.write(b"GET /gate HTTP/1.1\r\nHost: t\r\n\r\n" + GET_OK * n)
        await writer.drain()
        await asyncio.sleep(0.2)
        conn = next(iter(server.connections))
        # At most the cap plus one parse slice of tiny requests is queued;
        # the rest waits unparsed (held, or in the kernel: reading paused).
        assert len(conn.queue) <= 8 + 16 * 1024 // len(GET_OK), len(conn.queue)
        assert conn.flow.reading_paused
        state["gate"].set()
        data = b""
        while data.count(b"\r\n\r\nok") < n:
            data += await asyncio.wait_for(reader.read(1 << 20), 5)
        responses, tail = parse_responses(data)
        assert [r.body for r in responses] == [b"gate"] + [b"ok"] * n and not tail
    finally:
        writer.close()
    await still_serves(server)


@pytest.mark.parametrize("preset", PRESET_NAMES)
async def test_write_backpressure_bounds_a_client_that_never_reads(
    serving: Any, preset: str
) -> None:
    server, state = await serving(preset, **{"limits.write_buffer_high": 65536})
    _, writer = await asyncio.open_connection("127.0.0.1", server.port, limit=1024)
    try:
        writer.write(b"GET /firehose HTTP/1.1\r\nHost: t\r\n\r\n")
        await asyncio.sleep(0.5)  # we never read: kernel buffers fill, then the server waits
        produced = state["produced"]
        await asyncio.sleep(0.5)
        assert state["produced"] == produced, "the producer kept going for a reader that stalled"
        conn = next(iter(server.connections))
        assert conn.transport.get_write_buffer_size() <= 2 * 65536
        reset(writer)  # the handler is freed on disconnect
        for _ in range(100):
            if state["cancelled"] and server.app.pool.stats()["in_use"] == 0:
                break
            await asyncio.sleep(0.02)
        assert state["cancelled"] == 1 and server.app.pool.stats()["in_use"] == 0
    finally:
        writer.close()
    await still_serves(server)


@pytest.mark.parametrize("preset", PRESET_NAMES)
async def test_pipelined_large_responses_to_a_client_that_does_not_read(
    serving: Any, preset: str
) -> None:
    # 120 pipelined requests for 256 KiB each (30 MiB of answers) in one write,
    # from a client that does not read: the server stops answering once its
    # write buffer is full, instead of buffering every answer.
    server, _ = await serving(preset, **{"limits.write_buffer_high": 65536})
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    n = 120
    try:
        writer.write(b"GET /big HTTP/1.1\r\nHost: t\r\n\r\n" * n)
        await writer.drain()
        await asyncio.sleep(0.3)
        conn = next(iter(server.connections))
        buffered = conn.transport.get_write_buffer_size()
        assert buffered <= 65536 + 2 * 256 * 1024, buffered
        data = bytearray()
        while True:  # then every answer arrives, complete and in order
            chunk = await asyncio.wait_for(reader.read(1 << 20), 5)
            assert chunk
            data += chunk
            if len(data) >= n * (256 * 1024 + 100):  # each head is > 100 bytes
                responses, tail = parse_responses(bytes(data))
                if len(responses) == n and not tail:
                    break
        assert all(len(r.body) == 256 * 1024 for r in responses)
    finally:
        writer.close()
    await still_serves(server)


@pytest.mark.parametrize("preset", PRESET_NAMES)
async def test_send_timeout_aborts_a_client_that_stopped_reading(serving: Any, preset: str) -> None:
    server, state = await serving(
        preset, **{"limits.write_buffer_high": 65536, "limits.send_timeout": 0.5}
    )
    _, writer = await asyncio.open_connection("127.0.0.1", server.port, limit=1024)
    try:
        writer.write(b"GET /firehose HTTP/1.1\r\nHost: t\r\n\r\n")
        for _ in range(200):  # aborted after ~0.5 s without progress, handler freed
            if not server.connections and state["cancelled"]:
                break
            await asyncio.sleep(0.025)
        assert not server.connections and state["cancelled"] == 1
        assert server.app.pool.stats()["in_use"] == 0
    finally:
        writer.close()
    await still_serves(server)


@pytest.mark.parametrize("preset", PRESET_NAMES)
async def test_half_close_still_gets_every_pipelined_answer(serving: Any, preset: str) -> None:
    server, _ = await serving(preset)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n" + GET_OK * 3)
        writer.write_eof()
        data = await asyncio.wait_for(reader.read(), 3)
        assert [r.body for r in parse_responses(data)[0]] == [b"slow", b"ok", b"ok", b"ok"]
    finally:
        writer.close()
    await still_serves(server)
