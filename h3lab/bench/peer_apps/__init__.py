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

PLAINTEXT = b"Hello, World!"
JSON_BODY = b'{"message":"Hello, World!"}'
TEXT_TYPE = "text/plain; charset=utf-8"
JSON_TYPE = "application/json"
N_FILLER = 50


def user_body(user_id: str) -> bytes:
    """``{"id":"<id>"}``, compact, as h3lab encodes it."""
    return json.dumps({"id": user_id}, separators=(",", ":"), ensure_ascii=False).encode()


def resource_body(i: int, item_id: str) -> bytes:
    return json.dumps({"resource": i, "id": item_id}, separators=(",", ":")).encode()
