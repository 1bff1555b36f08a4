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
validation    ``read_validated_body``, ``get_validated_query``, ``get_validated_params``
session       ``use_session``, ``Session`` (sealed by ``seal``, chunked by
              ``chunked_cookies``)
auth          ``basic_auth``, ``require_basic_auth``
proxy         ``proxy_request``, ``get_proxy_request_headers``
request       ``get_request_url``, ``get_request_host``, ``get_request_ip``,
              ``get_request_protocol``, ``get_request_path``
cache         ``handle_cache_headers``, ``not_modified``
html          ``html``, ``raw``
============  ===========================================================
"""

from __future__ import annotations

from h3lab.utils.auth import basic_auth, require_basic_auth
from h3lab.utils.cache import handle_cache_headers, not_modified
from h3lab.utils.chunked_cookies import (
    delete_chunked_cookie,
    get_chunked_cookie,
    set_chunked_cookie,
)
from h3lab.utils.cookies import parse_cookie_header, serialize_cookie
from h3lab.utils.cors import CorsOptions, append_cors_headers, cors, is_preflight
from h3lab.utils.form import FormData, UploadFile, parse_form
from h3lab.utils.html import html, raw
from h3lab.utils.proxy import get_proxy_request_headers, proxy_request
from h3lab.utils.redirect import no_content, redirect
from h3lab.utils.request import (
    get_request_host,
    get_request_ip,
    get_request_path,
    get_request_protocol,
    get_request_url,
)
from h3lab.utils.session import Session, use_session
from h3lab.utils.sse import EventStream, format_comment, format_sse, sse_response
from h3lab.utils.static import serve_static
from h3lab.utils.validation import (
    InvalidInput,
    get_validated_params,
    get_validated_query,
    read_validated_body,
)

__all__ = [
    "CorsOptions",
    "EventStream",
    "FormData",
    "InvalidInput",
    "Session",
    "UploadFile",
    "append_cors_headers",
    "basic_auth",
    "cors",
    "delete_chunked_cookie",
    "format_comment",
    "format_sse",
    "get_chunked_cookie",
    "get_proxy_request_headers",
    "get_request_host",
    "get_request_ip",
    "get_request_path",
    "get_request_protocol",
    "get_request_url",
    "get_validated_params",
    "get_validated_query",
    "handle_cache_headers",
    "html",
    "is_preflight",
    "no_content",
    "not_modified",
    "parse_cookie_header",
    "parse_form",
    "proxy_request",
    "raw",
    "read_validated_body",
    "redirect",
    "require_basic_auth",
    "serialize_cookie",
    "serve_static",
    "set_chunked_cookie",
    "sse_response",
    "use_session",
]
