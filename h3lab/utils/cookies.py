"""Reading the ``Cookie`` request header and writing ``Set-Cookie`` values.

Parsing is deliberately tolerant (RFC 6265 §5.4 describes what user agents
send, and real traffic contains worse): it never raises, skips what it cannot
understand and keeps the rest.

Serializing is deliberately strict (RFC 6265 §4.1, what a *server* may send):
every piece is validated, so no cookie name, value or attribute can ever
smuggle a CR/LF (header injection) or a ``;`` (an extra attribute such as
``Domain=evil.example``) into the response.

Values are not percent-encoded or decoded here. A value that needs characters
outside the cookie-octet set (spaces, commas, non-ASCII...) must be encoded by
the caller (``urllib.parse.quote`` on write, ``unquote`` on read); doing it
implicitly would make values written by other software read back differently.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

__all__ = ["parse_cookie_header", "serialize_cookie", "stage_set_cookie"]

# RFC 9110 token: the only characters allowed in a cookie name.
_TOKEN_RE = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
# RFC 6265 cookie-octet: printable US-ASCII except space, DQUOTE, comma,
# semicolon and backslash.
_COOKIE_VALUE_RE = re.compile(r"^[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]*$")
# RFC 6265 av-value (Path, Domain, Expires given as text): any CHAR except CTLs
# and ";". Non-ASCII is refused too: headers go out as latin-1 and a browser
# would read a different string.
_ATTR_VALUE_RE = re.compile(r"^[\x20-\x3a\x3c-\x7e]*$")

_SAMESITE = {"lax": "Lax", "strict": "Strict", "none": "None"}


def parse_cookie_header(header: str) -> dict[str, str]:
    """``"a=1; b=2"`` -> ``{"a": "1", "b": "2"}``.

    Whitespace around names and values is trimmed, one pair of surrounding
    double quotes is removed from a value, pairs without ``=`` or with an
    empty name are skipped, and the *first* occurrence of a name wins (user
    agents send the most specific cookie -- longest path -- first). Values
    are returned exactly as sent: no percent-decoding.
    """
    cookies: dict[str, str] = {}
    if not isinstance(header, str):
        return cookies
    for pair in header.split(";"):
        name, sep, value = pair.partition("=")
        if not sep:
            continue
        name = name.strip()
        if not name or name in cookies:
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
            value = value[1:-1]
        cookies[name] = value
    return cookies


def serialize_cookie(
    name: str,
    value: str,
    *,
    max_age: int | timedelta | None = None,
    expires: datetime | str | None = None,
    path: str | None = "/",
    domain: str | None = None,
    secure: bool = False,
    httponly: bool = False,
    samesite: str | None = None,
    partitioned: bool = False,
) -> str:
    """Build one ``Set-Cookie`` header value; ``ValueError`` on anything unsafe.

    ``expires`` may be an aware ``datetime`` (a naive one is taken as UTC) or
    an already formatted string. ``samesite="none"`` and ``partitioned``
    require ``secure`` (browsers drop such cookies otherwise), and the
    ``__Secure-`` / ``__Host-`` name prefixes are checked for the same reason:
    failing loudly here beats a cookie that silently never arrives.
    """
    _check_name(name)
    _check_value(name, value)
    parts = [f"{name}={value}"]
    if max_age is not None:
        parts.append(f"Max-Age={_max_age_seconds(name, max_age)}")
    if expires is not None:
        parts.append(f"Expires={_format_expires(name, expires)}")
    if domain is not None:
        parts.append(f"Domain={_check_attr(name, 'domain', domain)}")
    if path is not None:
        parts.append(f"Path={_check_attr(name, 'path', path)}")
    if secure:
        parts.append("Secure")
    if httponly:
        parts.append("HttpOnly")
    if samesite is not None:
        normalized = _samesite(name, samesite)
        if normalized == "None" and not secure:
            raise ValueError(f"cookie {name!r}: samesite='none' requires secure=True")
        parts.append(f"SameSite={normalized}")
    if partitioned:
        if not secure:
            raise ValueError(f"cookie {name!r}: partitioned=True requires secure=True")
        parts.append("Partitioned")
    _check_prefix(name, secure=secure, path=path, domain=domain)
    return "; ".join(parts)


def cookie_identity(set_cookie: str) -> tuple[str, str, str]:
    """``(name, domain, path)`` of a ``Set-Cookie`` value: what a browser keys
    a cookie by. The domain is lower-cased without a leading dot (RFC 6265
    §5.2.3) and a missing path counts as ``/``, as in h3 v2."""
    name, _, rest = set_cookie.partition("=")
    domain, path = "", "/"
    for attribute in rest.split(";")[1:]:
        key, _, value = attribute.strip().partition("=")
        key = key.lower()
        if key == "domain":
            domain = value.strip().lstrip(".").lower()
        elif key == "path" and value.strip():
            path = value.strip()
    return name.strip(), domain, path


def stage_set_cookie(headers: list[tuple[str, str]], set_cookie: str) -> None:
    """Append a ``Set-Cookie`` to a response's headers, first dropping any
    earlier one for the same name, domain and path (h3 v2's ``setCookie``):
    one response never carries two values for one cookie, of which browsers
    would keep whichever came last."""
    identity = cookie_identity(set_cookie)
    name_prefix = identity[0] + "="
    if any(k.lower() == "set-cookie" and v.startswith(name_prefix) for k, v in headers):
        headers[:] = [
            (k, v)
            for k, v in headers
            if k.lower() != "set-cookie" or cookie_identity(v) != identity
        ]
    headers.append(("set-cookie", set_cookie))


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not _TOKEN_RE.match(name):
        raise ValueError(f"invalid cookie name {name!r}: it must be a non-empty RFC 6265 token")


def _check_value(name: str, value: str) -> None:
    if not isinstance(value, str):
        raise TypeError(f"cookie {name!r}: value must be a str, got {type(value).__name__}")
    if not _COOKIE_VALUE_RE.match(value):
        raise ValueError(
            f"invalid value for cookie {name!r}: control characters, whitespace, "
            "'\"', ',', ';', '\\' and non-ASCII are not allowed (percent-encode it first)"
        )


def _check_attr(name: str, attr: str, value: str) -> str:
    if not isinstance(value, str) or not _ATTR_VALUE_RE.match(value):
        raise ValueError(
            f"cookie {name!r}: invalid {attr} {value!r} (no control characters, ';' or non-ASCII)"
        )
    return value


def _max_age_seconds(name: str, max_age: int | timedelta) -> int:
    if isinstance(max_age, timedelta):
        return int(max_age.total_seconds())
    # bool is an int subclass; Max-Age=True is certainly a bug.
    if isinstance(max_age, bool) or not isinstance(max_age, int):
        raise TypeError(f"cookie {name!r}: max_age must be an int or timedelta, got {max_age!r}")
    return max_age


def _format_expires(name: str, expires: datetime | str) -> str:
    if isinstance(expires, datetime):
        if expires.tzinfo is None:
            expires = expires.replace(tzinfo=UTC)
        return format_datetime(expires.astimezone(UTC), usegmt=True)
    if isinstance(expires, str):
        return _check_attr(name, "expires", expires)
    raise TypeError(f"cookie {name!r}: expires must be a datetime or str, got {expires!r}")


def _samesite(name: str, samesite: str) -> str:
    normalized = _SAMESITE.get(samesite.lower()) if isinstance(samesite, str) else None
    if normalized is None:
        raise ValueError(
            f"cookie {name!r}: invalid samesite {samesite!r}, "
            "allowed values are 'lax', 'strict' and 'none'"
        )
    return normalized


def _check_prefix(name: str, *, secure: bool, path: str | None, domain: str | None) -> None:
    # Name prefixes (RFC 6265bis §4.1.3); the comparison is case-insensitive
    # there, so "__host-" is held to the same rules.
    lower = name.lower()
    if lower.startswith("__secure-") and not secure:
        raise ValueError(f"cookie {name!r}: the __Secure- prefix requires secure=True")
    if lower.startswith("__host-") and (not secure or path != "/" or domain is not None):
        raise ValueError(
            f"cookie {name!r}: the __Host- prefix requires secure=True, path='/' and no domain"
        )
