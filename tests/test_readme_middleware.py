"""The README's framework example, run as written, on a real server.

The ``timing`` middleware must really time, and its post-step must run for
error responses too (404 from the router, 401 and 500 from handlers), under
both middleware executions. Also: a protocol-level error body is compact JSON
like the others, and a config keeps its preset name through a file into
``/__stats``.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest

from h3lab import H3, Config, HTTPError
from tests.conftest import raw_exchange

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_app() -> H3:
    """The first ``python`` block of the README, without its final ``serve(...)`` call."""
    block = re.search(r"```python\n(.*?)```", README.read_text(), re.S)
    assert block is not None
    code = "\n".join(line for line in block[1].splitlines() if not line.startswith("serve("))
    namespace: dict[str, Any] = {}
    exec(compile(code, "README.md", "exec"), namespace)
    app = namespace["app"]

    @app.get("/private")
    def private(event: Any) -> None:
        raise HTTPError(401, "who are you?")

    @app.get("/boom")
    def boom(event: Any) -> None:
        raise RuntimeError("a bug")

    @app.get("/slow")
    async def slow(event: Any) -> str:
        await asyncio.sleep(0.05)
        return "done"

    return app


@pytest.mark.parametrize("execution", ["fast", "legacy"])
async def test_readme_timing_middleware(live_factory: Any, execution: str) -> None:
    app = readme_app()
    live = await live_factory(app.clone(app.config.replace("middleware.execution", execution)))
    seen = {}
    for path, status in (
        ("/users/7", 200),
        ("/users/0", 404),  # HTTPError from the handler
        ("/nowhere", 404),  # no route
        ("/private", 401),
        ("/boom", 500),
        ("/slow", 200),
    ):
        got, headers, body = await live.fetch("GET", path)
        assert got == status, (path, body)
        timing = headers.get("server-timing") or headers.get("Server-Timing")
        assert timing is not None, f"no server-timing on {path} ({status})"
        match = re.fullmatch(r"app;dur=(\d+\.\d\d)", timing)
        assert match, timing
        seen[path] = float(match[1])
    assert seen["/slow"] >= 50.0  # it times the handler (50 ms of sleep)
    assert seen["/users/7"] < seen["/slow"]


async def test_protocol_error_bodies_are_compact_json(live_factory: Any) -> None:
    live = await live_factory(H3(Config().replace("limits.max_body_size", 10)))
    data = await raw_exchange(
        live.port, b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 99\r\n\r\n"
    )
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413")
    assert body == b'{"status":413,"message":"Request body too large","data":null}'


async def test_a_tuned_config_keeps_its_preset_through_a_file(
    live_factory: Any, tmp_path: Path
) -> None:
    tuned = Config.preset("performance").replace(
        **{"cache.size": 2048, "server.stats_path": "/__stats"}
    )
    for suffix in (".toml", ".json"):
        loaded = Config.load(tuned.dump(tmp_path / f"candidate{suffix}"))
        assert loaded == tuned and loaded.label == "performance+2"
    live = await live_factory(H3(Config.load(tmp_path / "candidate.toml")))
    stats = json.loads((await live.fetch("GET", "/__stats"))[2])
    assert stats["preset"] == "performance"
    assert stats["overrides"] == {"cache.size": 2048, "server.stats_path": "/__stats"}
