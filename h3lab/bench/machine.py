"""What a measurement ran on: machine, interpreter, library versions, git state.

Recorded in every run's ``meta.json`` so that results from different days
(or machines) can be told apart and compared honestly. Everything here is
best effort: a missing ``/proc`` file, a missing package or a directory that
is not a git checkout gives ``None``, never an exception.
"""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

_VERSIONED = ("h3lab", "httptools", "uvloop", "pandas", "pyarrow", "aiohttp", "libcachesim")


def package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Hardware", "Processor", "cpu model"):
                    return value.strip() or None
    except OSError:
        pass
    return platform.processor() or None


def memory_total_bytes() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def cpu_affinity() -> list[int] | None:
    """The CPUs this process may run on (``taskset`` pinning shows here)."""
    getter = getattr(os, "sched_getaffinity", None)
    if getter is None:
        return None
    try:
        return sorted(getter(0))
    except OSError:
        return None


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip() or None
    except OSError:
        return None


def machine_info() -> dict[str, Any]:
    """CPU model, cores, affinity, memory, Python, platform, versions."""
    affinity = cpu_affinity()
    return {
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "cpu_affinity": affinity,
        "cpus_usable": len(affinity) if affinity is not None else os.cpu_count(),
        # The frequency governor changes timings by tens of percent (pyperf's
        # "system tune" sets it to performance); recorded when the OS says.
        "cpu_governor": _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
        "memory_bytes": memory_total_bytes(),
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "python_build": " ".join(platform.python_build()),
        "platform": platform.platform(),
        "hostname": socket.gethostname(),
        "versions": {name: package_version(name) for name in _VERSIONED},
    }


def default_repo_root() -> Path:
    """The checkout h3lab is imported from (two levels above this file)."""
    return Path(__file__).resolve().parents[2]


def git_info(repo_root: str | Path | None = None) -> dict[str, Any]:
    """``{"commit", "dirty", "branch"}`` of ``repo_root``; all None when it is not a git checkout.

    ``dirty`` ignores untracked files: results, notebooks' outputs and data
    files are routinely untracked, while modified tracked code is what makes
    a commit hash lie about what was measured.
    """
    root = Path(repo_root) if repo_root is not None else default_repo_root()
    empty: dict[str, Any] = {"commit": None, "dirty": None, "branch": None}

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", "-C", str(root), *args],
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    if not root.is_dir():
        return empty
    commit = git("rev-parse", "HEAD")
    if commit is None:
        return empty
    status = git("status", "--porcelain", "--untracked-files=no")
    return {
        "commit": commit,
        "dirty": None if status is None else bool(status),
        "branch": git("rev-parse", "--abbrev-ref", "HEAD"),
    }
