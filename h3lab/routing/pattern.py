"""Route patterns and routing paths: the parsing shared by every strategy.

``parse_pattern`` turns a pattern string into a ``ParsedPattern`` once, at
registration, so the strategies only differ in how they *search*; they all
agree on what a segment means (see ``h3lab.routing.base``).

``routing_path`` canonicalises a raw request path the way patterns are
canonicalised, so the routers compare like with like: one trailing slash
dropped, and every percent-escape decoded except ``%2F`` (an encoded slash
must stay a character of a segment, never become a separator) and ``%25``
(decoding it would let ``%252F`` turn into ``%2F`` and then into ``/`` when
params are decoded).
"""

from __future__ import annotations

import codecs
import re
from typing import NamedTuple
from urllib.parse import unquote

# Segment kinds. The numbers are the lookup priority at one segment position
# (lower is tried first), so a tuple of them is the linear router's sort key.
STATIC = 0
PARAM = 1  # :name
STAR = 2  # *
NAMED_REST = 3  # **:name
REST = 4  # **

REST_PARAM = "_"  # the params key of a bare ``**``


class Segment(NamedTuple):
    kind: int
    text: str
    """The decoded text of a static segment, or the param name."""


class Capture(NamedTuple):
    """Where one param comes from: ``segments[index]``, or all of them from
    ``index`` on joined with ``/`` when ``rest`` is true."""

    name: str
    index: int
    rest: bool


class ParsedPattern(NamedTuple):
    pattern: str
    segments: tuple[Segment, ...]
    captures: tuple[Capture, ...]
    shape: tuple[tuple[int, str], ...]
    """Segments with the param names erased: two routes of one method and one
    shape could never be told apart, so that is the duplicate check."""
    rank: tuple[int, ...]
    static_path: str | None
    """The canonical path when every segment is static, else None."""


# --- routing paths ---------------------------------------------------------

# Either an escape that stays encoded (group 1), or a run of escapes to decode
# together (group 2: a multi-byte UTF-8 character spans several escapes).
_ESCAPES = re.compile(r"(%2[Ff]|%25)|((?:%(?!2[Ff]|25)[0-9A-Fa-f]{2})+)")
_KEEP_ESCAPED = "h3lab.routing.keep_escaped"


def _keep_escaped(error: UnicodeError) -> tuple[str, int]:
    # Bytes that are not UTF-8 stay percent-escaped (upper case, so the
    # canonical form is unique) instead of becoming U+FFFD, which would make
    # distinct paths collide.
    assert isinstance(error, UnicodeDecodeError)
    bad = error.object[error.start : error.end]
    return "".join(f"%{byte:02X}" for byte in bad), error.end


codecs.register_error(_KEEP_ESCAPED, _keep_escaped)


def _decode_escapes(match: re.Match[str]) -> str:
    kept = match.group(1)
    if kept is not None:
        return kept.upper()
    run = match.group(2)
    # The run excludes 0x25 and 0x2F, and UTF-8 never hides an ASCII byte
    # inside a multi-byte character, so the result holds no '%' or '/' except
    # in the escapes that `_keep_escaped` leaves for invalid bytes.
    return bytes.fromhex(run.replace("%", "")).decode("utf-8", _KEEP_ESCAPED)


def routing_path(raw_path: str) -> str:
    """The path routers match: one trailing ``/`` removed (``/`` stays ``/``)
    and every ``%XX`` decoded except ``%2F`` and ``%25`` (kept, upper-cased).
    Invalid escapes such as ``%zz`` are left as they are."""
    # PERF: runs once per request; the common path (no '%', no trailing '/')
    # is two cheap tests and returns its argument.
    if raw_path[-1:] == "/":
        if raw_path == "/":
            return raw_path
        raw_path = raw_path[:-1]
    if "%" not in raw_path:
        return raw_path
    return _ESCAPES.sub(_decode_escapes, raw_path)


def decode_param(value: str) -> str:
    """A captured value as the handler sees it: decoded exactly once."""
    return unquote(value) if "%" in value else value


# --- patterns ---------------------------------------------------------------


def _parse_segment(raw: str, pattern: str) -> Segment:
    if raw == "**":
        return Segment(REST, REST_PARAM)
    if raw.startswith("**:"):
        name = raw[3:]
        if not name or "*" in name:
            raise ValueError(f"route pattern {pattern!r}: bad '**:name' segment {raw!r}")
        return Segment(NAMED_REST, name)
    if raw == "*":
        return Segment(STAR, "")  # named _0, _1... once positions are known
    if "*" in raw:
        raise ValueError(
            f"route pattern {pattern!r}: '*' is only allowed as a whole segment "
            f"('*', '**' or '**:name'), got {raw!r}"
        )
    if raw.startswith(":"):
        if len(raw) == 1:
            raise ValueError(f"route pattern {pattern!r}: empty param name")
        return Segment(PARAM, raw[1:])
    # A ':' anywhere else is plain text. Static text is compared in routing
    # form, so the pattern gets the same decoding as request paths.
    return Segment(STATIC, _ESCAPES.sub(_decode_escapes, raw) if "%" in raw else raw)


def parse_pattern(pattern: str) -> ParsedPattern:
    """Validate and canonicalise a route pattern; ``ValueError`` names it."""
    if not isinstance(pattern, str) or not pattern.startswith("/"):
        raise ValueError(f"route pattern must be a str starting with '/', got {pattern!r}")
    body = pattern[1:]
    if body.endswith("/"):
        body = body[:-1]  # one trailing slash, exactly as routing_path does
    raw_segments = body.split("/") if body else []

    segments: list[Segment] = []
    captures: list[Capture] = []
    stars = 0
    for index, raw in enumerate(raw_segments):
        segment = _parse_segment(raw, pattern)
        if segment.kind >= NAMED_REST and index != len(raw_segments) - 1:
            raise ValueError(f"route pattern {pattern!r}: {raw!r} must be the last segment")
        if segment.kind == STAR:
            segment = Segment(STAR, f"_{stars}")
            stars += 1
        if segment.kind != STATIC:
            if any(capture.name == segment.text for capture in captures):
                raise ValueError(
                    f"route pattern {pattern!r}: duplicate param name {segment.text!r}"
                )
            captures.append(Capture(segment.text, index, segment.kind >= NAMED_REST))
        segments.append(segment)

    is_static = all(segment.kind == STATIC for segment in segments)
    static_path = "/" + "/".join(segment.text for segment in segments) if is_static else None
    return ParsedPattern(
        pattern=pattern,
        segments=tuple(segments),
        captures=tuple(captures),
        shape=tuple((s.kind, s.text if s.kind == STATIC else "") for s in segments),
        rank=tuple(segment.kind for segment in segments),
        static_path=static_path,
    )
