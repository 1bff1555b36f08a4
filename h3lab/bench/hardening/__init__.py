"""Hardening tools: what hostile clients send, and what h3lab and its peers answer.

None of these is a speed measurement of a strategy; they check that the server
keeps serving under abuse, and say what it costs.

``hostile``      the hostile-request table (``CASES``): raw payloads and h3lab's
                 answer to each; ``tests/hostile`` asserts every row in-process
``conformance``  ``h3lab bench conformance``: every row sent to h3lab and to
                 uvicorn, hypercorn, gunicorn..., the answers side by side
``soak``         ``h3lab bench soak``: minutes of valid, hostile, aborted and slow
                 clients against one server; RSS and open fds must stay flat
``bodies``       ``python -m h3lab.bench.hardening.bodies``: event-loop time a
                 hostile body costs to refuse (multipart parts, deep JSON)

Only the table is imported here: ``soak`` and ``bodies`` run as
``python -m`` scripts, which must not be imported by their package first.
"""

from __future__ import annotations

from h3lab.bench.hardening.hostile import CASE_IDS, CASES, Case

__all__ = ["CASES", "CASE_IDS", "Case"]
