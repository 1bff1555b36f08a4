"""The child of ``h3lab bench trees``: one micro target of one source tree, as JSON.

Run as a *script* with the measured tree first on ``PYTHONPATH``::

    PYTHONPATH=/tree python -P .../h3lab/bench/trees/runner.py \\
        --target protocol --out rows.json [--quick] [--cpu 0] [--kwargs '{"presets": [...]}']

``-P`` keeps this file's directory off ``sys.path``, so every ``h3lab``
module comes from the tree under test -- including ``h3lab.bench.micro``,
whose ``run_micro(target, quick, **kw)`` has had the same shape since before
03e8fa5 (the README's "before" commit, whose ``h3lab bench micro`` had no
JSON output). This file therefore imports only the standard library at the
top, and copes with both names of the target table (``TARGETS`` today,
``BENCHES`` when ``TARGETS`` was a tuple of names).

It writes ``{"h3lab_file", "python", "cpu", "rows", "warnings"}`` to
``--out``; an expected failure (unknown target, bad keyword) is one line on
stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from typing import Any


def _bench_table(micro: Any) -> dict[str, Any]:
    for name in ("TARGETS", "BENCHES"):
        table = getattr(micro, name, None)
        if isinstance(table, dict):
            return table
    raise SystemExit("runner: this tree's h3lab.bench.micro has no table of targets")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="h3lab-trees-runner")
    parser.add_argument("--target", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--cpu", type=int, default=None)
    parser.add_argument("--kwargs", default="{}", help="JSON object passed to run_micro")
    args = parser.parse_args(argv)
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    import h3lab
    from h3lab.bench import micro

    table = _bench_table(micro)
    if args.target not in table:
        known = sorted(table)
        print(f"this tree has no micro target {args.target!r} (it has {known})", file=sys.stderr)
        return 2
    kwargs = json.loads(args.kwargs)
    caught: list[str] = []
    started = time.perf_counter()
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        try:
            rows = micro.run_micro(args.target, quick=args.quick, **kwargs)
        except TypeError as exc:
            if not kwargs:
                raise
            what = f"target {args.target!r} of this tree refused {sorted(kwargs)}"
            print(f"{what}: {exc}", file=sys.stderr)
            return 2
    caught = [str(w.message) for w in records if w.category.__name__ == "BenchmarkStabilityWarning"]
    payload = {
        "h3lab_file": os.path.realpath(h3lab.__file__),
        "python": sys.version.split()[0],
        "cpu": sorted(os.sched_getaffinity(0)),
        "seconds": time.perf_counter() - started,
        "rows": rows,
        "warnings": caught,
    }
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(payload, f, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
