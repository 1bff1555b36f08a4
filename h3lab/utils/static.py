"""Static files: ``app.get("/static/**", serve_static("public"))``.

The relative path is the route's catch-all param (``_`` for ``**``, else the
param named by ``param=``, else the route's last param).

Hardening, all answered with the same 404 so that nothing reveals whether a
path exists outside the root (and anything else that cannot be served -- a
segment too long for the filesystem, a file it may not read -- is a 404 too):

* ``..`` and ``.`` segments, NUL, backslashes and absolute paths are
  refused, both in the param as routed *and* after one more percent-decoding:
  the router has already decoded once, so a double-encoded ``%252e%252e``
  shows up here as ``%2e%2e`` and must be refused too. The file is then
  looked up under the name as routed -- decoding is only used to *reject*,
  so a file literally called ``100%.txt`` is still served.
* Dotfiles (``.env``, ``.git/...``) are refused unless ``dotfiles=True``.
* The final path is resolved (symlinks included) and must stay inside the
  resolved root: a symlink pointing outside is a 404, one inside is served.
  Not defended: a local user who can swap files inside the root between the
  check and the read.

Files up to 1 MiB are read whole, synchronously: a page-cache read of that
size takes microseconds, less than a hop to a worker thread. Larger files are
streamed in 64 KiB chunks, each read in the default executor so a cold disk
never stalls the event loop.

``ETag`` (weak, from size and mtime) and ``Last-Modified`` are sent;
``If-None-Match`` (which takes precedence) or ``If-Modified-Since`` give a 304
with no body. HEAD gets the GET response: the server drops the body and
derives ``Content-Length`` from it (a Content-Length set here would be sent
twice). A file too large to read whole is not even opened for HEAD (the
server never iterates a HEAD body), so its HEAD reports no real length until
the server honours an explicit Content-Length. Content types come from a
private ``mimetypes.MimeTypes()`` (Python's built-in table only, so the answer does
not depend on the machine's /etc/mime.types); a compressed file (``.gz``)
is sent as the archive type, never with ``Content-Encoding``.
"""

from __future__ import annotations

import asyncio
import mimetypes
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote

from h3lab.errors import HTTPError
from h3lab.response import Response

if TYPE_CHECKING:
    from h3lab.event import H3Event

__all__ = ["serve_static"]

WHOLE_READ_LIMIT = 1024 * 1024
CHUNK_SIZE = 64 * 1024

_MIME = mimetypes.MimeTypes()
# Types that are text but not text/*: they get a charset too.
_TEXTUAL = frozenset(
    ("application/javascript", "application/json", "application/xml", "image/svg+xml")
)
_COMPRESSED = {"gzip": "application/gzip", "bzip2": "application/x-bzip2", "xz": "application/x-xz"}

StaticHandler = Callable[["H3Event"], Awaitable[Response]]


def serve_static(
    directory: str | os.PathLike[str],
    *,
    index_names: Sequence[str] = ("index.html",),
    max_age: int | None = None,
    dotfiles: bool = False,
    param: str | None = None,
) -> StaticHandler:
    """A handler serving files under ``directory`` (see the module docstring)."""
    root = Path(directory).resolve()
    index = tuple(index_names)
    if max_age is not None and (isinstance(max_age, bool) or not isinstance(max_age, int)):
        raise TypeError(f"max_age must be an int, got {max_age!r}")

    async def static_handler(event: H3Event) -> Response:
        if event.method not in ("GET", "HEAD"):
            raise HTTPError(405, headers={"allow": "GET, HEAD"})
        try:
            file = _locate(root, _relative_path(event, param), index, dotfiles)
            st = file.stat()
        except (OSError, ValueError):
            # ENAMETOOLONG (a segment over 255 bytes), EACCES, a name the OS
            # refuses...: whatever cannot be served is a 404, never a 500.
            raise HTTPError(404) from None
        headers = _file_headers(file, st, max_age)
        if _not_modified(event, headers["etag"], st.st_mtime):
            return Response(None, 304, _validators(headers))
        if st.st_size <= WHOLE_READ_LIMIT:
            try:
                return Response(file.read_bytes(), 200, headers)
            except OSError:
                raise HTTPError(404) from None
        return Response(_stream_file(file), 200, headers)

    return static_handler


def _relative_path(event: H3Event, param: str | None) -> str:
    params = event.params
    if param is not None:
        return params.get(param, "")
    if "_" in params:
        return params["_"]
    return next(reversed(params.values()), "")


def _locate(root: Path, rel: str, index_names: tuple[str, ...], dotfiles: bool) -> Path:
    """The regular file to serve, or ``HTTPError(404)``."""
    parts = _safe_parts(rel, dotfiles)
    if parts is None:
        raise HTTPError(404)
    target = _inside(root, root.joinpath(*parts))
    if target is not None and target.is_dir():
        target = next(
            (f for name in index_names if (f := _inside(root, target / name)) and f.is_file()),
            None,
        )
    if target is None or not target.is_file():
        raise HTTPError(404)
    return target


def _safe_parts(rel: str, dotfiles: bool) -> list[str] | None:
    """Path segments of ``rel``, or None when it (or its decoding) is unsafe."""
    for candidate in (rel, unquote(rel)):
        if "\0" in candidate or "\\" in candidate or candidate.startswith("/"):
            return None
        for segment in candidate.split("/"):
            if segment in (".", ".."):
                return None
            if segment.startswith(".") and not dotfiles:
                return None
    return [segment for segment in rel.split("/") if segment]


def _inside(root: Path, path: Path) -> Path | None:
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop
        return None
    return resolved if resolved.is_relative_to(root) else None


def _content_type(path: Path) -> str:
    media_type, encoding = _MIME.guess_type(path.name, strict=False)
    if encoding is not None:
        return _COMPRESSED.get(encoding, "application/octet-stream")
    if media_type is None:
        return "application/octet-stream"
    if media_type.startswith("text/") or media_type in _TEXTUAL:
        return f"{media_type}; charset=utf-8"
    return media_type


def _file_headers(path: Path, st: os.stat_result, max_age: int | None) -> dict[str, str]:
    headers = {
        "content-type": _content_type(path),
        "etag": f'W/"{st.st_size:x}-{st.st_mtime_ns:x}"',
        "last-modified": formatdate(st.st_mtime, usegmt=True),
        # The type is ours, not a guess for the browser to second-guess.
        "x-content-type-options": "nosniff",
    }
    if max_age is not None:
        headers["cache-control"] = f"public, max-age={max_age}"
    return headers


def _validators(headers: dict[str, str]) -> dict[str, str]:
    # RFC 9110 §15.4.5: a 304 repeats the fields a 200 would have used for caching.
    keep = ("etag", "last-modified", "cache-control")
    return {name: value for name, value in headers.items() if name in keep}


def _not_modified(event: H3Event, etag: str, mtime: float) -> bool:
    headers = event.headers
    if_none_match = headers.get("if-none-match")
    if if_none_match is not None:
        # RFC 9110 §13.1.2: weak comparison, and If-Modified-Since is ignored.
        opaque = etag.removeprefix("W/")
        return any(
            tag.strip() == "*" or tag.strip().removeprefix("W/") == opaque
            for tag in if_none_match.split(",")
        )
    if_modified_since = headers.get("if-modified-since")
    if if_modified_since is None:
        return False
    try:
        since = parsedate_to_datetime(if_modified_since)
    except (TypeError, ValueError):
        return False  # an unparsable date is ignored (RFC 9110 §13.1.3)
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    # HTTP dates have one-second resolution: compare whole seconds.
    return int(mtime) <= since.timestamp()


async def _stream_file(path: Path) -> AsyncIterator[bytes]:
    loop = asyncio.get_running_loop()
    with path.open("rb") as file:
        while chunk := await loop.run_in_executor(None, file.read, CHUNK_SIZE):
            yield chunk
