from __future__ import annotations

import pytest

from h3lab.event import H3Event
from h3lab.response import to_response
from h3lab.utils.redirect import no_content, redirect


def test_default_is_302_with_location_and_html_body() -> None:
    response = redirect("/login")
    assert response.status == 302
    assert response.header("location") == "/login"
    assert response.header("content-type") == "text/html; charset=utf-8"
    assert isinstance(response.body, bytes)
    assert b'<a href="/login">/login</a>' in response.body


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirect_statuses(status: int) -> None:
    assert redirect("https://example.com/", status).status == status


@pytest.mark.parametrize("status", [200, 300, 304, 305, 306, 404, "302"])
def test_non_redirect_status_rejected(status: object) -> None:
    with pytest.raises(ValueError, match="status"):
        redirect("/x", status)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "location",
    ["/x\r\nSet-Cookie: admin=1", "/x\nX: y", "/x\ry", "/x\x00", "/x\ty", "", "/\x7f"],
)
def test_control_characters_rejected(location: str) -> None:
    with pytest.raises(ValueError, match="location"):
        redirect(location)


@pytest.mark.parametrize(
    "location", ["javascript:alert(1)", " JavaScript:alert(1)", "data:text/html,<b>", "vbscript:x"]
)
def test_script_urls_rejected(location: str) -> None:
    with pytest.raises(ValueError, match="script"):
        redirect(location)


def test_body_is_html_escaped() -> None:
    response = redirect('/search?q="><script>alert(1)</script>&a=1')
    assert isinstance(response.body, bytes)
    assert b"<script>" not in response.body
    assert b"&quot;&gt;&lt;script&gt;" in response.body
    assert b"&amp;a=1" in response.body
    # The header is not HTML: it keeps the characters as they are.
    assert response.header("location") == '/search?q="><script>alert(1)</script>&a=1'


def test_non_ascii_and_spaces_are_percent_encoded_existing_escapes_kept() -> None:
    response = redirect("/caf\u00e9/a b?x=%20")
    assert response.header("location") == "/caf%C3%A9/a%20b?x=%20"
    location = response.header("location")
    assert location is not None
    location.encode("latin-1")  # a header value the server can always send


def test_event_headers_merged_into_redirect() -> None:
    event = H3Event()
    event.set_cookie("flash", "saved")
    response = to_response(event, redirect("/done", 303))
    assert response.header("set-cookie") == "flash=saved; Path=/"
    assert response.header("location") == "/done"


def test_no_content() -> None:
    response = no_content()
    assert response.status == 204
    assert response.body == b""
    assert response.header("content-type") is None
