"""Which studies exist: every ``notebooks/NN_name.ipynb`` is one.

Discovery is by file name only, so a notebook added by another change (say
``08_tuning.ipynb``) joins ``h3lab study list``, ``study all`` and the report
without an edit here. ``NN`` orders the studies; the study's *name* (used for
``data/runs/<name>/`` and in ``h3lab study run NAME``) is the part after the
number, so renumbering a notebook keeps its run history.

Notebooks numbered ``00`` are *summaries*: they read the other studies' runs,
so ``study all`` runs them last (the report still lists them first).

A notebook is expected to follow the suite's contract (see ``runner``): one
cell tagged ``parameters`` with ``quick``, ``run_id`` and ``out_dir``.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

NOTEBOOK_PATTERN = re.compile(r"^(?P<number>\d{2})_(?P<name>[a-z0-9][a-z0-9_]*)\.ipynb$")
SUMMARY_NUMBER = "00"
ROOT_ENV = "H3LAB_ROOT"


def repo_root() -> Path:
    """The checkout: ``$H3LAB_ROOT``, else the directory holding ``h3lab/`` when it has
    ``notebooks/`` (an editable install), else the current directory."""
    env = os.environ.get(ROOT_ENV, "").strip()
    if env:
        return Path(env).resolve()
    here = Path(__file__).resolve().parents[2]
    if (here / "notebooks").is_dir():
        return here
    return Path.cwd().resolve()


def notebooks_dir() -> Path:
    return repo_root() / "notebooks"


@dataclass(frozen=True)
class Study:
    number: str
    name: str
    path: Path

    @property
    def slug(self) -> str:
        """``01_route_cache``: the notebook's file stem."""
        return f"{self.number}_{self.name}"

    @property
    def is_summary(self) -> bool:
        return self.number == SUMMARY_NUMBER

    @property
    def title(self) -> str:
        """The first Markdown heading of the notebook (its name when there is none)."""
        try:
            cells = json.loads(self.path.read_text()).get("cells", [])
        except (OSError, ValueError):
            cells = []
        for cell in cells:
            if cell.get("cell_type") != "markdown":
                continue
            source = cell.get("source", "")
            text = "".join(source) if isinstance(source, list) else source
            for line in text.splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
        return self.name.replace("_", " ")


def discover(directory: str | Path | None = None) -> list[Study]:
    """The studies in ``directory`` (default ``notebooks/``), ordered by number then name.

    Files not matching ``NN_name.ipynb`` are ignored (scratch notebooks,
    checkpoints); two notebooks with the same name raise ``ValueError``.
    """
    directory = Path(directory) if directory is not None else notebooks_dir()
    if not directory.is_dir():
        return []
    found: list[Study] = []
    seen: dict[str, Path] = {}
    for path in sorted(directory.iterdir()):
        match = NOTEBOOK_PATTERN.match(path.name)
        if match is None or not path.is_file():
            continue
        name = match["name"]
        if name in seen:
            raise ValueError(
                f"two notebooks define study {name!r}: {seen[name].name} and {path.name}"
            )
        seen[name] = path
        found.append(Study(match["number"], name, path))
    return sorted(found, key=lambda s: (s.number, s.name))


def get(key: str, directory: str | Path | None = None) -> Study:
    """A study by name (``route_cache``), slug (``01_route_cache``), number (``01``) or file name."""
    studies = discover(directory)
    key = key.strip()
    stem = key[: -len(".ipynb")] if key.endswith(".ipynb") else key
    stem = Path(stem).name
    matches = [s for s in studies if stem in (s.name, s.slug, s.number)]
    if len(matches) == 1:
        return matches[0]
    known = ", ".join(s.name for s in studies) or "none (no notebooks/NN_name.ipynb found)"
    if not matches:
        raise ValueError(f"no study {key!r}; known: {known}")
    raise ValueError(f"study {key!r} is ambiguous: {', '.join(s.slug for s in matches)}")


def run_order(studies: list[Study]) -> list[Study]:
    """Measurements first, summaries (``00_*``) last: they read the others' runs."""
    return [s for s in studies if not s.is_summary] + [s for s in studies if s.is_summary]
