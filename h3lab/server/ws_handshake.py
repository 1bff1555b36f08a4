"""The WebSocket upgrade request's rules and answers, sans-IO.

Everything here is a function of the upgrade request's head (and the
server's identity bytes): is it an upgrade at all (``wants_websocket``),
is it a valid one (``check_handshake``, raising ``HandshakeRefused``), what
the 101 says (``accept_answer``, permessage-deflate negotiated there), and
how a refusal from the app is written (``encode_refusal``).

The checks are ours: wsproto's ``H11Handshake`` would re-parse the head with
h11 and does not check the key's form. They are the hostile-input rules --
one valid ``Sec-WebSocket-Key`` (base64 of 16 bytes), version 13 (else 426
with ``Sec-WebSocket-Version: 13``), no body, HTTP/1.1, subprotocols that are
tokens. A refusal is answered like any other HTTP error (``connection:
close``, then linger), and the handler is never called.
"""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING

from wsproto.extensions import Extension, PerMessageDeflate
from wsproto.handshake import server_extensions_handshake
from wsproto.utilities import generate_accept_token, split_comma_header

from h3lab.server import http11
from h3lab.websocket import REFUSAL_MESSAGES

if TYPE_CHECKING:
    from h3lab.response import Response
    from h3lab.server.state import ServerState

_TOKEN_CHARS = frozenset(
    b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)


class HandshakeRefused(Exception):
    def __init__(self, status: int, reason: str, headers: bytes = b"") -> None:
        super().__init__(status, reason)
        self.status = status
        self.reason = reason
        self.headers = headers

    def answer(self, server: ServerState) -> bytes:
        raw = http11.error_bytes(
            self.status, self.reason, server=server.server_bytes, date=server.date_bytes
        )
        if self.headers:
            raw = raw.replace(http11.CONNECTION_CLOSE, http11.CONNECTION_CLOSE + self.headers, 1)
        return raw


def wants_websocket(raw_headers: list[tuple[bytes, bytes]]) -> bool:
    """Does the request's ``Upgrade`` header name the websocket protocol?"""
    for name, value in raw_headers:
        if (
            len(name) == 7
            and name.lower() == b"upgrade"
            and any(token.lower() == "websocket" for token in split_comma_header(value))
        ):
            return True
    return False


def check_handshake(
    method: str, version: str, raw_headers: list[tuple[bytes, bytes]]
) -> tuple[bytes, list[str]]:
    """The client's key and offered subprotocols; ``HandshakeRefused`` when invalid."""
    if method != "GET":
        raise HandshakeRefused(400, "A WebSocket upgrade must be a GET")
    if version != "1.1":
        raise HandshakeRefused(400, "A WebSocket upgrade needs HTTP/1.1")
    keys: list[bytes] = []
    versions: list[bytes] = []
    subprotocols: list[str] = []
    for name, value in raw_headers:
        lower = name.lower()
        if lower == b"sec-websocket-key":
            keys.append(value.strip())
        elif lower == b"sec-websocket-version":
            versions.append(value.strip())
        elif lower == b"sec-websocket-protocol":
            subprotocols.extend(split_comma_header(value))
        elif lower in (b"content-length", b"transfer-encoding"):
            raise HandshakeRefused(400, "A WebSocket upgrade must not have a body")
    if not versions:
        raise HandshakeRefused(400, "Missing Sec-WebSocket-Version")
    if versions != [b"13"]:
        raise HandshakeRefused(
            426, "Unsupported WebSocket version (13 only)", b"sec-websocket-version: 13\r\n"
        )
    if len(keys) != 1:
        raise HandshakeRefused(
            400, "Missing Sec-WebSocket-Key" if not keys else "Duplicate Sec-WebSocket-Key"
        )
    key = keys[0]
    try:
        valid = len(key) == 24 and len(base64.b64decode(key, validate=True)) == 16
    except (binascii.Error, ValueError):
        valid = False
    if not valid:
        raise HandshakeRefused(400, "Invalid Sec-WebSocket-Key (base64 of 16 bytes)")
    for protocol in subprotocols:
        if not protocol or not set(protocol.encode("latin-1")) <= _TOKEN_CHARS:
            raise HandshakeRefused(400, "Invalid Sec-WebSocket-Protocol")
    return key, subprotocols


def extension_offers(raw_headers: list[tuple[bytes, bytes]]) -> list[str]:
    """The client's ``Sec-WebSocket-Extensions`` offers, in its order."""
    offers: list[str] = []
    for name, value in raw_headers:
        if name.lower() == b"sec-websocket-extensions":
            offers.extend(split_comma_header(value))
    return offers


def negotiate_deflate(offers: list[str]) -> tuple[PerMessageDeflate, bytes] | None:
    """permessage-deflate when the client offers it: wsproto's extension and
    the ``Sec-WebSocket-Extensions`` value of our answer; None otherwise (or
    when no offer can be accepted, a malformed one included)."""
    if not any(o.split(";", 1)[0].strip() == PerMessageDeflate.name for o in offers):
        return None
    extension = PerMessageDeflate()
    try:
        accepted = server_extensions_handshake(offers, [extension])
    except ValueError:  # e.g. client_max_window_bits=abc: go on uncompressed
        return None
    if not accepted or not extension.enabled():
        return None
    return extension, accepted


def accept_answer(
    server: ServerState,
    key: bytes,
    subprotocol: str | None,
    headers: list[tuple[str, str]],
    offers: list[str],
) -> tuple[bytes, list[Extension]]:
    """The 101 that completes the upgrade, and the extensions it accepted
    (permessage-deflate when offered and ``server.websocket_per_message_deflate``
    is on). ``http11.UnsafeHeader`` for a handler's bad header."""
    head = [
        b"HTTP/1.1 101 Switching Protocols\r\n",
        server.server_bytes,
        server.date_bytes,
        b"upgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: ",
        generate_accept_token(key),
        b"\r\n",
    ]
    if subprotocol is not None:
        head.append(b"sec-websocket-protocol: %s\r\n" % subprotocol.encode("latin-1"))
    if headers:
        head.append(http11.encode_headers(headers))  # UnsafeHeader: the handler's error
    extensions: list[Extension] = []
    if offers and server.config.server.websocket_per_message_deflate:
        deflate = negotiate_deflate(offers)
        if deflate is not None:
            extensions.append(deflate[0])
            head.append(b"sec-websocket-extensions: %s\r\n" % deflate[1])
    head.append(b"\r\n")
    return b"".join(head), extensions


def encode_refusal(server: ServerState, response: Response) -> bytes:
    """A complete ``connection: close`` answer to an upgrade that is refused
    (by the hook, the middleware or the handler), from the app's response."""
    body = response.body
    if response.streaming or not isinstance(body, bytes | bytearray | memoryview):
        body = b""  # a refusal is short: a streamed body is not sent
    try:
        head = http11.response_head(
            response,
            server=server.server_bytes,
            date=server.date_bytes,
            keep_alive=False,
            http10=False,
            content_length=len(body),
        )
    except http11.UnsafeHeader:
        return http11.error_bytes(
            500, "Internal Server Error", server=server.server_bytes, date=server.date_bytes
        )
    if response.status in http11.NO_BODY_STATUSES:
        body = b""
    return head + bytes(body)


def refusal_bytes(server: ServerState, status: int) -> bytes:
    """The server's own refusal of an upgrade (no response from the app):
    the status with its ``REFUSAL_MESSAGES`` text, ``connection: close``."""
    message = REFUSAL_MESSAGES.get(status, "Internal Server Error")
    return http11.error_bytes(status, message, server=server.server_bytes, date=server.date_bytes)
