"""Tuning across machines for real: one study shared in a PostgreSQL server.

The test starts its own PostgreSQL (``initdb`` + ``pg_ctl``, a temporary
cluster listening only on a Unix socket in a temporary directory), runs two
search-only workers concurrently on one study, then the deciding run
(``--trials 0``), then resumes the study with one more trial. PostgreSQL
refuses to run as root, so under root (CI) the cluster runs as the
unprivileged ``postgres`` user (``runuser``). Skipped, with the reason, only
where the PostgreSQL server binaries are absent.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna")
pytest.importorskip("psycopg2", reason="psycopg2 (the h3lab[studies] extra) is not installed")

ROOT = Path(__file__).resolve().parents[2]
PORT = 54329  # names the socket file only: the cluster listens on no TCP address


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    # Debian keeps the server binaries out of PATH.
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def _as_user() -> tuple[list[str], int | None, int | None]:
    """The command prefix that runs PostgreSQL unprivileged, and that user's ids."""
    if os.geteuid() != 0:
        return [], None, None
    try:
        user = pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("running as root and there is no 'postgres' user to run PostgreSQL as")
    runuser = shutil.which("runuser") or shutil.which("setpriv")
    if runuser is None:
        pytest.skip("running as root and neither runuser nor setpriv is available")
    if runuser.endswith("runuser"):
        prefix = [runuser, "-u", "postgres", "--"]
    else:
        prefix = [runuser, f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups"]
    return prefix, user.pw_uid, user.pw_gid


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if initdb is None or pg_ctl is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    prefix, uid, gid = _as_user()
    # Not under pytest's tmp_path: its parents are private to root, and the
    # postgres user must reach the data directory and the socket.
    base = Path(tempfile.mkdtemp(prefix="h3lab-pg-"))
    if uid is not None:
        os.chown(base, uid, gid)  # type: ignore[arg-type]
    data = base / "data"

    def run(*argv: str) -> None:
        proc = subprocess.run(
            [*prefix, *argv], capture_output=True, text=True, timeout=120, cwd=base
        )
        if proc.returncode != 0:
            log = base / "log"
            raise AssertionError(
                f"{argv[0]} failed: {proc.stderr}{log.read_text() if log.exists() else ''}"
            )

    run(initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8")
    options = f"-k {base} -c listen_addresses='' -p {PORT} -c fsync=off"
    run(pg_ctl, "-D", str(data), "-o", options, "-l", str(base / "log"), "-w", "start")
    try:
        # The password is ignored (trust auth) but lets the test check it is never echoed.
        yield f"postgresql+psycopg2://postgres:s3cret@/postgres?host={base}&port={PORT}"
    finally:
        subprocess.run(
            [*prefix, pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"],
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(base, ignore_errors=True)


def _tune(url: str, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "h3lab.cli",
        "tune",
        "--workload",
        "zipf",
        "--knobs",
        "cache.policy,cache.size",
        "--trial-duration",
        "0.5",
        "--warmup",
        "0",
        "--connections",
        "4",
        "--study-name",
        "shared",
        "--storage",
        url,
        "--out",
        str(out),
        "--root",
        str(out / "runs"),
        "--no-progress",
        *extra,
    ]


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_two_workers_share_one_study_then_decide_and_resume(
    postgres_url: str, tmp_path: Path
) -> None:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}

    def start(*extra: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            _tune(postgres_url, tmp_path / "tuning", *extra),
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    # Two search-only workers at once, each with its own seed, on one study.
    workers = [start("--trials", "2", "--seed", str(seed), "--no-select") for seed in (1, 2)]
    for worker in workers:
        out, err = worker.communicate(timeout=180)
        assert worker.returncode == 0, out + err
        assert "s3cret" not in out + err and "postgresql+psycopg2://***@" in out
    study = optuna.load_study(study_name="shared", storage=postgres_url)
    numbers = sorted(t.number for t in study.trials)
    assert numbers == [0, 1, 2, 3]  # four trials, numbered by the database, none lost
    assert all(t.state.name in ("COMPLETE", "FAIL") for t in study.trials)
    assert any(t.state.name == "COMPLETE" for t in study.trials)

    # The deciding run: no new trial, re-measure the best beside the presets.
    decide = start("--trials", "0", "--top-k", "1", "--repetitions", "2")
    out, err = decide.communicate(timeout=180)
    assert decide.returncode == 0, out + err
    assert "4 trial(s) so far, 0 to run" in out and "verdict: " in out
    best = tmp_path / "tuning" / "shared" / "best.toml"
    if "INVALID re-measurement" in out:
        # A disturbed machine (a parallel test run) decides nothing, and says why.
        assert not best.is_file() and "no best config: no verdict" in out
    else:
        assert best.is_file()

    # Resuming: one more trial joins the same study.
    resume = start("--trials", "1", "--seed", "3", "--no-select")
    out, err = resume.communicate(timeout=120)
    assert resume.returncode == 0, out + err
    assert "4 trial(s) so far, 1 to run" in out
    assert len(optuna.load_study(study_name="shared", storage=postgres_url).trials) == 5
