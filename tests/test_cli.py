"""``h3lab serve`` as a real subprocess: presets, overrides, signals, workers."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from h3lab.cli import main

ROOT = Path(__file__).resolve().parents[1]


def start(*args: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "h3lab.cli", "serve", *args, "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 20
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if time.monotonic() > deadline or "serving on" not in line:
        proc.kill()
        raise AssertionError(
            f"no readiness line: {line!r} {proc.stderr.read() if proc.stderr else ''}"
        )
    url = re.search(r"http://[\d.]+:\d+", line).group(0)  # type: ignore[union-attr]
    return proc, url


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return resp.read()


def test_serve_preset_and_overrides_then_sigterm_exits_zero(procs: list) -> None:
    proc, url = start("tests.apps.basic:app", "--preset", "performance", "--set", "cache.size=77")
    procs.append(proc)
    config = json.loads(get(url + "/config"))
    assert config["cache.size"] == 77 and config["memory.strategy"] == "performance"
    os.kill(proc.pid, signal.SIGTERM)
    assert proc.wait(10) == 0


def test_sigterm_lets_in_flight_request_finish(procs: list) -> None:
    import threading

    proc, url = start("tests.apps.basic:app")
    procs.append(proc)
    result: dict[str, bytes] = {}
    thread = threading.Thread(target=lambda: result.update(body=get(url + "/slow")))
    thread.start()
    time.sleep(0.2)
    os.kill(proc.pid, signal.SIGTERM)
    thread.join(5)
    assert result.get("body") == b"done"
    assert proc.wait(10) == 0


def test_workers_share_one_port(procs: list) -> None:
    proc, url = start("tests.apps.basic:app", "--workers", "2")
    procs.append(proc)
    pids = set()
    deadline = time.monotonic() + 10
    while len(pids) < 2 and time.monotonic() < deadline:
        pids.add(json.loads(get(url + "/pid"))["pid"])  # a new connection each time
    assert len(pids) == 2
    os.kill(proc.pid, signal.SIGTERM)
    assert proc.wait(10) == 0


def test_config_file(tmp_path: Path, procs: list) -> None:
    from h3lab import Config

    path = Config.preset("minimal").replace("cache.size", 33).dump(tmp_path / "c.toml")
    proc, url = start("tests.apps.basic:app", "--config", str(path))
    procs.append(proc)
    assert json.loads(get(url + "/config"))["cache.size"] == 33


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["serve", "tests.apps.basic:app", "--set", "cache.policy=mru"],
            "cache.policy must be one of",
        ),
        (["serve", "tests.apps.basic:app", "--set", "cache.size"], "section.field=value"),
        (["serve", "nosuchmodule:app"], "cannot import 'nosuchmodule'"),
        (["serve", "tests.apps.basic:nothing"], "has no attribute 'nothing'"),
        (["serve", "tests.apps.basic"], "module:attribute"),
    ],
)
def test_bad_arguments_fail_in_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    os.chdir(ROOT)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_config_file_errors_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    os.chdir(ROOT)
    assert main(["serve", "tests.apps.basic:app", "--config", str(tmp_path / "missing.toml")]) == 2
    assert "cannot read config file" in capsys.readouterr().err
    bad = tmp_path / "bad.toml"
    bad.write_text("[cache\nsize = ")
    assert main(["serve", "tests.apps.basic:app", "--config", str(bad)]) == 2
    assert "not valid TOML" in capsys.readouterr().err
    assert main(["serve", "tests.apps.basic:app", "--config", str(bad), "--preset", "minimal"]) == 2
    assert "mutually exclusive" in capsys.readouterr().err


def test_module_entry_point_reports_suite_errors_in_one_line() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "h3lab", "serve", "tests.apps.basic:app", "--set", "pool.size=-1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "pool.size" in proc.stderr


def test_serving_never_imports_the_research_stack() -> None:
    code = (
        "import sys, h3lab.cli; h3lab.cli.build_parser();"
        "import h3lab.examples.demo, h3lab.server;"
        "heavy = [m for m in ('pandas', 'pyarrow', 'altair', 'papermill', 'optuna', 'jupyter_client')"
        " if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr
