from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from h3lab.errors import HTTPError
from h3lab.event import H3Event
from h3lab.response import json_bytes
from h3lab.utils.form import FormData, UploadFile, parse_form

URLENC = "application/x-www-form-urlencoded"
BOUNDARY = "----h3labBoundary7MA4YWxkTrZu0gW"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"


def part(headers: list[str], data: bytes, boundary: str = BOUNDARY) -> bytes:
    head = "".join(f"{h}\r\n" for h in headers).encode()
    return b"--" + boundary.encode() + b"\r\n" + head + b"\r\n" + data + b"\r\n"


def end(boundary: str = BOUNDARY) -> bytes:
    return b"--" + boundary.encode() + b"--\r\n"


def field(name: str, value: str) -> bytes:
    return part([f'Content-Disposition: form-data; name="{name}"'], value.encode())


def http_error(content_type: str, body: bytes, **limits: int) -> HTTPError:
    with pytest.raises(HTTPError) as info:
        parse_form(content_type, body, **limits)
    return info.value


# -- urlencoded ------------------------------------------------------------------


def test_urlencoded_repeated_keys_blanks_and_plus() -> None:
    form = parse_form(URLENC, b"a=1&tag=x&tag=y&empty=&q=hello+world&pct=100%25+%E2%82%AC")
    assert form["a"] == "1"
    assert form["tag"] == "x"
    assert form.getall("tag") == ["x", "y"]
    assert form["empty"] == ""
    assert form["q"] == "hello world"
    assert form["pct"] == "100% \u20ac"
    assert form.files == {}
    assert form.fields == {"a": "1", "tag": "x", "empty": "", "q": "hello world", "pct": "100% €"}
    assert len(form) == 5
    assert form.items_all()[1:3] == [("tag", "x"), ("tag", "y")]


def test_urlencoded_content_type_params_and_case() -> None:
    form = parse_form("Application/X-WWW-Form-URLEncoded; charset=UTF-8", b"a=%C3%A9")
    assert dict(form) == {"a": "é"}


def test_urlencoded_latin1_charset() -> None:
    form = parse_form(f"{URLENC}; charset=iso-8859-1", b"a=%E9&b=\xe9")
    assert dict(form) == {"a": "é", "b": "é"}


def test_urlencoded_unknown_charset_is_400() -> None:
    err = http_error(f"{URLENC}; charset=rot13", b"a=1")
    assert err.status == 400
    assert "rot13" in err.data["reason"]


def test_urlencoded_empty_body() -> None:
    assert len(parse_form(URLENC, b"")) == 0


def test_urlencoded_too_many_fields() -> None:
    body = "&".join(f"k{i}=v" for i in range(11)).encode()
    assert len(parse_form(URLENC, body, max_fields=11)) == 11
    err = http_error(URLENC, body, max_fields=10)
    assert (err.status, err.message, err.data) == (400, "Too many form fields", {"limit": 10})


# -- content type ------------------------------------------------------------------


@pytest.mark.parametrize("content_type", ["", "application/json", "text/plain; charset=utf-8"])
def test_unsupported_content_type_is_415(content_type: str) -> None:
    err = http_error(content_type, b"a=1")
    assert err.status == 415
    assert err.message == "Unsupported form content type"


def test_content_type_with_newline_is_400() -> None:
    assert http_error(f"{MULTIPART}\r\nX-Evil: 1", b"").status == 400


# -- multipart -----------------------------------------------------------------------


def sample_multipart() -> bytes:
    return (
        field("title", "Hello")
        + field("tags", "a")
        + part(
            [
                'Content-Disposition: form-data; name="upload"; filename="notes.txt"',
                "Content-Type: text/plain",
            ],
            b"line1\r\nline2\n",
        )
        + field("tags", "b")
        + end()
    )


def test_multipart_fields_and_file() -> None:
    form = parse_form(MULTIPART, b"preamble is ignored\r\n" + sample_multipart())
    assert form["title"] == "Hello"
    assert form.getall("tags") == ["a", "b"]
    upload = form["upload"]
    assert isinstance(upload, UploadFile)
    assert upload.filename == "notes.txt"
    assert upload.content_type == "text/plain"
    assert upload.data == b"line1\r\nline2\n"
    assert upload.size == 13
    assert form.fields == {"title": "Hello", "tags": "a"}
    assert form.files == {"upload": upload}
    assert list(form) == ["title", "tags", "upload"]


def test_multipart_to_json_shows_file_metadata_only() -> None:
    form = parse_form(MULTIPART, sample_multipart())
    assert json_bytes(form) == (
        b'{"title":"Hello","tags":"a",'
        b'"upload":{"filename":"notes.txt","content_type":"text/plain","size":13}}'
    )


def test_multipart_quoted_boundary() -> None:
    boundary = "simple boundary"
    body = part(['Content-Disposition: form-data; name="a"'], b"1", boundary) + end(boundary)
    form = parse_form(f'multipart/form-data; boundary="{boundary}"', body)
    assert dict(form) == {"a": "1"}


def test_multipart_unicode_filenames_raw_utf8_and_rfc2231() -> None:
    body = (
        b"--" + BOUNDARY.encode() + b"\r\n"
        b'Content-Disposition: form-data; name="f1"; filename="na\xc3\xafve \xe2\x82\xac.txt"\r\n'
        b"\r\nx\r\n"
        + part(
            [
                "Content-Disposition: form-data; name=\"f2\"; filename*=UTF-8''%E6%97%A5%E6%9C%AC.txt"
            ],
            b"y",
        )
        + end()
    )
    form = parse_form(MULTIPART, body)
    f1, f2 = form["f1"], form["f2"]
    assert isinstance(f1, UploadFile) and isinstance(f2, UploadFile)
    assert f1.filename == "naïve €.txt"
    assert f2.filename == "日本.txt"


def test_multipart_file_without_content_type_and_empty_filename() -> None:
    body = part(['Content-Disposition: form-data; name="f"; filename=""'], b"") + end()
    upload = parse_form(MULTIPART, body)["f"]
    assert upload == UploadFile("", "application/octet-stream", b"")


def test_multipart_utf8_field_and_field_charset() -> None:
    body = (
        part(['Content-Disposition: form-data; name="u"'], "Grüße €".encode())
        + part(
            [
                'Content-Disposition: form-data; name="l"',
                "Content-Type: text/plain; charset=latin-1",
            ],
            "Grüße".encode("latin-1"),
        )
        + end()
    )
    assert dict(parse_form(MULTIPART, body)) == {"u": "Grüße €", "l": "Grüße"}


def test_multipart_invalid_utf8_field_is_400() -> None:
    body = part(['Content-Disposition: form-data; name="u"'], b"\xff\xfe") + end()
    err = http_error(MULTIPART, body)
    assert err.status == 400
    assert "'u'" in err.data["reason"]


def test_multipart_empty_form() -> None:
    assert len(parse_form(MULTIPART, end())) == 0
    assert len(parse_form(MULTIPART, b"")) == 0


@pytest.mark.parametrize(
    "content_type",
    ["multipart/form-data", "multipart/form-data; boundary=", "multipart/form-data; charset=x"],
)
def test_multipart_missing_boundary(content_type: str) -> None:
    err = http_error(content_type, sample_multipart())
    assert err.status == 400
    assert err.data == {"reason": "missing boundary"}


def test_multipart_invalid_boundary() -> None:
    err = http_error("multipart/form-data; boundary=" + "x" * 71, b"")
    assert (err.status, err.data) == (400, {"reason": "invalid boundary"})


@pytest.mark.parametrize(
    "body",
    [
        b"this is not multipart at all",
        b"--wrong-boundary\r\n\r\nx\r\n--wrong-boundary--\r\n",
        # truncated: no close delimiter
        b"--" + BOUNDARY.encode() + b'\r\nContent-Disposition: form-data; name="a"\r\n\r\n1',
        b"\x00\xff" * 50,
    ],
)
def test_multipart_garbage_is_400(body: bytes) -> None:
    err = http_error(MULTIPART, body)
    assert err.status == 400
    assert err.message == "Invalid multipart body"
    assert err.data["reason"]


def test_multipart_part_without_name_is_400() -> None:
    body = part(["Content-Disposition: form-data"], b"x") + end()
    assert http_error(MULTIPART, body).data == {"reason": "part 0 has no name"}


def test_multipart_part_without_disposition_is_400() -> None:
    body = field("ok", "1") + part(["Content-Type: text/plain"], b"x") + end()
    err = http_error(MULTIPART, body)
    assert err.status == 400
    assert "part 1" in err.data["reason"]


def test_multipart_nested_multipart_is_400() -> None:
    inner = part(['Content-Disposition: file; filename="a.txt"'], b"a", "inner") + end("inner")
    body = (
        part(
            [
                'Content-Disposition: form-data; name="files"',
                "Content-Type: multipart/mixed; boundary=inner",
            ],
            inner,
        )
        + end()
    )
    assert http_error(MULTIPART, body).status == 400


def test_multipart_limits() -> None:
    two_files = (
        part(['Content-Disposition: form-data; name="a"; filename="1"'], b"1")
        + part(['Content-Disposition: form-data; name="a"; filename="2"'], b"22")
        + end()
    )
    assert len(parse_form(MULTIPART, two_files, max_files=2).getall("a")) == 2
    assert http_error(MULTIPART, two_files, max_files=1).message == "Too many files"
    err = http_error(MULTIPART, two_files, max_part_size=1)
    assert (err.status, err.data) == (413, {"name": "a", "limit": 1})
    many_fields = field("a", "1") + field("b", "2") + end()
    err = http_error(MULTIPART, many_fields, max_fields=1)
    assert (err.status, err.message) == (400, "Too many form fields")


@settings(max_examples=200)
@given(st.binary(max_size=300))
def test_multipart_file_bytes_round_trip(data: bytes) -> None:
    # RFC 2046: the boundary never occurs inside the data (clients pick one
    # that does not); apart from that, every byte must come back unchanged.
    if BOUNDARY.encode() in data:
        return
    body = part(['Content-Disposition: form-data; name="f"; filename="b.bin"'], data) + end()
    upload = parse_form(MULTIPART, body)["f"]
    assert isinstance(upload, UploadFile)
    assert upload.data == data


def test_formdata_mapping_behaviour() -> None:
    form = FormData([("a", "1"), ("a", "2")])
    assert form["a"] == "1"
    assert "a" in form and "b" not in form
    with pytest.raises(KeyError):
        form["b"]
    assert form.getall("b") == []


async def test_event_form_uses_parse_form_and_caches() -> None:
    event = H3Event()
    event._raw_headers = [(b"Content-Type", MULTIPART.encode())]
    event._body = sample_multipart()
    form = await event.form()
    assert isinstance(form, FormData)
    assert form["title"] == "Hello"
    assert await event.form() is form
