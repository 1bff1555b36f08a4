from __future__ import annotations

import os
from email.utils import formatdate
from pathlib import Path
from typing import Any

import pytest

from h3lab.errors import HTTPError
from h3lab.event import H3Event
from h3lab.response import Response
from h3lab.utils import static as static_module
from h3lab.utils.static import serve_static

CSS = b"body { color: red; }\n"


@pytest.fixture
def public(tmp_path: Path) -> Path:
    root = tmp_path / "public"
    (root / "css").mkdir(parents=True)
    (root / "css" / "app.css").write_bytes(CSS)
    (root / "index.html").write_text("<h1>home</h1>")
    (root / "docs").mkdir()
    (root / "docs" / "index.html").write_text("<h1>docs</h1>")
    (root / "empty-dir").mkdir()
    (root / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (root / "data.unknownext").write_bytes(b"?")
    (root / "backup.tar.gz").write_bytes(b"\x1f\x8b")
    (root / "100%.txt").write_text("percent")
    (root / ".env").write_text("SECRET=1")
    (tmp_path / "secret").write_text("top secret")
    return root


def make_event(rel: str, method: str = "GET", **headers: str) -> H3Event:
    event = H3Event()
    event.method = method
    event.params = {"_": rel}
    event._raw_headers = [
        (name.replace("_", "-").encode(), value.encode()) for name, value in headers.items()
    ]
    return event


async def serve(root: Path, rel: str, method: str = "GET", **kw: Any) -> Response:
    headers = kw.pop("headers", {})
    return await serve_static(root, **kw)(make_event(rel, method, **headers))


async def status_of(root: Path, rel: str, **kw: Any) -> int:
    try:
        return (await serve(root, rel, **kw)).status
    except HTTPError as err:
        return err.status


async def body_of(response: Response) -> bytes:
    if isinstance(response.body, bytes):
        return response.body
    return b"".join([chunk async for chunk in response.body])


async def test_serves_file_with_type_and_validators(public: Path) -> None:
    response = await serve(public, "css/app.css")
    assert response.status == 200
    assert response.body == CSS
    assert response.header("content-type") == "text/css; charset=utf-8"
    st = (public / "css" / "app.css").stat()
    assert response.header("etag") == f'W/"{st.st_size:x}-{st.st_mtime_ns:x}"'
    assert response.header("last-modified") == formatdate(st.st_mtime, usegmt=True)
    assert response.header("x-content-type-options") == "nosniff"
    assert response.header("cache-control") is None


@pytest.mark.parametrize(
    ("rel", "content_type"),
    [
        ("logo.png", "image/png"),
        ("index.html", "text/html; charset=utf-8"),
        ("data.unknownext", "application/octet-stream"),
        ("backup.tar.gz", "application/gzip"),
    ],
)
async def test_content_types(public: Path, rel: str, content_type: str) -> None:
    response = await serve(public, rel)
    assert response.header("content-type") == content_type
    assert response.header("content-encoding") is None


async def test_max_age(public: Path) -> None:
    response = await serve(public, "css/app.css", max_age=3600)
    assert response.header("cache-control") == "public, max-age=3600"


async def test_head_is_the_get_response_without_explicit_length(public: Path) -> None:
    # The server strips the body of a HEAD answer and computes Content-Length
    # from it; a Content-Length set here would be sent twice.
    get = await serve(public, "css/app.css")
    head = await serve(public, "css/app.css", "HEAD")
    assert head.status == 200
    assert head.body == get.body == CSS
    assert head.headers == get.headers
    assert head.header("content-length") is None


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS"])
async def test_other_methods_are_405_with_allow(public: Path, method: str) -> None:
    with pytest.raises(HTTPError) as info:
        await serve(public, "css/app.css", method)
    assert info.value.status == 405
    assert info.value.headers == {"allow": "GET, HEAD"}


async def test_304_via_etag(public: Path) -> None:
    etag = (await serve(public, "css/app.css")).header("etag")
    assert etag is not None
    for if_none_match in (etag, etag.removeprefix("W/"), f'"other", {etag}', "*"):
        response = await serve(public, "css/app.css", headers={"If-None-Match": if_none_match})
        assert response.status == 304
        assert response.body == b""
        assert response.header("etag") == etag
        assert response.header("content-type") is None
    changed = await serve(public, "css/app.css", headers={"If-None-Match": '"stale"'})
    assert changed.status == 200
    assert changed.body == CSS


async def test_304_via_if_modified_since(public: Path) -> None:
    path = public / "css" / "app.css"
    os.utime(path, (1_700_000_000, 1_700_000_000))
    same = formatdate(1_700_000_000, usegmt=True)
    later = formatdate(1_700_000_100, usegmt=True)
    earlier = formatdate(1_699_999_000, usegmt=True)
    assert (await serve(public, "css/app.css", headers={"If-Modified-Since": same})).status == 304
    assert (await serve(public, "css/app.css", headers={"If-Modified-Since": later})).status == 304
    stale = await serve(public, "css/app.css", headers={"If-Modified-Since": earlier})
    assert stale.status == 200
    garbage = await serve(public, "css/app.css", headers={"If-Modified-Since": "yesterday"})
    assert garbage.status == 200


async def test_if_none_match_takes_precedence_over_if_modified_since(public: Path) -> None:
    headers = {"If-None-Match": '"stale"', "If-Modified-Since": formatdate(2**31, usegmt=True)}
    assert (await serve(public, "css/app.css", headers=headers)).status == 200


async def test_head_conditional_is_304(public: Path) -> None:
    etag = (await serve(public, "css/app.css")).header("etag")
    response = await serve(public, "css/app.css", "HEAD", headers={"If-None-Match": etag})
    assert response.status == 304


async def test_directory_index(public: Path) -> None:
    assert (await serve(public, "")).body == b"<h1>home</h1>"
    assert (await serve(public, "docs")).body == b"<h1>docs</h1>"
    assert (await serve(public, "docs/")).body == b"<h1>docs</h1>"
    assert await status_of(public, "empty-dir") == 404
    custom = await serve(public, "docs", index_names=("missing.html", "index.html"))
    assert custom.body == b"<h1>docs</h1>"


async def test_missing_is_404(public: Path) -> None:
    assert await status_of(public, "nope.css") == 404
    assert await status_of(public, "css/app.css/extra") == 404
    assert await status_of(public.parent / "no-such-root", "x") == 404


async def test_percent_in_filename_is_served(public: Path) -> None:
    assert (await serve(public, "100%.txt")).body == b"percent"


@pytest.mark.parametrize(
    "rel",
    [
        "../secret",
        "css/../../secret",
        "%2e%2e/secret",
        "%2E%2E%2fsecret",
        "css/%2e%2e/%2e%2e/secret",
        "..\\secret",
        "css\\..\\..\\secret",
        "/etc/passwd",
        "%2Fetc%2Fpasswd",
        "css/app.css\x00.png",
        "css/app.css%00.png",
        "./css/app.css",
        ".env",
        "%2eenv",
    ],
)
async def test_traversal_attempts_are_404(public: Path, rel: str) -> None:
    assert await status_of(public, rel) == 404


async def test_dotfiles_opt_in(public: Path) -> None:
    assert (await serve(public, ".env", dotfiles=True)).body == b"SECRET=1"
    assert await status_of(public, "../secret", dotfiles=True) == 404


async def test_symlink_escaping_root_is_404(public: Path, tmp_path: Path) -> None:
    (public / "leak").symlink_to(tmp_path / "secret")
    (public / "leakdir").symlink_to(tmp_path, target_is_directory=True)
    assert await status_of(public, "leak") == 404
    assert await status_of(public, "leakdir/secret") == 404


async def test_symlink_inside_root_is_served(public: Path) -> None:
    (public / "alias.css").symlink_to(public / "css" / "app.css")
    assert (await serve(public, "alias.css")).body == CSS


async def test_index_symlink_escaping_root_is_404(public: Path, tmp_path: Path) -> None:
    (public / "trap").mkdir()
    (public / "trap" / "index.html").symlink_to(tmp_path / "secret")
    assert await status_of(public, "trap") == 404


async def test_large_file_streamed_in_chunks(public: Path) -> None:
    data = os.urandom(static_module.WHOLE_READ_LIMIT * 2 + 12345)
    (public / "big.bin").write_bytes(data)
    response = await serve(public, "big.bin")
    assert response.status == 200
    assert response.streaming
    chunks = [chunk async for chunk in response.body]  # type: ignore[union-attr]
    assert b"".join(chunks) == data
    assert max(len(c) for c in chunks) == static_module.CHUNK_SIZE
    head = await serve(public, "big.bin", "HEAD")
    assert head.streaming
    assert head.header("content-length") is None


async def test_file_at_limit_is_read_whole(public: Path) -> None:
    data = b"x" * static_module.WHOLE_READ_LIMIT
    (public / "edge.bin").write_bytes(data)
    response = await serve(public, "edge.bin")
    assert not response.streaming
    assert await body_of(response) == data


async def test_named_and_last_param(public: Path) -> None:
    handler = serve_static(public, param="path")
    event = make_event("ignored")
    event.params = {"path": "css/app.css"}
    assert (await handler(event)).body == CSS
    fallback = serve_static(public)
    event = make_event("ignored")
    event.params = {"version": "v1", "rest": "css/app.css"}
    assert (await fallback(event)).body == CSS


@pytest.mark.parametrize(
    "rel",
    ["%2e%2e/secret", "a/%2E%2E", "%2fetc/passwd", "a%5c..%5csecret", "a%00b", "%2eenv", "a/%2e"],
)
def test_encoded_forms_rejected_even_though_the_literal_name_is_harmless(rel: str) -> None:
    # The router has decoded once already; whatever decodes again later
    # (a proxy, a second framework) must not be able to turn these into
    # traversal, so they are refused outright.
    assert static_module._safe_parts(rel, dotfiles=False) is None


def test_safe_parts_keeps_routed_name() -> None:
    assert static_module._safe_parts("css//app%25.css/", dotfiles=False) == ["css", "app%25.css"]
