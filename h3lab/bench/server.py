"""``ServerProcess``: a server under test in its own process group, sampled while it runs.

``with ServerProcess(preset="performance", cpu=0) as srv: run_closed_loop(srv.url, ...)``
starts ``python -m h3lab.cli serve APP --port 0 --set server.stats_path=/__stats``
(or a peer's command), waits until it is ready, samples it every
``sample_interval`` seconds on a thread (RSS, CPU %, open fds, threads, and
for h3lab the ``app.stats()`` JSON), and on exit stops it: SIGTERM to the
whole process group, a bounded wait, then SIGKILL. The stop also runs when
the ``with`` body raises, and from a ``weakref.finalize`` (which runs at
interpreter exit) as a last resort, so a failing test leaves no orphan.

Note: every stats sample is one GET on the stats path, which the server
counts as a request; ``srv.stats_fetches`` says how many were made.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import weakref
from collections.abc import Sequence
from typing import Any

import psutil

READY_LINE = re.compile(r"h3lab serving on http://(?P<host>[^\s:]+|\[[^\]]+\]):(?P<port>\d+)")
STDERR_TAIL = 40


class ServerStartError(RuntimeError):
    """The server exited or did not become ready in time (message has its stderr tail)."""


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (for peers, which cannot report an ephemeral one)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _kill_group(pgid: int, proc: subprocess.Popen[bytes] | None, grace: float) -> int | None:
    """SIGTERM the group, wait up to ``grace`` s for the leader, then SIGKILL what is left."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGTERM)
    code: int | None = None
    if proc is not None:
        try:
            code = proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
            code = proc.wait(timeout=5)
    # Children (granian's workers, forked h3lab workers) that outlived the
    # leader are still in the group: make sure none survives.
    deadline = time.monotonic() + grace
    while _group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _group_alive(pgid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
    return code


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    # A zombie child of ours still "exists"; it does not serve anything.
    for p in psutil.process_iter(["pid"]):
        with contextlib.suppress(psutil.Error, OSError):
            if os.getpgid(p.pid) == pgid and p.status() != psutil.STATUS_ZOMBIE:
                return True
    return False


class ServerProcess:
    """A server subprocess: started, awaited, sampled, and always stopped.

    ``command`` replaces ``h3lab serve`` with a peer's argv, in which
    ``{port}`` and ``{host}`` are substituted (a free port is picked when
    ``port`` is 0); readiness is then a successful TCP connect, or a line
    matching ``ready_pattern`` on stdout/stderr when one is given.
    """

    def __init__(
        self,
        app: str = "h3lab.bench.apps:create_app",
        preset: str | None = "balanced",
        overrides: Sequence[str] = (),
        config_file: str | os.PathLike[str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        cpu: int | None = None,
        loop: str = "auto",
        command: Sequence[str] | None = None,
        ready_pattern: str | None = None,
        env: dict[str, str] | None = None,
        sample_interval: float | None = 1.0,
        stats_path: str | None = "/__stats",
        start_timeout: float = 30.0,
        stop_timeout: float = 5.0,
        name: str | None = None,
    ) -> None:
        if command is not None and not command:
            raise ValueError("command must be a non-empty argv list")
        self.app = app
        self.preset = preset
        self.overrides = list(overrides)
        self.config_file = config_file
        self.host = host
        self.port = port
        self.cpu = cpu
        self.loop = loop
        self.command = list(command) if command is not None else None
        self.ready_pattern = re.compile(ready_pattern) if ready_pattern else None
        self.env = env
        self.sample_interval = sample_interval
        # A peer has no stats endpoint.
        self.stats_path = stats_path if command is None else None
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.name = name or ("h3lab" if command is None else os.path.basename(command[0]))
        self.proc: subprocess.Popen[bytes] | None = None
        self.pid: int | None = None
        self.returncode: int | None = None
        self.samples: list[dict[str, Any]] = []
        self.stats_fetches = 0
        self.ready_line: str | None = None
        self._stdout: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL)
        self._stderr: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL)
        self._ready_event = threading.Event()
        self._stop_sampling = threading.Event()
        self._threads: list[threading.Thread] = []
        self._finalizer: weakref.finalize | None = None
        self._t0 = 0.0

    # -- command -------------------------------------------------------------------

    def argv(self) -> list[str]:
        if self.command is not None:
            if self.port == 0:
                self.port = free_port(self.host)
            argv = [a.format(port=self.port, host=self.host) for a in self.command]
        else:
            argv = [sys.executable, "-m", "h3lab.cli", "serve", self.app]
            argv += ["--host", self.host, "--port", str(self.port), "--loop", self.loop]
            if self.config_file is not None:
                argv += ["--config", str(self.config_file)]
            elif self.preset is not None:
                argv += ["--preset", self.preset]
            if self.stats_path:
                argv += ["--set", f"server.stats_path={self.stats_path}"]
            for item in self.overrides:
                argv += ["--set", item]
        if self.cpu is not None and shutil.which("taskset"):
            # taskset execs the server in place: same pid, affinity inherited by its children.
            argv = ["taskset", "-c", str(self.cpu), *argv]
        return argv

    @property
    def url(self) -> str:
        if self.proc is None:
            raise RuntimeError("the server is not started")
        return f"http://{self.host}:{self.port}"

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> ServerProcess:
        if self.proc is not None:
            raise RuntimeError("already started")
        argv = self.argv()
        # A server keeps randomized hashing (hash-flooding defence) even when the
        # caller -- a study kernel -- runs with a fixed PYTHONHASHSEED.
        inherited = {k: v for k, v in os.environ.items() if k != "PYTHONHASHSEED"}
        env = {**inherited, "PYTHONUNBUFFERED": "1", **(self.env or {})}
        preexec = None
        if self.cpu is not None and not shutil.which("taskset"):
            cpu = self.cpu

            def preexec() -> None:
                os.sched_setaffinity(0, {cpu})

        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            start_new_session=True,  # its own process group: stop() signals all of it
            preexec_fn=preexec,
        )
        self.pid = self.proc.pid
        self._finalizer = weakref.finalize(self, _kill_group, self.proc.pid, self.proc, 2.0)
        for stream, sink in ((self.proc.stdout, self._stdout), (self.proc.stderr, self._stderr)):
            t = threading.Thread(target=self._drain, args=(stream, sink), daemon=True)
            t.start()
            self._threads.append(t)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        self._t0 = time.monotonic()
        if self.sample_interval:
            t = threading.Thread(target=self._sample_loop, daemon=True, name=f"sampler-{self.pid}")
            t.start()
            self._threads.append(t)
        return self

    def _drain(self, stream: Any, sink: collections.deque[str]) -> None:
        # Always read the pipes: a server blocked on a full pipe is not "slow".
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            sink.append(line)
            if self.ready_line is None:
                m = READY_LINE.search(line) if self.command is None else None
                if m is not None:
                    self.port = int(m["port"])
                    self.ready_line = line
                    self._ready_event.set()
                elif self.ready_pattern is not None and self.ready_pattern.search(line):
                    self.ready_line = line
                    self._ready_event.set()
        stream.close()

    def _wait_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                time.sleep(0.1)  # let the drain threads catch the last words
                raise ServerStartError(
                    f"{self.name} exited with code {self.proc.returncode} before it was ready "
                    f"({' '.join(self.argv_shown())}); stderr tail:\n{self.stderr_tail()}"
                )
            if self.command is None or self.ready_pattern is not None:
                if self._ready_event.wait(0.05):
                    if self.command is not None:
                        self._wait_port(deadline)
                    return
            elif self._port_open():
                return
            else:
                time.sleep(0.05)
        raise ServerStartError(
            f"{self.name} not ready after {self.start_timeout}s "
            f"({' '.join(self.argv_shown())}); stderr tail:\n{self.stderr_tail()}"
        )

    def _wait_port(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            if self._port_open():
                return
            time.sleep(0.05)
        raise ServerStartError(f"{self.name} printed its ready line but port {self.port} is closed")

    def _port_open(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def argv_shown(self) -> list[str]:
        return list(self.proc.args) if self.proc is not None else []  # type: ignore[arg-type]  # started with an argv list

    def stderr_tail(self) -> str:
        return "\n".join([*self._stderr, *("[stdout] " + s for s in self._stdout)][-STDERR_TAIL:])

    def stop(self) -> int | None:
        """SIGTERM the process group, wait ``stop_timeout`` s, SIGKILL; the exit code."""
        self._stop_sampling.set()
        for t in self._threads:
            if t.name.startswith("sampler-"):
                t.join(timeout=(self.sample_interval or 1.0) + 2.0)
        if self.proc is None:
            return None
        if self._finalizer is not None and self._finalizer.alive:
            self._finalizer.detach()
            self.returncode = _kill_group(self.proc.pid, self.proc, self.stop_timeout)
        elif self.returncode is None:
            self.returncode = self.proc.poll()
        return self.returncode

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # -- sampling ----------------------------------------------------------------------

    def fetch_stats(self, timeout: float = 2.0) -> dict[str, Any] | None:
        """GET the stats path now (None for a peer); counts as one request on the server."""
        if not self.stats_path or self.proc is None:
            return None
        self.stats_fetches += 1
        with urllib.request.urlopen(self.url + self.stats_path, timeout=timeout) as resp:
            return json.loads(resp.read())

    def _processes(self, cache: dict[int, psutil.Process]) -> list[psutil.Process]:
        assert self.pid is not None
        try:
            root = cache.setdefault(self.pid, psutil.Process(self.pid))
            found = [root, *root.children(recursive=True)]
        except psutil.Error:
            return []
        # Reuse Process objects: cpu_percent() measures since the previous call on the same object.
        return [cache.setdefault(p.pid, p) for p in found]

    def _sample_loop(self) -> None:
        cache: dict[int, psutil.Process] = {}
        for p in self._processes(cache):
            with contextlib.suppress(psutil.Error):
                p.cpu_percent(None)
        interval = float(self.sample_interval or 1.0)
        while not self._stop_sampling.wait(interval):
            if not self.alive():
                return
            self.samples.append(self.sample(cache))

    def sample(self, cache: dict[int, psutil.Process] | None = None) -> dict[str, Any]:
        """One sample now: ``{t, rss_bytes, cpu_percent, open_fds, threads, processes, stats}``."""
        cache = {} if cache is None else cache
        rss = fds = threads = 0
        cpu = 0.0
        procs = self._processes(cache)
        for p in procs:
            with contextlib.suppress(psutil.Error), p.oneshot():
                rss += p.memory_info().rss
                cpu += p.cpu_percent(None)
                fds += p.num_fds()
                threads += p.num_threads()
        out: dict[str, Any] = {
            "t": round(time.monotonic() - self._t0, 3),
            "rss_bytes": rss,
            "cpu_percent": cpu,
            "open_fds": fds,
            "threads": threads,
            "processes": len(procs),
        }
        if self.stats_path:
            try:
                out["stats"] = self.fetch_stats(timeout=max(0.5, (self.sample_interval or 1.0)))
            except (OSError, ValueError) as exc:
                out["stats_error"] = repr(exc)
        return out

    def samples_rows(
        self,
        study: str,
        run_id: str,
        config_cols: dict[str, Any] | None = None,
        *,
        repetition: int = 0,
        extra: dict[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """Tidy rows, one per sampled value and second (``metric`` like ``rss_mb``, ``cache.hit_ratio``)."""
        base = {"study": study, "run_id": run_id, **(config_cols or {}), **(extra or {})}
        base["repetition"] = repetition
        rows: list[dict[str, Any]] = []
        for s in self.samples:
            t = s["t"]

            def add(metric: str, value: Any, unit: str, t: float = t) -> None:
                rows.append({**base, "metric": metric, "value": value, "unit": unit, "t": t})

            add("server_rss_mb", s["rss_bytes"] / 2**20, "MiB")
            add("server_cpu_percent", s["cpu_percent"], "%")
            add("server_open_fds", s["open_fds"], "count")
            add("server_threads", s["threads"], "count")
            for key, value in flatten_stats(s.get("stats") or {}).items():
                add(f"stats.{key}", value, "")
        return rows


def flatten_stats(stats: dict[str, Any]) -> dict[str, float]:
    """Numeric leaves of ``app.stats()`` as dotted keys (the config echo left out)."""
    out: dict[str, float] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, bool):
            out[prefix] = float(value)
        elif isinstance(value, int | float):
            out[prefix] = value
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)

    for key, value in stats.items():
        if key not in ("config", "preset"):
            walk(key, value)
    return out


__all__ = ["READY_LINE", "ServerProcess", "ServerStartError", "flatten_stats", "free_port"]
