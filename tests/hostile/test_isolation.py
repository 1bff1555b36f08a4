"""Section 5: isolation of reused state (pooled events, arena buffers, route cache).

Every request carries a unique id; under pipelining and concurrency, with
every pool/arena/router/cache strategy, each response must carry its own
request's id and body and nothing of another's. The route-cache tests feed
requests straight into ``HttpProtocol.data_received`` (no sockets), so a
hundred thousand of them take well under a second.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import zlib
from typing import Any

import pytest

from h3lab import Config, Server
from h3lab.server.protocol import HttpProtocol
from h3lab.testing import MemoryTransport
from tests.conftest import STRATEGY_CONFIGS
from tests.hostile.app import make_app
from tests.hostile.conftest import PRESET_NAMES, exchange, parse_responses, still_serves


def request_for(uid: str, kind: int) -> tuple[bytes, Any]:
    """A request carrying ``uid`` and a check of its response."""
    if kind == 0:
        return (
            b"GET /users/%s HTTP/1.1\r\nHost: t\r\n\r\n" % uid.encode(),
            lambda r: r.status == 200 and json.loads(r.body) == {"id": uid},
        )
    if kind == 1:
        return (
            b"GET /slow-echo/%s?u=%s HTTP/1.1\r\nHost: t\r\n\r\n" % (uid.encode(), uid.encode()),
            lambda r: r.status == 200 and json.loads(r.body) == {"id": uid, "q": f"u={uid}"},
        )
    if kind == 2:
        body = (f"<{uid}>" * 50).encode()
        return (
            b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body),
            lambda r: r.status == 200 and r.body == body,
        )
    if kind == 3:  # chunked: the body arrives in pieces (the arena's job)
        pieces = [f"[{uid}:{i}]".encode() for i in range(8)]
        wire = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
        return (
            b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" + wire,
            lambda r: r.status == 200 and r.body == b"".join(pieces),
        )
    return (  # an error response: it must name this request's path only
        b"GET /missing/%s HTTP/1.1\r\nHost: t\r\n\r\n" % uid.encode(),
        lambda r: r.status == 404 and uid in json.loads(r.body)["message"],
    )


async def one_connection(port: int, conn_id: int, rng: random.Random, n: int) -> None:
    uids = [f"c{conn_id}r{i}x{rng.randrange(10**9)}" for i in range(n)]
    pairs = [request_for(uid, rng.randrange(5)) for uid in uids]
    wire = b"".join(p for p, _ in pairs)
    # A refusal at the end: its answer must hold none of the bytes sent before.
    wire += b"GET /ok HTTP/1.1\r\nHost : t\r\n\r\n"
    cuts = sorted(rng.sample(range(1, len(wire)), 6))
    pieces = [wire[a:b] for a, b in zip([0, *cuts], [*cuts, len(wire)], strict=True)]
    result = await exchange(port, pieces, timeout=10)
    responses, tail = parse_responses(result.data)
    assert not tail and result.closed
    assert len(responses) == n + 1, [r.status for r in responses]
    for (_, check), response in zip(pairs, responses, strict=False):
        assert check(response), (response.status, response.body[:200])
    refusal = responses[-1]
    assert refusal.status == 400 and not any(uid.encode() in refusal.body for uid in uids)


@pytest.mark.parametrize(("name", "config"), STRATEGY_CONFIGS, ids=[i for i, _ in STRATEGY_CONFIGS])
async def test_each_response_carries_only_its_own_request(
    serving: Any, name: str, config: Config
) -> None:
    server, _ = await serving(config)
    rng = random.Random(zlib.crc32(name.encode()))
    await asyncio.gather(*(one_connection(server.port, c, rng, 25) for c in range(6)))
    assert server.app.pool.stats()["in_use"] == 0
    await still_serves(server)


# -- route cache, through the server's parser (no sockets) ----------------------


async def in_process(preset: str) -> tuple[Server, HttpProtocol, MemoryTransport]:
    app, _ = make_app(Config.preset(preset))
    server = Server(app, "127.0.0.1", 0)
    await server.start()
    protocol = HttpProtocol(server.state)
    transport = MemoryTransport()
    transport.record = False  # 100,000s of responses: only whether it closed matters
    protocol.connection_made(transport)
    return server, protocol, transport


def feed(protocol: HttpProtocol, paths: list[str], batch: int = 200) -> float:
    """Feed GETs for ``paths`` pipelined ``batch`` at a time; seconds per request (best batch)."""
    best = float("inf")
    for at in range(0, len(paths), batch):
        chunk = b"".join(
            b"GET %s HTTP/1.1\r\nHost: t\r\n\r\n" % p.encode() for p in paths[at : at + batch]
        )
        started = time.perf_counter()
        protocol.data_received(chunk)
        best = min(best, (time.perf_counter() - started) / len(paths[at : at + batch]))
    return best


@pytest.mark.serial  # compares per-request times: alone, not beside other workers
@pytest.mark.parametrize("preset", PRESET_NAMES)
async def test_unique_path_flood_keeps_cache_at_cap_and_hot_path_flat(preset: str) -> None:
    server, protocol, transport = await in_process(preset)
    try:
        hot = ["/users/hot"] * 4000
        before = feed(protocol, hot)
        feed(protocol, [f"/users/{i}" for i in range(100_000)], batch=500)
        after = feed(protocol, hot)
        assert not transport.closed and server.app.pool.stats()["in_use"] == 0
        assert server.requests == 108_000
        cache = server.app.router.stats().get("cache")
        if cache is not None:
            assert cache["size"] <= cache["capacity"], cache
        # Flat: the same per-request cost before and after (generous bound).
        assert after < before * 3 + 5e-6, (before, after)
    finally:
        await server.shutdown(0.1)


@pytest.mark.serial  # compares per-request times: alone, not beside other workers
@pytest.mark.parametrize("preset", PRESET_NAMES)
async def test_int_hash_colliding_params_are_not_quadratic(preset: str) -> None:
    server, protocol, _ = await in_process(preset)
    try:
        modulus = 2**61 - 1  # CPython's int hash: these all hash to 0
        colliding = [f"/users/{k * modulus}" for k in range(1, 20_001)]
        rng = random.Random(7)
        spread = [f"/users/{rng.randrange(10**18, 10**19)}" for _ in range(20_000)]
        assert len({hash(int(p.rsplit("/", 1)[1])) for p in colliding}) == 1
        feed(protocol, spread[:2000])  # warm up
        plain = min(feed(protocol, spread) for _ in range(2))
        crafted = min(feed(protocol, colliding) for _ in range(2))
        assert crafted < plain * 3 + 5e-6, (plain, crafted)
    finally:
        await server.shutdown(0.1)


@pytest.mark.parametrize("preset", PRESET_NAMES)
async def test_5000_digit_numeric_param_is_never_a_500(serving: Any, preset: str) -> None:
    server, _ = await serving(preset)
    digits = "9" * 5000
    for path, status in (
        (f"/users/{digits}", 200),  # params stay strings: nothing converts them
        (f"/number/{digits}", 400),  # a handler that converts refuses it cleanly
        (f"/nothing/{digits}", 404),
    ):
        result = await exchange(
            server.port,
            b"GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n" % path.encode(),
        )
        assert result.statuses == [status], result.data[:200]
    await still_serves(server)
