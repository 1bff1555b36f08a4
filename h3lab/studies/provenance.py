"""Provenance: which run, commit and machine every figure and number comes from.

``meta.json["provenance"]`` (written by the runner through ``stamp``)::

    {"run_id", "study", "origin": "study" | "manual", "commit", "dirty", "branch",
     "machine": {"cpu_model", "cores", "python", "hostname"},
     "mode": "full" | "quick", "validity": "valid" | "unstable" | "invalid",
     "started", "duration_s"}

``origin`` is ``study`` only for runs made by ``h3lab study run/all`` (the
runner adds its ``study_run`` record); a notebook executed by hand in
JupyterLab leaves a run without it and is ``manual``: listed, never chosen
over a study run (``latest_run``) and never fed to the summary (``select_runs``).

Figures: ``caption(meta)`` is the one-line footer ("run <id> · commit
<sha> · <cpu>, 2 cores, Python 3.11.7 · full · valid"); ``footer(chart,
meta)`` puts it under an Altair chart before export. ``h3lab study figures``
copies the README's figures and writes ``PROVENANCE.md`` (``write_table``).

Summary input (``select_runs``): per study the latest run made by the
runner that finished ok, is *full* (not quick), *valid or unstable* (not
invalid), not dirty, and all of ONE commit -- the newest commit every
requested study has such a run at. Anything else raises
``ProvenanceError`` naming each study's problem, unless ``allow_mixed``:
then the latest usable run of each study is taken and ``Selection.notes``
says what was mixed (the summary must print them in its conclusion).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

META_FILE = "meta.json"
PROVENANCE_TABLE = "PROVENANCE.md"


class ProvenanceError(ValueError):
    """The runs asked for cannot be combined honestly (quick, invalid, mixed commits...)."""


def read_meta(run_dir: str | Path) -> dict[str, Any]:
    try:
        meta = json.loads((Path(run_dir) / META_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def origin(meta: Mapping[str, Any]) -> str:
    """``study`` when the runner made the run, else ``manual``."""
    prov = meta.get("provenance") or {}
    if prov.get("origin") in ("study", "manual"):
        return str(prov["origin"])
    return "study" if isinstance(meta.get("study_run"), dict) else "manual"


def _quick(meta: Mapping[str, Any]) -> bool:
    record = meta.get("study_run") or {}
    params = meta.get("params") or {}
    return bool(record.get("quick") or params.get("quick"))


def validity_status(meta: Mapping[str, Any]) -> str:
    """``valid``, ``unstable``, ``invalid``, or ``unknown`` (no validity recorded)."""
    v = meta.get("validity")
    if not isinstance(v, Mapping):
        return "unknown"
    status = v.get("status")
    if status in ("valid", "unstable", "invalid"):
        return str(status)
    return "valid" if v.get("ok", True) else "invalid"


def record(meta: Mapping[str, Any], run_dir: str | Path | None = None) -> dict[str, Any]:
    """The provenance block for ``meta`` (computed; ``stamp`` stores it)."""
    machine = meta.get("machine") or {}
    run = meta.get("study_run") or {}
    return {
        "run_id": meta.get("run_id") or (Path(run_dir).name if run_dir is not None else None),
        "study": meta.get("study"),
        "origin": origin(meta),
        "commit": meta.get("git_commit"),
        "dirty": meta.get("git_dirty"),
        "branch": meta.get("git_branch"),
        "machine": {
            "cpu_model": meta.get("cpu_model") or machine.get("cpu_model"),
            "cores": meta.get("cores") or machine.get("cores"),
            "python": meta.get("python") or machine.get("python"),
            "hostname": meta.get("hostname") or machine.get("hostname"),
        },
        "mode": "quick" if _quick(meta) else "full",
        "validity": validity_status(meta),
        "started": run.get("started") or meta.get("started"),
        "duration_s": run.get("duration_s"),
    }


def stamp(meta: dict[str, Any], run_dir: str | Path | None = None) -> dict[str, Any]:
    """Store ``record(meta)`` in ``meta["provenance"]`` (in place); returns it."""
    meta.pop("provenance", None)
    meta["provenance"] = record(meta, run_dir)
    return meta["provenance"]


def of(run_dir: str | Path) -> dict[str, Any]:
    """The provenance of a run folder (stored, else computed from its meta.json)."""
    meta = read_meta(run_dir)
    return dict(meta.get("provenance") or record(meta, run_dir))


# -- figures ----------------------------------------------------------------------------------


def _machine_text(machine: Mapping[str, Any]) -> str:
    parts = []
    if machine.get("cpu_model"):
        parts.append(str(machine["cpu_model"]))
    if machine.get("cores"):
        parts.append(f"{machine['cores']} cores")
    if machine.get("python"):
        parts.append(f"Python {machine['python']}")
    return ", ".join(parts) or "unknown machine"


def caption(meta: Mapping[str, Any]) -> str:
    """``run <id> · commit <sha10>[ dirty] · <cpu>, N cores, Python X · full|quick · <validity>``."""
    p = meta.get("provenance") if isinstance(meta.get("provenance"), Mapping) else None
    p = p or record(meta)
    commit = str(p.get("commit") or "unknown")[:10] + (" dirty" if p.get("dirty") else "")
    parts = [
        f"run {p.get('run_id') or '?'}",
        f"commit {commit}",
        _machine_text(p.get("machine") or {}),
        str(p.get("mode")),
        str(p.get("validity")),
    ]
    if p.get("origin") == "manual":
        parts.append("manual run")
    return " · ".join(parts)


def footer(chart: Any, meta: Mapping[str, Any]) -> Any:
    """``chart`` with ``caption(meta)`` as a small grey line under it (Altair).

    Works for any chart, layered, faceted or concatenated ones included,
    provided no top-level ``configure_*`` was applied yet (the theme does
    that at render time, so charts built with ``h3lab.studies.charts`` are fine).
    """
    import altair as alt
    import pandas as pd

    text = (
        alt.Chart(pd.DataFrame({"caption": [caption(meta)]}))
        .mark_text(align="left", baseline="top", fontSize=9, color="#666666", x=0, y=0)
        .encode(text="caption:N")
        .properties(height=12, width=1)
    )
    return alt.vconcat(chart, text, spacing=4)


# -- which runs -------------------------------------------------------------------------------


def run_dirs(study: str, root: str | Path) -> list[Path]:
    from h3lab.bench.results import run_dirs

    root = Path(root)
    return run_dirs(study, root) if root.is_dir() else []


def finished_ok(meta: Mapping[str, Any], run_dir: Path) -> bool:
    status = (meta.get("study_run") or {}).get("status")
    if status is not None:
        return status == "ok"
    return (run_dir / "results.parquet").is_file()


def latest_run(
    study: str,
    root: str | Path = "data/runs",
    *,
    include_manual: bool = False,
    require_valid: bool = False,
    full_only: bool = False,
) -> Path | None:
    """The newest run of ``study`` that finished ok with results.

    Manual runs only when ``include_manual`` (and then only when no study run
    qualifies: a manual run never displaces a study run).
    """
    runs = list(reversed(run_dirs(study, root)))
    manual: Path | None = None
    for run_dir in runs:
        meta = read_meta(run_dir)
        if not meta or not finished_ok(meta, run_dir):
            continue
        if not (run_dir / "results.parquet").is_file():
            continue
        if require_valid and validity_status(meta) == "invalid":
            continue
        if full_only and _quick(meta):
            continue
        if origin(meta) == "manual":
            manual = manual or run_dir
            continue
        return run_dir
    return manual if include_manual else None


@dataclass
class Selection:
    """The runs a summary may combine: ``runs[study]`` and their ``metas``."""

    runs: dict[str, Path]
    metas: dict[str, dict[str, Any]]
    commit: str | None
    mixed: bool = False
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        """One sentence for the summary's conclusion."""
        if not self.mixed:
            return (
                f"Built from full, valid runs of commit {str(self.commit)[:10]}: "
                + ", ".join(f"{s} {p.name}" for s, p in self.runs.items())
                + "."
            )
        return "**Mixed inputs (allow_mixed):** " + "; ".join(self.notes) + "."


def problems(meta: Mapping[str, Any]) -> list[str]:
    out = []
    if _quick(meta):
        out.append("quick")
    status = validity_status(meta)
    if status == "invalid":
        out.append("invalid")
    elif status == "unknown":
        out.append("no validity recorded")
    if meta.get("git_dirty"):
        out.append("dirty checkout")
    if not meta.get("git_commit"):
        out.append("no commit")
    return out


def select_runs(
    studies: Sequence[str],
    root: str | Path = "data/runs",
    *,
    allow_mixed: bool = False,
    commit: str | None = None,
) -> Selection:
    """For each study, the latest usable run, all of ONE commit (see the module doc).

    ``commit`` pins the commit (a prefix is enough); by default the newest
    commit at which every study has a full, valid, clean study run.
    """
    candidates: dict[str, list[tuple[Path, dict[str, Any]]]] = {}
    rejected: dict[str, list[str]] = {}
    for study in studies:
        good: list[tuple[Path, dict[str, Any]]] = []
        reasons: list[str] = []
        for run_dir in reversed(run_dirs(study, root)):
            meta = read_meta(run_dir)
            if not meta or origin(meta) != "study" or not finished_ok(meta, run_dir):
                continue
            found = problems(meta)
            if found:
                reasons.append(f"{run_dir.name} ({', '.join(found)})")
                continue
            good.append((run_dir, meta))
        candidates[study] = good
        rejected[study] = reasons

    def at(study: str, sha: str) -> tuple[Path, dict[str, Any]] | None:
        return next((c for c in candidates[study] if str(c[1]["git_commit"]).startswith(sha)), None)

    commits: list[str] = []
    for study in studies:
        for _, meta in candidates[study]:
            if meta["git_commit"] not in commits:
                commits.append(meta["git_commit"])
    # Newest first: order the commits by their newest run's id (ids sort by time).
    newest = {
        c: max(p.name for s in studies for p, m in candidates[s] if m["git_commit"] == c)
        for c in commits
    }
    commits.sort(key=lambda c: newest[c], reverse=True)
    wanted = [c for c in commits if commit is None or c.startswith(commit)]
    for sha in wanted:
        picked = {s: at(s, sha) for s in studies}
        if all(v is not None for v in picked.values()):
            return Selection(
                {s: v[0] for s, v in picked.items() if v is not None},
                {s: v[1] for s, v in picked.items() if v is not None},
                sha,
            )
    if not allow_mixed:
        lines = []
        for study in studies:
            have = sorted({str(m["git_commit"])[:10] for _, m in candidates[study]})
            why = "; ".join(rejected[study][:3]) or "no finished study run"
            lines.append(
                f"{study}: usable at {', '.join(have)}" if have else f"{study}: none usable ({why})"
            )
        target = f"commit {commit}" if commit else "one commit"
        raise ProvenanceError(
            f"no full, valid, clean runs of {target} for every study ("
            + " | ".join(lines)
            + "); run `make study` at one commit, or set allow_mixed"
        )
    runs: dict[str, Path] = {}
    metas: dict[str, dict[str, Any]] = {}
    notes: list[str] = []
    for study in studies:
        if candidates[study]:
            run_dir, meta = candidates[study][0]
        else:
            latest = latest_run(study, root)  # quick / invalid / dirty, but a study run
            if latest is None:
                notes.append(f"{study}: no run, left out")
                continue
            run_dir = latest
            meta = read_meta(run_dir)
        runs[study], metas[study] = run_dir, meta
        found = problems(meta)
        notes.append(
            f"{study} {run_dir.name} at {str(meta.get('git_commit'))[:10]}"
            + (f" ({', '.join(found)})" if found else "")
        )
    shas = {m.get("git_commit") for m in metas.values()}
    return Selection(runs, metas, next(iter(shas)) if len(shas) == 1 else None, True, notes)


# -- the figures' table ---------------------------------------------------------------------------


def table(entries: Iterable[tuple[str, str | Path]]) -> str:
    """``PROVENANCE.md``: one row per ``(figure file, run folder)``."""
    lines = [
        "# Provenance of the README figures",
        "",
        "Written by `h3lab study figures`; every figure comes from the run named here.",
        "",
        "| figure | study | run id | commit | machine | mode | validity | origin |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for figure, run_dir in entries:
        p = of(run_dir)
        commit = str(p.get("commit") or "?")[:10] + (" (dirty)" if p.get("dirty") else "")
        lines.append(
            f"| {figure} | {p.get('study') or Path(run_dir).parent.name} | {p.get('run_id')} | "
            f"{commit} | {_machine_text(p.get('machine') or {})} | {p.get('mode')} | "
            f"{p.get('validity')} | {p.get('origin')} |"
        )
    return "\n".join(lines) + "\n"


def write_table(entries: Iterable[tuple[str, str | Path]], out_dir: str | Path) -> Path:
    path = Path(out_dir) / PROVENANCE_TABLE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(table(entries), encoding="utf-8")
    return path


__all__ = [
    "ProvenanceError",
    "Selection",
    "caption",
    "footer",
    "latest_run",
    "of",
    "origin",
    "read_meta",
    "record",
    "select_runs",
    "stamp",
    "table",
    "validity_status",
    "write_table",
]
