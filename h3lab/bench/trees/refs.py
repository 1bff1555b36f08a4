"""Which source trees a comparison runs: the working tree, commits, directories.

``resolve(ref)`` turns what the user typed into a ``Tree``: a directory that
holds an ``h3lab`` package is used as it is; anything else must name a
commit of the repository the running h3lab was imported from (a hash, a
branch, a tag, ``HEAD~3``), and ``exported`` writes that commit's files into
a temporary directory (``git archive REF | tar -x``, what asv and pyperf's
compare workflows do with a clean checkout) and removes it afterwards.

Every tree records the ref it was given *and* the commit it resolved to, so a
stored figure says exactly which code it measured, even after a branch moved.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

Kind = Literal["working-tree", "commit", "directory"]
CURRENT = "current"


class TreeError(ValueError):
    """A ref that names no tree, or a tree that cannot be measured (one line)."""


@dataclass(frozen=True)
class Tree:
    """One arm of a comparison: where its ``h3lab`` package lives and what it is.

    ``path`` is the directory put on ``PYTHONPATH`` (it holds ``h3lab/``); for
    a ``commit`` it is None until ``exported`` has written the files.
    """

    label: str
    ref: str
    kind: Kind
    commit: str | None
    dirty: bool | None = None
    path: Path | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "arm": self.label,
            "ref": self.ref,
            "kind": self.kind,
            "commit": self.commit,
            "dirty": self.dirty,
            "path": str(self.path) if self.kind != "commit" and self.path else None,
        }


def _git(root: Path, *args: str, binary: bool = False) -> subprocess.CompletedProcess[Any]:
    try:
        return subprocess.run(
            ["git", "-C", str(root), *args],
            capture_output=True,
            text=not binary,
            timeout=60,
            check=False,
        )
    except FileNotFoundError:
        raise TreeError("git is not installed: a commit ref needs git") from None
    except subprocess.TimeoutExpired:
        raise TreeError(f"git {' '.join(args)} took over 60 s in {root}") from None


def repo_root() -> Path:
    """The directory the running ``h3lab`` package was imported from (its checkout)."""
    import h3lab

    return Path(h3lab.__file__).resolve().parents[1]


def _checkout_state(root: Path) -> tuple[str | None, bool | None]:
    """``(commit, dirty)`` of a directory, both None when it is not a git checkout."""
    if shutil.which("git") is None:
        return None, None
    head = _git(root, "rev-parse", "--verify", "--quiet", "HEAD")
    if head.returncode != 0:
        return None, None
    top = _git(root, "rev-parse", "--show-toplevel")
    if top.returncode != 0 or Path(top.stdout.strip()).resolve() != root.resolve():
        return None, None  # a directory inside some other checkout: its HEAD says nothing
    status = _git(root, "status", "--porcelain", "--untracked-files=no")
    dirty = bool(status.stdout.strip()) if status.returncode == 0 else None
    return head.stdout.strip(), dirty


def current_tree(root: Path | None = None) -> Tree:
    """The tree this process runs from: always the ``current`` arm."""
    root = root or repo_root()
    commit, dirty = _checkout_state(root)
    return Tree(CURRENT, "working tree", "working-tree", commit, dirty, root)


def resolve(ref: str, root: Path | None = None) -> Tree:
    """A ``Tree`` for ``ref``: a directory holding ``h3lab/``, else a commit of ``root``'s repo.

    Raises ``TreeError`` (one line) when it is neither.
    """
    root = root or repo_root()
    if not ref or ref.startswith("-"):
        raise TreeError(f"--against {ref!r}: not a commit nor a directory")
    candidate = Path(ref).expanduser()
    if candidate.is_dir():
        if not (candidate / "h3lab" / "__init__.py").is_file():
            raise TreeError(
                f"--against {ref}: the directory has no h3lab package (h3lab/__init__.py)"
            )
        commit, dirty = _checkout_state(candidate)
        return Tree(ref, ref, "directory", commit, dirty, candidate.resolve())
    if shutil.which("git") is None:
        raise TreeError(f"--against {ref}: not a directory, and git is not installed to resolve it")
    if _git(root, "rev-parse", "--git-dir").returncode != 0:
        raise TreeError(
            f"--against {ref}: not a directory, and {root} is not a git checkout to resolve it in"
        )
    done = _git(root, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}")
    if done.returncode != 0 or not done.stdout.strip():
        raise TreeError(f"--against {ref}: not a commit of {root} nor a directory")
    return Tree(ref, ref, "commit", done.stdout.strip(), False, None)


def resolve_all(refs: list[str], root: Path | None = None) -> list[Tree]:
    """The current tree first, then one tree per ref (each ref once)."""
    root = root or repo_root()
    trees = [current_tree(root)]
    seen: set[str] = {CURRENT}
    for ref in refs:
        if ref in seen:
            raise TreeError(f"--against {ref}: given twice (or named like the current arm)")
        seen.add(ref)
        trees.append(resolve(ref, root))
    return trees


@contextlib.contextmanager
def exported(trees: list[Tree], root: Path | None = None) -> Iterator[list[Tree]]:
    """The trees with every commit's files written to a temporary directory (removed after)."""
    root = root or repo_root()
    with tempfile.TemporaryDirectory(prefix="h3lab-trees-") as tmp:
        out = []
        for i, tree in enumerate(trees):
            if tree.kind != "commit":
                out.append(tree)
                continue
            assert tree.commit is not None
            target = Path(tmp) / f"{i}-{tree.commit[:12]}"
            target.mkdir()
            _archive(root, tree.commit, target)
            if not (target / "h3lab" / "__init__.py").is_file():
                raise TreeError(
                    f"--against {tree.ref}: commit {tree.commit[:12]} has no h3lab package"
                )
            out.append(replace(tree, path=target))
        yield out


def _archive(root: Path, commit: str, target: Path) -> None:
    """``git archive COMMIT | tar -x -C target`` (tar read by the stdlib's tarfile)."""
    done = _git(root, "archive", "--format=tar", commit, binary=True)
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip().splitlines()
        raise TreeError(f"git archive {commit[:12]} failed: {message[-1] if message else '?'}")
    import io

    with tarfile.open(fileobj=io.BytesIO(done.stdout)) as tar:
        if hasattr(tarfile, "data_filter"):  # 3.11.4+: no paths outside target
            tar.extractall(target, filter="data")
        else:  # pragma: no cover - older 3.11 patch releases
            tar.extractall(target)  # our own repository's archive


__all__ = [
    "CURRENT",
    "Tree",
    "TreeError",
    "current_tree",
    "exported",
    "repo_root",
    "resolve",
    "resolve_all",
]
