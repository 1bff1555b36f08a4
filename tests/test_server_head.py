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
from hypothesis import given
from hypothesis import strategies as st

from h3lab import H3, Config
from h3lab.event import H3Event
from h3lab.server.framing import Refusal
from h3lab.server.head import (
    F_CLOSE,
    F_CONTINUE,
    F_STAR,
    F_TRAILERS,
    Head,
    fill_target,
    split_target,
)


class Scanner:
    """Collects what llhttp reports for one head, then scans it."""

    def __init__(self, config: Config | None = None, whole: bool = False) -> None:
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.parser = httptools.HttpRequestParser(self)
        self.head = Head((config or Config()).limits, H3())
        # As the connection scans a head read whole: with the read, unmeasured
        # fields when it is small, and the last fields remembered.
        self.whole = whole
        self.read: bytes | None = None

    def feed(self, raw: bytes) -> None:
        self.read = raw
        self.parser.feed_data(raw)

    def on_message_begin(self) -> None:
        self.url = b""
        self.headers = []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.head.scan(self.parser, self.headers, self.url, self.read, self.whole)


def scan(raw: bytes, whole: bool = False) -> Head:
    scanner = Scanner(whole=whole)
    scanner.feed(raw)
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
@pytest.mark.parametrize("whole", [False, True], ids=["measured", "read-whole"])
def test_each_refusal_carries_its_status(raw: bytes, status: int, whole: bool) -> None:
    with pytest.raises(httptools.HttpParserCallbackError) as failure:
        scan(raw, whole)
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


def _refused(scanner: Scanner, raw: bytes) -> int:
    with pytest.raises(httptools.HttpParserCallbackError) as failure:
        scanner.feed(raw)
    refusal = failure.value.__context__
    assert isinstance(refusal, Refusal), refusal
    scanner.parser = httptools.HttpRequestParser(
        scanner
    )  # llhttp stops at an error; the Head stays
    return refusal.status


@pytest.mark.parametrize(
    ("limits", "field", "status"),
    [
        # A field over the line limit, or fields over the section limit, in
        # one small read: the read is larger than the limit, so it is measured.
        # (A field counts name + value + 4; Host: a counts 9.)
        ({"limits.max_header_line": 64}, b"X: " + b"v" * 60, 431),  # 65
        ({"limits.max_headers_size": 64}, b"X: v\r\nY: " + b"v" * 50, 431),  # 9 + 6 + 55
        ({"limits.max_header_line": 64}, b"X: " + b"v" * 59, None),  # 64: within
    ],
)
def test_a_head_read_whole_is_measured_unless_its_read_is_within_the_limits(
    limits: dict[str, int], field: bytes, status: int | None
) -> None:
    config = Config().replace(**limits)
    raw = b"GET / HTTP/1.1\r\nHost: a\r\n" + field + b"\r\n\r\n"
    for whole in (False, True):
        scanner = Scanner(config, whole=whole)
        if status is None:
            scanner.feed(raw)
            assert scanner.head.target == b"/"
        else:
            assert _refused(scanner, raw) == status


def test_a_repeated_head_reuses_its_fields_and_a_changed_one_is_scanned_again() -> None:
    scanner = Scanner(whole=True)
    good = b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"
    scanner.feed(good)
    assert scanner.head.fields == [(b"Host", b"a"), (b"Content-Length", b"0")]
    scanner.feed(good)  # the same fields: their facts are reused
    assert (scanner.head.method, scanner.head.target, scanner.head.flags) == ("POST", b"/a", 0)
    # Different fields are scanned, and refused as ever. What the pass finds is
    # remembered, not the verdicts that follow it: the same head is refused again.
    twice = b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"
    assert _refused(scanner, twice) == 400
    assert scanner.head.fields == [(b"Host", b"a"), (b"Host", b"b")]
    assert _refused(scanner, twice) == 400
    scanner = Scanner(whole=True)
    scanner.feed(good)
    big = b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999\r\n\r\n"
    assert _refused(scanner, big) == 413  # the length is read from the new fields
    upgrade = b"GET /u HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nConnection: upgrade\r\n\r\n"
    scanner = Scanner(whole=True)
    for _ in range(2):  # the second time from the remembered facts: the same flags
        with contextlib.suppress(httptools.HttpParserUpgrade):
            scanner.feed(upgrade)
        assert scanner.head.flags == F_CLOSE and scanner.head.fields is not None
        scanner.parser = httptools.HttpRequestParser(scanner)  # llhttp stops after an upgrade


def test_a_head_split_over_reads_is_not_remembered() -> None:
    scanner = Scanner(whole=False)  # a read ended inside it: whole is False
    scanner.feed(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert scanner.head.fields is None


_TARGET_BYTES = st.sampled_from([b"/", b"a", b"%", b"2", b"F", b"?", b"#", b"=", b".", b"\xc3\xa9"])


@given(st.lists(_TARGET_BYTES, max_size=12).map(lambda parts: b"/" + b"".join(parts)))
def test_fill_target_fast_path_agrees_with_the_general_split(target: bytes) -> None:
    fast: Any = H3Event(H3())
    general: Any = H3Event(H3())
    fill_target(fast, target)
    split_target(general, target)
    fields = ("raw_path", "route_path", "path", "query_string")
    assert [getattr(fast, f) for f in fields] == [getattr(general, f) for f in fields]
