"""Request headers and query params: first value wins, every value in order, names in order."""

from __future__ import annotations

from h3lab.datastructures import Headers, QueryParams

RAW = [
    (b"Host", b"example.com"),
    (b"Cookie", b"a=1"),
    (b"X-Tag", b"first"),
    (b"cookie", b"b=2"),
    (b"x-tag", b"second"),
    (b"Accept", b"*/*"),
]


def test_headers_first_value_wins_and_names_keep_arrival_order() -> None:
    headers = Headers(RAW)
    assert headers["x-tag"] == "first" and headers.get("COOKIE") == "a=1"
    assert list(headers) == ["host", "cookie", "x-tag", "accept"] and len(headers) == 4
    assert headers.getall("Cookie") == ["a=1", "b=2"]
    assert "X-TAG" in headers and "missing" not in headers and 42 not in headers
    assert headers.get("missing") is None and headers.get("missing", "d") == "d"
    assert headers.items_all()[3] == ("cookie", "b=2")


def test_headers_without_repeats_and_empty() -> None:
    headers = Headers([(b"A", b"1"), (b"B", b"\xe9")])  # latin-1: never fails to decode
    assert dict(headers) == {"a": "1", "b": "\xe9"}
    assert len(Headers()) == 0 and Headers().get("a") is None


def test_query_first_value_wins_and_blank_values_are_kept() -> None:
    query = QueryParams("b=1&a=&b=2&c=3&a=x")
    assert query["b"] == "1" and query["a"] == "" and query.get("c") == "3"
    assert list(query) == ["b", "a", "c"] and query.getall("b") == ["1", "2"]
    assert query.get("missing") is None and len(QueryParams("")) == 0
