"""Hardening tools: the hostile-request table, conformance against peers, soak, body costs."""

from __future__ import annotations

from h3lab.bench.hardening.hostile import CASE_IDS, CASES, Case

__all__ = ["CASES", "CASE_IDS", "Case"]
