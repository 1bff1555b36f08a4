"""``h3lab bench conformance``: the hostile payloads, sent to h3lab and to its peers.

::

    h3lab bench conformance [--servers h3lab uvicorn-httptools ...] [--section framing]
                            [--timeout 1.5] [--json rows.json]

Every row of ``h3lab.bench.hardening.hostile.CASES`` is sent as raw bytes over a new
loopback connection to each server (each started here on an ephemeral port
with a trivial app), and the answer is summarised:

==========  =================================================================
``400``     one response, status 400, then the server closed the connection
``400+``    one response, but the connection was left open (read timed out)
``200,200`` two responses: the server accepted the payload and read the
            bytes after it as the next request (``GET /smuggled``) -- the
            reading a front proxy that refused the payload would not share
``400,200!`` the smuggled request answered *after a refusal*: the bug that
            makes request smuggling work against any proxy
``close``   no response, the server just closed
``reset``   no response, the connection was reset
``timeout`` no response and no close before the timeout
==========  =================================================================

The table marks with ``*`` every cell that differs from h3lab's, so users see
where h3lab is stricter (or where it is not). Peers come from the ``peers``
extra; a server that is not installed is skipped with a message.

This is a check, not a benchmark: nothing is timed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from h3lab.bench.hardening.hostile import CASES, Case

# -- the apps every server runs -------------------------------------------------


def _answer(path: str) -> bytes:
    return b"SMUGGLED" if path == "/smuggled" else b"ok"


def h3lab_app(config: Any = None) -> Any:
    """The h3lab app (``h3lab serve h3lab.bench.hardening.conformance:h3lab_app``)."""
    from h3lab import H3
    from h3lab.event import H3Event

    app = H3(config)

    async def any_route(event: H3Event) -> bytes:
        if event.method == "POST":
            return await event.body()
        return _answer(event.path)

    for method in ("GET", "POST"):
        for path in ("/ok", "/smuggled", "/echo"):
            app.on(method, path, any_route)
    return app


async def asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The same app for uvicorn and hypercorn (ASGI 3)."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    payload = body if scope["method"] == "POST" else _answer(scope["path"])
    headers = [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(payload))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


def wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """The same app for gunicorn (WSGI)."""
    if environ["REQUEST_METHOD"] == "POST":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        payload = environ["wsgi.input"].read(length) if length else environ["wsgi.input"].read()
    else:
        payload = _answer(environ.get("PATH_INFO", "/"))
    start_response(
        "200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(payload)))]
    )
    return [payload]


# -- the servers -------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    name: str
    command: tuple[str, ...] | None
    """argv with ``{host}``/``{port}`` placeholders; None for h3lab itself."""
    modules: tuple[str, ...]
    concurrency: int = 8
    """Connections at once (a sync worker serves one at a time)."""


def _python(*args: str) -> tuple[str, ...]:
    return (sys.executable, *args)


_APP = "h3lab.bench.hardening.conformance"
_UVICORN = ("-m", "uvicorn", f"{_APP}:asgi_app", "--host", "{host}", "--port", "{port}")
_QUIET = ("--log-level", "critical")
TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target("h3lab", None, ("httptools",)),
        Target(
            "uvicorn-httptools",
            _python(*_UVICORN, "--http", "httptools", *_QUIET, "--no-access-log"),
            ("uvicorn", "httptools"),
        ),
        Target(
            "uvicorn-h11",
            _python(*_UVICORN, "--http", "h11", *_QUIET, "--no-access-log"),
            ("uvicorn", "h11"),
        ),
        Target(
            "hypercorn",
            _python("-m", "hypercorn", f"{_APP}:asgi_app", "--bind", "{host}:{port}", *_QUIET),
            ("hypercorn",),
        ),
        Target(
            "gunicorn-sync",
            _python(
                *("-m", "gunicorn", f"{_APP}:wsgi_app", "-b", "{host}:{port}"),
                *("-w", "1", "-k", "sync", *_QUIET, "--timeout", "30"),
            ),
            ("gunicorn",),
            concurrency=1,
        ),
    )
}


def available(name: str) -> bool:
    return all(importlib.util.find_spec(m) is not None for m in TARGETS[name].modules)


# -- one exchange --------------------------------------------------------------------

_STATUS = re.compile(rb"HTTP/1\.[01] (\d{3}) ")


async def probe(host: str, port: int, case: Case, timeout: float) -> str:
    """Send ``case`` on a new connection; the summarised answer (see the module doc)."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, TimeoutError):
        return "refused"
    data = b""
    ending = "timeout"
    try:
        with contextlib.suppress(ConnectionError, OSError):
            writer.write(case.wire)
            await writer.drain()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (left := deadline - loop.time()) > 0:
            try:
                chunk = await asyncio.wait_for(reader.read(65536), left)
            except TimeoutError:
                break
            except (ConnectionError, OSError):
                ending = "reset"
                break
            if not chunk:
                ending = "close"
                break
            data += chunk
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()
    codes = [c.decode() for c in _STATUS.findall(data) if not c.startswith(b"1")]
    if not codes:
        return ending
    text = ",".join(codes)
    if len(codes) > 1 and b"SMUGGLED" in data and int(codes[0]) >= 400:
        text += "!"
    if ending == "timeout":
        text += "+"
    return text


def expected_text(case: Case) -> str:
    """What h3lab's cell must read for ``case``."""
    if case.status is None:
        return "close"
    return str(case.status) + ("" if case.closes else "+")


# -- a run -------------------------------------------------------------------------


async def _probe_all(
    host: str, port: int, cases: Sequence[Case], timeout: float, limit: int
) -> list[str]:
    gate = asyncio.Semaphore(limit)

    async def one(case: Case) -> str:
        async with gate:
            return await probe(host, port, case, timeout)

    return list(await asyncio.gather(*(one(c) for c in cases)))


def _start(name: str) -> Any:
    from h3lab.bench.server import ServerProcess

    target = TARGETS[name]
    if target.command is None:
        return ServerProcess(
            app=f"{_APP}:h3lab_app",
            preset="balanced",
            sample_interval=None,
            stats_path=None,
            name="h3lab",
        )
    return ServerProcess(command=target.command, sample_interval=None, name=name)


def run_conformance(
    servers: Sequence[str] | None = None,
    cases: Sequence[Case] = CASES,
    *,
    timeout: float = 1.5,
    log: Any = None,
) -> list[dict[str, Any]]:
    """Send every case to every (installed) server; one row per case.

    A row is ``{"case", "section", "note", <server name>: <answer>, ...}``;
    servers that are not installed (or fail to start) are left out and
    reported through ``log`` (default: stderr).
    """
    say = log or (lambda message: print(message, file=sys.stderr))
    names = list(servers) if servers else list(TARGETS)
    unknown = [n for n in names if n not in TARGETS]
    if unknown:
        raise ValueError(f"unknown server(s) {unknown}; known: {list(TARGETS)}")
    rows: list[dict[str, Any]] = [
        {"case": c.name, "section": c.section, "note": c.note} for c in cases
    ]
    for name in names:
        if not available(name):
            say(f"conformance: skipping {name}: not installed (pip install 'h3lab[peers]')")
            continue
        try:
            with _start(name) as server:
                answers = asyncio.run(
                    _probe_all(server.host, server.port, cases, timeout, TARGETS[name].concurrency)
                )
        except Exception as exc:  # a peer that cannot start is skipped, not fatal
            say(f"conformance: skipping {name}: {exc}")
            continue
        for row, answer in zip(rows, answers, strict=True):
            row[name] = answer
    return rows


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """The side-by-side table; ``*`` marks a peer answer that differs from h3lab's."""
    if not rows:
        return ""
    servers = [k for k in rows[0] if k not in ("case", "section", "note")]
    widths = [max(len("case"), *(len(r["case"]) for r in rows))]
    widths += [max(len(s), 6) + 1 for s in servers]
    lines = ["  ".join(h.ljust(w) for h, w in zip(["case", *servers], widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        cells = [row["case"]]
        for server in servers:
            answer = row.get(server, "")
            differs = server != "h3lab" and "h3lab" in row and answer != row["h3lab"]
            cells.append(answer + ("*" if differs else ""))
        lines.append("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)))
    return "\n".join(lines)


def summarize(rows: Sequence[dict[str, Any]]) -> str:
    """Per server: answers equal to h3lab's, payloads served that h3lab refuses,
    bytes read on after such a payload, smuggled requests answered after a refusal."""
    if not rows:
        return ""
    servers = [k for k in rows[0] if k not in ("case", "section", "note")]
    out = []
    for server in servers:
        same = sum(1 for r in rows if r.get(server) == r.get("h3lab"))
        smuggled = sum(1 for r in rows if "!" in r.get(server, ""))
        lenient = [
            r
            for r in rows
            if r.get(server, "").startswith("2") and not r.get("h3lab", "").startswith("2")
        ]
        read_on = sum(1 for r in lenient if "," in r.get(server, ""))
        out.append(
            f"{server}: {same}/{len(rows)} answers as h3lab's; served {len(lenient)} payload(s) "
            f"h3lab refuses (and read on after {read_on} of them); "
            f"{smuggled} smuggled request(s) answered after a refusal"
        )
    return "\n".join(out)


# -- command line ------------------------------------------------------------------------


def register(subparsers: Any) -> None:
    """Add ``conformance`` to the ``h3lab bench`` sub-parser."""
    parser = subparsers.add_parser(
        "conformance",
        help="hostile payloads against h3lab and uvicorn/hypercorn/gunicorn: status table",
        description=(
            "Send every hostile payload of h3lab.bench.hardening.hostile (request smuggling, bad "
            "framing, limits, ...) over a new loopback connection to h3lab and to each peer "
            "server installed (uvicorn, hypercorn, gunicorn), and print each server's answer "
            "per case, with the cases where h3lab is stricter."
        ),
    )
    parser.add_argument(
        "--servers",
        nargs="+",
        default=None,
        metavar="NAME",
        help=f"some of: {', '.join(TARGETS)} (default: all installed)",
    )
    parser.add_argument("--section", action="append", default=[], help="only these case sections")
    parser.add_argument("--timeout", type=float, default=1.5, help="seconds to wait per answer")
    parser.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    parser.set_defaults(func=cmd_conformance)


def cmd_conformance(args: argparse.Namespace) -> int:
    if args.timeout <= 0:
        raise ValueError(f"--timeout must be > 0, got {args.timeout}")
    cases = [c for c in CASES if not args.section or c.section in args.section]
    if not cases:
        raise ValueError(f"no case in section(s) {args.section}")
    rows = run_conformance(args.servers, cases, timeout=args.timeout)
    print(format_table(rows))
    print()
    print(summarize(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
        print(f"rows written to {args.json}")
    return 0


__all__ = [
    "TARGETS",
    "asgi_app",
    "cmd_conformance",
    "expected_text",
    "format_table",
    "h3lab_app",
    "probe",
    "register",
    "run_conformance",
    "summarize",
    "wsgi_app",
]
