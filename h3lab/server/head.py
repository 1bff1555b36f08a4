"""The request head, scanned with no I/O: ``Head.scan`` (h11's split of concerns).

httptools hands the connection a method, a target and a list of header
fields; ``Head.scan`` turns them into what serving needs (method, version,
keep-alive, the target to route, a few facts in ``flags``) or raises
``Refusal``, which carries the status to answer, like h11's
``RemoteProtocolError``. It never writes, never reads a clock and never
looks at the connection: what the connection must do about the facts it
reports (send ``100 Continue``, collect trailers apart) is the connection's.

One ``Head`` lives as long as its connection and is refilled per request
(no allocation per request); it remembers the last Host value it validated,
which the next request on the connection almost always repeats.

``fill_target`` splits a request target into the event's paths and query.
The built-in server and the ASGI adapter both use it, so a target routes the
same way under either.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote_from_bytes, unquote

from h3lab.routing import routing_path
from h3lab.server import framing
from h3lab.server.framing import FORBIDDEN_TRAILERS, METHODS, Refusal

if TYPE_CHECKING:
    from h3lab.config import LimitsConfig
    from h3lab.event import H3Event

# Unusual facts about a head (``Head.flags``; 0 for the common request).
F_TRAILERS = 1  # chunked: fields after the head are trailers, checked and dropped
F_STAR = 2  # OPTIONS *: answered by the server, not routed
F_CLOSE = 4  # an Upgrade attempt: served as plain HTTP, then the connection ends
F_WEBSOCKET = 8  # a GET asking for Upgrade while the app has WebSocket routes
F_CONTINUE = 16  # Expect: 100-continue on HTTP/1.1 with a body to come

# Header names looked at besides Host and Content-Length, found by length,
# then by (length, lowered first byte), before lowering the name: expect (6),
# upgrade (7), connection (10), proxy-connection (16), transfer-encoding (17).
_RARE_NAMES = frozenset({b"expect", b"upgrade", b"transfer-encoding"})
_CONNECTION_NAMES = frozenset({b"connection", b"proxy-connection"})
_RARE_NAME_SIZES = frozenset(len(n) for n in _RARE_NAMES | _CONNECTION_NAMES)
_RARE_NAME_KEYS = frozenset(len(n) << 8 | n[0] for n in _RARE_NAMES | _CONNECTION_NAMES)

# The largest read (plus one byte per field) whose head's fields a Head
# remembers for the next head on its connection (Head.scan).
_REMEMBERED_HEAD = 4096

# Characters left as they are when a non-ASCII path is percent-encoded.
SAFE_PATH = "/%:@!$&'()*+,;=-._~"


class Head:
    """What one request's head says, for the connection that parsed it."""

    __slots__ = (
        "app",
        "facts",
        "fields",
        "flags",
        "host_ok",
        "keep_alive",
        "limits",
        "method",
        "one_read_max",
        "target",
        "version",
    )

    def __init__(self, limits: LimitsConfig, app: Any) -> None:
        self.limits = limits
        # The smaller of the two header size limits (see scan's fast path).
        self.one_read_max = min(limits.max_header_line, limits.max_headers_size)
        # The last head's field list and what scan found in it (see scan).
        self.fields: list[tuple[bytes, bytes]] | None = None
        self.facts: tuple[int, bytes, int, bool, list[tuple[bytes, bytes]] | None] = (
            0,
            b"",
            -1,
            False,
            None,
        )
        self.app = app  # asked has_ws_routes, only for an Upgrade attempt
        self.method = "GET"
        self.version = "1.1"
        self.keep_alive = True  # llhttp's verdict for this head
        self.target = b""  # the origin-form target to route
        self.flags = 0
        # The last Host value validated on this connection (NUL: none yet, as
        # llhttp never lets a NUL into a header value).
        self.host_ok = b"\0"

    def scan(
        self,
        parser: Any,
        headers: list[tuple[bytes, bytes]],
        url: bytes,
        chunk: bytes | None,
        whole: bool = False,
    ) -> None:
        """Fill this head from llhttp's ``parser`` and the collected ``headers``.

        ``url`` is the target as received, ``chunk`` the read being parsed
        (its size, and to tell ``RTSP/1.0`` from ``HTTP/1.0``).
        ``whole`` says the head began in ``chunk`` (no earlier read ended inside
        it), so every header byte is in it. Raises ``Refusal``.
        """
        try:
            method = METHODS[parser.get_method()]
        except KeyError:
            raw_method = parser.get_method().decode("latin-1")
            if raw_method == "CONNECT":
                raise Refusal(501, "CONNECT is not supported (this server never tunnels)") from None
            raise Refusal(501, f"Method {raw_method} is not implemented") from None
        self.method = method
        limits = self.limits
        if len(headers) > limits.max_header_count:
            raise Refusal(431, "Too many request headers")
        special: list[tuple[bytes, bytes]] | None
        if headers == self.fields:
            # PERF: the same fields as the connection's previous head (a
            # keep-alive client repeats its head): the same facts, and a field
            # list already found within the limits. Compared in C, in about a
            # fifth of the time the pass below takes.
            hosts, host, length, connection, special = self.facts
        else:
            # One pass over the headers: sizes, and the few that matter here,
            # picked by name length (and first byte) before any name is lowered.
            total = 0
            line_max = limits.max_header_line
            # PERF: a head read whole from one read cannot break the size
            # limits when that read, plus one byte per field, is within both:
            # a field's name and value are bytes of the read, and its counted
            # line (name + value + 4) is at most one byte longer than it is on
            # the wire ("name:value\r\n"). Such a head's fields are not
            # measured; any other head's are, field by field.
            read = len(chunk) + len(headers) if whole and chunk is not None else -1
            sized = read < 0 or read > self.one_read_max
            length = -1
            hosts = 0
            host = b""
            connection = False
            special = None
            for name, value in headers:
                size = len(name)
                if sized:
                    line = size + len(value) + 4
                    if line > line_max:
                        raise Refusal(431, "Request header line too large")
                    total += line
                if size == 4:
                    if name == b"Host" or name.lower() == b"host":
                        hosts += 1
                        host = value
                elif size == 14:
                    if name.lower() == b"content-length":
                        # llhttp validated the digits (and refused duplicates);
                        # int() still refuses a run of >4300 leading zeros.
                        try:
                            length = int(value)
                        except ValueError:
                            raise Refusal(400, "Invalid Content-Length") from None
                elif size in _RARE_NAME_SIZES and (size << 8 | name[0] | 0x20) in _RARE_NAME_KEYS:
                    lower = name.lower()
                    if lower in _CONNECTION_NAMES:
                        connection = True
                    elif lower in _RARE_NAMES:
                        if special is None:
                            special = []
                        special.append((lower, value))
            if total > limits.max_headers_size:
                raise Refusal(431, "Request header section too large")
            if read >= 0 and read <= _REMEMBERED_HEAD:
                # Remembered for the next head (a copy: the list is the
                # event's); bounded, so an idle connection keeps little.
                self.fields = headers.copy()
                self.facts = (hosts, host, length, connection, special)
        # PERF: get_http_version() formats a new string (the dearest call in a
        # request). Without a Connection header, llhttp keeps a request alive
        # exactly when it is HTTP/1.1 (its versions are 0.9, 1.0, 1.1, 2.0).
        keep_alive = self.keep_alive = parser.should_keep_alive()
        if keep_alive and not connection:
            version = "1.1"
        else:
            version = parser.get_http_version()
            if version != "1.1" and (version != "1.0" or framing.rtsp_request_line(chunk, url)):
                raise Refusal(505, "HTTP version not supported (only HTTP/1.0 and HTTP/1.1)")
        self.version = version
        if hosts != 1 or host != self.host_ok:
            self._check_host(hosts, host, version)
        flags = 0
        if not url or url[0] != 0x2F:  # not origin-form ("/..."): rare
            # Asterisk-form (OPTIONS *) or absolute-form, which routes by its path.
            if url == b"*":
                flags = F_STAR
            url = framing.target_path(url, method)
        self.target = url
        if length > limits.max_body_size:
            # Refused from the header alone: no 100 Continue, the body is never read.
            raise Refusal(413, "Request body too large")
        if special is not None:
            flags |= self._special(special, parser, method, version, length)
        self.flags = flags

    def _check_host(self, hosts: int, host: bytes, version: str) -> None:
        if hosts > 1:
            raise Refusal(400, "Duplicate Host header")
        if not hosts:
            if version == "1.1":
                raise Refusal(400, "Missing Host header")
            return
        if not framing.valid_host(host):
            raise Refusal(400, "Invalid Host header")
        self.host_ok = host  # the next request on this connection likely repeats it

    def _special(
        self,
        fields: list[tuple[bytes, bytes]],
        parser: Any,
        method: str,
        version: str,
        length: int,
    ) -> int:
        """Flags for Transfer-Encoding, Expect and Upgrade (refused as framing says)."""
        flags = 0
        codings = [value for name, value in fields if name == b"transfer-encoding"]
        if codings:
            framing.check_transfer_encoding(codings, version)
            # A chunked body may end with trailers, which llhttp reports
            # through on_header: the connection collects them apart.
            flags |= F_TRAILERS
        expects = [value.strip(b" \t").lower() for name, value in fields if name == b"expect"]
        if expects:
            if any(e != b"100-continue" for e in expects):
                raise Refusal(417, "Unsupported Expect value")
            # 100 Continue only for HTTP/1.1 and only when a body will follow.
            if version == "1.1" and (length > 0 or codings):
                flags |= F_CONTINUE
        if any(name == b"upgrade" for name, _ in fields) and parser.should_upgrade():
            # Served as plain HTTP (RFC 9110 7.8 lets a server ignore Upgrade),
            # and the connection ends with it: llhttp stops parsing there.
            flags |= F_CLOSE
            if method == "GET" and self.app.has_ws_routes:
                flags |= F_WEBSOCKET  # maybe a WebSocket route: the connection asks the app
        return flags


class Trailers(list):
    """Where ``on_header`` appends once a chunked head is complete: trailer fields.

    They are checked (framing and Host are refused) and dropped, never merged
    into the request's headers: a trailer must not change what was routed or
    authorized. Their bytes count against ``limits.max_chunked_overhead``.
    """

    __slots__ = ()

    def append(self, field: tuple[bytes, bytes]) -> None:
        if field[0].lower() in FORBIDDEN_TRAILERS:
            raise Refusal(400, f"{field[0].decode('latin-1')} is not allowed in trailers")


TRAILERS = Trailers()


def fill_target(event: H3Event, target: bytes) -> None:
    """Set the event's ``raw_path``, ``route_path``, ``path`` and ``query_string``
    from an origin-form target (``/path?query#fragment``; the fragment is dropped).

    A non-ASCII path is percent-encoded for ``raw_path`` (as a client should
    have sent it); ``path`` is decoded only when it holds a ``%``.
    """
    if target.isascii():
        # PERF: the common target (ASCII, no query, fragment, escape or
        # trailing slash) is all four fields as it is: one decode, and tests
        # on the str (``bytes in bytes`` costs ~0.5 us on 3.11: it first tries
        # the needle as an int and builds, then drops, a TypeError). Anything
        # else takes split_target, which gives the same result for this one.
        text = target.decode("ascii")
        if "?" not in text and "%" not in text and "#" not in text and text[-1:] != "/":
            event.raw_path = event.route_path = event.path = text
            event.query_string = ""
            return
    split_target(event, target)


def split_target(event: H3Event, target: bytes) -> None:
    """``fill_target`` for any target (its fast path's results are this one's)."""
    path, _, query = target.partition(b"?")
    if 0x23 in path:  # b"#", tested as an int (see above)
        path = path.partition(b"#")[0]
    raw = path.decode("ascii") if path.isascii() else quote_from_bytes(path, SAFE_PATH)
    event.raw_path = raw
    event.route_path = routing_path(raw)
    event.path = unquote(raw) if "%" in raw else raw
    event.query_string = query.decode("latin-1") if query else ""


__all__ = [
    "F_CLOSE",
    "F_CONTINUE",
    "F_STAR",
    "F_TRAILERS",
    "F_WEBSOCKET",
    "TRAILERS",
    "Head",
    "Refusal",
    "Trailers",
    "fill_target",
    "split_target",
]
