"""Cookies bigger than a browser keeps: h3's chunked cookies, same wire names.

Browsers keep about 4 KB per cookie. A longer value is split into chunks of
at most ``CHUNK_MAX_LENGTH`` characters, stored as ``<name>.1`` ...
``<name>.<n>``, while ``<name>`` itself holds the marker ``__chunked__<n>``.
A value that fits is an ordinary cookie. Reading joins the chunks back, and
answers None if one is missing (a partial value is never returned).

Writing replaces what this response already set for the name (a session
updated twice in one request sends one cookie), and deletes chunks the
request carried beyond the new count, so no stale tail survives a shrink.
At most ``MAX_CHUNKS`` chunks (h3's cap): beyond that a write is a
``ValueError``, because the reader would refuse it anyway.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from h3lab.utils.cookies import serialize_cookie

if TYPE_CHECKING:
    from h3lab.event import H3Event

__all__ = [
    "CHUNK_MAX_LENGTH",
    "delete_chunked_cookie",
    "get_chunked_cookie",
    "set_chunked_cookie",
]

CHUNKED_MARKER = "__chunked__"
CHUNK_MAX_LENGTH = 4000
MAX_CHUNKS = 100
_COUNT_RE = re.compile(r"^\d{1,3}$")


def _chunk_count(value: str | None) -> int | None:
    """The chunk count a main cookie announces, None if it is not a (valid) marker."""
    if value is None or not value.startswith(CHUNKED_MARKER):
        return None
    digits = value[len(CHUNKED_MARKER) :]
    if not _COUNT_RE.match(digits) or int(digits) > MAX_CHUNKS:
        return None
    return int(digits)


def chunk_name(name: str, number: int) -> str:
    return f"{name}.{number}"


def get_chunked_cookie(event: H3Event, name: str) -> str | None:
    """The value of cookie ``name``, joined from its chunks when it was split."""
    cookies = event.cookies
    main = cookies.get(name)
    if main is None or not main.startswith(CHUNKED_MARKER):
        return main
    count = _chunk_count(main)
    if not count:
        return None
    chunks = []
    for number in range(1, count + 1):
        chunk = cookies.get(chunk_name(name, number))
        if not chunk:
            return None
        chunks.append(chunk)
    return "".join(chunks)


def _forget_set_cookies(event: H3Event, name: str) -> None:
    """Drop the Set-Cookie headers this response already has for ``name`` and its chunks."""
    headers = event._resp_headers
    if not headers:
        return
    prefix = name + "."

    def ours(cookie: str) -> bool:
        cookie_name = cookie.split("=", 1)[0].strip()
        return cookie_name == name or (
            cookie_name.startswith(prefix) and cookie_name[len(prefix) :].isdigit()
        )

    headers[:] = [
        (key, value) for key, value in headers if not (key.lower() == "set-cookie" and ours(value))
    ]


def set_chunked_cookie(
    event: H3Event,
    name: str,
    value: str,
    *,
    chunk_max_length: int = CHUNK_MAX_LENGTH,
    **options: Any,
) -> None:
    """Set cookie ``name`` to ``value``, split into chunks when it is too long.

    ``options`` are ``serialize_cookie``'s (``path``, ``secure``, ``httponly``...).
    """
    if isinstance(chunk_max_length, bool) or not isinstance(chunk_max_length, int):
        raise TypeError(f"chunk_max_length must be an int, got {chunk_max_length!r}")
    if chunk_max_length < 1:
        raise ValueError(f"chunk_max_length must be >= 1, got {chunk_max_length}")
    count = max(1, -(-len(value) // chunk_max_length))
    if count > MAX_CHUNKS:
        raise ValueError(
            f"cookie {name!r}: the value needs {count} chunks, more than the {MAX_CHUNKS} allowed"
        )
    _forget_set_cookies(event, name)
    written = 0 if count == 1 else count
    previous = _chunk_count(event.cookies.get(name)) or 0
    delete_options = {k: v for k, v in options.items() if k not in ("max_age", "expires")}
    for number in range(written + 1, previous + 1):
        event.append_header(
            "set-cookie",
            serialize_cookie(chunk_name(name, number), "", max_age=0, **delete_options),
        )
    if count == 1:
        event.append_header("set-cookie", serialize_cookie(name, value, **options))
        return
    event.append_header("set-cookie", serialize_cookie(name, f"{CHUNKED_MARKER}{count}", **options))
    for number in range(1, count + 1):
        start = (number - 1) * chunk_max_length
        chunk = value[start : start + chunk_max_length]
        event.append_header(
            "set-cookie", serialize_cookie(chunk_name(name, number), chunk, **options)
        )


def delete_chunked_cookie(event: H3Event, name: str, **options: Any) -> None:
    """Delete cookie ``name`` and every chunk the request carried for it.

    ``options`` as when it was set (``path`` and ``domain`` must match for the
    browser to drop it; ``secure`` for ``__Secure-``/``__Host-`` names).
    """
    options = {k: v for k, v in options.items() if k not in ("max_age", "expires")}
    _forget_set_cookies(event, name)
    event.append_header("set-cookie", serialize_cookie(name, "", max_age=0, **options))
    for number in range(1, (_chunk_count(event.cookies.get(name)) or 0) + 1):
        event.append_header(
            "set-cookie", serialize_cookie(chunk_name(name, number), "", max_age=0, **options)
        )
