"""``h3lab serve`` options, errors and lifecycle, through real subprocesses on 127.0.0.1.

Subprocesses are slow to start (the interpreter and imports), so each test
starts its servers together and checks several things on each.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from h3lab.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]
READY = re.compile(r"h3lab serving on (\S+) \(config (.*)\)\. Press CTRL\+C to quit$")
ACCESS = re.compile(
    r'^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (\S+) - "GET (\S+) HTTP/1\.1" (\d{3}) (\d+|-) '
    r"(\d+\.\d\d)ms$"
)


def env() -> dict[str, str]:
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{path}" if path else str(ROOT)}


class Served:
    """One ``h3lab serve`` subprocess, its ready line parsed."""

    def __init__(self, *args: str, cwd: Path = ROOT, pass_fds: tuple[int, ...] = ()) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "h3lab.cli", "serve", *args],
            cwd=cwd,
            env=env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
            pass_fds=pass_fds,
        )
        self.url = ""
        self.config = ""
        self.lines: list[str] = []

    def ready(self, timeout: float = 30) -> Served:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.lines.append(line.rstrip("\n"))
            match = READY.search(line.rstrip("\n"))
            if match:
                self.url, self.config = match[1], match[2]
                return self
        self.kill()
        raise AssertionError(f"not ready: {self.lines} {self.proc.stderr.read()}")  # type: ignore[union-attr]

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def stop(self, sig: int = signal.SIGINT, timeout: float = 10) -> tuple[int, float, str, str]:
        """Signal, then (exit code, seconds to exit, rest of stdout, stderr)."""
        start = time.monotonic()
        os.kill(self.proc.pid, sig)
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, time.monotonic() - start, out, err

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.communicate()


@pytest.fixture
def servers() -> Iterator[list[Served]]:
    started: list[Served] = []
    yield started
    for s in started:
        s.kill()


def get_json(port: int, path: str, headers: dict[str, str] | None = None, source: str = "") -> dict:
    conn = http.client.HTTPConnection(
        "127.0.0.1", port, timeout=5, source_address=(source, 0) if source else None
    )
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        assert resp.status == 200, resp.read()
        return json.loads(resp.read())
    finally:
        conn.close()


# -- errors: one line, non-zero, no traceback -------------------------------------------


def test_errors_are_one_line_without_traceback(tmp_path: Path) -> None:
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    cert = tmp_path / "missing.pem"
    block = (
        "import sys; sys.modules[{name!r}] = None; from h3lab.cli import main; "
        "sys.exit(main(sys.argv[1:]))"
    )
    cases = {
        "port out of range": (["serve", "tests.apps.basic:app", "--port", "99999"], "0..65535"),
        "no app": (["serve"], "APP"),
        "port in use": (
            ["serve", "tests.apps.basic:app", "--port", str(port)],
            "address already in use",
        ),
        "host not ours": (
            ["serve", "tests.apps.basic:app", "--host", "203.0.113.9", "--port", "0"],
            "cannot listen on 203.0.113.9:0",
        ),
        "workers, port in use": (
            ["serve", "tests.apps.basic:app", "--port", str(port), "--workers", "2"],
            "address already in use",
        ),
        "half of TLS": (
            ["serve", "tests.apps.basic:app", "--ssl-keyfile", str(cert)],
            "go together",
        ),
        "TLS file missing": (
            [
                "serve",
                "tests.apps.basic:app",
                "--ssl-keyfile",
                str(cert),
                "--ssl-certfile",
                str(cert),
            ],
            "no such file",
        ),
        "bad proxy list": (
            ["serve", "tests.apps.basic:app", "--proxy-headers", "--forwarded-allow-ips", "x"],
            "forwarded-allow-ips",
        ),
        "bench load of a missing app": (
            ["bench", "load", "--app", "nosuch:app", "--duration", "1"],
            "cannot import 'nosuch'",
        ),
        "no tqdm": (["-c", block.format(name="tqdm"), "bench", "micro", "--quick"], "h3lab[bench]"),
        "no optuna": (["-c", block.format(name="optuna"), "tune", "--quick"], "h3lab[studies]"),
        "no hdrh": (["-c", block.format(name="hdrh"), "bench", "load"], "h3lab[bench]"),
    }
    procs = {
        name: subprocess.Popen(
            [sys.executable, *(argv if argv[0] == "-c" else ["-m", "h3lab.cli", *argv])],
            cwd=ROOT,
            env=env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, (argv, _) in cases.items()
    }
    try:
        for name, proc in procs.items():
            out, err = proc.communicate(timeout=60)
            lines = err.strip().splitlines()
            assert proc.returncode not in (0, None), (name, out, err)
            assert len(lines) == 1 and "Traceback" not in err, (name, err)
            assert cases[name][1] in lines[0] and "error:" in lines[0], (name, err)
    finally:
        busy.close()
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()


def test_a_closed_pipe_is_not_an_error() -> None:
    read, write = os.pipe()
    os.close(read)  # the reader is gone before anything is written (``| head`` that exited)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "h3lab.cli", "bench", "micro", "--target", "pool", "--quick"],
            cwd=ROOT,
            env=env(),
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    finally:
        os.close(write)
    # As coreutils do: no message, the status a shell reports for a SIGPIPE'd writer.
    assert proc.returncode == 141 and "Traceback" not in proc.stderr, proc.stderr


# -- help and version (in-process) -------------------------------------------------------


def test_help_shows_every_option_with_help_and_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    serve = parser._subparsers._group_actions[0].choices["serve"]  # type: ignore[union-attr]
    for action in serve._actions:
        assert action.help, f"{action.option_strings or action.dest} has no help"
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    text = capsys.readouterr().out
    for option in (
        "--version",
        "--log-level",
        "--reload",
        "--uds",
        "--fd",
        "--ssl-keyfile",
        "--ssl-certfile",
        "--proxy-headers",
        "--forwarded-allow-ips",
        "--root-path",
        "--timeout-keep-alive",
        "--workers",
        "--access-log",
    ):
        assert option in text
    assert "(default: 127.0.0.1)" in text and "(default: 3000)" in text
    with pytest.raises(SystemExit):
        main(["--help"])
    top = capsys.readouterr().out
    assert "h3lab serve APP" in top and "``" not in top and "::" not in top
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and re.match(r"h3lab \d+\.\d+", capsys.readouterr().out)


# -- a served app: startup line, proxy headers, root path, access log, keep-alive, shutdown ----


def test_serve_options_end_to_end(servers: list[Served]) -> None:
    s = Served(
        "tests.apps.proxied:app",
        "--port",
        "0",
        "--preset",
        "performance",
        "--set",
        "cache.size=77",
        "--access-log",
        "--log-level",
        "warning",
        "--proxy-headers",
        "--forwarded-allow-ips",
        "127.0.0.2",
        "--root-path",
        "/api",
        "--timeout-keep-alive",
        "0.5",
    )
    servers.append(s)
    s.ready()
    assert s.url.startswith("http://127.0.0.1:")
    assert s.config.startswith("performance+")
    assert "cache.size=77" in s.config and "limits.keepalive_timeout=0.5" in s.config

    forwarded = {"X-Forwarded-For": "198.51.100.7, 127.0.0.2", "X-Forwarded-Proto": "https"}
    # From a trusted peer: the client and scheme come from the headers.
    trusted = get_json(s.port, "/api/echo", forwarded, source="127.0.0.2")
    assert trusted == {
        "client": ["198.51.100.7", 0],
        "scheme": "https",
        "root_path": "/api",
        "path": "/echo",
    }
    # From any other peer they are ignored; a path outside the root path is served as is.
    untrusted = get_json(s.port, "/echo", forwarded)
    assert untrusted["client"][0] == "127.0.0.1" and untrusted["client"][1] > 0
    assert untrusted["scheme"] is None and untrusted["root_path"] is None

    # Keep-alive: an idle connection is closed after --timeout-keep-alive.
    idle = socket.create_connection(("127.0.0.1", s.port), timeout=5)
    idle.sendall(b"GET /echo HTTP/1.1\r\nHost: t\r\n\r\n")
    assert idle.recv(65536).startswith(b"HTTP/1.1 200")
    started = time.monotonic()
    assert idle.recv(1) == b""  # closed by the server
    assert 0.3 < time.monotonic() - started < 3
    idle.close()

    # Prompt shutdown with an idle keep-alive connection open.
    held = socket.create_connection(("127.0.0.1", s.port), timeout=5)
    held.sendall(b"GET /echo HTTP/1.1\r\nHost: t\r\n\r\n")
    held.recv(65536)
    code, seconds, out, err = s.stop(signal.SIGINT)
    held.close()
    assert code == 0 and seconds < 1.0, (seconds, out, err)
    assert "h3lab shutting down" in out and out.strip().endswith("h3lab stopped")

    access = [ACCESS.match(line) for line in err.splitlines()]
    assert all(access), err  # --log-level warning: only the access log on stderr
    by_path = {m[2]: m for m in access if m}
    assert by_path["/api/echo"][1] == "198.51.100.7"  # the forwarded client, no port
    assert re.fullmatch(r"127\.0\.0\.1:\d+", by_path["/echo"][1])
    assert by_path["/echo"][3] == "200" and int(by_path["/echo"][4]) > 10


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return key, cert


def test_uds_fd_and_tls(tmp_path: Path, servers: list[Served]) -> None:
    uds = tmp_path / "h3lab.sock"
    bound = socket.socket()
    bound.bind(("127.0.0.1", 0))
    bound.listen()
    bound.set_inheritable(True)
    started = [
        Served("tests.apps.proxied:app", "--uds", str(uds), "--access-log"),
        Served("tests.apps.proxied:app", "--fd", str(bound.fileno()), pass_fds=(bound.fileno(),)),
    ]
    tls = None
    if shutil.which("openssl"):
        key, cert = _self_signed(tmp_path)
        tls = Served(
            "tests.apps.proxied:app",
            "--port",
            "0",
            "--ssl-keyfile",
            str(key),
            "--ssl-certfile",
            str(cert),
        )
        started.append(tls)
    servers.extend(started)
    for s in started:
        s.ready()
    bound.close()  # the child has its own copy

    assert started[0].url == f"unix:{uds}"
    with socket.socket(socket.AF_UNIX) as client:
        client.settimeout(5)
        client.connect(str(uds))
        client.sendall(b"GET /echo HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := client.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200") and b'"path":"/echo"' in data

    assert started[1].url.startswith("http://127.0.0.1:")
    assert get_json(started[1].port, "/echo")["path"] == "/echo"

    if tls is not None:
        assert tls.url.startswith("https://127.0.0.1:")
        context = ssl.create_default_context(cafile=str(tmp_path / "cert.pem"))
        context.check_hostname = False
        conn = http.client.HTTPSConnection("127.0.0.1", tls.port, timeout=5, context=context)
        conn.request("GET", "/echo")
        resp = conn.getresponse()
        assert resp.status == 200 and json.loads(resp.read())["path"] == "/echo"
        conn.close()

    code, _, _, err = started[0].stop()
    assert code == 0
    # On a Unix socket the client has no address: the access log says "-".
    assert re.search(r' - - "GET /echo HTTP/1.1" 200 \d+ [\d.]+ms', err), err
    for s in started[1:]:
        assert s.stop()[0] == 0
    if tls is None:
        pytest.skip("openssl is not installed: HTTPS not tested")


def test_reload_restarts_on_a_change(tmp_path: Path, servers: list[Served]) -> None:
    module = tmp_path / "reloaded.py"
    module.write_text("from h3lab import H3\napp = H3()\napp.get('/v', lambda event: {'v': 1})\n")
    s = Served("reloaded:app", "--port", "0", "--reload", cwd=tmp_path)
    servers.append(s)
    s.ready()
    assert any("watching *.py" in line for line in s.lines)
    assert get_json(s.port, "/v") == {"v": 1}
    time.sleep(0.2)  # a different mtime, even on coarse file systems
    module.write_text("from h3lab import H3\napp = H3()\napp.get('/v', lambda event: {'v': 2})\n")
    deadline = time.monotonic() + 30
    value = None
    while time.monotonic() < deadline:
        try:
            value = get_json(s.port, "/v")  # the same address: the socket outlives the child
        except (ConnectionError, OSError):
            value = None
        if value == {"v": 2}:
            break
        time.sleep(0.2)
    assert value == {"v": 2}
    code, _, out, _ = s.stop(signal.SIGTERM, timeout=30)
    assert code == 0 and "changed, restarting" in out, out


# -- the pieces, in-process --------------------------------------------------------------


def test_trusted_hosts_and_forwarded_client() -> None:
    from h3lab.server.proxy import TrustedHosts, forwarded_client

    trusted = TrustedHosts("127.0.0.1, 10.0.0.0/8, ::1")
    assert "127.0.0.1" in trusted and "10.1.2.3" in trusted and "::1" in trusted
    assert "11.0.0.1" not in trusted and "not-an-ip" not in trusted and None not in trusted
    assert "anything" in TrustedHosts("*")
    # The nearest hop that is not a trusted proxy; a client cannot prepend its way in.
    assert forwarded_client("1.2.3.4, 10.0.0.5", trusted) == "1.2.3.4"
    assert forwarded_client("6.6.6.6, 1.2.3.4, 10.0.0.5", trusted) == "1.2.3.4"
    assert forwarded_client("10.0.0.9, 10.0.0.5", trusted) == "10.0.0.9"
    with pytest.raises(ValueError, match="forwarded-allow-ips"):
        TrustedHosts("localhost")


def test_the_polling_watcher_sees_a_change(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    from h3lab.server import reload

    monkeypatch.setitem(sys.modules, "watchfiles", None)  # as if it were not installed
    monkeypatch.setattr(reload, "POLL_INTERVAL", 0.05)
    assert reload.watcher_name() == "polling"
    (tmp_path / "app.py").write_text("x = 1\n")
    (tmp_path / "notes.txt").write_text("not python\n")
    stop = threading.Event()
    found: list[str] = []
    watcher = threading.Thread(target=lambda: found.extend(reload.wait_for_change(tmp_path, stop)))
    watcher.start()
    time.sleep(0.2)
    (tmp_path / "notes.txt").write_text("still not python\n")
    time.sleep(0.2)
    assert watcher.is_alive()  # a non-.py change is ignored
    (tmp_path / "app.py").write_text("x = 2  # changed\n")
    os.utime(tmp_path / "app.py", (time.time() + 5, time.time() + 5))
    watcher.join(5)
    stop.set()
    assert found == [str(tmp_path / "app.py")]
