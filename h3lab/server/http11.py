"""HTTP/1.1 response serialization, with no I/O (h11's split of concerns).

Everything constant is encoded once at import: status lines for every code,
the header prefixes of the fast paths. What changes per request is only the
content length, the connection header and the Date line (refreshed once a
second by the server, not formatted per request).
"""

from __future__ import annotations

import re
from email.utils import formatdate
from http import HTTPStatus
from urllib.parse import quote

from h3lab.response import Response

STATUS_LINES: dict[int, bytes] = {
    int(status): b"HTTP/1.1 %d %s\r\n" % (status, status.phrase.encode()) for status in HTTPStatus
}

NO_BODY_STATUSES = frozenset({204, 304}) | frozenset(range(100, 200))

CONNECTION_CLOSE = b"connection: close\r\n"
CONNECTION_KEEP_ALIVE = b"connection: keep-alive\r\n"
CHUNKED = b"transfer-encoding: chunked\r\n"
CHUNKED_END = b"0\r\n\r\n"

_FORBIDDEN_IN_HEADERS = ("\r", "\n", "\0")
_FRAMING = ("content-length", "transfer-encoding")


def status_line(status: int) -> bytes:
    line = STATUS_LINES.get(status)
    if line is None:
        line = STATUS_LINES[status] = b"HTTP/1.1 %d Unknown\r\n" % status
    return line


def date_header() -> bytes:
    return b"date: " + formatdate(usegmt=True).encode() + b"\r\n"


def server_header(name: str) -> bytes:
    return b"server: " + name.encode("latin-1") + b"\r\n" if name else b""


def fast_prefix(server: bytes, content_type: bytes) -> bytes:
    """``HTTP/1.1 200 OK`` + server + content-type + ``content-length: `` (to be completed)."""
    return STATUS_LINES[200] + server + b"content-type: " + content_type + b"\r\ncontent-length: "


class UnsafeHeader(ValueError):
    """A handler produced a header that cannot be sent: it would split the
    response (CR/LF/NUL), or it is not Latin-1 where RFC 8187 does not apply."""


def header_fields(headers: list[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    """Validate and encode user headers (both transports use it).

    Refuses CR, LF or NUL anywhere (response splitting) and malformed names.
    A value that is not Latin-1 is encoded per RFC 8187 where the header
    defines extended parameters (``Content-Disposition``: ``filename*``,
    RFC 6266); anywhere else it is refused (``UnsafeHeader``, a 500).
    """
    fields = []
    for name, value in headers:
        for bad in _FORBIDDEN_IN_HEADERS:
            if bad in name or bad in value:
                raise UnsafeHeader(f"header {name!r} contains a control character")
        if not name or ":" in name or " " in name:
            raise UnsafeHeader(f"invalid header name {name!r}")
        try:
            fields.append((name.encode("latin-1"), value.encode("latin-1")))
        except UnicodeEncodeError:
            fields.append((_ascii_name(name), _extended_value(name, value)))
    return fields


def encode_headers(headers: list[tuple[str, str]]) -> bytes:
    """The header lines of ``headers`` (see ``header_fields``)."""
    return b"".join(b"%s: %s\r\n" % field for field in header_fields(headers))


def _ascii_name(name: str) -> bytes:
    try:
        return name.encode("ascii")
    except UnicodeEncodeError:
        raise UnsafeHeader(f"header name {name!r} is not ASCII") from None


# Content-Disposition parameters: name=token or name="quoted string".
_PARAM = re.compile(r';\s*([^\s;=]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')
# RFC 8187 attr-char besides ALPHA / DIGIT (which quote() always keeps).
_ATTR_CHAR = "!#$&+-.^_`|~"


def _extended_value(name: str, value: str) -> bytes:
    """A non-Latin-1 value as RFC 8187 extended parameters, or ``UnsafeHeader``."""
    if name.lower() != "content-disposition":
        raise UnsafeHeader(
            f"header {name!r} is not Latin-1 and has no RFC 8187 form; encode it first"
        )
    kind, _, rest = value.partition(";")
    kind = kind.strip()
    if not kind.isascii():
        raise UnsafeHeader(f"Content-Disposition type {kind!r} is not ASCII")
    out = [kind]
    for match in _PARAM.finditer(";" + rest):
        param, raw = match[1], match[2].strip()
        text = raw[1:-1].replace('\\"', '"').replace("\\\\", "\\") if raw[:1] == '"' else raw
        if text.isascii():
            out.append(f"{param}={raw}")
            continue
        if not param.isascii() or param.endswith("*"):
            raise UnsafeHeader(f"Content-Disposition parameter {param!r} cannot be encoded")
        # An ASCII fallback for old clients, then the exact value (RFC 6266 4.3).
        fallback = text.encode("ascii", "replace").decode().replace('"', "'")
        out.append(f'{param}="{fallback}"')
        out.append(f"{param}*=UTF-8''{quote(text, safe=_ATTR_CHAR)}")
    return "; ".join(out).encode("ascii")


def response_head(
    response: Response,
    *,
    server: bytes,
    date: bytes,
    keep_alive: bool,
    http10: bool,
    content_length: int | None,
    head_only: bool = False,
) -> bytes:
    """Status line and header block of a response (``content_length`` None = chunked)."""
    status = response.status
    headers = response.headers
    user_length: str | None = None
    if any(k.lower() in _FRAMING for k, _ in headers):
        # Framing is the server's job: a handler's Content-Length or
        # Transfer-Encoding could contradict the body actually sent. The one
        # use kept: a HEAD answered from a streamed body, where only the
        # handler knows the length (static files).
        user_length = next((v for k, v in headers if k.lower() == "content-length"), None)
        headers = [(k, v) for k, v in headers if k.lower() not in _FRAMING]
    parts = [status_line(status), server, date, encode_headers(headers)]
    if status not in NO_BODY_STATUSES:
        if head_only and content_length is None and user_length is not None:
            parts.append(b"content-length: %s\r\n" % user_length.strip().encode("latin-1"))
        elif content_length is not None:
            parts.append(b"content-length: %d\r\n" % content_length)
        elif not http10:
            parts.append(CHUNKED)
    if not keep_alive:
        parts.append(CONNECTION_CLOSE)
    elif http10:
        parts.append(CONNECTION_KEEP_ALIVE)
    parts.append(b"\r\n")
    return b"".join(parts)


def error_bytes(
    status: int, message: str, *, server: bytes = b"", date: bytes = b"", head_only: bool = False
) -> bytes:
    """A complete ``connection: close`` JSON error response, for protocol errors.

    ``head_only``: the answer to a HEAD request, headers only (RFC 9110 9.3.2),
    with the length the body would have had.
    """
    import json

    body = json.dumps(
        {"status": status, "message": message, "data": None}, separators=(",", ":")
    ).encode()
    return b"".join(
        (
            status_line(status),
            server,
            date,
            b"content-type: application/json\r\ncontent-length: %d\r\n" % len(body),
            CONNECTION_CLOSE,
            b"\r\n",
            b"" if head_only else body,
        )
    )
