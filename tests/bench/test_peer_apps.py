"""The shared peer-app helpers: the /users/:id body every server encodes per request."""

from __future__ import annotations

import json
import timeit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from h3lab.bench.peer_apps import JSON_TYPE, user_body
from h3lab.bench.peer_apps.raw import RawProtocol
from h3lab.bench.workloads import json_body


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


def test_user_body_does_not_build_an_encoder_per_call() -> None:
    # json.dumps with non-default arguments builds a JSONEncoder per call: ~30x
    # the cost of the escaper alone, and it halved the raw ceiling on
    # /users/:id. Interleaved minima, so a busy machine slows both alike.
    lean, dumps = [], []
    for _ in range(5):
        lean.append(timeit.timeit(lambda: user_body("42"), number=2000))
        dumps.append(timeit.timeit(lambda: _dumps("42"), number=2000))
    assert min(lean) * 3 < min(dumps), (min(lean), min(dumps))


class _Transport:
    def __init__(self) -> None:
        self.out = b""
        self.closed = False

    def write(self, data: bytes) -> None:
        self.out += data

    def close(self) -> None:
        self.closed = True


@pytest.mark.parametrize("user_id", ["42", "a%22b", "A-z_0.9~"])  # what a URL carries
def test_raw_server_answers_users_with_the_shared_body(user_id: str) -> None:
    proto = RawProtocol()
    transport = _Transport()
    proto.connection_made(transport)  # type: ignore[arg-type]  # write/close is all it uses
    path = f"/users/{user_id}".encode("latin-1")
    proto.data_received(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    head, _, body = transport.out.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert f"content-type: {JSON_TYPE}".encode() in head
    assert body == _dumps(user_id)
    assert not transport.closed
