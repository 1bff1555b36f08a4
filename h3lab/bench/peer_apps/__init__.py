"""Equivalent apps for the peer comparison: the same three endpoints everywhere.

Every app answers byte-for-byte what ``h3lab.bench.apps`` answers (so one
``BenchRequest`` verifies them all):

* ``GET /plaintext`` -> ``Hello, World!`` (``text/plain; charset=utf-8``)
* ``GET /json`` -> ``{"message":"Hello, World!"}`` (``application/json``)
* ``GET /users/:id`` -> ``{"id":"<id>"}`` (``application/json``)

registered in the same order as h3lab's: /plaintext, /json, 50 filler routes
``/api/v1/resource<i>/:id``, then /users/:id -- so a router that tries routes
in order pays for the 50 others on the parameterised endpoint. JSON bodies
are pre-encoded compactly in every app (some frameworks' default encoders
add spaces): the comparison measures the framework, not ``json.dumps``
options.

One module per framework; each is a thin, idiomatic app, and ``raw`` is the
ceiling: a bare httptools protocol on uvloop with fixed responses.
"""

from __future__ import annotations

import json
from json.encoder import encode_basestring

PLAINTEXT = b"Hello, World!"
JSON_BODY = b'{"message":"Hello, World!"}'
TEXT_TYPE = "text/plain; charset=utf-8"
JSON_TYPE = "application/json"
N_FILLER = 50
# The framework floor's name in every table (peers, study 07, the protocol
# target; peer_apps/floor.py): never an h3lab preset's or a strategy's name,
# so its rows cannot merge with theirs.
FLOOR_NAME = "framework-floor"


def user_body(user_id: str) -> bytes:
    """``{"id":"<id>"}``, compact, as h3lab encodes it.

    The bytes of ``json.dumps({"id": user_id}, separators=(",", ":"),
    ensure_ascii=False)``, built from the C string escaper that call uses.
    Every app encodes this once per request, and ``json.dumps`` with
    non-default arguments builds a ``JSONEncoder`` (and its closures) per
    call: on the 2-core VM that was ~20 us, more than the raw server's whole
    plaintext request, and it halved the raw ceiling on /users/:id (and
    slowed every peer) while h3lab encodes with orjson. Built this way it
    costs about what orjson does, with the standard library only.
    """
    return b'{"id":' + encode_basestring(user_id).encode() + b"}"


def resource_body(i: int, item_id: str) -> bytes:
    return json.dumps({"resource": i, "id": item_id}, separators=(",", ":")).encode()
