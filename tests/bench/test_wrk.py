"""The wrk engine: output parsing (always) and one real run (when wrk is installed)."""

from __future__ import annotations

import os
import socket

import pytest

from h3lab.bench.load.wrk import (
    MARKER,
    WrkError,
    lua_script,
    parse_wrk_output,
    result_from_output,
    run_wrk,
    wrk_available,
)

# Captured from wrk 4.1.0 (Debian) against h3lab's /nope (every response a 404),
# with socket errors added as wrk prints them.
CAPTURED = """\
Running 1s test @ http://127.0.0.1:40645/nope
  1 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   148.69us  140.46us   2.36ms   97.33%
    Req/Sec    59.18k     6.40k   63.47k    90.00%
  Latency Distribution
     50%  113.00us
     75%  144.00us
     90%  216.00us
     99%    0.86ms
  58653 requests in 1.00s, 11.80MB read
  Socket errors: connect 3, read 2, write 1, timeout 4
  Non-2xx or 3xx responses: 58000
Requests/sec:  58640.92
Transfer/sec:     11.80MB
"""


def test_parse_text_report() -> None:
    p = parse_wrk_output(CAPTURED)
    assert p["threads"] == 1 and p["connections"] == 8
    assert p["requests"] == 58653 and p["duration_s"] == pytest.approx(1.0)
    assert p["rps"] == pytest.approx(58640.92)
    assert p["p50_ms"] == pytest.approx(0.113)
    assert p["p75_ms"] == pytest.approx(0.144)
    assert p["p90_ms"] == pytest.approx(0.216)
    assert p["p99_ms"] == pytest.approx(0.86)
    assert p["max_ms"] == pytest.approx(2.36)
    assert p["mean_ms"] == pytest.approx(0.14869)
    assert p["p99_9_ms"] is None  # wrk's text report has no 99.9th
    assert (p["connect"], p["read"], p["write"], p["timeout"]) == (3, 2, 1, 4)
    assert p["non_2xx"] == 58000


def test_result_from_text_report_uses_the_common_schema() -> None:
    r = result_from_output(CAPTURED, url="http://x/nope", workload="/nope", connections=8)
    assert r.engine == "wrk" and r.loop_mode == "closed"
    assert r.requests == 653  # 2xx/3xx only
    assert r.errors == {
        "connect": 3,
        "timeout": 4,
        "reset": 1,
        "read": 2,
        "status_mismatch": 58000,
        "body_mismatch": 0,
    }
    assert r.throughput_rps == pytest.approx(653 / 1.0)
    assert r.latency["p99_ms"] == pytest.approx(0.86)
    assert r.histoblob is None and r.series == []
    assert any("coordinated omission" in n for n in r.notes)


def test_done_line_overrides_rounded_text() -> None:
    text = CAPTURED.replace("Requests/sec:", "x") + (
        MARKER + '{"requests":58653,"duration_us":1003000,"bytes":12373196,"connect":0,'
        '"read":0,"write":0,"status":58000,"timeout":0,"p50_us":112,"p90_us":215,'
        '"p99_us":861,"p99_9_us":1900,"max_us":2360,"mean_us":148.690}\n'
    )
    p = parse_wrk_output(text)
    assert p["duration_s"] == pytest.approx(1.003)
    assert p["p50_ms"] == pytest.approx(0.112) and p["p99_9_ms"] == pytest.approx(1.9)
    assert (p["connect"], p["read"], p["write"], p["timeout"]) == (0, 0, 0, 0)


def test_unparsable_output_raises() -> None:
    with pytest.raises(WrkError, match="could not parse"):
        parse_wrk_output("unable to connect to 127.0.0.1:1 Connection refused")


def test_lua_script_round_robin_and_pipelining() -> None:
    one = lua_script(["/a", '/q"uote', "/\u00e9"])
    assert 'local paths = {"/a", "/q\\"uote", "/\\195\\169"}' in one
    assert "local depth = 1" in one and "H3LAB_WRK" in one
    assert "local paths = nil" in lua_script(None)
    assert "local depth = 16" in lua_script(["/a"], pipelining=16)
    with pytest.raises(ValueError):
        lua_script(["/a"], pipelining=0)


needs_wrk = pytest.mark.skipif(not wrk_available(), reason="wrk is not installed")


@needs_wrk
def test_wrk_refused_connection_is_an_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        with pytest.raises(WrkError, match="code 1"):
            run_wrk(f"http://127.0.0.1:{port}/", connections=1, duration=1)


@needs_wrk
@pytest.mark.timeout(60)
def test_real_wrk_run_against_h3lab() -> None:
    from h3lab.bench.server import ServerProcess

    two_cpus = len(os.sched_getaffinity(0)) >= 2
    with ServerProcess(
        preset="performance", cpu=0 if two_cpus else None, sample_interval=None
    ) as srv:
        before = srv.fetch_stats()["server"]["requests"]
        result = run_wrk(
            srv.url,
            connections=8,
            duration=2,
            paths=["/plaintext", "/json", "/users/7", "/users/8", "/users/9"],
            cpu=1 if two_cpus else None,
            pipelining=2,
        )
        stats = srv.fetch_stats()
        after = stats["server"]["requests"]
    # the Lua script sent every path: /users/7, 8 and 9 are three keys in the route cache
    assert stats["cache"]["size"] >= 3, stats["cache"]
    assert result.engine == "wrk" and result.pipelining == 2
    assert result.errors_total == 0
    assert result.requests > 100
    assert result.duration_s == pytest.approx(2.0, abs=0.5)
    assert result.latency["p99_9_ms"] is not None  # from the done() line
    # wrk stops without counting what is in flight: at most a batch per connection
    assert 0 <= (after - before - 1) - result.requests <= 8 * 2


class _PathCounter:
    """A tiny HTTP/1.1 server on a thread that answers every GET and counts its paths."""

    def __init__(self) -> None:
        import collections
        import threading

        self.counts: collections.Counter[str] = collections.Counter()
        self.heads: collections.defaultdict[str, set[bytes]] = collections.defaultdict(set)
        """Every distinct request head received, per path."""
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self.port = self._sock.getsockname()[1]
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import threading

        while not self._stop:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        buf = b""
        with conn:
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                buf += data
                out = []
                while b"\r\n\r\n" in buf:
                    head, buf = buf.split(b"\r\n\r\n", 1)
                    path = head.split(b" ", 2)[1].decode()
                    self.counts[path] += 1
                    self.heads[path].add(head)
                    out.append(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                try:
                    conn.sendall(b"".join(out))
                except OSError:
                    return

    def close(self) -> None:
        self._stop = True
        self._sock.close()


@needs_wrk
@pytest.mark.timeout(60)
@pytest.mark.parametrize(("paths", "depth"), [(["/a", "/b", "/c"], 2), (["/a", "/b"], 3)])
def test_pipelined_paths_are_sent_equally_often(paths: list[str], depth: int) -> None:
    # 3 paths at depth 2 once sent /a half the time (the last batch wrapped round).
    server = _PathCounter()
    try:
        run_wrk(f"http://127.0.0.1:{server.port}/", connections=1, duration=1,
                paths=paths, pipelining=depth)  # fmt: skip
    finally:
        server.close()
    counts = [server.counts[p] for p in paths]
    assert set(server.counts) == set(paths)
    total = sum(counts)
    assert total > 100
    # One connection cycles through lcm(len(paths), depth) requests: shares differ
    # only by the last, unfinished cycle (and the pipelined batch in flight).
    assert max(counts) - min(counts) <= 2 * depth, counts


def test_lua_script_builds_lcm_batches() -> None:
    script = lua_script(["/a", "/b", "/c"], pipelining=2)
    assert "gcd(#list, depth)" in script and "math.ceil" not in script


@needs_wrk
@pytest.mark.timeout(60)
def test_every_path_is_sent_as_wrks_own_request() -> None:
    # The Lua script must not change what a server receives: a path of the
    # round-robin is the same bytes as wrk's built-in request for that URL
    # (its static, script-less mode), and two endpoints differ only in the path.
    import subprocess

    server = _PathCounter()
    try:
        url = f"http://127.0.0.1:{server.port}"
        subprocess.run(["wrk", "-t1", "-c1", "-d1s", url + "/static"],
                       capture_output=True, check=True, timeout=20)  # fmt: skip
        run_wrk(url + "/", connections=1, duration=1, paths=["/static", "/users/1"])
    finally:
        server.close()
    assert server.counts["/static"] > server.counts["/users/1"] > 50  # both runs, both paths
    # one head for /static across both runs: the Lua request is wrk's own, byte for byte
    (static_head,) = server.heads["/static"]
    assert static_head.startswith(b"GET /static HTTP/1.1\r\nHost: 127.0.0.1:")
    assert server.heads["/users/1"] == {static_head.replace(b"/static", b"/users/1")}
