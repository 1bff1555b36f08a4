"""The hostile-request table: raw payloads and the answer h3lab gives each.

One source of truth for ``tests/hostile`` (which asserts every row against
the server in-process, over every preset) and ``h3lab bench conformance``
(which sends the same bytes to h3lab and to uvicorn, hypercorn and gunicorn
and prints what each answered).

Every payload that the server must refuse is followed by ``SMUGGLED``, a
complete request for ``GET /smuggled``: after a refusal nothing on the
connection may be interpreted, so that request must never be answered (a
second status in the reply means a server read the rest of the connection
as a new request -- the essence of request smuggling).

The paths used: ``GET /ok`` answers ``ok``, ``POST /echo`` echoes its body,
``GET /smuggled`` answers ``SMUGGLED``; any server under test must serve at
least those (``h3lab.bench.hardening.conformance`` has the apps).
"""

from __future__ import annotations

from dataclasses import dataclass

SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n"


@dataclass(frozen=True)
class Case:
    """One hostile payload and h3lab's answer to it."""

    name: str
    section: str
    payload: bytes
    status: int | None
    """h3lab's final status (None: it answers nothing and closes)."""
    closes: bool = True
    """Whether h3lab closes the connection after answering."""
    note: str = ""
    smuggle: bool = True
    """Append SMUGGLED, which must never be answered."""

    @property
    def wire(self) -> bytes:
        return self.payload + SMUGGLED if self.smuggle else self.payload


def _post(headers: bytes, body: bytes = b"", version: bytes = b"1.1") -> bytes:
    return b"POST /echo HTTP/" + version + b"\r\nHost: t\r\n" + headers + b"\r\n" + body


def _get(headers: bytes = b"", target: bytes = b"/ok", version: bytes = b"1.1") -> bytes:
    return b"GET " + target + b" HTTP/" + version + b"\r\n" + headers + b"\r\n"


_CHUNKED = b"Transfer-Encoding: chunked\r\n"
_HOST = b"Host: t\r\n"

CASES: tuple[Case, ...] = (
    # -- 1. request smuggling: Content-Length ----------------------------------
    Case("cl+te", "framing", _post(b"Content-Length: 5\r\n" + _CHUNKED, b"0\r\n\r\n"), 400),
    Case("te+cl", "framing", _post(_CHUNKED + b"Content-Length: 5\r\n", b"0\r\n\r\n"), 400),
    Case(
        "cl-duplicate-same",
        "framing",
        _post(b"Content-Length: 1\r\nContent-Length: 1\r\n", b"x"),
        400,
    ),
    Case(
        "cl-duplicate-diff",
        "framing",
        _post(b"Content-Length: 1\r\nContent-Length: 2\r\n", b"xx"),
        400,
    ),
    Case("cl-list", "framing", _post(b"Content-Length: 1, 1\r\n", b"x"), 400),
    Case("cl-plus-sign", "framing", _post(b"Content-Length: +1\r\n", b"x"), 400),
    Case("cl-minus-sign", "framing", _post(b"Content-Length: -1\r\n", b"x"), 400),
    Case("cl-underscore", "framing", _post(b"Content-Length: 1_0\r\n", b"x"), 400),
    Case("cl-hex", "framing", _post(b"Content-Length: 0x1\r\n", b"x"), 400),
    Case("cl-non-ascii-digit", "framing", _post("Content-Length: \u0661\r\n".encode(), b"x"), 400),
    Case("cl-inner-space", "framing", _post(b"Content-Length: 1 0\r\n", b"x"), 400),
    Case("cl-empty", "framing", _post(b"Content-Length: \r\n", b"x"), 400),
    Case("cl-overflow", "framing", _post(b"Content-Length: " + b"9" * 30 + b"\r\n", b"x"), 400),
    Case(
        "cl-5000-leading-zeros",
        "framing",
        _post(b"Content-Length: " + b"0" * 5000 + b"1\r\n", b"x"),
        400,
        note="llhttp accepts it; Python's int() refuses >4300 digits",
    ),
    # -- 1. request smuggling: Transfer-Encoding ------------------------------
    Case("te-gzip", "framing", _post(b"Transfer-Encoding: gzip\r\n", b"x"), 501),
    Case(
        "te-gzip-chunked",
        "framing",
        _post(b"Transfer-Encoding: gzip, chunked\r\n", b"0\r\n\r\n"),
        501,
    ),
    Case("te-identity", "framing", _post(b"Transfer-Encoding: identity\r\n", b"x"), 501),
    Case("te-xchunked", "framing", _post(b"Transfer-Encoding: xchunked\r\n", b"0\r\n\r\n"), 501),
    Case(
        "te-chunked-not-final",
        "framing",
        _post(b"Transfer-Encoding: chunked, gzip\r\n", b"0\r\n\r\n"),
        400,
    ),
    Case(
        "te-chunked-twice",
        "framing",
        _post(b"Transfer-Encoding: chunked, chunked\r\n", b"0\r\n\r\n"),
        400,
    ),
    Case("te-two-headers", "framing", _post(_CHUNKED + _CHUNKED, b"0\r\n\r\n"), 400),
    Case("te-empty", "framing", _post(b"Transfer-Encoding: \r\n", b""), 400),
    Case(
        "te-vertical-tab",
        "framing",
        _post(b"Transfer-Encoding: \x0bchunked\r\n", b"0\r\n\r\n"),
        400,
    ),
    Case(
        "te-space-before-colon",
        "framing",
        _post(b"Transfer-Encoding : chunked\r\n", b"0\r\n\r\n"),
        400,
    ),
    Case("te-on-http10", "framing", _post(_CHUNKED, b"0\r\n\r\n", version=b"1.0"), 400),
    # -- 1. header syntax -----------------------------------------------------
    Case("obs-fold", "syntax", _get(_HOST + b"X: a\r\n b\r\n"), 400),
    Case("obs-fold-tab", "syntax", _get(_HOST + b"X: a\r\n\tb\r\n"), 400),
    Case("space-before-colon", "syntax", _get(b"Host : t\r\n"), 400),
    Case("ctl-in-name", "syntax", _get(_HOST + b"X\x01: v\r\n"), 400),
    Case("ctl-in-value", "syntax", _get(_HOST + b"X: a\x01b\r\n"), 400),
    Case("nul-in-value", "syntax", _get(_HOST + b"X: a\x00b\r\n"), 400),
    Case("del-in-value", "syntax", _get(_HOST + b"X: a\x7fb\r\n"), 400),
    Case("cr-in-value", "syntax", _get(_HOST + b"X: a\rb\r\n"), 400),
    Case("no-colon", "syntax", _get(_HOST + b"Bad Header\r\n"), 400),
    Case("empty-name", "syntax", _get(_HOST + b": v\r\n"), 400),
    Case("bare-lf", "syntax", b"GET /ok HTTP/1.1\nHost: t\n\n", 400),
    Case("bare-lf-in-headers", "syntax", b"GET /ok HTTP/1.1\r\nHost: t\nX: y\r\n\r\n", 400),
    Case("bare-lf-at-end", "syntax", b"GET /ok HTTP/1.1\r\nHost: t\r\n\n", 400),
    Case("bare-cr", "syntax", b"GET /ok HTTP/1.1\rHost: t\r\r", 400),
    Case("space-before-first-header", "syntax", b"GET /ok HTTP/1.1\r\n Host: t\r\n\r\n", 400),
    # -- 1. chunked framing -----------------------------------------------------
    Case("chunk-size-negative", "chunked", _post(_CHUNKED, b"-1\r\nx\r\n0\r\n\r\n"), 400),
    Case("chunk-size-0x", "chunked", _post(_CHUNKED, b"0x1\r\nx\r\n0\r\n\r\n"), 400),
    Case("chunk-size-overflow", "chunked", _post(_CHUNKED, b"f" * 20 + b"\r\nx\r\n0\r\n\r\n"), 400),
    Case("chunk-size-trailing-space", "chunked", _post(_CHUNKED, b"1 \r\nx\r\n0\r\n\r\n"), 400),
    Case("chunk-size-empty", "chunked", _post(_CHUNKED, b"\r\nx\r\n0\r\n\r\n"), 400),
    Case(
        "chunk-size-underscore",
        "chunked",
        _post(_CHUNKED, b"1_0\r\n" + b"x" * 16 + b"\r\n0\r\n\r\n"),
        400,
    ),
    Case("chunk-ext-control-byte", "chunked", _post(_CHUNKED, b"1;a\x01\r\nx\r\n0\r\n\r\n"), 400),
    Case("chunk-ext-bare-lf", "chunked", _post(_CHUNKED, b"1;a\nx\r\n0\r\n\r\n"), 400),
    Case("chunk-data-without-crlf", "chunked", _post(_CHUNKED, b"1\r\nxy0\r\n\r\n"), 400),
    Case("chunk-lf-only", "chunked", _post(_CHUNKED, b"1\nx\n0\n\n"), 400),
    Case(
        "trailer-content-length",
        "chunked",
        _post(_CHUNKED, b"1\r\nx\r\n0\r\nContent-Length: 5\r\n\r\n"),
        400,
    ),
    Case(
        "trailer-transfer-encoding",
        "chunked",
        _post(_CHUNKED, b"1\r\nx\r\n0\r\nTransfer-Encoding: chunked\r\n\r\n"),
        400,
    ),
    Case("trailer-host", "chunked", _post(_CHUNKED, b"1\r\nx\r\n0\r\nHost: evil\r\n\r\n"), 400),
    # -- 1. Host and request target --------------------------------------------
    Case("no-host-http11", "host", _get(), 400),
    Case("duplicate-host", "host", _get(_HOST + _HOST), 400),
    Case("host-with-space", "host", _get(b"Host: a b\r\n"), 400),
    Case("host-with-slash", "host", _get(b"Host: a/b\r\n"), 400),
    Case("host-with-userinfo", "host", _get(b"Host: user@a\r\n"), 400),
    Case("host-port-not-numeric", "host", _get(b"Host: a:b\r\n"), 400),
    Case("host-port-too-large", "host", _get(b"Host: a:99999\r\n"), 400),
    Case("host-empty", "host", _get(b"Host: \r\n"), 400),
    Case("host-bad-ipv6", "host", _get(b"Host: [::g]\r\n"), 400),
    Case(
        "absolute-form",
        "host",
        _get(_HOST, b"http://example.com/ok?x=1"),
        200,
        closes=False,
        smuggle=False,
        note="routed by its path",
    ),
    Case("absolute-form-ftp", "host", _get(_HOST, b"ftp://example.com/ok"), 400),
    Case("absolute-form-userinfo", "host", _get(_HOST, b"http://user:pw@example.com/ok"), 400),
    Case("absolute-form-bad-authority", "host", _get(_HOST, b"http://:80/ok"), 400),
    Case("asterisk-with-get", "host", _get(_HOST, b"*"), 400),
    Case(
        "asterisk-with-options",
        "host",
        b"OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n",
        200,
        closes=False,
        smuggle=False,
        note="answered by the server (Allow)",
    ),
    # -- 1. methods, versions, tunnels ----------------------------------------
    Case(
        "connect",
        "tunnel",
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
        501,
    ),
    Case("http2-preface", "tunnel", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505),
    Case(
        "upgrade-websocket",
        "tunnel",
        _get(
            _HOST
            + b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        ),
        200,
        note="served as plain HTTP, then closed: no tunnel",
    ),
    Case(
        "upgrade-h2c-with-body",
        "tunnel",
        _post(
            b"Upgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\nContent-Length: 2\r\n",
            b"ab",
        ),
        200,
        note="served as plain HTTP, then closed: no tunnel",
    ),
    Case("version-1.2", "version", _get(_HOST, version=b"1.2"), 505),
    Case("version-2.0", "version", _get(_HOST, version=b"2.0"), 505),
    Case("version-3.0", "version", _get(_HOST, version=b"3.0"), 505),
    Case("version-0.9", "version", _get(_HOST, version=b"0.9"), 505),
    Case("version-http09-simple", "version", b"GET /ok\r\n\r\n", 505),
    Case(
        "version-2.0-keep-alive",
        "version",
        _get(_HOST + b"Connection: keep-alive\r\n", version=b"2.0"),
        505,
        note="llhttp keeps it alive: the version must still be read",
    ),
    Case(
        "version-0.9-proxy-keep-alive",
        "version",
        _get(_HOST + b"Proxy-Connection: keep-alive\r\n", version=b"0.9"),
        505,
    ),
    Case("version-1.x", "version", _get(_HOST, version=b"1.x"), 400),
    Case("version-lowercase", "version", b"GET /ok http/1.1\r\nHost: t\r\n\r\n", 400),
    Case("rtsp-1.0", "version", b"GET /ok RTSP/1.0\r\nHost: t\r\n\r\n", 505),
    Case("method-unknown", "method", b"FOO /ok HTTP/1.1\r\nHost: t\r\n\r\n", 501),
    Case("method-lowercase", "method", b"get /ok HTTP/1.1\r\nHost: t\r\n\r\n", 501),
    Case("method-webdav", "method", b"PROPFIND /ok HTTP/1.1\r\nHost: t\r\n\r\n", 501),
    Case("garbage", "method", b"GARBAGE\r\n\r\n", 400),
    Case(
        "tls-client-hello",
        "method",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 32,
        400,
    ),
    # -- 2. limits -----------------------------------------------------------------
    Case("target-9k", "limits", _get(_HOST, b"/" + b"a" * 9000), 414),
    Case("header-line-9k", "limits", _get(_HOST + b"X-Big: " + b"v" * 9000 + b"\r\n"), 431),
    Case(
        "headers-33k",
        "limits",
        _get(_HOST + b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 1000) for i in range(34))),
        431,
    ),
    Case(
        "headers-101",
        "limits",
        _get(_HOST + b"".join(b"X-H%d: v\r\n" % i for i in range(101))),
        431,
    ),
    Case(
        "body-2mib-content-length",
        "limits",
        _post(b"Content-Length: 2097152\r\nExpect: 100-continue\r\n"),
        413,
        note="no 100 Continue",
    ),
    Case(
        "body-chunked-over-1mib",
        "limits",
        _post(_CHUNKED, b"100000\r\n" + b"x" * 0x100000 + b"\r\n1\r\nx\r\n0\r\n\r\n"),
        413,
    ),
    Case("expect-unknown", "limits", _post(b"Content-Length: 2\r\nExpect: magic\r\n", b"ab"), 417),
)


CASE_IDS = tuple(case.name for case in CASES)

__all__ = ["CASES", "CASE_IDS", "SMUGGLED", "Case"]
