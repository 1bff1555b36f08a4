"""Request framing and header validation, with no I/O (h11's split of concerns).

Who refuses what
----------------
The server parses with llhttp (through httptools) in its strict default
mode, and a check is written here only where llhttp lets something through.
``tests/hostile`` pins every case either way, so an llhttp upgrade that
changes its behaviour fails a test instead of silently opening a hole.

llhttp already refuses, before a handler could ever run (-> 400, except
where noted):

* Content-Length together with Transfer-Encoding; duplicate Content-Length
  (even with equal values); a Content-Length with a sign, underscore, hex
  prefix, inner space, comma list, non-ASCII digit, or beyond 2**64;
* a Transfer-Encoding in which ``chunked`` is not the final coding, or
  appears twice (also across two header lines);
* obs-fold, whitespace before the colon, control bytes or NUL in names or
  values, a header line without a colon, an empty name;
* bare LF or bare CR as a line ending anywhere in the head or the chunked
  framing, chunk data not followed by CRLF, malformed chunk sizes (signs,
  ``0x``, underscores, spaces, empty, overflow) and extensions;
* Content-Length or Transfer-Encoding in the trailer section;
* methods it does not know (``HttpParserInvalidMethodError``; we answer 501
  when the line looks like ``TOKEN SP target SP HTTP/x.y``, 400 otherwise),
  malformed targets and version tokens, versions it does not know (its
  "Invalid HTTP version", which we answer with 505), and the HTTP/2
  connection preface ``PRI * HTTP/2.0`` (we answer 505);
* anything after a message that ends the connection (``Data after
  Connection: close``): the server stops reading requests there anyway.

What llhttp lets through and h3lab refuses (this module and ``protocol``):

=======================================  ======================================
Transfer-Encoding with any coding but    501 (``gzip, chunked``, ``identity``)
``chunked`` (llhttp ignores leading
codings when ``chunked`` is final)
Transfer-Encoding on HTTP/1.0            400 (a 1.0 peer cannot mean it)
HTTP/1.1 without Host, duplicate Host,   400
Host not ``uri-host [":" port]``
versions other than 1.0/1.1 (llhttp      505
parses 0.9 and 2.0), ``RTSP/1.0``
methods llhttp knows but h3lab does      501 (PROPFIND, PURGE, SOURCE...)
not serve; CONNECT (never tunnelled)
asterisk-form with any method but        400
OPTIONS; absolute-form with a scheme
other than http/https, with userinfo or
without a host
Content-Length of >4300 digits (leading  400 (Python's int() refuses it)
zeros: llhttp accepts, int() does not)
Expect other than ``100-continue``       417
a header named Host in the trailers      400 (trailers never join the headers)
an Upgrade (WebSocket, h2c)              served as plain HTTP, then closed:
                                         llhttp stops there, nothing follows
=======================================  ======================================

llhttp also accepts ``RTSP/1.1`` and ``ICE/1.0`` as if they were HTTP (the
version it reports hides the protocol name); ICE needs the SOURCE method
(501 here) and RTSP/1.0 is spotted in the raw bytes. A made-up ``RTSP/1.1``
passes as HTTP/1.1: llhttp frames it exactly like HTTP/1.1, so nothing can
be smuggled through it.

Everything size- or time-related is counted by ``protocol`` as bytes
arrive; this module only classifies.
"""

from __future__ import annotations

import ipaddress
import re

import httptools

from h3lab.methods import METHODS as ROUTABLE_METHODS

# The methods the app layer can route (h3lab.methods), as llhttp reports them
# (bytes) -> the interned str put on the event. A method llhttp knows but that
# is not there (PROPFIND, PURGE, SOURCE, CONNECT...) can never reach a handler: 501.
METHODS: dict[bytes, str] = {m.encode(): m for m in ROUTABLE_METHODS}

# Methods whose request body means nothing to a handler: it is read (so it
# can never be taken for a pipelined request) and dropped.
BODY_DISCARDED = frozenset({"GET", "HEAD"})

# Names refused in a trailer section. llhttp already refuses the framing
# ones; Host is ours (a trailer must not re-route a request).
FORBIDDEN_TRAILERS = frozenset({b"content-length", b"transfer-encoding", b"host"})


class Refusal(Exception):
    """A request that cannot be served: answer ``status``, then close."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(status, reason)
        self.status = status
        self.reason = reason


# -- transfer-encoding ---------------------------------------------------------


def check_transfer_encoding(values: list[bytes], version: str) -> None:
    """Refuse what llhttp accepted: codings other than ``chunked``, or TE on 1.0.

    llhttp has already refused ``chunked`` that is not final or appears
    twice, so what reaches here ends in exactly one ``chunked``.
    """
    if version == "1.0":
        raise Refusal(400, "Transfer-Encoding is not allowed in an HTTP/1.0 request")
    codings = [c.strip(b" \t").lower() for v in values for c in v.split(b",")]
    codings = [c for c in codings if c]  # empty list elements are allowed (RFC 9110 5.6.1)
    unknown = [c for c in codings if c != b"chunked"]
    if unknown:
        raise Refusal(
            501, f"Unsupported transfer coding {unknown[0].decode('latin-1')!r} (only chunked)"
        )
    if codings != [b"chunked"]:
        raise Refusal(400, "Invalid Transfer-Encoding")


# -- Host ----------------------------------------------------------------------

# RFC 3986 reg-name (unreserved / pct-encoded / sub-delims), non-empty: an
# http URI with an empty host is invalid (RFC 9110 4.2.1).
_REG_NAME = rb"(?:[A-Za-z0-9\-._~!$&'()*+,;=]|%[0-9A-Fa-f]{2})+"
_HOST = re.compile(rb"(?:(\[[^\[\]]*\])|(" + _REG_NAME + rb"))(?::([0-9]*))?")
_IPVFUTURE = re.compile(rb"v[0-9A-Fa-f]+\.[A-Za-z0-9\-._~!$&'()*+,;=:]+")


def valid_host(value: bytes) -> bool:
    """Is ``value`` a Host header value: ``uri-host [ ":" port ]``?"""
    match = _HOST.fullmatch(value.strip(b" \t"))
    if match is None:
        return False
    literal, _, port = match.groups()
    if port and (len(port) > 5 or int(port) > 65535):
        return False
    if literal is not None:
        inner = literal[1:-1]
        if _IPVFUTURE.fullmatch(inner):
            return True
        try:
            ipaddress.IPv6Address(inner.decode("ascii"))
        except (ValueError, UnicodeDecodeError):
            return False
    return True


# -- request target ------------------------------------------------------------


def target_path(url: bytes, method: str) -> bytes:
    """The origin-form (``/path?query``) of a target that is not origin-form.

    Asterisk-form stays ``*`` (OPTIONS only); absolute-form routes by its
    path, and must be a well-formed http(s) URI with a host and no userinfo
    (RFC 9110 4.2.4: userinfo in an http URI is an error).
    """
    if url == b"*":
        if method != "OPTIONS":
            raise Refusal(400, "Asterisk-form request target is only allowed with OPTIONS")
        return url
    scheme = url.partition(b":")[0].lower()
    if scheme not in (b"http", b"https") or not url[len(scheme) :].startswith(b"://"):
        raise Refusal(400, "Unsupported request target")
    try:
        parsed = httptools.parse_url(url)
    except httptools.HttpParserInvalidURLError:
        raise Refusal(400, "Malformed absolute-form request target") from None
    if not parsed.host or parsed.userinfo:
        raise Refusal(400, "Malformed absolute-form request target")
    path = parsed.path or b"/"
    return path + (b"?" + parsed.query if parsed.query else b"")


def rtsp_request_line(chunk: bytes | None, url: bytes) -> bool:
    """Did this ``1.0`` request say ``RTSP/1.0`` rather than ``HTTP/1.0``?

    llhttp parses ``GET / RTSP/1.0`` as if it were HTTP and reports version
    1.0: the protocol name is only visible in the raw bytes. Only a positive
    sighting refuses (a request line split across reads is let through:
    llhttp frames it exactly as HTTP/1.0, so nothing can be smuggled).
    """
    if not chunk or b"RTSP/" not in chunk:
        return False
    tail = url[-64:]
    at = chunk.rfind(tail)
    if at < 0:
        return False
    return chunk[at + len(tail) : at + len(tail) + 80].lstrip(b" ").startswith(b"RTSP/")


# -- parser errors -------------------------------------------------------------

# Every method llhttp parses (HTTP, WebDAV, RTSP...): a request line starting
# with one of these did not cause an "invalid method" error.
_LLHTTP_METHODS = frozenset(
    b"DELETE GET HEAD POST PUT CONNECT OPTIONS TRACE COPY LOCK MKCOL MOVE PROPFIND "
    b"PROPPATCH SEARCH UNLOCK BIND REBIND UNBIND ACL REPORT MKACTIVITY CHECKOUT MERGE "
    b"M-SEARCH NOTIFY SUBSCRIBE UNSUBSCRIBE PATCH PURGE MKCALENDAR LINK UNLINK SOURCE "
    b"QUERY PRI DESCRIBE ANNOUNCE SETUP PLAY PAUSE TEARDOWN GET_PARAMETER SET_PARAMETER "
    b"REDIRECT RECORD FLUSH".split()
)
_LINE_START = re.compile(rb"(?:^|\n)([!#$%&'*+.^_`|~0-9A-Za-z-]+) ")
_REQUEST_LINE = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+ [^ \r\n]+ HTTP/\d\.\d\r\n")


def unknown_method_line(data: bytes) -> bool:
    """Does the request llhttp choked on have a well-formed line with an unknown method?

    llhttp reports no error position. The failing request is the first one
    in ``data`` whose method token llhttp does not know (the requests before
    it parsed): if that line is ``TOKEN SP target SP HTTP/x.y CRLF``, the
    method is merely unknown (501); anything else is junk (400).
    """
    for match in _LINE_START.finditer(data):
        if match.group(1) not in _LLHTTP_METHODS:
            start = match.start(1)
            return _REQUEST_LINE.match(data, start) is not None
    return False


def parser_error(exc: Exception, data: bytes) -> tuple[int, str]:
    """Status and reason for an llhttp error (``data``: the bytes being parsed)."""
    message = str(exc) or type(exc).__name__
    if isinstance(exc, httptools.HttpParserInvalidMethodError):
        # A well-formed request line with a method nobody knows is an unknown
        # method (501); binary junk (a TLS hello on the plain port) is a bad
        # request.
        if unknown_method_line(data):
            return 501, "Unknown request method"
        return 400, "Malformed request line"
    if isinstance(exc, httptools.HttpParserInvalidURLError):
        return 400, f"Malformed request target: {message}"
    if "Invalid HTTP version" in message:
        return 505, "HTTP version not supported"
    if "PRI/Upgrade" in message:
        return 505, "HTTP/2 is not supported on this port"
    return 400, f"Malformed request: {message}"


__all__ = [
    "BODY_DISCARDED",
    "FORBIDDEN_TRAILERS",
    "METHODS",
    "Refusal",
    "check_transfer_encoding",
    "parser_error",
    "rtsp_request_line",
    "target_path",
    "unknown_method_line",
    "valid_host",
]
