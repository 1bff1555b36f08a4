"""Redirect and empty responses.

``redirect`` does not judge *where* it sends the client: a location taken
from user input (``?next=...``) is an open redirect unless the caller checks
it (for example that it starts with a single ``/``).
"""

from __future__ import annotations

import html
import re
from urllib.parse import quote

from h3lab.response import HTML_TYPE, Response

__all__ = ["REDIRECT_STATUSES", "no_content", "redirect"]

REDIRECT_STATUSES = frozenset((301, 302, 303, 307, 308))

# Every printable ASCII character stays as it is (including "%", so existing
# escapes are kept); only spaces and non-ASCII are percent-encoded, which is
# what a browser does to an IRI before it puts it in a request.
_URI_SAFE = "".join(chr(c) for c in range(0x21, 0x7F))
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
# Schemes that run code when the HTML fallback body's link is followed.
_SCRIPT_SCHEME_RE = re.compile(r"^\s*(javascript|vbscript|data)\s*:", re.IGNORECASE)


def redirect(location: str, status: int = 302) -> Response:
    """A ``status`` redirect to ``location`` with a small HTML fallback body.

    ``ValueError`` for a status that is not a redirect, a location holding
    control characters (CR/LF would split the header), or a ``javascript:``
    / ``vbscript:`` / ``data:`` location.
    """
    if status not in REDIRECT_STATUSES:
        raise ValueError(
            f"redirect status must be one of {sorted(REDIRECT_STATUSES)}, got {status!r}"
        )
    if not isinstance(location, str) or not location:
        raise ValueError(f"redirect location must be a non-empty str, got {location!r}")
    if _CONTROL_RE.search(location):
        raise ValueError(f"redirect location must not contain control characters: {location!r}")
    if _SCRIPT_SCHEME_RE.match(location):
        raise ValueError(f"refusing to redirect to a script URL: {location!r}")
    uri = quote(location, safe=_URI_SAFE)
    escaped = html.escape(uri, quote=True)
    body = (
        "<!DOCTYPE html><html><head><meta charset=utf-8><title>Redirecting</title></head>"
        f'<body>Redirecting to <a href="{escaped}">{escaped}</a></body></html>'
    )
    return Response(body, status, [("location", uri)], media_type=HTML_TYPE)


def no_content() -> Response:
    """An empty 204."""
    return Response(None, 204)
