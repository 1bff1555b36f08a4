"""``data/report/index.html``: the latest successful run of every study, in one page.

For each study (registry order, so the summary ``00`` comes first): its
conclusion, its figures, its parameters, the machine and commit it ran on,
and links to the executed notebook and its HTML rendering. Everything the
page shows is *copied* into ``data/report/<study>/`` so the folder is
self-contained (zip it, open it anywhere); the page has no script and loads
nothing from the network.

The conclusion is read from ``conclusion.md`` in the run folder (written by
``StudyRun.conclude``), or else from the outputs of a cell tagged
``conclusion`` in the executed notebook.
"""

from __future__ import annotations

import html
import json
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from h3lab.studies import provenance, registry
from h3lab.studies.runner import latest_ok_run, run_status

CSS = """
body { font-family: "Liberation Sans", Arial, Helvetica, sans-serif; margin: 0; color: #222; background: #fafafa; }
header, main { max-width: 1100px; margin: 0 auto; padding: 0 24px; }
header { padding-top: 24px; }
h1 { font-size: 26px; margin-bottom: 4px; }
h2 { font-size: 21px; margin-top: 40px; border-bottom: 2px solid #0072B2; padding-bottom: 4px; }
.muted { color: #666; font-size: 13px; }
section.study { background: #fff; border: 1px solid #e3e3e3; border-radius: 6px; padding: 4px 20px 16px; margin: 24px 0; }
.conclusion { background: #f3f8fc; border-left: 4px solid #0072B2; padding: 8px 16px; margin: 12px 0; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0; }
th, td { border: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
figure { display: inline-block; margin: 8px 16px 16px 0; vertical-align: top; }
figure img { max-width: 100%; border: 1px solid #eee; background: #fff; }
figcaption { font-size: 12px; color: #555; }
details { margin: 8px 0; }
code { background: #f2f2f2; padding: 1px 4px; border-radius: 3px; }
nav ol { columns: 2; }
.failed { color: #b00020; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; font-weight: bold; color: #fff; }
.badge.valid { background: #1b7f3b; }
.badge.unstable { background: #b26a00; }
.badge.invalid { background: #b00020; }
.badge.unknown, .badge.manual { background: #777; }
.validity { border-left: 4px solid #b26a00; background: #fff8ec; padding: 6px 14px; margin: 10px 0; font-size: 13px; }
.validity.invalid { border-color: #b00020; background: #fdeef0; }
"""


@dataclass
class StudySection:
    study: registry.Study
    run_dir: Path | None
    meta: dict[str, Any] = field(default_factory=dict)
    conclusion: str = ""
    figures: list[Path] = field(default_factory=list)
    newer_failed: str | None = None


def _markdown(text: str) -> str:
    import mistune

    # escape=True: a conclusion is data, never markup to trust.
    return str(mistune.create_markdown(plugins=["table"], escape=True)(text))


def conclusion_of(run_dir: Path, notebook: Path | None = None) -> str:
    """``conclusion.md``, else the text outputs of a cell tagged ``conclusion``."""
    path = run_dir / "conclusion.md"
    if path.is_file():
        return path.read_text(encoding="utf-8").strip()
    if notebook is None or not notebook.is_file():
        return ""
    import nbformat

    nb = nbformat.read(str(notebook), as_version=4)
    for cell in nb.cells:
        if "conclusion" not in cell.get("metadata", {}).get("tags", []):
            continue
        if cell.cell_type == "markdown":
            return str(cell.source).strip()
        texts = []
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            text = data.get("text/markdown") or data.get("text/plain") or output.get("text")
            if text:
                texts.append("".join(text) if isinstance(text, list) else str(text))
        return "\n\n".join(texts).strip()
    return ""


def _figures(run_dir: Path) -> list[Path]:
    # In the order the notebook drew them (file times), not alphabetically.
    return sorted((run_dir / "figures").glob("*.png"), key=lambda p: (p.stat().st_mtime, p.name))


def collect(root: str | Path, studies: list[registry.Study] | None = None) -> list[StudySection]:
    from h3lab.bench.results import run_dirs

    root = Path(root)
    sections = []
    for study in studies if studies is not None else registry.discover():
        # A study run always wins; a manual (hand-executed) run shows only when
        # there is no study run at all, and is labelled as such.
        run_dir = latest_ok_run(study.name, root, include_manual=True)
        section = StudySection(study, run_dir)
        all_runs = run_dirs(study.name, root) if root.is_dir() else []
        if all_runs and run_status(all_runs[-1]) == "failed" and all_runs[-1] != run_dir:
            section.newer_failed = all_runs[-1].name
        if run_dir is not None:
            try:
                section.meta = json.loads((run_dir / "meta.json").read_text())
            except (OSError, ValueError):
                section.meta = {}
            notebook = run_dir / study.path.name
            section.conclusion = conclusion_of(run_dir, notebook)
            section.figures = _figures(run_dir)
        sections.append(section)
    return sections


def _copy(src: Path, dst: Path) -> Path | None:
    if not src.is_file():
        return None
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, dst)
    return dst


def _params_table(params: dict[str, Any]) -> str:
    if not params:
        return "<p class='muted'>no parameters recorded</p>"
    rows = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td><code>{html.escape(json.dumps(v, default=str))}</code></td></tr>"
        for k, v in params.items()
    )
    return f"<table>{rows}</table>"


def _machine_line(meta: dict[str, Any]) -> str:
    parts = []
    if meta.get("cpu_model"):
        parts.append(str(meta["cpu_model"]))
    if meta.get("cores"):
        parts.append(f"{meta['cores']} cores")
    if meta.get("python"):
        parts.append(f"Python {meta['python']}")
    if meta.get("hostname"):
        parts.append(f"host {meta['hostname']}")
    commit = meta.get("git_commit")
    if commit:
        parts.append(f"commit {str(commit)[:10]}{' (dirty)' if meta.get('git_dirty') else ''}")
    return ", ".join(parts)


def _validity_html(meta: dict[str, Any]) -> str:
    """The reasons a run is invalid and every unstable-sample warning ('' for a clean run)."""
    v = meta.get("validity") if isinstance(meta.get("validity"), dict) else None
    if v is None:
        return "<p class='muted'>No validity recorded for this run.</p>"
    reasons = [str(r) for r in v.get("reasons") or []]
    warnings = [str(w) for w in v.get("warnings") or []]
    if not reasons and not warnings:
        return ""
    parts = []
    if reasons:
        items = "".join(f"<li>{html.escape(r)}</li>" for r in reasons)
        parts.append(
            f"<div class='validity invalid'><b>Invalid run</b>: no difference is claimed from it.<ul>{items}</ul></div>"
        )
    if warnings:
        items = "".join(f"<li>{html.escape(w)}</li>" for w in warnings)
        parts.append(
            f"<div class='validity'><details><summary><b>Unstable samples ({len(warnings)})</b></summary>"
            f"<ul>{items}</ul></details></div>"
        )
    return "\n".join(parts)


def _section_html(section: StudySection, out: Path) -> str:
    study = section.study
    anchor = html.escape(study.name)
    title = html.escape(f"{study.number} {study.title}")
    if section.run_dir is None:
        failed = (
            f" <span class='failed'>(the latest run {html.escape(section.newer_failed)} failed)</span>"
            if section.newer_failed
            else ""
        )
        return (
            f"<section class='study' id='{anchor}'><h2>{title}</h2>"
            f"<p class='muted'>No successful run yet{failed}. Run <code>h3lab study run {anchor}</code>.</p></section>"
        )
    dest = out / study.name
    if dest.exists():
        shutil.rmtree(dest)
    (dest / "figures").mkdir(parents=True)
    meta = section.meta
    record = meta.get("study_run") or {}
    params = {k: v for k, v in (meta.get("params") or record.get("parameters") or {}).items()}
    parts = [f"<section class='study' id='{anchor}'><h2>{title}</h2>"]
    when = meta.get("timestamp") or ""
    duration = record.get("duration_s")
    quick = " &middot; <b>quick mode</b>" if record.get("quick") or params.get("quick") else ""
    prov = provenance.of(section.run_dir)
    status = str(prov.get("validity") or "unknown")
    badges = f"<span class='badge {html.escape(status)}'>{html.escape(status)}</span>"
    if prov.get("origin") == "manual":
        badges += " <span class='badge manual'>manual run</span>"
    parts.append(
        f"<p class='muted'>{badges} run <code>{html.escape(section.run_dir.name)}</code> &middot; {html.escape(str(when))}"
        + (f" &middot; {float(duration):.0f} s" if duration is not None else "")
        + quick
        + f"<br>{html.escape(_machine_line(meta))}</p>"
    )
    parts.append(_validity_html(meta))
    if section.newer_failed:
        parts.append(
            f"<p class='failed'>A newer run ({html.escape(section.newer_failed)}) failed; this is the latest successful one.</p>"
        )
    if section.conclusion:
        parts.append(f"<div class='conclusion'>{_markdown(section.conclusion)}</div>")
    for png in section.figures:
        copied = _copy(png, dest / "figures" / png.name)
        svg = _copy(png.with_suffix(".svg"), dest / "figures" / png.with_suffix(".svg").name)
        if copied is None:
            continue
        rel = copied.relative_to(out).as_posix()
        name = html.escape(png.stem)
        svg_link = (
            f" &middot; <a href='{html.escape(svg.relative_to(out).as_posix())}'>SVG</a>"
            if svg
            else ""
        )
        parts.append(
            f"<figure><a href='{html.escape(rel)}'><img src='{html.escape(rel)}' alt='{name}'></a>"
            f"<figcaption>{name} &middot; <a href='{html.escape(rel)}'>PNG</a>{svg_link}</figcaption></figure>"
        )
    links = []
    notebook = _copy(section.run_dir / study.path.name, dest / study.path.name)
    if notebook is not None:
        links.append(
            f"<a href='{html.escape(notebook.relative_to(out).as_posix())}'>executed notebook (.ipynb)</a>"
        )
    rendered = _copy(
        section.run_dir / study.path.with_suffix(".html").name,
        dest / study.path.with_suffix(".html").name,
    )
    if rendered is not None:
        links.append(
            f"<a href='{html.escape(rendered.relative_to(out).as_posix())}'>notebook as HTML</a>"
        )
    _copy(section.run_dir / "meta.json", dest / "meta.json")
    links.append(f"<a href='{html.escape(study.name)}/meta.json'>meta.json</a>")
    parts.append("<p>" + " &middot; ".join(links) + "</p>")
    parts.append(f"<details><summary>Parameters</summary>{_params_table(params)}</details>")
    parts.append("</section>")
    return "\n".join(parts)


def build_report(
    root: str | Path = "data/runs",
    out: str | Path = "data/report",
    studies: list[registry.Study] | None = None,
) -> Path:
    """Write ``<out>/index.html`` (and copies of what it shows); its path."""
    root = Path(root)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sections = collect(root, studies)
    toc = "".join(
        f"<li><a href='#{html.escape(s.study.name)}'>{html.escape(s.study.number + ' ' + s.study.title)}</a>"
        + ("" if s.run_dir is not None else " <span class='muted'>(no run)</span>")
        + "</li>"
        for s in sections
    )
    body = "\n".join(_section_html(s, out) for s in sections)
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    n_runs = sum(1 for s in sections if s.run_dir is not None)
    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>h3lab studies report</title>
<style>{CSS}</style>
</head>
<body>
<header>
<h1>h3lab studies</h1>
<p class="muted">Generated {generated} from <code>{html.escape(str(root))}</code>:
the latest successful run of each of {len(sections)} studies ({n_runs} with a run).
Regenerate with <code>h3lab study report</code>; rerun everything with <code>make study</code>.</p>
<nav><ol>{toc}</ol></nav>
</header>
<main>
{body}
</main>
</body>
</html>
"""
    index = out / "index.html"
    index.write_text(page, encoding="utf-8")
    return index


# The figures the README shows: (study, figure stem), copied by ``h3lab study figures``.
README_FIGURES: tuple[tuple[str, str], ...] = (
    ("results_at_a_glance", "headline_improvements"),
    ("router_scaling", "lookup_scaling"),
    ("load_degradation", "throughput_over_time"),
)
README_CITED: tuple[str, ...] = ("route_cache", "peers", "tuning")
"""Studies the README quotes in its text without a figure: their evidence is kept too."""


def export_figures(
    root: str | Path = "data/runs",
    out: str | Path = "data/figures",
    figures: tuple[tuple[str, str], ...] = README_FIGURES,
    cited: tuple[str, ...] = README_CITED,
) -> list[Path]:
    """Copy the README's figures (PNG + SVG) from the latest study runs into ``out``,
    and write ``out/PROVENANCE.md`` (one row per figure: run id, commit,
    machine, full/quick, validity).

    Files are named ``<study>-<figure>.png|svg``; a study without a full,
    valid, clean run, or a run without that figure, raises ``ValueError`` (a
    README must not show a quick, invalid or stale figure next to new
    numbers). Manual runs are never used.

    The evidence of every cited run (its ``meta.json``, ``validity.json`` and
    ``conclusion.md``, and those of the runs a summary read) is copied to
    ``out/runs/<study>/<run id>/``: ``data/runs`` is not committed, and a
    figure in the README must stay traceable from a clone.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    entries: list[tuple[str, Path]] = []
    kept: dict[Path, None] = {}
    for study, stem in figures:
        run_dir = usable_run(study, root)
        for ext in ("png", "svg"):
            src = run_dir / "figures" / f"{stem}.{ext}"
            if not src.is_file():
                raise ValueError(f"{run_dir} has no figures/{stem}.{ext}")
            written.append(Path(shutil.copy2(src, out / f"{study}-{stem}.{ext}")))
        entries.append((f"{study}-{stem}.png", run_dir))
        kept[run_dir] = None
        sources = (provenance.read_meta(run_dir) or {}).get("params", {}).get("sources") or {}
        for source_study, run_id in sources.items():
            kept[Path(root) / source_study / run_id] = None
    for study in cited:
        run_dir = usable_run(study, root)
        entries.append(("(quoted in the text)", run_dir))
        kept[run_dir] = None
    written.append(provenance.write_table(entries, out))
    for run_dir in kept:
        written += copy_evidence(run_dir, out / "runs")
    return written


EVIDENCE_FILES = ("meta.json", "validity.json", "conclusion.md")


def usable_run(study: str, root: str | Path = "data/runs") -> Path:
    """The newest full, valid, clean study run of ``study``; ``ValueError`` saying why not."""
    if latest_ok_run(study, root) is None:
        raise ValueError(
            f"no successful run of {study!r} under {root}: run `h3lab study run {study}` first"
        )
    refused: list[str] = []
    for run_dir in reversed(provenance.run_dirs(study, root)):
        meta = provenance.read_meta(run_dir)
        if not meta or provenance.origin(meta) != "study":
            continue
        if not provenance.finished_ok(meta, run_dir):
            refused.append(f"{run_dir.name} (failed)")
            continue
        problems = provenance.problems(meta)
        if not problems:
            return run_dir
        refused.append(f"{run_dir.name} ({', '.join(problems)})")
    raise ValueError(
        f"no full, valid, clean run of {study!r} under {root} (newest: {'; '.join(refused[:3])}): "
        f"run `h3lab study run {study}` on a quiet machine"
    )


def copy_evidence(run_dir: Path, dest_root: Path) -> list[Path]:
    """Copy a run's evidence files to ``dest_root/<study>/<run id>/``."""
    dest = dest_root / run_dir.parent.name / run_dir.name
    dest.mkdir(parents=True, exist_ok=True)
    return [
        Path(shutil.copy2(run_dir / name, dest / name))
        for name in EVIDENCE_FILES
        if (run_dir / name).is_file()
    ]
