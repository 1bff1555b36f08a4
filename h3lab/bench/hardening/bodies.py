"""Event-loop cost of hostile request bodies (issue 10, items 11 and 12).

A handler that parses a body runs on the event loop: while it parses, no
other client is served. This bench times, in process, what one hostile body
costs to refuse -- the time every other client waits:

* ``multipart-parts``: 15,000 tiny parts (870 KB, under the default 1 MiB
  body limit), refused with 400 "Too many form fields" at the default
  ``max_fields=1000``. ``python-multipart`` (h3lab's parser, limits applied as
  parts arrive) against ``stdlib-email`` (the whole-body ``email`` parser
  h3lab used before, kept here as the baseline);
* ``json-deep``: ``[`` nested 100,000 deep, refused with 400 by
  ``event.json()`` (the C scanner's recursion limit).

``python -m h3lab.bench.hardening.bodies [--quick]`` prints one line per case (median
ms per body, [min, max]) and the ratio of the two multipart parsers.
``--quick`` uses 600 parts (and a 60-field limit) so it runs in
seconds; the ratio keeps its meaning, the absolute figures do not.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

from h3lab.errors import HTTPError
from h3lab.event import H3Event
from h3lab.utils.form import parse_form

BOUNDARY = "b0undary"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"


def many_parts_body(parts: int = 15_000) -> bytes:
    """``parts`` one-byte fields, 58 bytes each: 15,000 of them make 870 KB."""
    one = b"--" + BOUNDARY.encode() + b'\r\nContent-Disposition: form-data; name="f"\r\n\r\nx\r\n'
    return one * parts + b"--" + BOUNDARY.encode() + b"--\r\n"


def deep_json_body(depth: int = 100_000) -> bytes:
    return b"[" * depth + b"]" * depth


def email_parse_multipart(body: bytes, max_fields: int) -> int:
    """The parser h3lab used before issue 10: the whole body through ``email``,
    the field limit checked afterwards. Returns the number of parts."""
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + MULTIPART.encode() + b"\r\n\r\n" + body
    )
    fields = 0
    for part in message.iter_parts():
        assert isinstance(part, EmailMessage)
        part.get_payload(decode=True)
        fields += 1
        if fields > max_fields:
            raise HTTPError(400, "Too many form fields", {"limit": max_fields})
    return fields


def _refused(fn: Callable[[], Any], status: int = 400) -> Callable[[], None]:
    def run() -> None:
        try:
            fn()
        except HTTPError as exc:
            if exc.status != status:
                raise
        else:
            raise AssertionError("the hostile body was accepted")

    return run


def _json_refusal(body: bytes) -> Callable[[], None]:
    def parse() -> Any:
        event = H3Event()  # a fresh one: event.json() caches its result
        event._body = body
        return _drive(event.json())

    return _refused(parse)


def _drive(coro: Any) -> Any:
    """Run a coroutine that never suspends (``event.json()``) without a loop."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    coro.close()
    raise AssertionError("did not expect a suspension")


def cases(quick: bool = False) -> dict[str, Callable[[], None]]:
    parts, limit = (600, 60) if quick else (15_000, 1_000)
    body = many_parts_body(parts)
    return {
        "multipart-parts/python-multipart": _refused(
            lambda: parse_form(MULTIPART, body, max_fields=limit)
        ),
        "multipart-parts/stdlib-email": _refused(lambda: email_parse_multipart(body, limit)),
        "json-deep/json": _json_refusal(deep_json_body(10_000 if quick else 100_000)),
    }


def measure(fn: Callable[[], None], repetitions: int) -> list[float]:
    fn()  # warm-up, and the refusal is checked
    samples = []
    for _ in range(repetitions):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def run(quick: bool = False, repetitions: int | None = None) -> dict[str, list[float]]:
    """ms per refused body, per case."""
    reps = repetitions if repetitions is not None else (3 if quick else 5)
    return {name: measure(fn, reps) for name, fn in cases(quick).items()}


def report(results: dict[str, list[float]]) -> str:
    lines = []
    for name, samples in results.items():
        median = statistics.median(samples)
        lines.append(f"{name:36} {median:10.2f} ms  [{min(samples):.2f}, {max(samples):.2f}]")
    new = results.get("multipart-parts/python-multipart")
    old = results.get("multipart-parts/stdlib-email")
    if new and old:
        ratio = statistics.median(old) / statistics.median(new)
        lo, hi = min(old) / max(new), max(old) / min(new)
        lines.append(
            f"multipart refusal: python-multipart is {ratio:.1f} x faster [{lo:.1f}, {hi:.1f}] "
            "than the stdlib email parser (event-loop time per body)"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m h3lab.bench.hardening.bodies", description=__doc__
    )
    parser.add_argument("--quick", action="store_true", help="600 parts, a 60-field limit (smoke)")
    parser.add_argument("--repetitions", type=int, default=None)
    args = parser.parse_args(argv)
    if args.repetitions is not None and args.repetitions < 1:
        print("error: --repetitions must be >= 1", file=sys.stderr)
        return 2
    print(report(run(args.quick, args.repetitions)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
