"""h3lab's side of the peer comparison: the same three endpoints, nothing else.

``h3lab serve h3lab.bench.peer_apps.h3lab_app:create_app --preset performance``.
The routes are ``h3lab.bench.apps.add_benchmark_endpoints``: /plaintext,
/json, 50 filler routes, /users/:id -- exactly what the peers register.
"""

from __future__ import annotations

from h3lab.app import H3
from h3lab.bench.apps import add_benchmark_endpoints
from h3lab.config import Config


def create_app(config: Config | None = None) -> H3:
    return add_benchmark_endpoints(H3(config))
