"""``h3lab bench trees``: one micro target, the working tree against other source trees.

::

    h3lab bench trees --target protocol --against 03e8fa5 [REF ...]
                      [--rounds N] [--quick] [--presets P ...] [--cpu C]

A sibling of ``h3lab bench micro`` rather than a flag of it: ``micro`` times
every case in this process, while ``trees`` never times anything itself --
it runs ``micro``'s target in fresh pinned processes, one per tree and round,
and its result is a paired ratio between trees, stored with each tree's ref
and commit (study ``bench-trees``), with the run's validity
(``validity.json``, ``meta.json["validity"]``) and a ``conclusion.md`` that
claims nothing when the run is invalid.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from h3lab.bench.results import RunWriter
from h3lab.cli import CLIError

STUDY = "bench-trees"
MIN_ROUNDS = 5
MIN_ROUNDS_QUICK = 3


def register(subparsers: Any) -> None:
    """Add ``trees`` to the ``h3lab bench`` sub-parser."""
    from h3lab.bench.micro import TARGETS

    parser = subparsers.add_parser(
        "trees",
        help="one micro target, this tree against commits or other source trees (paired rounds)",
        description=(
            "Run one micro target in the working tree and in each REF (a commit, branch or tag "
            "of this repository, exported with git archive, or a directory holding an h3lab "
            "package), each round once per tree in a fresh process pinned to one CPU, the "
            "order rotated every round. Prints each case's median per tree and the paired "
            "ratio of times of the current tree against each REF, and stores the rows, the "
            "trees' refs and commits and the run's validity."
        ),
    )
    parser.add_argument("--target", default="protocol", choices=list(TARGETS), help="micro target")
    parser.add_argument(
        "--against", nargs="+", required=True, metavar="REF", help="commits or directories"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=None,
        help=f"rounds (default and minimum {MIN_ROUNDS}, or {MIN_ROUNDS_QUICK} with --quick)",
    )
    parser.add_argument("--quick", action="store_true", help="the target's small grid and samples")
    parser.add_argument(
        "--presets", nargs="+", default=None, help="presets, for targets that take them"
    )
    parser.add_argument("--cpu", type=int, default=None, help="the CPU every child is pinned to")
    parser.add_argument("--root", default="data/runs", help="results store root")
    parser.add_argument("--run-id", default=None, help="run directory name (default: timestamp)")
    parser.set_defaults(func=cmd_trees)


def _default_cpu() -> int | None:
    getter = getattr(os, "sched_getaffinity", None)
    if getter is None:
        return None
    allowed = getter(0)
    return 0 if 0 in allowed else min(allowed)


def _check(args: argparse.Namespace) -> tuple[int, int | None, dict[str, Any]]:
    """``(rounds, cpu, kwargs)`` from the arguments, or a one-line ``CLIError``."""
    import inspect

    from h3lab.bench.micro import TARGETS
    from h3lab.config import PRESETS

    least = MIN_ROUNDS_QUICK if args.quick else MIN_ROUNDS
    rounds = least if args.rounds is None else args.rounds
    if rounds < least:
        raise CLIError(
            f"--rounds must be >= {least}{' with --quick' if args.quick else ''}, got {rounds}"
        )
    cpu = _default_cpu() if args.cpu is None else args.cpu
    allowed = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    if cpu is not None and allowed is not None and cpu not in allowed:
        raise CLIError(f"--cpu {cpu} is not an allowed CPU; allowed: {sorted(allowed)}")
    kwargs: dict[str, Any] = {}
    if args.presets:
        if "presets" not in inspect.signature(TARGETS[args.target]).parameters:
            raise CLIError(f"--presets: target {args.target} takes no presets")
        for preset in args.presets:
            if preset not in PRESETS:
                raise CLIError(f"--presets must be among {list(PRESETS)}, got {preset!r}")
        kwargs["presets"] = list(args.presets)
    return rounds, cpu, kwargs


def _describe(tree: Any) -> str:
    commit = tree.commit[:12] if tree.commit else "not a git checkout"
    dirty = " + uncommitted changes" if tree.dirty else ""
    if tree.kind == "commit":
        return f"commit {commit}, exported with git archive"
    return f"{tree.kind.replace('-', ' ')} {tree.path}, {commit}{dirty}"


class TreesRunWriter(RunWriter):
    """A ``RunWriter`` whose ``meta.json`` also names every tree and the run's validity."""

    def __init__(self, *args: Any, trees: list[dict[str, Any]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.trees = trees
        self.validity: dict[str, Any] | None = None
        self.left_out: dict[str, Any] = {}

    def meta(self) -> dict[str, Any]:
        out = {**super().meta(), "trees": self.trees, "left_out": self.left_out}
        if self.validity is not None:
            out["validity"] = self.validity
        return out


def cmd_trees(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from h3lab.bench.trees.compare import (
        compare,
        comparison_rows,
        conclusion_text,
        format_table,
        measured_rows,
    )
    from h3lab.bench.trees.measure import measure
    from h3lab.bench.trees.refs import TreeError, exported, repo_root, resolve_all
    from h3lab.studies import validity

    rounds, cpu, kwargs = _check(args)
    root = repo_root()
    try:
        trees = resolve_all(list(args.against), root)
    except TreeError as exc:
        raise CLIError(str(exc)) from None
    descriptions = {tree.label: _describe(tree) for tree in trees}
    print(
        f"bench trees: target {args.target}{' (quick)' if args.quick else ''}, {rounds} rounds, "
        f"{len(trees)} trees per round, each in a fresh process pinned to CPU {cpu}, "
        "the order rotated every round"
    )
    for tree in trees:
        print(f"  {tree.label}: {descriptions[tree.label]}")
    recorder = validity.begin()
    # disable=None: a bar on a terminal, nothing in a pipe or a test.
    bar = tqdm(
        total=rounds * len(trees),
        desc="trees",
        unit="run",
        disable=None,
        leave=False,
        file=sys.stderr,
    )

    def progress(where: str) -> None:
        bar.set_postfix_str(where)
        bar.update(1)

    try:
        with exported(trees, root) as ready:
            runs = measure(
                ready,
                args.target,
                rounds=rounds,
                quick=args.quick,
                cpu=cpu,
                kwargs=kwargs,
                recorder=recorder,
                progress=progress,
            )
    except TreeError as exc:
        raise CLIError(str(exc)) from None
    finally:
        bar.close()
    for run in runs:
        for text in run.warnings:
            recorder.warn(text, label=f"{run.arm} round {run.round + 1}")
    result = compare(runs, [tree.label for tree in trees])
    for summary in result.cases:
        for arm, values in summary.values.items():
            recorder.stability(values, label=f"{arm} {summary.case} over rounds")
    verdict = recorder.result()
    if verdict.status == "invalid":
        print("INVALID RUN (figures for diagnosis only): " + "; ".join(verdict.reasons[:3]))
    print(format_table(result, descriptions))

    writer = TreesRunWriter(
        STUDY,
        run_id=args.run_id,
        root=args.root,
        params={
            **{k: v for k, v in vars(args).items() if k != "func"},
            "rounds": rounds,
            "cpu": cpu,
            "kwargs": kwargs,
        },
        trees=[tree.to_json() for tree in trees],
    )
    writer.left_out = {
        ref: {"only_current": result.only_current[ref], "only_ref": result.only_ref[ref]}
        for ref in result.refs()
    }
    writer.validity = verdict.to_json()
    by_arm = {tree.label: tree for tree in trees}
    writer.add_rows(
        {**row, "ref": by_arm[row["arm"]].ref, "commit": by_arm[row["arm"]].commit}
        for row in measured_rows(runs)
    )
    writer.add_rows(comparison_rows(result, args.target))
    path = writer.write()
    validity.save(path, recorder)
    conclusion = validity.frame_conclusion(
        conclusion_text(result, args.target, descriptions), verdict
    )
    (Path(path) / "conclusion.md").write_text(
        f"# bench trees: {args.target}, run {writer.run_id}\n\n{conclusion}", encoding="utf-8"
    )
    print()
    if verdict.ok:
        print(conclusion_text(result, args.target, descriptions))
    else:
        print("conclusion: none claimed, the run is invalid (reasons in conclusion.md)")
    if verdict.warnings:
        print(f"{len(verdict.warnings)} unstable-sample warning(s), listed in conclusion.md")
    print(f"results: {path}")
    print(
        f"validity: {verdict.status}"
        + (f" ({len(verdict.warnings)} warning(s))" if verdict.warnings else "")
    )
    return 0


__all__ = ["STUDY", "TreesRunWriter", "cmd_trees", "register"]
