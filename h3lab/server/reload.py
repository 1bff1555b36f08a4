"""``h3lab serve --reload``: restart the server when a ``.py`` file changes.

A supervisor process binds the listening socket once and runs the real
server as a child process (``h3lab serve ... --fd N``), so the address, port
0 included, stays the same across restarts and no connection attempt is
refused while the child restarts. It watches every ``.py`` file under the
working directory with ``watchfiles`` when it is installed (the ``[dev]``
extra has it; it uses inotify), otherwise by polling modification times twice
a second. On a change it stops the child (SIGTERM: a graceful shutdown) and
starts a new one. SIGINT or SIGTERM stops both.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

POLL_INTERVAL = 0.5
IGNORED_DIRS = {".git", ".venv", "venv", "__pycache__", "node_modules", ".mypy_cache", "data"}


def _python_files(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in IGNORED_DIRS and not d.startswith(".")]
        for name in filenames:
            if name.endswith(".py"):
                yield Path(dirpath, name)


def _snapshot(root: Path) -> dict[Path, float]:
    out = {}
    for path in _python_files(root):
        with contextlib.suppress(OSError):
            out[path] = path.stat().st_mtime
    return out


def watcher_name() -> str:
    try:
        import watchfiles  # noqa: F401
    except ImportError:
        return "polling"
    return "watchfiles"


def wait_for_change(root: Path, stop: threading.Event) -> list[str]:
    """Block until a ``.py`` file under ``root`` changes (its paths) or ``stop`` is set ([])."""
    try:
        import watchfiles
    except ImportError:
        before = _snapshot(root)
        while not stop.wait(POLL_INTERVAL):
            after = _snapshot(root)
            if after != before:
                changed = {p for p in before.keys() | after.keys() if before.get(p) != after.get(p)}
                return sorted(str(p) for p in changed)
        return []

    def python_only(change: watchfiles.Change, path: str) -> bool:
        parts = Path(path).parts
        return path.endswith(".py") and not any(p in IGNORED_DIRS for p in parts)

    for changes in watchfiles.watch(
        root, watch_filter=python_only, stop_event=stop, rust_timeout=500, yield_on_timeout=True
    ):
        if stop.is_set():
            return []
        if changes:
            return sorted(path for _, path in changes)
    return []


def _collect(into: list[str], root: Path, stop: threading.Event) -> None:
    into.extend(wait_for_change(root, stop))


def bind(host: str, port: int, uds: str | None, backlog: int) -> socket.socket:
    """The listening socket the children inherit."""
    from h3lab.server.core import _remove_stale_socket, listen_error

    if uds is not None:
        _remove_stale_socket(uds)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        where = f"unix socket {uds}"
        address: str | tuple[str, int] = uds
    else:
        where = f"{host}:{port}"
        try:
            family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        except OSError as exc:
            raise listen_error(where, exc) from None
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        address = (host, port)
    try:
        sock.bind(address)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise listen_error(where, exc) from None
    sock.set_inheritable(True)
    return sock


def supervise(
    child_argv: Callable[[int], list[str]], sock: socket.socket, root: Path | None = None
) -> int:
    """Run ``child_argv(fd)`` and restart it on every change; 0 after SIGINT/SIGTERM."""
    root = root or Path.cwd()
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    print(
        f"h3lab reload: watching *.py under {root} ({watcher_name()}), pid {os.getpid()}",
        flush=True,
    )
    fd = sock.fileno()
    code = 0
    while not stop.is_set():
        child = subprocess.Popen(child_argv(fd), pass_fds=(fd,))
        changed: list[str] = []
        watcher = threading.Thread(target=_collect, args=(changed, root, stop), daemon=True)
        watcher.start()
        while watcher.is_alive() and child.poll() is None:
            watcher.join(0.2)
        if child.poll() is not None and not stop.is_set() and not changed:
            # The child died on its own (a syntax error, say): wait for a fix.
            print(
                f"h3lab reload: the server exited with code {child.returncode}; "
                "waiting for a change",
                file=sys.stderr,
                flush=True,
            )
            watcher.join()
            if stop.is_set():
                code = 0
                break
            continue
        if changed:
            shown = ", ".join(os.path.relpath(p, root) for p in changed[:3])
            print(f"h3lab reload: {shown} changed, restarting", flush=True)
        else:
            stop.set()
            watcher.join()
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(30)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
    sock.close()
    return code


__all__ = ["bind", "supervise", "wait_for_change", "watcher_name"]
