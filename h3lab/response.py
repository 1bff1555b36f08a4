"""Turning whatever a handler returns into a response.

=====================  ======================================================
handler returns         response
=====================  ======================================================
dict / list / number    JSON, ``application/json``
str                     ``text/plain; charset=utf-8``
bytes-like              ``application/octet-stream``
None                    204 with no body
``Response``            as is, or a copy with the event's headers (cookies) merged in
async iterator          streamed with chunked transfer-encoding
=====================  ======================================================

``event.status`` and ``event.set_header`` apply to converted values. The
server has its own fast paths for the commonest cases (str, dict, bytes with
no status or header changes) that produce byte-identical output; this module
is the general path, shared with the ASGI adapter.
"""

from __future__ import annotations

import enum
import json
import json.encoder
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from h3lab.event import H3Event

TEXT_TYPE = "text/plain; charset=utf-8"
JSON_TYPE = "application/json"
HTML_TYPE = "text/html; charset=utf-8"
BINARY_TYPE = "application/octet-stream"


def _json_default(value: Any) -> Any:
    to_json = getattr(value, "to_json", None)
    if callable(to_json):
        return to_json()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    # What orjson encodes natively (response.json="orjson"): both encoders agree.
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _make_json_encode() -> Any:
    # PERF: JSONEncoder.encode() rebuilds its C encoder object on every call
    # (~1 us for a small dict); building the C encoder once and calling it
    # directly costs ~0.3 us. No circular-reference markers: a cycle raises
    # RecursionError, which the server turns into a 500 like any error.
    c_make_encoder = getattr(json.encoder, "c_make_encoder", None)
    if c_make_encoder is None:  # not CPython's C accelerator: the portable path
        return json.JSONEncoder(
            ensure_ascii=False, separators=(",", ":"), default=_json_default
        ).encode
    c_encode = c_make_encoder(
        None, _json_default, json.encoder.encode_basestring, None, ":", ",", False, False, True
    )

    def encode(value: Any) -> str:
        if type(value) is str:
            return json.encoder.encode_basestring(value)
        return "".join(c_encode(value, 0))

    return encode


json_encode = _make_json_encode()


def json_bytes(value: Any) -> bytes:
    return json_encode(value).encode()


class Response:
    """An explicit response: ``Response(body, status=200, headers=None, media_type=None)``.

    ``body`` may be bytes, str (UTF-8), a JSON-able dict/list, None (empty) or
    an async iterable of bytes/str chunks (streamed, chunked).
    """

    __slots__ = ("body", "headers", "status")

    def __init__(
        self,
        body: Any = b"",
        status: int = 200,
        headers: Mapping[str, str] | list[tuple[str, str]] | None = None,
        media_type: str | None = None,
    ) -> None:
        if not isinstance(status, int) or not 100 <= status <= 999:
            raise ValueError(f"Response status must be an int in 100..999, got {status!r}")
        self.status = status
        # PERF: exact-type tests first (no ABC isinstance for the usual list
        # or None); every header pair is still copied as (str, str).
        header_list: list[tuple[str, str]]
        if not headers:
            header_list = []
        elif type(headers) is list or not isinstance(headers, Mapping):
            header_list = [(str(k), str(v)) for k, v in headers]
        else:
            header_list = [(str(k), str(v)) for k, v in headers.items()]
        default_type: str | None
        kind = type(body)
        if kind is bytes:
            self.body: bytes | AsyncIterable[Any] = body
            default_type = BINARY_TYPE
        elif kind is str:
            self.body = body.encode()
            default_type = TEXT_TYPE
        elif body is None:
            self.body = b""
            default_type = None
        elif isinstance(body, bytes):
            self.body = body
            default_type = BINARY_TYPE
        elif isinstance(body, bytearray | memoryview):
            self.body = bytes(body)
            default_type = BINARY_TYPE
        elif isinstance(body, str):
            self.body = body.encode()
            default_type = TEXT_TYPE
        elif isinstance(body, dict | list):
            self.body = json_bytes(body)
            default_type = JSON_TYPE
        elif isinstance(body, AsyncIterable):
            self.body = body
            default_type = BINARY_TYPE
        else:
            raise TypeError(f"Response body cannot be a {type(body).__name__}")
        content_type = media_type or default_type
        if content_type and not (
            header_list and any(k.lower() == "content-type" for k, _ in header_list)
        ):
            header_list.append(("content-type", content_type))
        self.headers = header_list

    def with_headers(self, headers: list[tuple[str, str]]) -> Response:
        """The same status and body with ``headers`` (taken as given); ``self`` is untouched."""
        copy = Response.__new__(Response)
        copy.status = self.status
        copy.body = self.body
        copy.headers = headers
        return copy

    @property
    def streaming(self) -> bool:
        return not isinstance(self.body, bytes)

    def header(self, name: str) -> str | None:
        lower = name.lower()
        for key, value in self.headers:
            if key.lower() == lower:
                return value
        return None

    def __repr__(self) -> str:
        body = self.body
        kind = f"{len(body)} bytes" if isinstance(body, bytes) else "stream"  # as .streaming
        return f"Response({self.status}, {kind})"


def is_async_iterable(value: Any) -> bool:
    return isinstance(value, AsyncIterator | AsyncIterable)


def to_response(
    event: H3Event, value: Any, encode_json: Callable[[Any], bytes] = json_bytes
) -> Response:
    """The general conversion of a handler's return value (see module table).

    ``encode_json`` is the app's ``response.json`` encoder (``app.json_encode``);
    a ``Response(dict)`` built by hand uses the stdlib encoder.
    """
    if isinstance(value, Response):
        extra = event._resp_headers
        if not extra:
            return value
        # A copy: the handler may return the same Response object to every
        # request (a module-level constant); this request's headers (its
        # Set-Cookie) must never be written into it.
        present = {k.lower() for k, _ in value.headers}
        merged = list(value.headers)
        for name, val in extra:
            lower = name.lower()
            if lower == "set-cookie" or lower not in present:
                merged.append((name, val))
        return value.with_headers(merged)
    status = event.status
    # Response copies the staged pairs itself: the event's list is never shared.
    headers = event._resp_headers
    if value is None:
        return Response(None, 204 if status == 200 else status, headers)
    kind = type(value)
    if kind is dict or kind is list:  # PERF: the usual JSON values, without the isinstance chain
        return Response(encode_json(value), status, headers, media_type=JSON_TYPE)
    if kind is str:
        return Response(value, status, headers)
    if isinstance(value, dict | list | bool | int | float):
        return Response(encode_json(value), status, headers, media_type=JSON_TYPE)
    if isinstance(value, str | bytes | bytearray | memoryview):
        return Response(value, status, headers)
    if is_async_iterable(value):
        return Response(value, status, headers)
    raise TypeError(f"a handler returned a {type(value).__name__}, which h3lab cannot send")
