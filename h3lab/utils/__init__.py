"""Request/response helpers, one small module per concern (the unjs/h3 ``src/utils`` layout).

============  ===========================================================
module        helpers
============  ===========================================================
cookies       ``parse_cookie_header``, ``serialize_cookie``
form          ``parse_form``, ``FormData``, ``UploadFile``
cors          ``cors`` (middleware), ``is_preflight``, ``append_cors_headers``
sse           ``EventStream``, ``sse_response``, ``format_sse``
static        ``serve_static``
redirect      ``redirect``, ``no_content``
============  ===========================================================
"""

from __future__ import annotations

from h3lab.utils.cookies import parse_cookie_header, serialize_cookie
from h3lab.utils.cors import CorsOptions, append_cors_headers, cors, is_preflight
from h3lab.utils.form import FormData, UploadFile, parse_form
from h3lab.utils.redirect import no_content, redirect
from h3lab.utils.sse import EventStream, format_comment, format_sse, sse_response
from h3lab.utils.static import serve_static

__all__ = [
    "CorsOptions",
    "EventStream",
    "FormData",
    "UploadFile",
    "append_cors_headers",
    "cors",
    "format_comment",
    "format_sse",
    "is_preflight",
    "no_content",
    "parse_cookie_header",
    "parse_form",
    "redirect",
    "serialize_cookie",
    "serve_static",
    "sse_response",
]
