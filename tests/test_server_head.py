"""``Head.scan`` on its own: llhttp parses, the scanner decides, no server, no I/O.

The same heads are refused over sockets in tests/hostile (with their answers);
here the point is that the scanner needs nothing but the parser and the limits,
and that each refusal carries its status.
"""

from __future__ import annotations

import contextlib
from typing import Any

import httptools
import pytest

from h3lab import H3, Config
from h3lab.event import H3Event
from h3lab.server.framing import Refusal
from h3lab.server.head import F_CLOSE, F_CONTINUE, F_STAR, F_TRAILERS, Head, fill_target


class Scanner:
    """Collects what llhttp reports for one head, then scans it."""

    def __init__(self, config: Config | None = None) -> None:
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.parser = httptools.HttpRequestParser(self)
        self.head = Head((config or Config()).limits, H3())

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.head.scan(self.parser, self.headers, self.url, None)


def scan(raw: bytes) -> Head:
    scanner = Scanner()
    scanner.parser.feed_data(raw)
    return scanner.head


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"GET / HTTP/1.1\r\n\r\n", 400),  # HTTP/1.1 without Host
        (b"GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
        (b"PROPFIND / HTTP/1.1\r\nHost: a\r\n\r\n", 501),
        (b"CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n", 501),
        (b"GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nExpect: later\r\n\r\n", 417),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
        (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 999999999999\r\n\r\n", 413),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"v" * 9000 + b"\r\n\r\n", 431),
        (b"GET / HTTP/1.1\r\nHost: a\r\n" + b"X: v\r\n" * 200 + b"\r\n", 431),
    ],
)
def test_each_refusal_carries_its_status(raw: bytes, status: int) -> None:
    with pytest.raises(httptools.HttpParserCallbackError) as failure:
        scan(raw)
    refusal = failure.value.__context__
    assert isinstance(refusal, Refusal) and refusal.status == status, refusal


def test_a_plain_head_has_no_flags() -> None:
    head = scan(b"GET /a?b=1 HTTP/1.1\r\nHost: t\r\n\r\n")
    assert (head.method, head.version, head.keep_alive) == ("GET", "1.1", True)
    assert head.target == b"/a?b=1" and head.flags == 0 and head.host_ok == b"t"


@pytest.mark.parametrize(
    ("raw", "target", "flags"),
    [
        (b"OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n", b"*", F_STAR),
        (b"GET http://t/a?b HTTP/1.1\r\nHost: t\r\n\r\n", b"/a?b", 0),
        (
            b"POST /u HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
            b"Expect: 100-continue\r\n\r\n",
            b"/u",
            F_TRAILERS | F_CONTINUE,
        ),
        (
            b"GET /ws HTTP/1.1\r\nHost: t\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\n",
            b"/ws",
            F_CLOSE,
        ),
    ],
)
def test_unusual_heads_say_what_the_connection_must_do(
    raw: bytes, target: bytes, flags: int
) -> None:
    scanner = Scanner()
    # llhttp stops after an upgrade request (HttpParserUpgrade): the head was scanned.
    with contextlib.suppress(httptools.HttpParserUpgrade):
        scanner.parser.feed_data(raw)
    assert scanner.head.target == target and scanner.head.flags == flags


def test_http10_keep_alive_reads_the_version() -> None:
    head = scan(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    assert (head.version, head.keep_alive) == ("1.0", True)


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (b"/a/b?x=1", ("/a/b", "/a/b", "x=1")),
        (b"/a%20b", ("/a%20b", "/a b", "")),
        (b"/caf\xc3\xa9#frag", ("/caf%C3%A9", "/café", "")),
        (b"/q?", ("/q", "/q", "")),
    ],
)
def test_fill_target(target: bytes, expected: tuple[str, str, str]) -> None:
    event: Any = H3Event(H3())
    fill_target(event, target)
    assert (event.raw_path, event.path, event.query_string) == expected
