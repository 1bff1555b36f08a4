"""The shared peer-app helpers, the raw ceiling and the framework floor."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from h3lab.bench.peer_apps import JSON_TYPE, user_body
from h3lab.bench.peer_apps.floor import FloorProtocol
from h3lab.bench.peer_apps.raw import RawProtocol
from h3lab.bench.workloads import json_body
from h3lab.testing import MemoryTransport


def _dumps(user_id: str) -> bytes:
    return json.dumps({"id": user_id}, separators=(",", ":"), ensure_ascii=False).encode()


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",))))
def test_user_body_is_json_dumps_byte_for_byte(user_id: str) -> None:
    # quotes, backslashes, control characters and non-ASCII included
    assert user_body(user_id) == _dumps(user_id) == json_body({"id": user_id})


def test_user_body_refuses_what_json_dumps_refuses() -> None:
    # a lone surrogate cannot be UTF-8 encoded, whichever way the JSON was built
    with pytest.raises(UnicodeEncodeError):
        _dumps("\ud800")
    with pytest.raises(UnicodeEncodeError):
        user_body("\ud800")


def test_user_body_does_not_build_an_encoder_per_call(monkeypatch: pytest.MonkeyPatch) -> None:
    # json.dumps with non-default arguments builds a JSONEncoder per call: ~30x
    # the cost of the escaper alone, and it halved the raw ceiling on
    # /users/:id. Counted, not timed: a timed assertion fails on a busy machine.
    built: list[object] = []
    original = json.JSONEncoder.__init__

    def counting(self: json.JSONEncoder, *args: object, **kwargs: object) -> None:
        built.append(self)
        original(self, *args, **kwargs)  # type: ignore[arg-type]  # passed through as given

    monkeypatch.setattr(json.JSONEncoder, "__init__", counting)
    assert _dumps("42") == user_body("42")
    assert len(built) == 1  # the reference built one; user_body none


@pytest.mark.parametrize("user_id", ["42", "a%22b", "A-z_0.9~"])  # what a URL carries
def test_raw_server_answers_users_with_the_shared_body(user_id: str) -> None:
    proto = RawProtocol()
    transport = MemoryTransport()
    proto.connection_made(transport)
    path = f"/users/{user_id}".encode("latin-1")
    proto.data_received(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    head, _, body = transport.data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert f"content-type: {JSON_TYPE}".encode() in head
    assert body == _dumps(user_id)
    assert not transport.closed


def _floor_exchange(request: bytes) -> tuple[bytes, bytes, MemoryTransport]:
    proto = FloorProtocol()
    transport = MemoryTransport()
    proto.connection_made(transport)
    proto.data_received(request)
    head, _, body = transport.data.partition(b"\r\n\r\n")
    return head, body, transport


@pytest.mark.parametrize(
    ("path", "status", "body"),
    [
        (b"/plaintext", b"200 OK", b"Hello, World!"),
        (b"/json?x=1", b"200 OK", b'{"message":"Hello, World!"}'),
        (b"/users/42", b"200 OK", b'{"id":"42"}'),
        (b"/api/v1/resource7/x", b"200 OK", b'{"resource":7,"id":"x"}'),
        (b"/users/42/more", b"404 Not Found", b"Not Found"),
        (b"/nope", b"404 Not Found", b"Not Found"),
    ],
)
def test_framework_floor_routes_like_every_peer(path: bytes, status: bytes, body: bytes) -> None:
    head, got, transport = _floor_exchange(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 " + status + b"\r\n")
    assert b"\r\ndate: " in head and b"\r\nserver: framework-floor" in head
    assert got == body and not transport.closed


def test_framework_floor_closes_when_asked_and_refuses_garbage() -> None:
    head, _, transport = _floor_exchange(b"GET /json HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert b"connection: close" in head and transport.closed
    head, _, transport = _floor_exchange(b"NOT HTTP\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ") and transport.closed


def test_the_floor_is_named_apart_from_every_preset_and_strategy() -> None:
    # Its rows share tables with the presets' (the protocol target) and the
    # strategies' names: a shared name once merged two cases into one.
    from h3lab.bench.peer_apps import FLOOR_NAME
    from h3lab.config import PRESETS
    from h3lab.registry import FAMILIES

    taken = set(PRESETS) | {"raw", "task-start"}
    for family in FAMILIES:
        taken |= set(family.names())
    assert "minimal" in taken  # the name the floor first had
    assert FLOOR_NAME not in taken
