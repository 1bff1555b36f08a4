"""Form bodies: ``application/x-www-form-urlencoded`` and ``multipart/form-data``.

Both parsers are the standard library's: ``urllib.parse.parse_qsl`` for
urlencoded bodies and the ``email`` package (MIME is MIME) for multipart, fed
a synthesized ``Content-Type`` header followed by the request body. That
gives RFC 2231 ``filename*=`` decoding, UTF-8 filenames and
transfer-encodings for free, with no hand-written tokenizer to get wrong.

Limits and known behaviour:

* The whole body is already in memory (the server caps it with
  ``max_body_size``); so are the parsed parts. Nothing is spooled to disk.
* ``max_fields`` / ``max_files`` cap the *number* of parts -> 400;
  ``max_part_size`` caps each part's bytes -> 413.
* The email parser accepts CR, LF or CRLF before a boundary line, so a part
  whose data contains a line break followed by ``--<boundary>`` is cut there.
  RFC 2046 forbids the boundary inside the data anyway, and every client
  picks a boundary that does not occur in what it sends.
* ``UploadFile.filename`` is whatever the client claimed (it may contain
  ``/``, ``..`` or a Windows path): never use it as a filesystem path as is.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any
from urllib.parse import parse_qsl

from h3lab.errors import HTTPError

__all__ = ["FormData", "UploadFile", "parse_form"]

URLENCODED = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"

# RFC 2046 §5.1.1: 1..70 characters of bchars, not ending with a space.
_BOUNDARY_RE = re.compile(r"^[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]$")


@dataclass(frozen=True, slots=True)
class UploadFile:
    """One uploaded file, held in memory."""

    filename: str
    content_type: str
    data: bytes = field(repr=False)

    @property
    def size(self) -> int:
        return len(self.data)

    def to_json(self) -> dict[str, Any]:
        # What a handler echoing ``await event.form()`` shows for a file: its
        # metadata, never its (possibly binary, possibly huge) content.
        return {"filename": self.filename, "content_type": self.content_type, "size": self.size}


FormValue = str | UploadFile


class FormData(Mapping[str, FormValue]):
    """Parsed form: ``form["name"]`` is the first value, ``getall`` every value.

    Text fields are ``str``; file parts are ``UploadFile``. ``fields`` and
    ``files`` split them (first value per name); ``items_all`` keeps every
    pair in body order.
    """

    __slots__ = ("_items", "_map")

    def __init__(self, items: list[tuple[str, FormValue]] | None = None) -> None:
        self._items: list[tuple[str, FormValue]] = list(items or ())
        first: dict[str, FormValue] = {}
        for name, value in self._items:
            first.setdefault(name, value)
        self._map = first

    def __getitem__(self, name: str) -> FormValue:
        return self._map[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._map)

    def __len__(self) -> int:
        return len(self._map)

    def getall(self, name: str) -> list[FormValue]:
        return [value for key, value in self._items if key == name]

    def items_all(self) -> list[tuple[str, FormValue]]:
        return list(self._items)

    @property
    def fields(self) -> dict[str, str]:
        first: dict[str, str] = {}
        for name, value in self._items:
            if isinstance(value, str):
                first.setdefault(name, value)
        return first

    @property
    def files(self) -> dict[str, UploadFile]:
        first: dict[str, UploadFile] = {}
        for name, value in self._items:
            if isinstance(value, UploadFile):
                first.setdefault(name, value)
        return first

    def to_json(self) -> dict[str, Any]:
        return {
            name: value.to_json() if isinstance(value, UploadFile) else value
            for name, value in self._map.items()
        }

    def __repr__(self) -> str:
        return f"FormData({self._items!r})"


def parse_form(
    content_type: str,
    body: bytes,
    *,
    max_fields: int = 1000,
    max_files: int = 100,
    max_part_size: int | None = None,
) -> FormData:
    """Parse a form body by its ``Content-Type``; ``HTTPError`` 400/413/415 on bad input."""
    media_type, params = _parse_content_type(content_type or "")
    if media_type == URLENCODED:
        return _parse_urlencoded(body, params.get("charset") or "utf-8", max_fields)
    if media_type == MULTIPART:
        return _parse_multipart(content_type, params, body, max_fields, max_files, max_part_size)
    raise HTTPError(415, "Unsupported form content type", {"content_type": media_type})


def _parse_content_type(content_type: str) -> tuple[str, dict[str, str]]:
    # CR/LF would let the value forge headers in the synthesized message below.
    if "\r" in content_type or "\n" in content_type:
        raise HTTPError(400, "Invalid form body", {"reason": "malformed content-type"})
    # The media type is taken verbatim (lower-cased) so a 415 names what the
    # client sent; the email header parser does the quoting rules of params.
    media_type = content_type.split(";", 1)[0].strip().lower()
    header = HTTP.header_factory("content-type", content_type)
    return media_type, dict(header.params)  # type: ignore[attr-defined]


# -- urlencoded ----------------------------------------------------------------


def _parse_urlencoded(body: bytes, charset: str, max_fields: int) -> FormData:
    try:
        # Decode the raw body with the declared charset so that unescaped
        # non-ASCII bytes and %-escapes end up as the same characters.
        text = body.decode(charset, errors="replace")
    except (LookupError, ValueError):  # unknown or non-text codec ("rot13", "idna")
        reason = f"unsupported charset {charset!r}"
        raise HTTPError(400, "Invalid form body", {"reason": reason}) from None
    try:
        pairs = parse_qsl(
            text,
            keep_blank_values=True,
            strict_parsing=False,
            encoding=charset,
            errors="replace",
            max_num_fields=max_fields,
        )
    except ValueError:
        # Without strict_parsing, the field cap is parse_qsl's only ValueError.
        raise HTTPError(400, "Too many form fields", {"limit": max_fields}) from None
    return FormData(list(pairs))


# -- multipart -----------------------------------------------------------------


def _bad_multipart(reason: str) -> HTTPError:
    return HTTPError(400, "Invalid multipart body", {"reason": reason})


def _parse_multipart(
    content_type: str,
    params: dict[str, str],
    body: bytes,
    max_fields: int,
    max_files: int,
    max_part_size: int | None,
) -> FormData:
    boundary = params.get("boundary", "")
    if not boundary:
        raise _bad_multipart("missing boundary")
    if not _BOUNDARY_RE.match(boundary):
        raise _bad_multipart("invalid boundary")
    if _is_empty_multipart(body, boundary):
        return FormData()
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    if message.defects or not message.is_multipart():
        # StartBoundaryNotFound (garbage), CloseBoundaryNotFound (truncated
        # body), MultipartInvariantViolation...: all mean "not what was announced".
        reason = type(message.defects[0]).__name__ if message.defects else "no parts"
        raise _bad_multipart(reason)
    items: list[tuple[str, FormValue]] = []
    fields = files = 0
    for index, part in enumerate(message.iter_parts()):  # type: ignore[attr-defined]
        name, value = _read_part(part, index, max_part_size)
        if isinstance(value, UploadFile):
            files += 1
            if files > max_files:
                raise HTTPError(400, "Too many files", {"limit": max_files})
        else:
            fields += 1
            if fields > max_fields:
                raise HTTPError(400, "Too many form fields", {"limit": max_fields})
        items.append((name, value))
    return FormData(items)


def _is_empty_multipart(body: bytes, boundary: str) -> bool:
    # A form with no successful controls is sent as just the close delimiter,
    # which the email parser reports as "start boundary not found".
    return body.strip() in (b"", b"--" + boundary.encode("latin-1") + b"--")


def _read_part(part: Message, index: int, max_part_size: int | None) -> tuple[str, FormValue]:
    assert isinstance(part, EmailMessage)
    if part.get_content_disposition() != "form-data":
        raise _bad_multipart(f"part {index} is not Content-Disposition: form-data")
    # The header object's params are already RFC 2231-decoded strings.
    name = part["content-disposition"].params.get("name")
    if not isinstance(name, str) or not name:
        raise _bad_multipart(f"part {index} has no name")
    data = part.get_payload(decode=True)
    if not isinstance(data, bytes):
        # A nested multipart/mixed (RFC 2388's multi-file form) has no bytes payload.
        raise _bad_multipart(f"part {name!r} has no readable payload")
    if max_part_size is not None and len(data) > max_part_size:
        raise HTTPError(413, "Form part too large", {"name": name, "limit": max_part_size})
    filename = part.get_filename()
    if filename is not None:
        content_type = part.get("content-type") and part.get_content_type()
        return name, UploadFile(filename, content_type or "application/octet-stream", data)
    charset = part.get_content_charset() or "utf-8"
    try:
        return name, data.decode(charset)
    except LookupError:
        raise _bad_multipart(f"part {name!r} has unknown charset {charset!r}") from None
    except UnicodeDecodeError:
        raise _bad_multipart(f"part {name!r} is not valid {charset}") from None
