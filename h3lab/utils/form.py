"""Form bodies: ``application/x-www-form-urlencoded`` and ``multipart/form-data``.

urlencoded bodies go through the standard library's ``urllib.parse.parse_qsl``;
multipart bodies through ``python-multipart`` (the streaming parser made for
HTTP that Starlette uses), fed in 64 KiB pieces with the limits applied as
parts arrive: a body of 15,000 tiny parts is refused at part 1,001, after
parsing 1,001 parts, never all of them first.

Limits and known behaviour:

* The whole body is already in memory (the server caps it with
  ``max_body_size``); so are the parsed parts. Nothing is spooled to disk.
* ``max_fields`` / ``max_files`` cap the *number* of parts -> 400 (counted
  when a part's headers end); ``max_part_size`` caps each part's bytes -> 413
  (counted as its data arrives).
* A preamble before the first delimiter is skipped (RFC 2046); a body without
  its close delimiter (truncated) is a 400.
* Part headers are read as UTF-8 where valid (browsers send UTF-8 filenames
  raw), else Latin-1; ``filename*=`` (RFC 2231) is decoded too.
  ``Content-Transfer-Encoding`` is ignored (RFC 7578 §4.7 deprecates it).
* ``UploadFile.filename`` is whatever the client claimed (it may contain
  ``/``, ``..`` or a Windows path): never use it as a filesystem path as is.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from email.headerregistry import ContentTypeHeader
from email.policy import HTTP
from email.utils import decode_rfc2231
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from h3lab.errors import HTTPError

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks  # a TYPE_CHECKING-only TypedDict

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
        return _parse_multipart(params, body, max_fields, max_files, max_part_size)
    raise HTTPError(415, "Unsupported form content type", {"content_type": media_type})


def _parse_content_type(content_type: str) -> tuple[str, dict[str, str]]:
    # A CR/LF in the header value is a malformed request, whatever follows.
    if "\r" in content_type or "\n" in content_type:
        raise HTTPError(400, "Invalid form body", {"reason": "malformed content-type"})
    # The media type is taken verbatim (lower-cased) so a 415 names what the
    # client sent; the email header parser does the quoting rules of params.
    media_type = content_type.split(";", 1)[0].strip().lower()
    header: ContentTypeHeader = HTTP.header_factory("content-type", content_type)
    return media_type, dict(header.params)


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
    delimiter = b"--" + boundary.encode("latin-1")
    if _is_empty_multipart(body, delimiter):
        return FormData()
    # RFC 2046 allows a preamble before the first delimiter; the parser does not.
    if not body.startswith(delimiter):
        at = body.find(b"\r\n" + delimiter)
        if at < 0:
            raise _bad_multipart("StartBoundaryNotFound")
        body = body[at + 2 :]
    reader = _MultipartReader(max_fields, max_files, max_part_size)
    parser = MultipartParser(boundary.encode("latin-1"), reader.callbacks())
    parser.logger = _PARSER_LOG
    try:
        # Fed in pieces: the limits are checked as parts arrive, and a body
        # of 15,000 tiny parts stops at the first part over the limit.
        for start in range(0, len(body), _FEED_SIZE):
            parser.write(body[start : start + _FEED_SIZE])
        parser.finalize()
    except MultipartParseError as exc:
        raise _bad_multipart(type(exc).__name__) from None
    if not reader.ended:
        raise _bad_multipart("CloseBoundaryNotFound")  # a truncated body
    return FormData(reader.items)


def _is_empty_multipart(body: bytes, delimiter: bytes) -> bool:
    # A form with no successful controls is sent as just the close delimiter.
    return body.strip() in (b"", delimiter + b"--")


_FEED_SIZE = 64 * 1024
# python-multipart logs a warning for each malformed body before raising; a
# client's bad body is its 400, not a server problem, and one warning per
# request would let any client flood the logs. Its own logger, quiet below
# ERROR (set the level lower to see them).
_PARSER_LOG = logging.getLogger("h3lab.form.multipart")
_PARSER_LOG.setLevel(logging.ERROR)
_NONE: tuple[str, dict[str, str]] = ("", {})


class _MultipartReader:
    """python-multipart callbacks that build the ``FormData`` items, part by part."""

    __slots__ = (
        "_chunks",
        "_content_type",
        "_filename",
        "_header_name",
        "_header_value",
        "_headers",
        "_index",
        "_name",
        "_size",
        "ended",
        "fields",
        "files",
        "items",
        "max_fields",
        "max_files",
        "max_part_size",
    )

    def __init__(self, max_fields: int, max_files: int, max_part_size: int | None) -> None:
        self.max_fields = max_fields
        self.max_files = max_files
        self.max_part_size = max_part_size
        self.items: list[tuple[str, FormValue]] = []
        self.fields = self.files = 0
        self.ended = False
        self._index = -1
        self._headers: dict[str, str] = {}
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._chunks: list[bytes] = []
        self._size = 0
        self._name = ""
        self._filename: str | None = None
        self._content_type = ""

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self.on_part_begin,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
            "on_end": self.on_end,
        }

    def on_part_begin(self) -> None:
        self._index += 1
        self._headers = {}
        self._chunks = []
        self._size = 0

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        # Latin-1 keeps every byte; values are decoded (UTF-8, as browsers
        # send filenames) once parsed.
        name = self._header_name.decode("latin-1").strip().lower()
        self._headers.setdefault(name, self._header_value.decode("latin-1").strip())
        self._header_name = bytearray()
        self._header_value = bytearray()

    def on_headers_finished(self) -> None:
        index = self._index
        disposition = self._headers.get("content-disposition", "")
        kind, params = _header_params(disposition)
        if kind != "form-data":
            raise _bad_multipart(f"part {index} is not Content-Disposition: form-data")
        name = params.get("name")
        if not name:
            raise _bad_multipart(f"part {index} has no name")
        self._name = name
        self._filename = params.get("filename")
        self._content_type = self._headers.get("content-type", "")
        if self._content_type.lower().startswith("multipart/"):
            # RFC 2388's nested multipart/mixed (several files in one part).
            raise _bad_multipart(f"part {name!r} has no readable payload")
        if self._filename is not None:
            self.files += 1
            if self.files > self.max_files:
                raise HTTPError(400, "Too many files", {"limit": self.max_files})
        else:
            self.fields += 1
            if self.fields > self.max_fields:
                raise HTTPError(400, "Too many form fields", {"limit": self.max_fields})

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        self._size += end - start
        limit = self.max_part_size
        if limit is not None and self._size > limit:
            raise HTTPError(413, "Form part too large", {"name": self._name, "limit": limit})
        self._chunks.append(data[start:end])

    def on_part_end(self) -> None:
        data = b"".join(self._chunks)
        self._chunks = []
        name = self._name
        media_type, params = _header_params(self._content_type) if self._content_type else _NONE
        if self._filename is not None:
            upload = UploadFile(self._filename, media_type or "application/octet-stream", data)
            self.items.append((name, upload))
            return
        charset = params.get("charset") or "utf-8"
        try:
            self.items.append((name, data.decode(charset)))
        except LookupError:
            raise _bad_multipart(f"part {name!r} has unknown charset {charset!r}") from None
        except UnicodeDecodeError:
            raise _bad_multipart(f"part {name!r} is not valid {charset}") from None

    def on_end(self) -> None:
        self.ended = True


def _header_params(value: str) -> tuple[str, dict[str, str]]:
    """``form-data; name="a"; filename="b"`` -> ("form-data", {"name": "a", "filename": "b"}).

    ``value`` is the header's bytes as Latin-1; parameter values are decoded
    as UTF-8 (what browsers send) when they are valid UTF-8. The RFC 2231
    ``filename*=UTF-8''...`` form (which RFC 7578 §4.2 tells senders not to
    use, but some do) wins over a plain ``filename``.
    """
    kind, options = parse_options_header(value)
    params = {k.decode("latin-1").lower(): _utf8(v) for k, v in options.items()}
    if "*=" in value:
        for segment in value.split(";")[1:]:
            key, _, extended = segment.strip().partition("=")
            if key.strip().lower() == "filename*":
                charset, _, encoded = decode_rfc2231(extended.strip().strip('"'))
                try:
                    params["filename"] = unquote(encoded, encoding=charset or "utf-8")
                except LookupError:
                    raise _bad_multipart(f"unknown filename charset {charset!r}") from None
    return kind.decode("latin-1"), params


def _utf8(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")
