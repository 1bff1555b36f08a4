"""Conditional GETs: h3's ``handleCacheHeaders`` and a ``not_modified()`` response.

::

    @app.get("/report")
    def report(event):
        if handle_cache_headers(event, etag=REPORT_ETAG, max_age=60):
            return not_modified()
        return build_report()

``handle_cache_headers`` always sets the validators (``ETag``,
``Last-Modified``) and ``Cache-Control`` on the event, so the 200 carries
them and so does the 304 (RFC 9110 §15.4.5 wants a 304 to repeat them).
It returns True -- and sets ``event.status = 304`` -- when the client's copy
is still fresh:

* ``If-None-Match`` (weak comparison, ``*`` matches anything) decides when
  present, and ``If-Modified-Since`` is then ignored (RFC 9110 §13.1.3);
* otherwise ``If-Modified-Since`` is compared in whole seconds (HTTP dates
  have no sub-second part); an unparsable date is ignored;
* only GET and HEAD are answered 304: for other methods these headers are
  preconditions (a 412 matter), not a cache check.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from typing import TYPE_CHECKING

from h3lab.response import Response

if TYPE_CHECKING:
    from h3lab.event import H3Event

__all__ = ["handle_cache_headers", "not_modified"]

# One entity-tag (RFC 9110 §8.8.3): optional W/, then a quoted opaque tag
# which may contain commas -- so a list is matched tag by tag, not split.
_ETAG_RE = re.compile(r'\s*(\*|(?:W/)?"[\x21\x23-\x7e\x80-\xff]*")\s*(?:,|$)')
_OPAQUE_RE = re.compile(r"^[\x21\x23-\x7e\x80-\xff]*$")
_PRIVATE_RE = re.compile(r"(?:^|,)\s*(?:private|no-store)\s*(?:=|,|$)", re.IGNORECASE)
_PUBLIC_RE = re.compile(r"(?:^|,)\s*public\s*(?:=|,|$)", re.IGNORECASE)


def _etag(etag: str) -> str:
    """``abc`` -> ``"abc"``; ``"abc"`` and ``W/"abc"`` as they are; ValueError if unsafe."""
    if not isinstance(etag, str):
        raise TypeError(f"etag must be a str, got {type(etag).__name__}")
    weak = etag.startswith("W/")
    body = etag[2:] if weak else etag
    if len(body) >= 2 and body[0] == '"' and body[-1] == '"':
        body = body[1:-1]
    if not _OPAQUE_RE.match(body):
        raise ValueError(f"etag {etag!r}: no spaces, '\"' or control characters allowed")
    return f'{"W/" if weak else ""}"{body}"'


def _last_modified(value: datetime | float | int | str) -> datetime:
    if isinstance(value, datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        moment = datetime.fromtimestamp(value, UTC)
    elif isinstance(value, str):
        try:
            moment = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            raise ValueError(f"last_modified {value!r} is not an HTTP date") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
    else:
        raise TypeError(
            f"last_modified must be a datetime, a timestamp or an HTTP date, got {value!r}"
        )
    return moment.astimezone(UTC).replace(microsecond=0)


def _etag_matches(if_none_match: str, etag: str | None) -> bool:
    if etag is None:
        return False
    opaque = etag.removeprefix("W/")
    position = 0
    while position < len(if_none_match):
        match = _ETAG_RE.match(if_none_match, position)
        if match is None:
            return False  # malformed list: treated as no match (a full 200)
        tag = match.group(1)
        if tag == "*" or tag.removeprefix("W/") == opaque:
            return True
        position = match.end()
    return False


def handle_cache_headers(
    event: H3Event,
    *,
    etag: str | None = None,
    last_modified: datetime | float | int | str | None = None,
    max_age: int | None = None,
    cache_control: str | Sequence[str] = (),
) -> bool:
    """Set the cache headers; True (and ``event.status = 304``) when the client's copy is fresh.

    ``cache_control`` adds directives (``"private"``, ``"no-cache"``...);
    ``public`` is added unless one says ``private`` or ``no-store``, and
    ``s-maxage`` accompanies ``max_age`` only for public responses (h3's rules).
    """
    directives = [cache_control] if isinstance(cache_control, str) else list(cache_control)
    for directive in directives:
        if not isinstance(directive, str) or any(c in directive for c in "\r\n\0"):
            raise ValueError(f"cache_control: invalid directive {directive!r}")
    joined = ",".join(directives)
    private = bool(_PRIVATE_RE.search(joined))
    if not private and not _PUBLIC_RE.search(joined):
        directives.insert(0, "public")
    if max_age is not None:
        if isinstance(max_age, bool) or not isinstance(max_age, int) or max_age < 0:
            raise ValueError(f"max_age must be an int >= 0 (seconds), got {max_age!r}")
        directives.append(f"max-age={max_age}")
        if not private:
            directives.append(f"s-maxage={max_age}")
    tag = _etag(etag) if etag is not None else None
    modified = _last_modified(last_modified) if last_modified is not None else None
    if tag is not None:
        event.set_header("etag", tag)
    if modified is not None:
        event.set_header("last-modified", format_datetime(modified, usegmt=True))
    event.set_header("cache-control", ", ".join(directives))

    if event.method not in ("GET", "HEAD"):
        return False
    headers = event.headers
    if_none_match = headers.get("if-none-match")
    if if_none_match is not None and if_none_match.strip():
        fresh = _etag_matches(if_none_match, tag)
    elif modified is not None and (since := headers.get("if-modified-since")):
        try:
            client_copy = parsedate_to_datetime(since)
        except (TypeError, ValueError):
            client_copy = None  # RFC 9110 §13.1.3: an invalid date is ignored
        if client_copy is not None and client_copy.tzinfo is None:
            client_copy = client_copy.replace(tzinfo=UTC)
        fresh = client_copy is not None and modified <= client_copy
    else:
        fresh = False
    if fresh:
        event.status = 304
    return fresh


def not_modified() -> Response:
    """An empty ``304 Not Modified`` (the cache headers set on the event go with it)."""
    return Response(None, 304)
