"""``h3lab bench soak``: minutes of mixed valid, hostile and aborted traffic.

::

    h3lab bench soak [--duration 600] [--warmup 30] [--connections 32] [--preset balanced]
                     [--sample-interval 5] [--server-cpu 0 --load-cpu 1] [--json FILE]

One ``h3lab serve`` process (``ServerProcess``: its own process group, RSS
and open fds sampled every ``--sample-interval`` seconds, with its
``app.stats()``) takes, on loopback, for ``--duration`` seconds:

* **valid** keep-alive clients (most of the workers): GETs (text, JSON, a
  route parameter), POSTs with Content-Length and chunked bodies, async and
  streaming handlers, pipelined batches -- every answer checked;
* **hostile** clients: every payload of ``h3lab.bench.hardening.hostile.CASES``, in
  turn, each answer compared with the table's;
* **aborted** clients: connections reset (SO_LINGER 0) at a random point of
  a request or of a response;
* **slow** clients: a slowloris and a slow POST at a time, cut by the
  absolute header/body deadlines.

It reports requests served, outcomes by class (and every unexpected one),
and RSS / open fds over time. After ``--warmup`` both must be flat: the run
is "flat" when RSS grew by less than 10 % (and 8 MiB) from the first sample
after warm-up to the median of the last quarter, and open fds (less the open
connections at that moment) by at most 8. Not a test: ``--duration`` is
minutes by default; a test runs it for seconds to check it works.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import socket
import statistics
import struct
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from h3lab.bench.hardening.conformance import expected_text, probe
from h3lab.bench.hardening.hostile import CASES

APP = "h3lab.bench.hardening.soak:soak_app"


def soak_app(config: Any = None) -> Any:
    """The app under soak: small handlers of every kind the server has paths for."""
    from h3lab import H3
    from h3lab.event import H3Event

    app = H3(config)
    app.get("/ok", lambda e: "ok")
    app.get("/smuggled", lambda e: "SMUGGLED")
    app.get("/json", lambda e: {"message": "Hello, World!"})

    @app.get("/users/:id")
    def user(event: H3Event) -> dict[str, str]:
        return {"id": event.params["id"]}

    @app.post("/echo")
    async def echo(event: H3Event) -> bytes:
        return await event.body()

    @app.get("/slow/:id")
    async def slow(event: H3Event) -> str:
        await asyncio.sleep(0.002)
        return event.params["id"]

    @app.get("/stream/:n")
    async def stream(event: H3Event) -> Any:
        count = min(int(event.params["n"]) if event.params["n"].isdigit() else 1, 64)

        async def chunks() -> Any:
            for i in range(count):
                yield b"%d;" % i

        return chunks()

    return app


# -- a minimal client ------------------------------------------------------------------


class Unexpected(Exception):
    """A valid request got a wrong answer."""


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lower = head.lower()
    if b"\r\ncontent-length:" in lower:
        length = int(lower.split(b"\r\ncontent-length:", 1)[1].split(b"\r\n", 1)[0])
        return status, await reader.readexactly(length)
    if b"\r\ntransfer-encoding: chunked" in lower:
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n"))[:-2], 16)
            body += (await reader.readexactly(size + 2))[:-2]
            if size == 0:
                return status, body
    return status, b""


def _request(rng: random.Random) -> tuple[bytes, Callable[[int, bytes], bool]]:
    """A random valid request and the check of its answer."""
    kind = rng.randrange(7)
    uid = str(rng.randrange(10**9))
    if kind == 0:
        return b"GET /ok HTTP/1.1\r\nHost: soak\r\n\r\n", lambda s, b: s == 200 and b == b"ok"
    if kind == 1:
        return (
            b"GET /json HTTP/1.1\r\nHost: soak\r\nAccept: */*\r\n\r\n",
            lambda s, b: s == 200 and b == b'{"message":"Hello, World!"}',
        )
    if kind == 2:
        return (
            b"GET /users/%s HTTP/1.1\r\nHost: soak\r\n\r\n" % uid.encode(),
            lambda s, b: s == 200 and b == b'{"id":"%s"}' % uid.encode(),
        )
    if kind == 3:
        body = uid.encode() * rng.randrange(1, 400)
        return (
            b"POST /echo HTTP/1.1\r\nHost: soak\r\nContent-Length: %d\r\n\r\n%s"
            % (len(body), body),
            lambda s, b: s == 200 and b == body,
        )
    if kind == 4:
        parts = [uid.encode() * rng.randrange(1, 40) for _ in range(rng.randrange(1, 6))]
        wire = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"
        return (
            b"POST /echo HTTP/1.1\r\nHost: soak\r\nTransfer-Encoding: chunked\r\n\r\n" + wire,
            lambda s, b: s == 200 and b == b"".join(parts),
        )
    if kind == 5:
        return (
            b"GET /slow/%s HTTP/1.1\r\nHost: soak\r\n\r\n" % uid.encode(),
            lambda s, b: s == 200 and b == uid.encode(),
        )
    n = rng.randrange(1, 20)
    return (
        b"GET /stream/%d HTTP/1.1\r\nHost: soak\r\n\r\n" % n,
        lambda s, b: s == 200 and b == b"".join(b"%d;" % i for i in range(n)),
    )


def _reset(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class Load:
    """The traffic mix, counting outcomes by class."""

    def __init__(self, host: str, port: int, deadline: float, seed: int) -> None:
        self.host = host
        self.port = port
        self.deadline = deadline
        self.rng = random.Random(seed)
        self.counts: Counter[str] = Counter()
        self.unexpected: Counter[str] = Counter()

    def running(self) -> bool:
        return time.monotonic() < self.deadline

    async def valid(self) -> None:
        while self.running():
            try:
                reader, writer = await asyncio.open_connection(self.host, self.port)
            except OSError as exc:
                self.counts[f"valid connect error: {type(exc).__name__}"] += 1
                await asyncio.sleep(0.05)
                continue
            try:
                for _ in range(self.rng.randrange(1, 100)):
                    if not self.running():
                        break
                    batch = [_request(self.rng) for _ in range(self.rng.choice((1, 1, 1, 4)))]
                    writer.write(b"".join(wire for wire, _ in batch))  # pipelined when > 1
                    for _, check in batch:
                        status, body = await asyncio.wait_for(read_response(reader), 10)
                        if not check(status, body):
                            raise Unexpected(f"status {status}, body {body[:60]!r}")
                        self.counts["valid 2xx"] += 1
            except Unexpected as exc:
                self.counts["valid unexpected answer"] += 1
                self.unexpected[f"valid: {exc}"] += 1
            except (OSError, asyncio.IncompleteReadError, TimeoutError) as exc:
                self.counts[f"valid {type(exc).__name__}"] += 1
            finally:
                writer.close()

    async def hostile(self) -> None:
        index = self.rng.randrange(len(CASES))
        while self.running():
            case = CASES[index % len(CASES)]
            index += 1
            answer = await probe(self.host, self.port, case, 3.0)
            expected = expected_text(case)
            if answer == expected:
                self.counts[f"hostile {expected}"] += 1
            else:
                self.counts["hostile unexpected answer"] += 1
                self.unexpected[f"hostile {case.name}: {answer} (table: {expected})"] += 1

    async def aborted(self) -> None:
        while self.running():
            try:
                reader, writer = await asyncio.open_connection(self.host, self.port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            point = self.rng.randrange(5)
            try:
                if point == 1:
                    writer.write(b"GET /users/1 HTTP/1.1\r\nHost: so")
                elif point == 2:
                    writer.write(
                        b"POST /echo HTTP/1.1\r\nHost: soak\r\nContent-Length: 999\r\n\r\nab"
                    )
                elif point == 3:
                    writer.write(b"GET /stream/64 HTTP/1.1\r\nHost: soak\r\n\r\n")
                    await writer.drain()
                    await reader.read(self.rng.randrange(1, 300))
                elif point == 4:
                    writer.write(b"GET /slow/1 HTTP/1.1\r\nHost: soak\r\n\r\n" * 3)
                await writer.drain()
                await asyncio.sleep(self.rng.random() * 0.005)
            except OSError:
                pass
            finally:
                _reset(writer)
            self.counts["aborted"] += 1

    async def slow(self, body: bool) -> None:
        head = (
            b"POST /echo HTTP/1.1\r\nHost: soak\r\nContent-Length: 100000\r\n\r\n"
            if body
            else b"GET /ok HTTP/1.1\r\nHost: soak\r\n"
        )
        piece = b"x" if body else b"X-Slow: 1\r\n"
        name = "slow POST" if body else "slowloris"
        while self.running():
            try:
                reader, writer = await asyncio.open_connection(self.host, self.port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            answer = b""
            try:
                writer.write(head)
                while self.running() and not answer:
                    await asyncio.sleep(0.5)
                    writer.write(piece)
                    with contextlib.suppress(TimeoutError):
                        answer = await asyncio.wait_for(reader.read(4096), 0.01)
            except OSError:
                pass
            finally:
                writer.close()
            if answer:
                status = answer[9:12].decode("latin-1", "replace")
                self.counts[f"{name} cut with {status}"] += 1


async def _drive(load: Load, connections: int) -> None:
    n_hostile = max(1, connections // 8)
    n_aborted = max(1, connections // 8)
    n_valid = max(1, connections - n_hostile - n_aborted)
    tasks = [load.valid() for _ in range(n_valid)]
    tasks += [load.hostile() for _ in range(n_hostile)]
    tasks += [load.aborted() for _ in range(n_aborted)]
    tasks += [load.slow(False), load.slow(True)]
    await asyncio.gather(*tasks)


# -- the run -----------------------------------------------------------------------------


def _flatness(samples: list[dict[str, Any]], warmup: float, duration: float) -> dict[str, Any]:
    # Samples taken under load, after the warm-up (the run's last sample may
    # come after the clients stopped, with every connection closed).
    loaded = [s for s in samples if s["t"] <= duration] or samples
    after = [s for s in loaded if s["t"] >= warmup] or loaded[-1:]
    if not after:
        return {"flat": None, "reason": "no samples"}
    tail = after[-max(1, len(after) // 4) :]
    rss_first = after[0]["rss_mb"]
    rss_tail = statistics.median(s["rss_mb"] for s in tail)
    fds_first = after[0]["fds_less_connections"]
    fds_tail = statistics.median(s["fds_less_connections"] for s in tail)
    rss_growth = rss_tail - rss_first
    flat = rss_growth < max(0.10 * rss_first, 8.0) and fds_tail - fds_first <= 8
    return {
        "flat": flat,
        "rss_mb_first": rss_first,
        "rss_mb_last": after[-1]["rss_mb"],
        "rss_mb_tail_median": rss_tail,
        "rss_mb_max": max(s["rss_mb"] for s in after),
        "rss_growth_mb": rss_growth,
        "fds_first": after[0]["open_fds"],
        "fds_last": after[-1]["open_fds"],
        "fds_less_connections_first": fds_first,
        "fds_less_connections_tail_median": fds_tail,
    }


def run_soak(
    duration: float = 600.0,
    *,
    warmup: float = 30.0,
    connections: int = 32,
    preset: str = "balanced",
    overrides: tuple[str, ...] = (),
    sample_interval: float = 5.0,
    seed: int = 0,
    server_cpu: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Soak one ``h3lab serve`` for ``duration`` seconds; the report as a dict."""
    from h3lab.bench.server import ServerProcess

    if duration <= 0 or connections < 3 or sample_interval <= 0 or warmup < 0:
        raise ValueError("duration and sample_interval must be > 0, warmup >= 0, connections >= 3")
    say = progress or (lambda line: None)
    server = ServerProcess(
        app=APP,
        preset=preset,
        overrides=overrides,
        cpu=server_cpu,
        sample_interval=sample_interval,
        stats_path="/__stats",
    )
    started = time.monotonic()
    with server:
        load = Load(server.host, server.port, time.monotonic() + duration, seed)
        say(f"soak: {server.name} pid {server.pid} on {server.url}, {duration:.0f} s")

        async def main() -> None:
            reporter = asyncio.create_task(_report(server, load, sample_interval, say))
            try:
                await _drive(load, connections)
            finally:
                reporter.cancel()

        asyncio.run(main())
        time.sleep(min(sample_interval, 2.0))
        final_stats = server.fetch_stats()
        samples = [_sample_row(s) for s in server.samples]
    exit_code = server.returncode
    server_stats = (final_stats or {}).get("server") or {}
    served = int(server_stats.get("requests", 0)) - server.stats_fetches
    report = {
        "duration_s": round(time.monotonic() - started, 1),
        "warmup_s": warmup,
        "connections": connections,
        "preset": preset,
        "requests_served": served,
        "protocol_errors": server_stats.get("protocol_errors"),
        "connections_accepted": server_stats.get("accepted"),
        "outcomes": dict(sorted(load.counts.items())),
        "unexpected": dict(load.unexpected.most_common(20)),
        "pool": (final_stats or {}).get("pool"),
        "server_exit_code": exit_code,
        "samples": samples,
        **_flatness(samples, warmup, duration),
    }
    return report


def _sample_row(sample: dict[str, Any]) -> dict[str, Any]:
    stats = sample.get("stats") or {}
    conns = (stats.get("server") or {}).get("connections", 0) or 0
    return {
        "t": sample["t"],
        "rss_mb": round(sample["rss_bytes"] / 2**20, 2),
        "open_fds": sample["open_fds"],
        "connections": conns,
        "fds_less_connections": sample["open_fds"] - conns,
        "requests": (stats.get("server") or {}).get("requests"),
    }


async def _report(server: Any, load: Load, interval: float, say: Callable[[str], None]) -> None:
    seen = 0
    while True:
        await asyncio.sleep(interval)
        if len(server.samples) > seen:
            row = _sample_row(server.samples[-1])
            seen = len(server.samples)
            total = sum(load.counts.values())
            say(
                f"t={row['t']:7.1f}s rss={row['rss_mb']:7.1f} MiB fds={row['open_fds']:4d} "
                f"conns={row['connections']:4d} served={row['requests']} client-outcomes={total}"
            )


def format_report(report: dict[str, Any]) -> str:
    lines = [
        f"soak: {report['duration_s']} s, preset {report['preset']}, "
        f"{report['connections']} client connections, server exit code {report['server_exit_code']}",
        f"requests served: {report['requests_served']} "
        f"(protocol errors answered: {report['protocol_errors']}, "
        f"connections accepted: {report['connections_accepted']})",
        "outcomes by class:",
        *(f"  {k}: {v}" for k, v in report["outcomes"].items()),
    ]
    if report["unexpected"]:
        lines.append("unexpected answers:")
        lines += [f"  {k}: {v}" for k, v in report["unexpected"].items()]
    if report.get("flat") is not None:
        lines.append(
            f"after {report['warmup_s']} s warm-up: RSS {report['rss_mb_first']:.1f} -> "
            f"{report['rss_mb_last']:.1f} MiB (max {report['rss_mb_max']:.1f}), open fds "
            f"{report['fds_first']} -> {report['fds_last']} "
            f"(less open connections: {report['fds_less_connections_first']} -> "
            f"{report['fds_less_connections_tail_median']:.0f}); "
            f"{'FLAT' if report['flat'] else 'NOT FLAT'}"
        )
    return "\n".join(lines)


# -- command line ----------------------------------------------------------------------


def register(subparsers: Any) -> None:
    """Add ``soak`` to the ``h3lab bench`` sub-parser."""
    parser = subparsers.add_parser(
        "soak",
        help="minutes of mixed valid/hostile/aborted traffic; RSS and fds over time",
        description=(
            "Run one h3lab server for --duration seconds under mixed traffic on loopback: "
            "valid keep-alive clients, hostile payloads (answered as in tests/hostile) and "
            "connections aborted mid-request or mid-response. Prints requests served, "
            "errors by class, and RSS and open fds over time (flat after warm-up = no leak); "
            "exit status 1 if anything went wrong."
        ),
    )
    parser.add_argument("--duration", type=float, default=600.0, help="seconds (default 600)")
    parser.add_argument("--warmup", type=float, default=30.0, help="seconds before RSS/fds count")
    parser.add_argument("--connections", type=int, default=32, help="client workers (>= 3)")
    parser.add_argument("--preset", default="balanced")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--sample-interval", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--server-cpu", type=int, default=None, help="pin the server to a CPU")
    parser.add_argument("--load-cpu", type=int, default=None, help="pin this client to a CPU")
    parser.add_argument("--json", metavar="FILE", help="also write the report as JSON")
    parser.set_defaults(func=cmd_soak)


def cmd_soak(args: argparse.Namespace) -> int:
    if args.load_cpu is not None:
        os.sched_setaffinity(0, {args.load_cpu})
    report = run_soak(
        args.duration,
        warmup=args.warmup,
        connections=args.connections,
        preset=args.preset,
        overrides=tuple(args.set),
        sample_interval=args.sample_interval,
        seed=args.seed,
        server_cpu=args.server_cpu,
        progress=lambda line: print(line, flush=True),
    )
    print(format_report(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
        print(f"report written to {args.json}")
    return 0 if report.get("flat") is not False and not report["unexpected"] else 1


__all__ = ["APP", "format_report", "register", "run_soak", "soak_app"]


if __name__ == "__main__":  # ``python -m h3lab.bench.hardening.soak --duration 60``
    _parser = argparse.ArgumentParser(prog="h3lab bench")
    register(_parser.add_subparsers(dest="command", required=True))
    _args = _parser.parse_args(["soak", *sys.argv[1:]])
    sys.exit(_args.func(_args))
