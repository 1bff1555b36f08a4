"""Route patterns and routing paths: the parsing shared by every strategy.

``parse_pattern`` turns a pattern string into its *variants* once, at
registration: a pattern with optional parts (``:id?``, ``{...}?``, ``:p*``)
stands for several plain patterns, exactly as rou3 expands them. Each variant
is a tuple of ``Segment``; the strategies only differ in how they *search*.
Anything the parser does not understand raises ``ValueError`` naming the
pattern and the offending part: nothing is ever taken literally by accident.

Segment kinds (the syntax table is in ``h3lab.routing.base``):

* ``STATIC``: text, compared with the routing path (escapes decoded the same
  way);
* ``PARAM`` (``:name``), ``STAR`` (``*``) and ``COMPLEX`` (text mixed with
  params, regex constraints, unnamed groups or in-segment ``*``, compiled to
  one anchored regex) all match one segment: one *dynamic* class;
* ``NAMED_REST`` (``**:name``) and ``REST`` (``**``): the rest of the path.

``routing_path`` canonicalises a raw request path the way patterns are
canonicalised, so the routers compare like with like.
"""

from __future__ import annotations

import codecs
import re
from typing import NamedTuple
from urllib.parse import unquote

# Segment kinds.
STATIC = 0
PARAM = 1  # :name      (one non-empty segment)
STAR = 2  # *           (one segment, may be empty; a missing last one too)
COMPLEX = 3  # a regex  (one segment)
NAMED_REST = 4  # **:name (one or more segments, non-empty text)
REST = 5  # **          (zero or more segments)

# Precedence class of each kind at one segment position: static, then every
# one-segment kind (they share one tree node, as in rou3), then the wildcards.
KIND_CLASS = (0, 1, 1, 1, 2, 2)

REST_PARAM = "_"  # the params key of a bare ``**``

# Optional parts expand into 2**k variants at registration; a cap keeps a
# pattern from costing minutes (and memory) to register.
MAX_OPTIONAL_PARTS = 8

_NAME = re.compile(r"[A-Za-z0-9_-]+")


class Segment(NamedTuple):
    kind: int
    text: str
    """Static: the decoded text. PARAM, STAR, the rests: the param name.
    COMPLEX: the regex source (group names positional, so name-free)."""
    regex: re.Pattern[str] | None = None
    names: tuple[tuple[str, str], ...] = ()
    """COMPLEX: ``(regex group, param name)`` pairs: the segment's params, and
    the named groups inside a constraint (``:id(a(?<extra>b)c)``), as rou3."""


class ParsedPattern(NamedTuple):
    """One variant of a route pattern: what every strategy registers."""

    pattern: str
    segments: tuple[Segment, ...]
    signature: tuple[tuple[object, ...], ...]
    """Segments with the param names erased: two variants of one method and one
    signature could never be told apart (the duplicate check)."""
    rank: tuple[int, ...]
    """``KIND_CLASS`` of each segment: the depth-first walk's order."""
    node_key: tuple[tuple[int, str], ...]
    """Where the variant ends in the tree: its classes and static texts."""
    weight: int
    """rou3's specificity among routes ending at one node: one point per
    COMPLEX segment, one more when the last segment is a required dynamic one."""
    optional_last: bool
    """The last segment is ``*`` or ``**``: it also matches a missing segment."""
    static_path: str | None
    """The canonical path when every segment is static, else None."""


# --- routing paths ---------------------------------------------------------

# Either an escape that stays encoded (group 1: the separators '/' and '\',
# and '%' itself), or a run of escapes to decode together (group 2: a
# multi-byte UTF-8 character spans several escapes).
_ESCAPES = re.compile(r"(%2[Ff]|%5[Cc]|%25)|((?:%(?!2[Ff]|5[Cc]|25)[0-9A-Fa-f]{2})+)")
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
    # The run excludes 0x25, 0x2F and 0x5C, and UTF-8 never hides an ASCII
    # byte inside a multi-byte character, so the result holds no '%', '/' or
    # '\' except in the escapes `_keep_escaped` leaves for invalid bytes.
    return bytes.fromhex(run.replace("%", "")).decode("utf-8", _KEEP_ESCAPED)


def decode_text(text: str) -> str:
    """Percent-escapes decoded as in routing paths (separators kept)."""
    return _ESCAPES.sub(_decode_escapes, text) if "%" in text else text


def routing_path(raw_path: str) -> str:
    """The path routers match.

    Up to two trailing ``/`` are removed (rou3: ``/w5/`` and ``/w5//`` are
    ``/w5``; a third leaves a real empty last segment), ``/`` stays ``/``.
    Every ``%XX`` is decoded except ``%2F``, ``%5C`` and ``%25`` (kept,
    upper-cased): decoding never creates a separator. Invalid escapes such as
    ``%zz`` are left as they are.
    """
    # PERF: runs once per request; the common path (no '%', no trailing '/')
    # is two cheap tests and returns its argument.
    if raw_path[-1:] == "/":
        if raw_path == "/":
            return raw_path
        raw_path = raw_path[:-1]
        if raw_path[-1:] == "/" and len(raw_path) > 1:
            raw_path = raw_path[:-1]
    if "%" not in raw_path:
        return raw_path
    return _ESCAPES.sub(_decode_escapes, raw_path)


# An encoded separator at any %25-nesting depth (%2F, %252F, %25252F...).
_ENCODED_SEPARATOR = re.compile(r"%(?:25)*(?:2[Ff]|5[Cc])")


def decode_param(value: str) -> str:
    """A captured value as the handler sees it: decoded exactly once, except
    that an encoded ``/`` or ``\\`` (``%2F``, ``%5C``, also nested as
    ``%252F``...) stays encoded, so a param can never gain a separator, now or
    after one more decode downstream (h3 v2's ``decodePreservingSeparators``).
    """
    if "%" not in value:
        return value
    pieces: list[str] = []
    last = 0
    for match in _ENCODED_SEPARATOR.finditer(value):
        pieces.append(unquote(value[last : match.start()]))
        pieces.append(match.group(0))
        last = match.end()
    pieces.append(unquote(value[last:]))
    return "".join(pieces)


# --- patterns ---------------------------------------------------------------


def _fail(pattern: str, problem: str) -> ValueError:
    return ValueError(f"route pattern {pattern!r}: {problem}")


def _skip_escape(text: str, i: int, pattern: str) -> int:
    if i + 1 >= len(text):
        raise _fail(pattern, "a trailing '\\' escapes nothing")
    return i + 2


def _closing(text: str, start: int, opening: str, closing: str, pattern: str) -> int:
    """Index of the ``closing`` matching ``text[start] == opening``."""
    depth = 0
    i = start
    while i < len(text):
        char = text[i]
        if char == "\\":
            i = _skip_escape(text, i, pattern)
            continue
        if char == opening:
            depth += 1
        elif char == closing:
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise _fail(pattern, f"unbalanced {opening!r} in {text[start:]!r}")


def _expand_groups(path: str, pattern: str) -> list[str]:
    """``{...}`` groups: ``{x}`` is inline, ``{x}?`` optional (two paths)."""
    i = 0
    while i < len(path):
        char = path[i]
        if char == "\\":
            i = _skip_escape(path, i, pattern)
            continue
        if char == "(":
            i = _closing(path, i, "(", ")", pattern) + 1
            continue
        if char == "}":
            raise _fail(pattern, "unbalanced '}'")
        if char == "{":
            end = _closing(path, i, "{", "}", pattern)
            body = path[i + 1 : end]
            if "{" in body.replace("\\{", ""):
                raise _fail(pattern, f"nested group {{{body}}} is not supported")
            modifier = path[end + 1 : end + 2]
            if modifier in ("+", "*"):
                raise _fail(pattern, f"repeated group {{{body}}}{modifier} is not supported")
            head, tail = path[:i], path[end + (2 if modifier == "?" else 1) :]
            with_body = _expand_groups(head + body + tail, pattern)
            if modifier != "?":
                return with_body
            return with_body + _expand_groups(head + tail, pattern)
        i += 1
    return [path]


def _split(path: str, pattern: str) -> list[str]:
    """Segments of ``path`` (after the leading '/'); '/' inside ``(...)`` fails."""
    segments: list[str] = []
    current = 0
    i = 1
    while i < len(path):
        char = path[i]
        if char == "\\":
            i = _skip_escape(path, i, pattern)
            continue
        if char == "(":
            end = _closing(path, i, "(", ")", pattern)
            if "/" in path[i:end]:
                raise _fail(pattern, f"a regex may not contain '/': {path[i : end + 1]!r}")
            i = end + 1
            continue
        if char == ")":
            raise _fail(pattern, "unbalanced ')'")
        if char == "/":
            segments.append(path[current + 1 : i])
            current = i
        i += 1
    segments.append(path[current + 1 :])
    # Trailing empty segments are ignored on patterns (rou3 #193): /a// is /a.
    while segments and segments[-1] == "":
        segments.pop()
    return segments


# A param with a modifier at the very end of a segment: (text):name(regex)?[?+*]
_MODIFIED = re.compile(r"^(?P<head>.*?):(?P<name>[A-Za-z0-9_-]+)(?P<regex>\(.*\))?(?P<mod>[?+*])$")


def _escaped_at(text: str, index: int) -> bool:
    backslashes = 0
    while index > 0 and text[index - 1] == "\\":
        backslashes += 1
        index -= 1
    return backslashes % 2 == 1


def _expand_modifiers(segments: list[str], pattern: str) -> list[list[str]]:
    """``:x?`` (optional), ``:x+`` (one or more), ``:x*`` (zero or more)."""
    for index, raw in enumerate(segments):
        if raw[-1:] not in ("?", "+", "*") or _escaped_at(raw, len(raw) - 1):
            continue
        if raw in ("*", "**") or raw.startswith("**:"):
            continue
        found = _MODIFIED.match(raw)
        if found is None or _escaped_at(raw, len(found.group("head"))):
            continue  # a '*' that is an in-segment wildcard, or an error later
        head, name, regex, modifier = found.group("head", "name", "regex", "mod")
        before, after = segments[:index], segments[index + 1 :]
        if modifier == "?":
            return _expand_modifiers([*before, raw[:-1], *after], pattern) + _expand_modifiers(
                [*before, *after], pattern
            )
        if head or regex or after:
            raise _fail(
                pattern,
                f"{raw!r}: ':name{modifier}' must be a whole last segment without a regex",
            )
        rest = [*before, f"**:{name}"]
        return [rest] if modifier == "+" else [rest, list(before)]
    return [segments]


# A JS-style named group inside a constraint, ``(?<name>``, not a lookbehind.
_JS_NAMED_GROUP = re.compile(r"\(\?<(?![=!])")
_OWN_GROUP = "__p"  # prefix of the groups the parser adds


def _parse_complex(raw: str, pattern: str, unnamed: int) -> tuple[str, tuple[str, ...], int, bool]:
    """Regex source, group names, next unnamed index, and whether any
    dynamic part was found (else the segment is static text)."""
    pieces: list[str] = []
    names: list[str] = []
    text: list[str] = []
    dynamic = False

    def flush() -> None:
        if text:
            pieces.append(re.escape(decode_text("".join(text))))
            text.clear()

    def group(name: str, body: str) -> None:
        nonlocal dynamic
        flush()
        body = _JS_NAMED_GROUP.sub("(?P<", body)
        pieces.append(f"(?P<{_OWN_GROUP}{len(names)}>{body})")
        names.append(name)
        dynamic = True

    i = 0
    while i < len(raw):
        char = raw[i]
        if char == "\\":
            _skip_escape(raw, i, pattern)
            text.append(raw[i + 1])
            i += 2
        elif char == ":":
            found = _NAME.match(raw, i + 1)
            if found is None:
                raise _fail(
                    pattern,
                    f"':' in {raw!r} starts no param name (write '\\:' for a literal colon)",
                )
            name = found.group(0)
            i = found.end()
            body = "[^/]+"
            if raw[i : i + 1] == "(":
                end = _closing(raw, i, "(", ")", pattern)
                body = raw[i + 1 : end]
                if not body:
                    raise _fail(pattern, f"empty regex in {raw!r}")
                i = end + 1
            group(name, body)
        elif char == "(":
            end = _closing(raw, i, "(", ")", pattern)
            body = raw[i + 1 : end]
            if not body:
                raise _fail(pattern, f"empty regex in {raw!r}")
            group(str(unnamed), body)
            unnamed += 1
            i = end + 1
        elif char == "*":
            if raw[i + 1 : i + 2] == "*":
                raise _fail(pattern, f"'**' must be a whole last segment, got {raw!r}")
            group(str(unnamed), "[^/]*")
            unnamed += 1
            i += 1
        elif char in "?+" and dynamic and not text and pieces and pieces[-1].endswith(")"):
            raise _fail(
                pattern,
                f"modifier {char!r} in {raw!r}: only ':name?', ':name+' and ':name*' "
                "at the end of a segment are supported",
            )
        elif char == "?":
            raise _fail(pattern, f"'?' in {raw!r} modifies nothing (write '%3F' or '\\?')")
        elif char in "{}":
            raise _fail(pattern, f"unbalanced {char!r} in {raw!r}")
        else:
            text.append(char)
            i += 1
    flush()
    return "".join(pieces), tuple(names), unnamed, dynamic


def _parse_variant(pattern: str, raw_segments: list[str]) -> ParsedPattern:
    segments: list[Segment] = []
    unnamed = 0
    last = len(raw_segments) - 1
    for index, raw in enumerate(raw_segments):
        if raw == "**" or raw.startswith("**:"):
            if index != last:
                raise _fail(pattern, f"{raw!r} must be the last segment")
            if raw == "**":
                segments.append(Segment(REST, REST_PARAM))
                continue
            name = raw[3:]
            if not _NAME.fullmatch(name):
                raise _fail(pattern, f"bad '**:name' segment {raw!r}")
            segments.append(Segment(NAMED_REST, name))
            continue
        if raw == "*":
            segments.append(Segment(STAR, str(unnamed)))
            unnamed += 1
            continue
        if raw.startswith(":") and _NAME.fullmatch(raw, 1):
            segments.append(Segment(PARAM, raw[1:]))
            continue
        source, names, unnamed, dynamic = _parse_complex(raw, pattern, unnamed)
        if not dynamic:
            text = re.sub(r"\\(.)", r"\1", raw, flags=re.DOTALL)
            segments.append(Segment(STATIC, decode_text(text)))
            continue
        try:
            regex = re.compile(source)
        except re.error as error:
            raise _fail(pattern, f"bad regex in {raw!r}: {error}") from None
        pairs = [(f"{_OWN_GROUP}{number}", name) for number, name in enumerate(names)]
        pairs += [(group, group) for group in regex.groupindex if not group.startswith(_OWN_GROUP)]
        segments.append(Segment(COMPLEX, source, regex, tuple(pairs)))

    seen: set[str] = set()
    for segment in segments:
        if segment.kind == STATIC:
            continue
        taken = [pair[1] for pair in segment.names] if segment.kind == COMPLEX else [segment.text]
        for name in taken:
            if name in seen:
                raise _fail(pattern, f"duplicate param name {name!r}")
            seen.add(name)

    rank = tuple(KIND_CLASS[s.kind] for s in segments)
    weight = sum(1 for s in segments if s.kind == COMPLEX)
    last_kind = segments[-1].kind if segments else STATIC
    if last_kind in (PARAM, COMPLEX, NAMED_REST):
        weight += 1
    is_static = all(s.kind == STATIC for s in segments)
    return ParsedPattern(
        pattern=pattern,
        segments=tuple(segments),
        signature=tuple((s.kind, s.text if s.kind in (STATIC, COMPLEX) else "") for s in segments),
        rank=rank,
        node_key=tuple((KIND_CLASS[s.kind], s.text if s.kind == STATIC else "") for s in segments),
        weight=weight,
        optional_last=last_kind in (STAR, REST),
        static_path="/" + "/".join(s.text for s in segments) if is_static else None,
    )


def parse_pattern(pattern: str) -> tuple[ParsedPattern, ...]:
    """The variants of a route pattern; ``ValueError`` names what is wrong."""
    if not isinstance(pattern, str) or not pattern.startswith("/"):
        raise ValueError(f"route pattern must be a str starting with '/', got {pattern!r}")
    if pattern.count("?") > MAX_OPTIONAL_PARTS:
        # Each optional part doubles the variants: refuse before expanding.
        raise _fail(pattern, f"more than {MAX_OPTIONAL_PARTS} optional parts ('?')")
    variants: list[ParsedPattern] = []
    signatures: set[tuple[tuple[object, ...], ...]] = set()
    for path in _expand_groups(pattern, pattern):
        if not path.startswith("/"):
            path = "/" + path
        for raw_segments in _expand_modifiers(_split(path, pattern), pattern):
            variant = _parse_variant(pattern, raw_segments)
            if variant.signature not in signatures:  # {s}?{s}? can repeat one
                signatures.add(variant.signature)
                variants.append(variant)
    return tuple(variants)
