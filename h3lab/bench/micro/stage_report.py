"""The ``stages`` target's report: what is left unattributed, and the markdown table.

``h3lab.bench.micro.stages`` times the stages; this module only reads their
rows: ``unattributed_rows`` derives, per interleaved round, ``whole`` minus
the sum of the stages, and ``stage_table`` prints the breakdown the README
quotes (one table per preset, a row per stage, a column per endpoint).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

STAGES = ("parse", "head", "event", "route", "chain", "encode", "write", "task")
WHOLE = "whole"
SEQUENCE = "sequence"
UNATTRIBUTED = "unattributed"
UNATTRIBUTED_METRIC = "unattributed_ns"
ENDPOINTS = ("/plaintext", "/json", "/users/:id")


def unattributed_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (preset, endpoint, round): ``whole`` minus the sum of the stages (may be < 0)."""
    rounds: dict[tuple[Any, Any, Any], dict[str, dict[str, Any]]] = {}
    for row in rows:
        if row["target"] == "stages" and row["metric"] == "ns_per_op":
            key = (row["strategy"], row["param"], row["repetition"])
            rounds.setdefault(key, {})[row["stage"]] = row
    derived = []
    for stages in rounds.values():
        if WHOLE not in stages or not all(s in stages for s in STAGES):
            continue
        whole = stages[WHOLE]
        value = whole["value"] - sum(stages[s]["value"] for s in STAGES)
        # A metric of its own: not a timed sample (no loops, maybe < 0).
        derived.append(
            {
                **whole,
                "stage": UNATTRIBUTED,
                "metric": UNATTRIBUTED_METRIC,
                "value": value,
                "loops": 0,
            }
        )
    return derived


# -- the markdown breakdown ------------------------------------------------------------


_SUM = "sum of stages"
_BACK_TO_BACK = "of which: the stages back to back"
_GLUE = "of which: server code between them"
_TABLE_ROWS = (*STAGES, _SUM, WHOLE, UNATTRIBUTED, _BACK_TO_BACK, _GLUE)


def _column(stages: dict[str, float]) -> dict[str, float]:
    """One endpoint's cells (ns) by table row, from its stage medians."""
    column = {s: stages[s] for s in STAGES if s in stages}
    total = column[_SUM] = sum(column.values())
    whole = stages.get(WHOLE)
    if whole is None:
        return column
    column[WHOLE] = whole
    column[UNATTRIBUTED] = whole - total
    sequence = stages.get(SEQUENCE)
    if sequence is not None and all(s in stages for s in STAGES):
        column[_BACK_TO_BACK] = sequence - (total - stages["parse"])
        column[_GLUE] = whole - stages["parse"] - sequence
    return column


def stage_table(rows: Sequence[dict[str, Any]]) -> str:
    """Markdown, one table per preset: a row per stage, a column per endpoint,
    each cell the median ns per request and its share of ``whole``.

    ``unattributed`` here is ``whole`` minus the sum of the stage medians, so
    each column adds up to ``whole`` (the stored per-round rows are the
    median's inputs: their own median may differ slightly). With the
    ``sequence`` rows it is split in two: what the seven stages after
    ``parse`` cost more run back to back than each alone (``sequence`` minus
    their sum: caches and branch predictors shared between stages), and the
    server's own code between the stages (``whole - parse - sequence``).
    """
    groups: dict[tuple[str, str, str], list[float]] = {}
    for row in rows:
        stage = row.get("stage")
        timed = row.get("target") == "stages" and row.get("metric") == "ns_per_op"
        if timed and stage in (*STAGES, SEQUENCE, WHOLE):
            groups.setdefault((row["strategy"], row["param"], stage), []).append(row["value"])
    if not groups:
        return "(no stage rows)"
    medians: dict[str, dict[str, dict[str, float]]] = {}
    rounds: dict[str, int] = {}
    for (preset, endpoint, stage), values in groups.items():
        medians.setdefault(preset, {}).setdefault(endpoint, {})[stage] = statistics.median(values)
        rounds[preset] = max(rounds.get(preset, 0), len(values))
    blocks = []
    for preset, by_endpoint in medians.items():
        endpoints = [e for e in ENDPOINTS if e in by_endpoint]
        endpoints += sorted(e for e in by_endpoint if e not in ENDPOINTS)
        columns = [_column(by_endpoint[e]) for e in endpoints]
        lines = [
            f"**{preset}**: ns per request, median of {rounds[preset]} interleaved rounds "
            "(share of whole)",
            "",
            "| stage | " + " | ".join(f"`{e}`" for e in endpoints) + " |",
            "|---|" + "---:|" * len(endpoints),
        ]
        for name in _TABLE_ROWS:
            if not any(name in column for column in columns):
                continue
            cells = []
            for column in columns:
                ns, whole = column.get(name), column.get(WHOLE)
                share = f" ({ns / whole:.0%})" if ns is not None and whole else ""
                cells.append("" if ns is None else f"{ns:,.0f}{share}")
            shown = f"**{name}**" if name in (_SUM, WHOLE) else name
            lines.append(f"| {shown} | " + " | ".join(cells) + " |")
        blocks.append("\n".join(lines))
    blocks.append(
        "unattributed = whole - sum of the stage medians (negative when the isolated costs "
        "overstate the whole). Split: the stages after parse back to back in one loop minus "
        "their sum (what they cost each other: caches, branch predictors); and whole - parse "
        "- that sequence (the server's own code between the stages)."
    )
    return "\n\n".join(blocks)


__all__ = [
    "ENDPOINTS",
    "SEQUENCE",
    "STAGES",
    "UNATTRIBUTED",
    "UNATTRIBUTED_METRIC",
    "WHOLE",
    "stage_table",
    "unattributed_rows",
]
