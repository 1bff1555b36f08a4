"""Study discovery by file name: notebooks/NN_name.ipynb."""

from __future__ import annotations

from pathlib import Path

import pytest

from h3lab.studies import registry


def _touch(directory: Path, *names: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name in names:
        (directory / name).write_text(
            '{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}'
        )


def test_discovers_by_pattern_and_ignores_the_rest(tmp_path: Path) -> None:
    _touch(
        tmp_path,
        "02_b.ipynb",
        "01_a.ipynb",
        "00_glance.ipynb",
        "scratch.ipynb",
        "1_short.ipynb",
        "03_Upper.ipynb",
    )
    (tmp_path / "04_notes.md").write_text("x")
    studies = registry.discover(tmp_path)
    assert [s.slug for s in studies] == ["00_glance", "01_a", "02_b"]
    assert [s.name for s in studies] == ["glance", "a", "b"]
    assert studies[0].is_summary and not studies[1].is_summary


def test_a_new_notebook_joins_without_code_changes(tmp_path: Path) -> None:
    # Issue 6's 08_tuning.ipynb: dropped in, it is a study.
    _touch(tmp_path, "01_a.ipynb")
    assert [s.name for s in registry.discover(tmp_path)] == ["a"]
    _touch(tmp_path, "08_tuning.ipynb")
    assert [s.name for s in registry.discover(tmp_path)] == ["a", "tuning"]


def test_duplicate_names_are_refused(tmp_path: Path) -> None:
    _touch(tmp_path, "01_same.ipynb", "02_same.ipynb")
    with pytest.raises(ValueError, match="same"):
        registry.discover(tmp_path)


def test_get_by_name_slug_number_or_file(tmp_path: Path) -> None:
    _touch(tmp_path, "01_route_cache.ipynb", "02_router_scaling.ipynb")
    for key in (
        "route_cache",
        "01_route_cache",
        "01",
        "01_route_cache.ipynb",
        "notebooks/01_route_cache.ipynb",
    ):
        assert registry.get(key, tmp_path).name == "route_cache"
    with pytest.raises(ValueError, match=r"no study 'nope'.*route_cache, router_scaling"):
        registry.get("nope", tmp_path)


def test_run_order_puts_summaries_last(tmp_path: Path) -> None:
    _touch(tmp_path, "00_glance.ipynb", "01_a.ipynb", "02_b.ipynb")
    assert [s.name for s in registry.run_order(registry.discover(tmp_path))] == ["a", "b", "glance"]


def test_title_is_the_first_heading(tmp_path: Path) -> None:
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

    nb = new_notebook(
        cells=[new_code_cell("x = 1"), new_markdown_cell("Intro\n\n## The Title\n\ntext")]
    )
    nbformat.write(nb, str(tmp_path / "05_thing.ipynb"))
    _touch(tmp_path, "06_plain.ipynb")
    studies = {s.name: s for s in registry.discover(tmp_path)}
    assert studies["thing"].title == "The Title"
    assert studies["plain"].title == "plain"


def test_repo_root_env_and_the_real_suite(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(registry.ROOT_ENV, str(tmp_path))
    assert registry.notebooks_dir() == tmp_path.resolve() / "notebooks"
    monkeypatch.delenv(registry.ROOT_ENV)
    names = [s.name for s in registry.discover()]
    for name in ("results_at_a_glance", "route_cache", "router_scaling", "event_pool", "memory_strategies",
                 "middleware", "load_degradation", "peers"):  # fmt: skip
        assert name in names
