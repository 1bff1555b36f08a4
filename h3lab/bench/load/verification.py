"""Verification before timing: every distinct request once, every answer checked.

TechEmpower-style: a fast wrong answer must fail the run before it becomes a
number, so each load command verifies the server first and raises
``VerificationError`` listing what differed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from h3lab.bench.load.client import classify, request_headers, run_async, split_url
from h3lab.bench.load.result import content_type_ok

if TYPE_CHECKING:
    from h3lab.bench.route_tables import BenchRequest


class VerificationError(AssertionError):
    """A response differed from what the workload expects (before any timing)."""


def _distinct(requests: Iterable[BenchRequest]) -> list[BenchRequest]:
    seen: set[Any] = set()
    out = []
    for req in requests:
        key = (
            req.method,
            req.path,
            req.body,
            req.content_type,
            req.expect_status,
            req.expect_content_type,
            req.expect_body,
        )
        if key not in seen:
            seen.add(key)
            out.append(req)
    return out


async def averify(
    url: str,
    requests: Iterable[BenchRequest],
    *,
    require_headers: Sequence[str] = ("date", "server"),
    timeout: float = 5.0,
) -> int:
    """Async ``verify``; returns the number of requests sent."""
    import aiohttp

    base, _, _ = split_url(url)
    problems: list[str] = []
    distinct = _distinct(requests)
    async with aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=timeout), auto_decompress=False
    ) as session:
        for req in distinct:
            where = f"{req.method} {req.path}"
            try:
                async with session.request(
                    req.method, base + req.path, data=req.body or None, headers=request_headers(req)
                ) as resp:
                    body = await resp.read()
                    status, headers = resp.status, resp.headers
            except Exception as exc:
                problems.append(f"{where}: {classify(exc)} error: {exc!r}")
                continue
            if status != req.expect_status:
                problems.append(f"{where}: status {status}, expected {req.expect_status}")
            ctype = headers.get("Content-Type")
            if not content_type_ok(req.expect_content_type, ctype):
                problems.append(
                    f"{where}: content-type {ctype!r}, expected {req.expect_content_type!r}"
                )
            if req.expect_body is not None and body != req.expect_body:
                problems.append(f"{where}: body {body[:200]!r}, expected {req.expect_body[:200]!r}")
            problems.extend(
                f"{where}: missing {name!r} header"
                for name in require_headers
                if name not in headers
            )
    if problems:
        more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
        raise VerificationError(
            f"{len(problems)} verification problem(s) at {url}: " + "; ".join(problems[:10]) + more
        )
    return len(distinct)


def verify(
    url: str,
    requests: Iterable[BenchRequest],
    *,
    require_headers: Sequence[str] = ("date", "server"),
    timeout: float = 5.0,
) -> None:
    """Send each distinct request once; raise ``VerificationError`` listing what differed.

    TechEmpower-style: status, content type (media type, or exactly when the
    expectation has parameters) and body (bytes, exactly) when the request
    states them, plus the presence of ``require_headers`` (``Date`` and
    ``Server`` by default, which h3lab always sends).
    """
    reqs = list(requests)
    run_async(lambda: averify(url, reqs, require_headers=require_headers, timeout=timeout))
