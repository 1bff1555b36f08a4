from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from h3lab.event import H3Event
from h3lab.utils.cookies import cookie_identity, parse_cookie_header, serialize_cookie

COOKIE_OCTETS = "".join(
    chr(c) for c in range(0x21, 0x7F) if chr(c) not in '",;\\'
)  # RFC 6265 cookie-octet
TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


# -- parse ---------------------------------------------------------------------


def test_parse_simple_pairs() -> None:
    assert parse_cookie_header("a=1; b=2") == {"a": "1", "b": "2"}


def test_parse_trims_whitespace_and_tolerates_missing_space() -> None:
    assert parse_cookie_header("  a = 1 ;b=2;   c=3  ") == {"a": "1", "b": "2", "c": "3"}


def test_parse_unquotes_one_pair_of_quotes() -> None:
    assert parse_cookie_header('a="hello"; b=""; c="x') == {"a": "hello", "b": "", "c": '"x'}


def test_parse_skips_pairs_without_equals_or_name() -> None:
    assert parse_cookie_header("flag; =novalue; a=1;;") == {"a": "1"}


def test_parse_first_occurrence_wins() -> None:
    assert parse_cookie_header("sid=path-specific; sid=root") == {"sid": "path-specific"}


def test_parse_keeps_equals_inside_value_and_does_not_percent_decode() -> None:
    assert parse_cookie_header("tok=a=b==; p=%20x%3B") == {"tok": "a=b==", "p": "%20x%3B"}


def test_parse_empty_and_non_string_give_empty_dict() -> None:
    assert parse_cookie_header("") == {}
    assert parse_cookie_header(None) == {}  # type: ignore[arg-type]


@given(st.text())
def test_parse_never_raises_on_garbage(header: str) -> None:
    result = parse_cookie_header(header)
    assert all(isinstance(k, str) and k and isinstance(v, str) for k, v in result.items())


# -- serialize -----------------------------------------------------------------


def test_serialize_defaults_to_root_path() -> None:
    assert serialize_cookie("sid", "abc") == "sid=abc; Path=/"


def test_serialize_all_attributes_in_order() -> None:
    expires = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    header = serialize_cookie(
        "sid",
        "abc",
        max_age=3600,
        expires=expires,
        path="/app",
        domain="example.com",
        secure=True,
        httponly=True,
        samesite="STRICT",
        partitioned=True,
    )
    assert header == (
        "sid=abc; Max-Age=3600; Expires=Wed, 02 Jan 2030 03:04:05 GMT; "
        "Domain=example.com; Path=/app; Secure; HttpOnly; SameSite=Strict; Partitioned"
    )


def test_serialize_path_none_omits_path() -> None:
    assert serialize_cookie("a", "1", path=None) == "a=1"


def test_expires_naive_is_utc_and_aware_is_converted() -> None:
    naive = serialize_cookie("a", "1", expires=datetime(2030, 1, 1, 12, 0, 0))
    assert "Expires=Tue, 01 Jan 2030 12:00:00 GMT" in naive
    plus_two = timezone(timedelta(hours=2))
    aware = serialize_cookie("a", "1", expires=datetime(2030, 1, 1, 14, 0, 0, tzinfo=plus_two))
    assert "Expires=Tue, 01 Jan 2030 12:00:00 GMT" in aware


def test_expires_string_passed_through_but_validated() -> None:
    assert "Expires=Thu, 01 Jan 1970 00:00:00 GMT" in serialize_cookie(
        "a", "1", expires="Thu, 01 Jan 1970 00:00:00 GMT"
    )
    with pytest.raises(ValueError, match="expires"):
        serialize_cookie("a", "1", expires="Thu\r\nSet-Cookie: x=1")


def test_max_age_timedelta_and_type_check() -> None:
    assert "Max-Age=90" in serialize_cookie("a", "1", max_age=timedelta(minutes=1.5))
    with pytest.raises(TypeError):
        serialize_cookie("a", "1", max_age=True)
    with pytest.raises(TypeError):
        serialize_cookie("a", "1", max_age="60")  # type: ignore[arg-type]


@pytest.mark.parametrize(("given", "sent"), [("lax", "Lax"), ("Strict", "Strict"), ("LAX", "Lax")])
def test_samesite_case_insensitive(given: str, sent: str) -> None:
    assert serialize_cookie("a", "1", samesite=given).endswith(f"SameSite={sent}")


def test_samesite_invalid_names_option_and_allowed_values() -> None:
    with pytest.raises(ValueError, match="samesite") as info:
        serialize_cookie("a", "1", samesite="sometimes")
    assert "'lax', 'strict' and 'none'" in str(info.value)


def test_samesite_none_requires_secure() -> None:
    with pytest.raises(ValueError, match="secure"):
        serialize_cookie("a", "1", samesite="none")
    assert "SameSite=None" in serialize_cookie("a", "1", samesite="None", secure=True)


def test_partitioned_requires_secure() -> None:
    with pytest.raises(ValueError, match="partitioned"):
        serialize_cookie("a", "1", partitioned=True)


def test_name_prefixes_are_enforced() -> None:
    with pytest.raises(ValueError, match="__Secure-"):
        serialize_cookie("__Secure-id", "1")
    with pytest.raises(ValueError, match="__Host-"):
        serialize_cookie("__Host-id", "1", secure=True, domain="example.com")
    with pytest.raises(ValueError, match="__Host-"):
        serialize_cookie("__Host-id", "1", secure=True, path="/sub")
    assert serialize_cookie("__Host-id", "1", secure=True) == "__Host-id=1; Path=/; Secure"


@pytest.mark.parametrize(
    "value",
    [
        "a\r\nSet-Cookie: admin=1",
        "a\nb",
        "x; Domain=evil.example",
        "a,b",
        "a b",
        'a"b',
        "a\\b",
        "caf\u00e9",
        "a\x00",
        "a\tb",
        "a\x7f",
    ],
)
def test_value_injection_rejected(value: str) -> None:
    with pytest.raises(ValueError, match="'sid'"):
        serialize_cookie("sid", value)


@pytest.mark.parametrize("name", ["", "a=b", "a b", "a;b", "a\r\nb", "a,b", "caf\u00e9", "(a)"])
def test_invalid_names_rejected(name: str) -> None:
    with pytest.raises(ValueError, match="cookie name"):
        serialize_cookie(name, "1")


@pytest.mark.parametrize(
    ("option", "value"),
    [("path", "/a; Domain=evil"), ("path", "/\r\nX: y"), ("domain", "a.com;Secure")],
)
def test_attribute_injection_rejected(option: str, value: str) -> None:
    with pytest.raises(ValueError, match=option):
        serialize_cookie("sid", "1", **{option: value})


@given(
    st.text(alphabet=TOKEN_CHARS, min_size=1, max_size=20),
    st.text(alphabet=COOKIE_OCTETS, max_size=40),
)
def test_round_trip(name: str, value: str) -> None:
    header = serialize_cookie(name, value, httponly=True, max_age=10)
    # A browser sends back only the name=value pair (everything before the
    # first "; "), which the parser must read back unchanged.
    sent_back = header.split("; ", 1)[0]
    assert parse_cookie_header(sent_back) == {name: value}


def test_event_cookie_round_trip() -> None:
    response_event = H3Event()
    response_event.set_cookie("sid", "s3cr3t", httponly=True, samesite="lax")
    response_event.delete_cookie("old", path="/x")
    assert response_event.response_headers == [
        ("set-cookie", "sid=s3cr3t; Path=/; HttpOnly; SameSite=Lax"),
        ("set-cookie", "old=; Max-Age=0; Path=/x"),
    ]
    request_event = H3Event()
    request_event._raw_headers = [(b"Cookie", b'sid=s3cr3t; theme="dark"')]
    assert request_event.cookies == {"sid": "s3cr3t", "theme": "dark"}


def test_set_cookie_replaces_same_name_domain_and_path() -> None:
    """h3 v2: one response carries one value per (name, domain, path)."""
    event = H3Event()
    event.set_cookie("sid", "one")
    event.set_cookie("theme", "dark")
    event.set_cookie("sid", "two", httponly=True)  # same name, path "/": replaces
    event.set_cookie("sid", "scoped", path="/admin")  # another path: kept beside
    event.set_cookie("sid", "d1", domain=".Example.com")
    event.set_cookie("sid", "d2", domain="example.com")  # same domain (RFC 6265)
    event.set_cookie("sid", "nopath", path=None)  # no Path counts as "/"
    event.delete_cookie("theme")
    event.append_header("x-other", "kept")
    assert event.response_headers == [
        ("set-cookie", "sid=scoped; Path=/admin"),
        ("set-cookie", "sid=d2; Domain=example.com; Path=/"),
        ("set-cookie", "sid=nopath"),
        ("set-cookie", "theme=; Max-Age=0; Path=/"),
        ("x-other", "kept"),
    ]


def test_set_cookie_keeps_cookies_whose_name_only_shares_a_prefix() -> None:
    event = H3Event()
    event.set_cookie("sid", "a")
    event.set_cookie("sid2", "b")
    event.set_cookie("s", "c")
    assert [value for _, value in event.response_headers] == [
        "sid=a; Path=/",
        "sid2=b; Path=/",
        "s=c; Path=/",
    ]


@pytest.mark.parametrize(
    ("header", "identity"),
    [
        ("a=1; Path=/x; Domain=.EX.org", ("a", "ex.org", "/x")),
        ("a=1", ("a", "", "/")),
        ("a=1; path=/p; domain=ex.org; Secure", ("a", "ex.org", "/p")),
        ("a=b=c; Path=", ("a", "", "/")),
    ],
)
def test_cookie_identity(header: str, identity: tuple[str, str, str]) -> None:
    assert cookie_identity(header) == identity
