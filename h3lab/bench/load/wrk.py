"""The wrk engine: wrk (C, epoll) as the load generator, parsed into a ``LoadResult``.

wrk is a *closed-loop* generator: each connection sends its next request when
the previous response arrived, so its latency percentiles suffer from
coordinated omission (a server stall is sampled by at most one request per
connection). Use wrk for throughput, ``run_open_loop`` for latency.
Debian ships wrk 4.1.0, not wrk2 (whose ``-R`` rate would fix this).

A generated Lua script feeds the workload's paths round-robin, pipelines
``depth`` requests per write when asked (TechEmpower's ``pipeline.lua``
technique, with ``lcm(paths, depth) / depth`` batches so that every path is
sent equally often), and prints one machine-readable ``H3LAB_WRK {...}`` JSON line
from ``done()`` with exact counters and percentiles in microseconds. The
text report is parsed too (and is the fallback when that line is missing);
``parse_wrk_output`` accepts either.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from typing import Any

from h3lab.bench.load.result import LoadResult

MARKER = "H3LAB_WRK "


class WrkError(RuntimeError):
    """wrk could not run (not installed, could not connect at start, bad arguments)."""


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


# -- the Lua script -----------------------------------------------------------------------


def _lua_string(text: str) -> str:
    """A Lua string literal: printable ASCII kept, everything else as \\ddd bytes."""
    out = []
    for byte in text.encode("utf-8"):
        ch = chr(byte)
        if ch in '"\\':
            out.append("\\" + ch)
        elif 32 <= byte < 127:
            out.append(ch)
        else:
            out.append(f"\\{byte:03d}")
    return '"' + "".join(out) + '"'


def lua_script(paths: Sequence[str] | None, pipelining: int = 1) -> str:
    """The script: round-robin ``paths`` (None = the URL's own path), ``pipelining`` per write."""
    if pipelining < 1:
        raise ValueError(f"pipelining must be >= 1, got {pipelining}")
    lines = []
    if paths:
        lines.append("local paths = {" + ", ".join(_lua_string(p) for p in paths) + "}")
    else:
        lines.append("local paths = nil")
    lines.append(f"local depth = {int(pipelining)}")
    lines.append(
        """
local batches = {}
local n = 0
local i = 0

init = function(args)
  local list = paths or {wrk.path}
  if depth == 1 then
    for k, p in ipairs(list) do batches[k] = wrk.format(nil, p) end
    n = #batches
  else
    -- lcm(#list, depth) / depth batches of `depth` requests: the batches then
    -- end exactly where the path list does, so every path is sent equally
    -- often (ceil(#list / depth) batches would wrap the last one back to the
    -- first paths, e.g. /a at 50% of three paths at depth 2).
    local function gcd(a, b)
      while b ~= 0 do a, b = b, a % b end
      return a
    end
    local count = #list / gcd(#list, depth)  -- = lcm(#list, depth) / depth
    local k = 0
    for b = 1, count do
      local r = {}
      for d = 1, depth do
        r[d] = wrk.format(nil, list[(k % #list) + 1])
        k = k + 1
      end
      batches[b] = table.concat(r)
    end
    n = #batches
  end
end

request = function()
  i = (i % n) + 1
  return batches[i]
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'H3LAB_WRK {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"p99_9_us":%d,"max_us":%d,"mean_us":%.3f}\\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean))
end
"""
    )
    return "\n".join(lines)


# -- parsing ---------------------------------------------------------------------------------

_UNITS_S = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}

_RE_DIST = re.compile(r"^\s*(\d+(?:\.\d+)?)%\s+([\d.]+)(us|ms|s|m|h)\s*$", re.M)
_RE_LATENCY = re.compile(
    r"^\s*Latency\s+([\d.]+)(us|ms|s|m|h)\s+([\d.]+)(us|ms|s|m|h)\s+([\d.]+)(us|ms|s|m|h)", re.M
)
_RE_TOTAL = re.compile(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h)", re.M)
_RE_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)", re.M)
_RE_SOCKET = re.compile(
    r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", re.M
)
_RE_NON2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)", re.M)
_RE_HEADER = re.compile(r"^\s*(\d+) threads and (\d+) connections", re.M)


def _seconds(value: str, unit: str) -> float:
    return float(value) * _UNITS_S[unit]


def parse_wrk_output(text: str) -> dict[str, Any]:
    """wrk's report -> counters, seconds and latencies (ms); the ``done()`` JSON line wins.

    Keys: requests (all responses), duration_s, rps (wrk's), connect/read/
    write/timeout socket errors, non_2xx, p50_ms/p75_ms/p90_ms/p99_ms/p99_9_ms,
    max_ms, mean_ms, threads, connections.
    """
    out: dict[str, Any] = {
        "connect": 0,
        "read": 0,
        "write": 0,
        "timeout": 0,
        "non_2xx": 0,
        "p99_9_ms": None,
    }
    m = _RE_HEADER.search(text)
    if m:
        out["threads"], out["connections"] = int(m[1]), int(m[2])
    m = _RE_LATENCY.search(text)
    if m:
        out["mean_ms"] = _seconds(m[1], m[2]) * 1000
        out["max_ms"] = _seconds(m[5], m[6]) * 1000
    for pct, value, unit in _RE_DIST.findall(text):
        key = "p" + f"{float(pct):g}".replace(".", "_") + "_ms"  # 99.9 -> p99_9_ms
        out[key] = _seconds(value, unit) * 1000
    m = _RE_TOTAL.search(text)
    if m:
        out["requests"] = int(m[1])
        out["duration_s"] = _seconds(m[2], m[3])
    m = _RE_RPS.search(text)
    if m:
        out["rps"] = float(m[1])
    m = _RE_SOCKET.search(text)
    if m:
        out["connect"], out["read"], out["write"], out["timeout"] = map(int, m.groups())
    m = _RE_NON2XX.search(text)
    if m:
        out["non_2xx"] = int(m[1])
    for line in text.splitlines():
        if line.startswith(MARKER):
            exact = json.loads(line[len(MARKER) :])
            out.update(
                requests=exact["requests"],
                duration_s=exact["duration_us"] / 1e6,
                connect=exact["connect"],
                read=exact["read"],
                write=exact["write"],
                timeout=exact["timeout"],
                mean_ms=exact["mean_us"] / 1000,
                max_ms=exact["max_us"] / 1000,
                bytes=exact["bytes"],
                status_errors=exact["status"],
            )
            for key in ("p50", "p90", "p99", "p99_9"):
                out[f"{key}_ms"] = exact[f"{key}_us"] / 1000
    if "requests" not in out:
        raise WrkError(f"could not parse wrk output:\n{text[-2000:]}")
    return out


def result_from_output(
    text: str,
    *,
    url: str,
    workload: str,
    connections: int,
    pipelining: int = 1,
) -> LoadResult:
    """A ``LoadResult`` (engine "wrk", loop_mode "closed") from wrk's output.

    Same accounting as the Python engines: ``requests`` are the 2xx/3xx
    responses and ``throughput_rps = requests / duration``; non-2xx/3xx
    responses are ``status_mismatch``; socket errors map to ``connect``,
    ``read``, ``reset`` (wrk's write errors) and ``timeout``. wrk does not
    check bodies and keeps no per-second series or exportable histogram.
    """
    p = parse_wrk_output(text)
    total = int(p["requests"])
    non2xx = int(p["non_2xx"])
    good = total - non2xx
    duration = float(p.get("duration_s") or 0.0) or 1e-9
    errors = {
        "connect": int(p["connect"]),
        "timeout": int(p["timeout"]),
        "reset": int(p["write"]),
        "read": int(p["read"]),
        "status_mismatch": non2xx,
        "body_mismatch": 0,
    }
    latency = {k: p.get(k) for k in ("p50_ms", "p90_ms", "p99_ms", "p99_9_ms", "max_ms")}
    notes = ["wrk: closed loop (coordinated omission applies); bodies not checked"]
    return LoadResult(
        engine="wrk",
        loop_mode="closed",
        url=url,
        workload=workload,
        connections=connections,
        pipelining=pipelining,
        duration_s=duration,
        requests=good,
        errors=errors,
        status_counts={"2xx/3xx": good, "non-2xx/3xx": non2xx} if non2xx else {"2xx/3xx": good},
        throughput_rps=good / duration,
        latency=latency,
        notes=notes,
    )


# -- running -------------------------------------------------------------------------------------


def run_wrk(
    url: str,
    *,
    connections: int = 64,
    threads: int = 1,
    duration: float = 10,
    paths: list[str] | None = None,
    cpu: int | None = None,
    pipelining: int = 1,
    timeout: float = 5.0,
    workload: str | None = None,
) -> LoadResult:
    """Run wrk against ``url`` for ``duration`` s; a ``LoadResult``.

    ``paths`` (round-robin; default the URL's path) and ``pipelining`` go
    through a generated Lua script; ``cpu`` pins wrk with ``taskset -c``.
    Closed loop: coordinated omission applies to the latencies (module doc).
    A subprocess timeout of duration + 15 s bounds the run.
    """
    wrk = shutil.which("wrk")
    if wrk is None:
        raise WrkError("wrk is not installed (apt-get install wrk)")
    if connections < 1 or threads < 1:
        raise ValueError("connections and threads must be >= 1")
    if threads > connections:
        raise ValueError(f"wrk needs connections >= threads, got {connections} < {threads}")
    if duration <= 0:
        raise ValueError(f"duration must be > 0, got {duration}")
    seconds = max(1, round(duration))  # wrk takes whole seconds
    fd, script = tempfile.mkstemp(prefix="h3lab-wrk-", suffix=".lua")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(lua_script(paths, pipelining))
        argv = [
            wrk,
            f"-t{threads}",
            f"-c{connections}",
            f"-d{seconds}s",
            f"--timeout={max(1, round(timeout))}s",
            "--latency",
            "-s",
            script,
            url,
        ]
        if cpu is not None:
            argv = ["taskset", "-c", str(cpu), *argv]
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 15)
        except subprocess.TimeoutExpired as exc:
            raise WrkError(f"wrk did not finish within {seconds + 15}s") from exc
    finally:
        os.unlink(script)
    if proc.returncode != 0 or (MARKER not in proc.stdout and "requests in" not in proc.stdout):
        raise WrkError(
            f"wrk exited with code {proc.returncode}: {(proc.stderr or proc.stdout).strip()[-1000:]}"
        )
    name = workload or (paths[0] if paths and len(paths) == 1 else "paths" if paths else url)
    result = result_from_output(
        proc.stdout, url=url, workload=name, connections=connections, pipelining=pipelining
    )
    result.notes.append(
        f"wrk -t{threads} -c{connections} -d{seconds}s" + (f" cpu={cpu}" if cpu is not None else "")
    )
    return result


__all__ = [
    "WrkError",
    "lua_script",
    "parse_wrk_output",
    "result_from_output",
    "run_wrk",
    "wrk_available",
]
