"""``h3lab study``: list, run one, run all, and build the report.

::

    h3lab study list
    h3lab study run NAME [-p key value ...] [--quick]
    h3lab study all [--quick] [--fail-fast]
    h3lab study report [--check]
    h3lab study figures
    h3lab study compare A B [--fail-above PCT]
    h3lab study kernel

``run`` and ``all`` show progress (a bar per notebook on a terminal, a line
per study otherwise) and print where each run went. A failing cell makes
the command exit 1 after naming the notebook, the cell and the error; the
partial output notebook is kept in the run folder. Bad arguments (an unknown
study or parameter) are one line and exit 2, like every ``h3lab`` command.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def add_parser(subparsers: Any) -> None:
    study = subparsers.add_parser("study", help="run the research notebooks and build their report")
    study.set_defaults(func=_missing_command, _parser=study)
    sub = study.add_subparsers(dest="study_command")

    lst = sub.add_parser("list", help="the studies (notebooks/NN_name.ipynb) and their latest runs")
    _add_root(lst)
    lst.set_defaults(func=cmd_list)

    run = sub.add_parser("run", help="run one study notebook with papermill")
    run.add_argument("name", help="study name (route_cache), slug (01_route_cache) or number (01)")
    run.add_argument(
        "-p",
        "--param",
        nargs=2,
        action="append",
        default=[],
        metavar=("KEY", "VALUE"),
        help="set a notebook parameter (typed like its default; repeatable)",
    )
    _add_run_options(run)
    run.set_defaults(func=cmd_run)

    every = sub.add_parser("all", help="run every study (summaries last)")
    _add_run_options(every)
    every.add_argument("--fail-fast", action="store_true", help="stop at the first failing study")
    every.set_defaults(func=cmd_all)

    figures = sub.add_parser(
        "figures", help="copy the README's headline figures into data/figures/"
    )
    _add_root(figures)
    figures.add_argument("--out", default="data/figures", help="destination (default data/figures)")
    figures.add_argument(
        "--readme",
        default="README.md",
        help="rewrite this file's <!-- h3lab:run STUDY --> passages from the same runs "
        "(default README.md; 'none' to leave it)",
    )
    figures.set_defaults(func=cmd_figures)

    compare = sub.add_parser(
        "compare",
        help="compare two runs (run ids or commits) metric by metric, with intervals",
    )
    compare.add_argument("a", help="the baseline: a run id (or its prefix) or a commit")
    compare.add_argument("b", help="the contender: a run id (or its prefix) or a commit")
    compare.add_argument("--study", default=None, help="only this study (default: every one)")
    compare.add_argument(
        "--fail-above",
        type=float,
        default=None,
        metavar="PCT",
        help="exit 1 if any significant regression is larger than PCT percent",
    )
    compare.add_argument("--all", action="store_true", help="show unchanged metrics too")
    _add_root(compare)
    compare.set_defaults(func=cmd_compare)

    kernel = sub.add_parser(
        "kernel", help="the Jupyter kernel the studies run on (installed if needed)"
    )
    kernel.set_defaults(func=cmd_kernel)

    report = sub.add_parser("report", help="write data/report/index.html from the latest runs")
    _add_root(report)
    report.add_argument("--out", default="data/report", help="report folder (default data/report)")
    report.add_argument(
        "--check",
        action="store_true",
        help="open it in headless Chromium: every figure loads, no console error; save screenshot.png",
    )
    report.set_defaults(func=cmd_report)


def _add_root(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", default="data/runs", help="runs folder (default data/runs)")


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    _add_root(parser)
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes: each notebook in well under a minute"
    )
    parser.add_argument("--timeout", type=int, default=None, help="seconds per cell before failing")
    parser.add_argument(
        "--kernel", default=None, help="kernelspec name (default: one running this interpreter)"
    )
    parser.add_argument("--log-output", action="store_true", help="stream the cells' output")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--no-html", action="store_true", help="skip the nbconvert HTML rendering")


def _missing_command(args: argparse.Namespace) -> int:
    args._parser.print_help()
    return 2


def _root(args: argparse.Namespace) -> Path:
    from h3lab.studies.registry import repo_root

    root = Path(args.root)
    return root if root.is_absolute() else repo_root() / root


def _emit(lines: Iterable[str]) -> int:
    """Print ``lines``; a reader that stops early (``| head``) is not an error."""
    try:
        for line in lines:
            print(line)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader is gone: point stdout at /dev/null so the interpreter's
        # final flush does not raise again (Python docs, "Note on SIGPIPE").
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from h3lab.bench.results import run_dirs
    from h3lab.studies import registry
    from h3lab.studies.provenance import of
    from h3lab.studies.runner import latest_ok_run, run_status

    studies = registry.discover()
    if not studies:
        return _emit([f"no studies: no notebooks/NN_name.ipynb under {registry.notebooks_dir()}"])
    root = _root(args)
    name_w = max(4, *(len(s.name) for s in studies))
    title_w = max(5, *(len(s.title) for s in studies))
    lines = [f"{'#':<3} {'name':<{name_w}} {'title':<{title_w}} latest study run"]
    for s in studies:
        ok = latest_ok_run(s.name, root) if root.is_dir() else None
        runs = run_dirs(s.name, root) if root.is_dir() else []
        last = "-"
        if ok is not None:
            p = of(ok)
            last = f"{ok.name} ({p.get('mode')}, {p.get('validity')})"
        if runs and run_status(runs[-1]) == "failed":
            last += f"  (newest {runs[-1].name} FAILED)"
        lines.append(f"{s.number:<3} {s.name:<{name_w}} {s.title:<{title_w}} {last}")
    return _emit(lines)


def _run_one(study: Any, params: dict[str, Any], args: argparse.Namespace, index: str = "") -> Any:
    from h3lab.studies.parameters import resolve_parameters
    from h3lab.studies.runner import run_study

    resolve_parameters(study, params)  # a bad -p fails as one line before anything starts
    quick = " (quick)" if args.quick else ""
    print(f"{index}running {study.slug}{quick} ...", file=sys.stderr, flush=True)
    result = run_study(
        study,
        params,
        quick=args.quick,
        root=_root(args),
        kernel_name=args.kernel,
        execution_timeout=args.timeout,
        progress=not args.no_progress and sys.stderr.isatty(),
        log_output=args.log_output,
        html=not args.no_html,
    )
    if result.ok:
        validity = result.validity
        status = validity.status if validity is not None else "unknown"
        print(
            f"{index}{study.slug}: ok in {result.duration_s:.1f} s ({status}) -> {result.run_dir}",
            file=sys.stderr,
            flush=True,
        )
        if validity is not None:
            for reason in validity.reasons:
                print(f"{index}{study.slug}: invalid: {reason}", file=sys.stderr)
            for warning in validity.warnings[:5]:
                print(f"{index}{study.slug}: unstable: {warning}", file=sys.stderr)
            if len(validity.warnings) > 5:
                more = len(validity.warnings) - 5
                print(
                    f"{index}{study.slug}: unstable: ... and {more} more (meta.json)",
                    file=sys.stderr,
                )
        for warning in result.warnings:
            print(f"{index}{study.slug}: warning: {warning}", file=sys.stderr)
    else:
        assert result.failure is not None
        print(result.failure.describe(), file=sys.stderr, flush=True)
    return result


def cmd_run(args: argparse.Namespace) -> int:
    from h3lab.studies import registry

    study = registry.get(args.name)
    params: dict[str, Any] = {}
    for key, value in args.param:
        params[key] = value
    result = _run_one(study, params, args)
    if not result.ok:
        return 1  # the failure (and where the partial notebook is) went to stderr
    print(result.run_dir)
    return 0


def cmd_all(args: argparse.Namespace) -> int:
    from h3lab.studies import registry

    studies = registry.run_order(registry.discover())
    if not studies:
        raise ValueError(f"no notebooks/NN_name.ipynb under {registry.notebooks_dir()}")
    failed = []
    for i, study in enumerate(studies, start=1):
        result = _run_one(study, {}, args, index=f"[{i}/{len(studies)}] ")
        if not result.ok:
            failed.append(study.slug)
            if args.fail_fast:
                break
    if failed:
        print(
            f"{len(failed)} of {len(studies)} studies failed: {', '.join(failed)}", file=sys.stderr
        )
        return 1
    print(f"all {len(studies)} studies ok; runs under {_root(args)}", file=sys.stderr)
    return 0


def cmd_figures(args: argparse.Namespace) -> int:
    from h3lab.studies import readme
    from h3lab.studies.registry import repo_root
    from h3lab.studies.report import README_CITED, README_FIGURES, export_figures

    out = Path(args.out)
    out = out if out.is_absolute() else repo_root() / out
    readme_path: Path | None = None
    if args.readme != "none":
        readme_path = Path(args.readme)
        readme_path = readme_path if readme_path.is_absolute() else repo_root() / readme_path
        if not readme_path.is_file():
            raise ValueError(f"--readme {args.readme}: no such file")
    quoted = readme.studies_in(readme_path.read_text(encoding="utf-8")) if readme_path else []
    figure_studies = {study for study, _ in README_FIGURES}
    cited = tuple(dict.fromkeys([*README_CITED, *(s for s in quoted if s not in figure_studies)]))
    written = export_figures(_root(args), out, cited=cited)
    if readme_path is not None and readme.update(readme_path, _root(args)):
        written.append(readme_path)
    return _emit(str(path) for path in written)


def cmd_compare(args: argparse.Namespace) -> int:
    from h3lab.studies.compare import compare_runs, format_report, regressions

    if args.fail_above is not None and args.fail_above < 0:
        raise ValueError(f"--fail-above must be >= 0, got {args.fail_above}")
    result = compare_runs(args.a, args.b, _root(args), study=args.study)
    _emit(format_report(result, show_all=args.all).splitlines())
    if args.fail_above is None:
        return 0
    bad = regressions(result, args.fail_above)
    for line in bad:
        print(
            f"h3lab study compare: regression beyond {args.fail_above:g}%: {line}", file=sys.stderr
        )
    return 1 if bad else 0


def cmd_kernel(args: argparse.Namespace) -> int:
    from jupyter_client.kernelspec import KernelSpecManager

    from h3lab.studies.kernel import ensure_kernel

    name = ensure_kernel()
    spec = KernelSpecManager().get_kernel_spec(name)
    print(f"kernel {name!r} ({spec.display_name}) runs {sys.executable}  [{spec.resource_dir}]")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from h3lab.studies.registry import repo_root
    from h3lab.studies.report import build_report

    out = Path(args.out)
    out = out if out.is_absolute() else repo_root() / out
    index = build_report(_root(args), out)
    print(f"report: {index}")
    if not args.check:
        return 0
    from h3lab.studies.browser import BrowserUnavailable, check_page

    try:
        check = check_page(index, out / "screenshot.png")
    except BrowserUnavailable as exc:
        raise ValueError(f"report --check: {exc}") from None
    print(f"browser: {len(check.images)} images, screenshot {check.screenshot}")
    for src in check.broken_images:
        print(f"browser: figure did not load: {src}", file=sys.stderr)
    for error in check.console_errors:
        print(f"browser: console error: {error}", file=sys.stderr)
    return 0 if check.ok else 1
