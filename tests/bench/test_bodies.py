"""The hostile-bodies bench runs (quick) and prints its figures."""

from __future__ import annotations

from typing import Any

from h3lab.bench.hardening import bodies


def test_bodies_bench_quick_prints_every_case(capsys: Any) -> None:
    assert bodies.main(["--quick", "--repetitions", "1"]) == 0
    out = capsys.readouterr().out
    for name in ("python-multipart", "stdlib-email", "json-deep"):
        assert name in out
    assert " x faster [" in out


def test_the_many_parts_body_is_the_size_the_issue_measured() -> None:
    assert 860_000 < len(bodies.many_parts_body()) < 890_000  # "874 KB, 15,000 parts"
