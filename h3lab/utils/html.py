"""HTML responses with escaping by default: ``html(template, **values)`` and ``raw``.

h3's ``html`` is a tagged template whose interpolated values are escaped.
Python 3.11 has no tagged templates, so the same contract is spelled with
``str.format`` fields::

    return html("<h1>Hello, {name}!</h1>", name=user_input)   # escaped
    return html("<div>{body}</div>", body=raw(trusted_markup))  # as is

The template itself is trusted markup (it is the developer's string); every
value is HTML-escaped (``& < > " '``) unless wrapped in ``raw``. Escaping
protects element content and *quoted* attribute values only: it cannot make
an unquoted attribute, a ``javascript:`` URL or the inside of ``<script>``
safe -- validate such values separately.
"""

from __future__ import annotations

import html as _html
from collections.abc import Mapping
from typing import Any

from h3lab.response import HTML_TYPE, Response

__all__ = ["RawHTML", "html", "raw"]


class RawHTML(str):
    """A string of trusted markup that ``html`` inserts without escaping."""

    __slots__ = ()


def raw(markup: str) -> RawHTML:
    """Mark ``markup`` as trusted: never pass user input through this."""
    if not isinstance(markup, str):
        raise TypeError(f"raw() takes a str, got {type(markup).__name__}")
    return RawHTML(markup)


def _escaped(value: Any) -> str:
    if isinstance(value, RawHTML):
        return str(value)
    return _html.escape("" if value is None else str(value), quote=True)


def html(
    template: str,
    /,
    status: int = 200,
    headers: Mapping[str, str] | list[tuple[str, str]] | None = None,
    **values: Any,
) -> Response:
    """A ``text/html; charset=utf-8`` response of ``template`` with ``values`` escaped in.

    Without values the template is sent as it is (no ``{}`` processing), so
    markup containing braces (inline CSS, scripts) needs no doubling.
    """
    if not isinstance(template, str):
        raise TypeError(f"html() takes a str template, got {type(template).__name__}")
    body = template.format_map({k: _escaped(v) for k, v in values.items()}) if values else template
    return Response(body, status, headers, media_type=HTML_TYPE)
