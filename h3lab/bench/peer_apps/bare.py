"""What the two bare servers (``raw`` and ``floor``) share: a cached Date line,
and serving an ``asyncio.Protocol`` on uvloop until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import signal
import time
from collections.abc import Callable
from email.utils import formatdate

_date = b""
_date_second = 0


def date_line() -> bytes:
    """``date: ...\\r\\n`` for the current second (formatting a date per
    response would be most of a bare server's work)."""
    global _date, _date_second
    now = int(time.time())
    if now != _date_second:
        _date_second = now
        _date = b"date: " + formatdate(now, usegmt=True).encode() + b"\r\n"
    return _date


async def serve(factory: Callable[[], asyncio.Protocol], name: str, host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    server = await loop.create_server(factory, host, port, backlog=2048)
    print(f"{name} serving on http://{host}:{port}", flush=True)
    await stop.wait()
    server.close()


def main(factory: Callable[[], asyncio.Protocol], name: str) -> None:
    """``--host``/``--port`` from the command line; uvloop when installed."""
    parser = argparse.ArgumentParser(prog=f"python -m h3lab.bench.peer_apps.{name}")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(factory, name, args.host, args.port))
    else:
        uvloop.run(serve(factory, name, args.host, args.port))
