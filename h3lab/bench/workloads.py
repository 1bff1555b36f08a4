"""Deterministic request generators: the traffic that hits a route table.

Theory of operation
-------------------
Every request a workload makes comes from a route table
(``h3lab.bench.route_tables``: each route knows the paths it makes and what
a correct server answers for them), so every answer can be checked.

Workloads draw ``(route, k)`` pairs from a seeded ``random.Random``:
``requests(count)`` builds a fresh generator each call, so the same seed gives
the same sequence every time, in every process (no use of ``hash()``, whose
string hashing is salted per process).

The key space of a Zipf workload is the set of distinct *concrete* paths, not
routes: a ``:param`` route contributes many keys (``/orders/0``,
``/orders/1``...), so a route cache sees a realistic number of distinct keys.
Ranks are assigned to the keys in a seeded shuffled order, and a request picks
rank ``r`` with probability proportional to ``1 / (r + 1) ** s`` through an
explicit cumulative distribution (``s = 0`` is uniform). ``numpy.random.zipf``
is not used: it samples an unbounded support.

Without an explicit table a workload uses ``default_table()``, the bench
app's (see ``h3lab.bench.route_tables`` for its environment variables). The
table's names are re-exported here: they lived in this module once, and code
written then (the micro targets among it) imports them from here.
"""

from __future__ import annotations

import bisect
import csv
import inspect
import itertools
import random
from collections.abc import Callable, Iterator, Sequence
from itertools import accumulate
from pathlib import Path
from typing import Any

from h3lab.bench.route_tables import (
    ADVERSARIAL_PREFIX,
    DEFAULT_ROUTES,
    DEFAULT_TABLE_SEED,
    ECHO_PATH,
    JSON_TYPE,
    KINDS,
    RESERVED_FIRST,
    ROUTES_ENV,
    SEED_ENV,
    TEXT_TYPE,
    BenchRequest,
    Key,
    RouteSpec,
    default_table,
    env_int,
    json_body,
    route_table,
)

# --------------------------------------------------------------------------
# workloads
# --------------------------------------------------------------------------


class Workload:
    """A named, seeded request generator.

    Subclasses implement ``_generate(rng)``, an endless iterator of
    ``BenchRequest``; everything else derives from it.
    """

    name: str = "workload"
    repeats_keys: bool = True
    """False for workloads whose point is never repeating a key (adversarial):
    load engines must then pre-generate enough requests for the whole run
    instead of cycling a small pool, or the cache would see hits it must not."""

    def __init__(self, seed: int = 0, params: dict[str, Any] | None = None) -> None:
        self.seed = seed
        self.params: dict[str, Any] = {"seed": seed, **(params or {})}

    def _generate(self, rng: random.Random) -> Iterator[BenchRequest]:
        raise NotImplementedError

    def requests(self, count: int) -> Iterator[BenchRequest]:
        """The first ``count`` requests; the same sequence on every call."""
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count}")
        rng = random.Random(f"{self.name}:{self.seed}")
        return itertools.islice(self._generate(rng), count)

    def keys(self, count: int) -> list[Key]:
        """``(method, routing path)`` of the first ``count`` requests (for the cache simulator)."""
        return [request.key for request in self.requests(count)]

    def working_set(self, count: int | None = None) -> int:
        """Distinct keys: of the first ``count`` requests, or of the whole key space."""
        if count is not None:
            return len(set(self.keys(count)))
        return self._key_space()

    def _key_space(self) -> int:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<Workload {self.name} {self.params}>"


class _KeyUniverse:
    """The concrete (route, k) pairs of a table: static routes once, dynamic ones ``variants`` times."""

    def __init__(self, table: Sequence[RouteSpec], n_keys: int | None, rng: random.Random) -> None:
        if not table:
            raise ValueError("the route table is empty")
        static = [spec for spec in table if spec.is_static]
        dynamic = [spec for spec in table if not spec.is_static]
        if n_keys is None:
            n_keys = len(static) + 10 * len(dynamic)
        if n_keys < 1:
            raise ValueError(f"n_keys must be >= 1, got {n_keys}")
        pairs: list[tuple[RouteSpec, int]] = [(spec, 0) for spec in static]
        if dynamic:
            # Round-robin over the dynamic routes: route j gets k = 0, 1, 2...
            for i in range(max(0, n_keys - len(pairs))):
                pairs.append((dynamic[i % len(dynamic)], i // len(dynamic)))
        pairs = pairs[:n_keys] if len(pairs) > n_keys else pairs
        rng.shuffle(pairs)  # which key is hot is a seeded choice, not table order
        self.pairs = pairs

    def __len__(self) -> int:
        return len(self.pairs)


def zipf_cum_weights(n: int, s: float) -> list[float]:
    """Cumulative weights of ranks 0..n-1 with P(r) proportional to 1 / (r+1)**s."""
    if s < 0:
        raise ValueError(f"zipf exponent s must be >= 0, got {s}")
    return list(accumulate(1.0 / (rank + 1) ** s for rank in range(n)))


class _DrawWorkload(Workload):
    """Requests drawn i.i.d. from a key universe with given cumulative weights."""

    def __init__(
        self,
        name: str,
        table: Sequence[RouteSpec],
        seed: int,
        n_keys: int | None,
        s: float,
        params: dict[str, Any],
    ) -> None:
        self.name = name
        super().__init__(seed, params)
        self.universe = _KeyUniverse(table, n_keys, random.Random(f"universe:{name}:{seed}"))
        self.cum = zipf_cum_weights(len(self.universe), s)
        self._requests = [spec.request(k) for spec, k in self.universe.pairs]

    def _generate(self, rng: random.Random) -> Iterator[BenchRequest]:
        cum = self.cum
        total = cum[-1]
        requests = self._requests
        last = len(cum) - 1
        rand = rng.random
        while True:
            # bisect on an explicit CDF over ranks: bounded support by construction
            yield requests[min(bisect.bisect_right(cum, rand() * total), last)]

    def _key_space(self) -> int:
        return len(self.universe)


def _table(table: Sequence[RouteSpec] | None) -> Sequence[RouteSpec]:
    return default_table() if table is None else table


def uniform(
    table: Sequence[RouteSpec] | None = None, seed: int = 0, n_keys: int | None = None
) -> Workload:
    """Every concrete key equally likely (Zipf with s = 0)."""
    return _DrawWorkload("uniform", _table(table), seed, n_keys, 0.0, {"n_keys": n_keys})


def zipf(
    table: Sequence[RouteSpec] | None = None,
    s: float = 1.0,
    seed: int = 0,
    n_keys: int | None = None,
) -> Workload:
    """Zipf(s) popularity over distinct concrete paths; ``n_keys`` defaults to
    the static routes plus 10 concrete paths per dynamic route."""
    return _DrawWorkload("zipf", _table(table), seed, n_keys, s, {"s": s, "n_keys": n_keys})


class _ScanWorkload(Workload):
    name = "scan"

    def __init__(self, table: Sequence[RouteSpec], seed: int, n_keys: int | None) -> None:
        super().__init__(seed, {"n_keys": n_keys})
        self.universe = _KeyUniverse(table, n_keys, random.Random(f"universe:scan:{seed}"))

    def _generate(self, rng: random.Random) -> Iterator[BenchRequest]:
        # Each key once, in the universe's seeded order; a second pass only
        # starts when the caller asks for more requests than there are keys.
        for spec, k in itertools.cycle(self.universe.pairs):
            yield spec.request(k)

    def _key_space(self) -> int:
        return len(self.universe)


def scan(
    table: Sequence[RouteSpec] | None = None, seed: int = 0, n_keys: int | None = None
) -> Workload:
    """Every key exactly once (cache-hostile: nothing is ever requested twice)."""
    return _ScanWorkload(_table(table), seed, n_keys)


# A prime modulus: k -> (a*k + b) mod P is a bijection on [0, P), so the
# adversarial ids never repeat within P requests (i.e. never, in practice),
# yet they look random to a cache.
_ADV_MODULUS = (1 << 61) - 1


class _AdversarialWorkload(Workload):
    name = "adversarial"
    repeats_keys = False

    def __init__(self, seed: int, junk_share: float) -> None:
        if not 0.0 <= junk_share <= 1.0:
            raise ValueError(f"junk_share must be in 0..1, got {junk_share}")
        super().__init__(seed, {"junk_share": junk_share})
        self.junk_share = junk_share

    def _generate(self, rng: random.Random) -> Iterator[BenchRequest]:
        a = rng.randrange(1, _ADV_MODULUS)
        b = rng.randrange(_ADV_MODULUS)
        for i in itertools.count():
            n = (a * i + b) % _ADV_MODULUS
            if rng.random() < self.junk_share:
                # Matches no route: a 404. Misses are not cached by h3lab, but
                # they still cost a full (failed) match on every strategy.
                yield BenchRequest(
                    "GET", f"/nowhere-{n}/x", expect_status=404, expect_content_type=JSON_TYPE
                )
            else:
                # Matches /users/:id with a never-seen id: a cache entry that
                # will never be hit again, pushing useful ones out.
                yield BenchRequest(
                    "GET",
                    f"{ADVERSARIAL_PREFIX}/{n}",
                    expect_status=200,
                    expect_content_type=JSON_TYPE,
                    expect_body=json_body({"id": str(n)}),
                    route=f"{ADVERSARIAL_PREFIX}/:id",
                    params=(("id", str(n)),),
                )

    def _key_space(self) -> int:
        return _ADV_MODULUS


def adversarial(seed: int = 0, junk_share: float = 0.1) -> Workload:
    """Unique ``/users/<n>`` paths (200, never repeated) plus a share of 404 junk.

    Targets the bench app's ``/users/:id`` route; its key space is unbounded
    in practice (``working_set()`` returns 2**61 - 1).
    """
    return _AdversarialWorkload(seed, junk_share)


def padded_json(size: int, seq: int = 0) -> bytes:
    """A compact JSON object of exactly ``size`` bytes (at least the skeleton's)."""
    skeleton = json_body({"seq": seq, "pad": ""})
    return json_body({"seq": seq, "pad": "x" * max(0, size - len(skeleton))})


def echo_request(size: int, seq: int = 0) -> BenchRequest:
    """POST /echo with a JSON body; the echo handler re-encodes it identically."""
    body = padded_json(size, seq)
    return BenchRequest(
        "POST",
        ECHO_PATH,
        body=body,
        content_type=JSON_TYPE,
        expect_status=200,
        expect_content_type=JSON_TYPE,
        expect_body=body,
        route=ECHO_PATH,
    )


class _MixedWorkload(Workload):
    name = "mixed"

    # Share of requests per kind (before the POST share is taken out).
    KIND_WEIGHTS = {"static": 0.45, "param": 0.40, "wildcard": 0.075, "catchall": 0.075}

    def __init__(
        self,
        table: Sequence[RouteSpec],
        seed: int,
        body_sizes: Sequence[int],
        post_share: float,
        s: float,
    ) -> None:
        if not 0.0 <= post_share <= 1.0:
            raise ValueError(f"post_share must be in 0..1, got {post_share}")
        if post_share > 0 and not body_sizes:
            raise ValueError("body_sizes must not be empty when post_share > 0")
        if any(size < 1 for size in body_sizes):
            raise ValueError(f"body_sizes must be >= 1, got {list(body_sizes)}")
        super().__init__(seed, {"body_sizes": list(body_sizes), "post_share": post_share, "s": s})
        self.body_sizes = tuple(body_sizes)
        self.post_share = post_share
        rng = random.Random(f"universe:mixed:{seed}")
        self.by_kind: dict[str, tuple[list[BenchRequest], list[float]]] = {}
        for kind in KINDS:
            specs = [spec for spec in table if spec.kind == kind]
            if not specs:
                continue
            universe = _KeyUniverse(specs, None, rng)
            requests = [spec.request(k) for spec, k in universe.pairs]
            self.by_kind[kind] = (requests, zipf_cum_weights(len(requests), s))
        if not self.by_kind:
            raise ValueError("the route table is empty")
        self.kinds = list(self.by_kind)
        self.kind_cum = list(accumulate(self.KIND_WEIGHTS[k] for k in self.kinds))

    def _generate(self, rng: random.Random) -> Iterator[BenchRequest]:
        for seq in itertools.count():
            if rng.random() < self.post_share:
                yield echo_request(rng.choice(self.body_sizes), seq)
                continue
            kind = self.kinds[
                min(
                    bisect.bisect_right(self.kind_cum, rng.random() * self.kind_cum[-1]),
                    len(self.kinds) - 1,
                )
            ]
            requests, cum = self.by_kind[kind]
            yield requests[min(bisect.bisect_right(cum, rng.random() * cum[-1]), len(cum) - 1)]

    def _key_space(self) -> int:
        return sum(len(requests) for requests, _ in self.by_kind.values()) + (
            1 if self.post_share > 0 else 0
        )


def mixed(
    seed: int = 0,
    body_sizes: Sequence[int] = (64, 1024, 16384),
    table: Sequence[RouteSpec] | None = None,
    post_share: float = 0.1,
    s: float = 1.0,
) -> Workload:
    """A realistic API mix: static, param and wildcard GETs (Zipf within each
    kind) and ``post_share`` JSON POSTs to ``/echo`` with bodies of ``body_sizes``.

    ``seed`` comes first (unlike the other generators, whose first argument is
    the table): ``mixed(seed)`` targets the bench app's default table.
    """
    return _MixedWorkload(_table(table), seed, body_sizes, post_share, s)


# -- traces ------------------------------------------------------------------

_TRACE_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class _TraceWorkload(Workload):
    name = "trace"

    def __init__(self, path: Path, requests: list[BenchRequest]) -> None:
        super().__init__(0, {"path": str(path), "length": len(requests)})
        self.path = path
        self._requests = requests

    def _generate(self, rng: random.Random) -> Iterator[BenchRequest]:
        # Replayed in order, looping when more requests are asked for than recorded.
        return itertools.cycle(self._requests)

    def _key_space(self) -> int:
        return len({request.key for request in self._requests})


def _trace_rows(path: Path) -> tuple[list[str], list[dict[str, Any]]]:
    """The column names and the rows (dicts with a ``_line`` number) of a trace file."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with path.open(newline="") as f:
            rows = [row for row in csv.reader(f) if row and any(cell.strip() for cell in row)]
        if not rows:
            raise ValueError(f"trace {path}: the file is empty")
        first = [cell.strip().lower() for cell in rows[0]]
        if set(first) & {"method", "path", "body_size", "status"}:  # a header row
            header, rows = first, rows[1:]
        else:
            header = ["method", "path", "body_size", "status"][: max(len(r) for r in rows)]
        out = []
        for line, row in enumerate(rows, start=2 if header is first else 1):
            if len(row) > len(header):
                raise ValueError(
                    f"trace {path}: line {line} has {len(row)} columns, expected {len(header)}"
                )
            out.append(
                {"_line": line, **dict(zip(header, (cell.strip() for cell in row), strict=False))}
            )
        return header, out
    if suffix in (".parquet", ".pq"):
        try:
            import pandas as pd  # lazy: heavy, and only traces need it
        except ImportError as exc:  # pragma: no cover - pandas is a study dependency
            raise ValueError(
                f"trace {path}: reading Parquet needs pandas + pyarrow ({exc})"
            ) from None
        try:
            frame = pd.read_parquet(path)
        except Exception as exc:
            raise ValueError(f"trace {path}: not a readable Parquet file ({exc})") from None
        frame.columns = [str(c).lower() for c in frame.columns]
        records = frame.to_dict("records")
        return list(frame.columns), [{"_line": i + 1, **record} for i, record in enumerate(records)]
    raise ValueError(f"trace {path}: unsupported file type {suffix!r} (use .csv or .parquet)")


def _trace_request(path: Path, row: dict[str, Any]) -> BenchRequest:
    where = f"trace {path}: row {row['_line']}"
    method = str(row.get("method") or "").strip().upper()
    target = str(row.get("path") or "").strip()
    if method not in _TRACE_METHODS:
        raise ValueError(f"{where}: method must be one of {sorted(_TRACE_METHODS)}, got {method!r}")
    if not target.startswith("/"):
        raise ValueError(f"{where}: path must start with '/', got {target!r}")
    size = _trace_int(row.get("body_size"), 0, f"{where}: body_size")
    status = _trace_int(row.get("status"), 200, f"{where}: status")
    if not 100 <= status <= 599:
        raise ValueError(f"{where}: status must be in 100..599, got {status}")
    if size:
        body = padded_json(size)
        # Only the echo endpoint's answer is predictable from the request alone.
        is_echo = method == "POST" and target == ECHO_PATH and status == 200
        return BenchRequest(
            method,
            target,
            body,
            JSON_TYPE,
            status,
            JSON_TYPE if is_echo else None,
            body if is_echo else None,
        )
    return BenchRequest(method, target, expect_status=status)


def _trace_int(value: Any, default: int, what: str) -> int:
    if value is None or (isinstance(value, float) and value != value) or value == "":
        return default  # absent column, empty cell or a Parquet null (NaN)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be an integer, got {value!r}") from None
    if number != int(number) or number < 0:
        raise ValueError(f"{what} must be a non-negative integer, got {value!r}")
    return int(number)


def trace(path: str | Path) -> Workload:
    """Replay a recorded ``method,path[,body_size[,status]]`` trace (CSV or Parquet).

    CSV may have a header row naming the columns (any order); without one the
    columns are positional. Parquet needs ``method`` and ``path`` columns.
    ``status`` (default 200) is the expected status; bodies of ``body_size``
    bytes are compact JSON. Every problem raises ``ValueError`` naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"trace {path}: no such file")
    columns, rows = _trace_rows(path)
    missing = {"method", "path"} - set(columns)
    if missing:
        raise ValueError(f"trace {path}: missing column(s) {sorted(missing)}")
    if not rows:
        raise ValueError(f"trace {path}: no requests in the file")
    return _TraceWorkload(path, [_trace_request(path, row) for row in rows])


# --------------------------------------------------------------------------
# registry
# --------------------------------------------------------------------------

WORKLOADS: dict[str, Callable[..., Workload]] = {
    "uniform": uniform,
    "zipf": zipf,
    "scan": scan,
    "adversarial": adversarial,
    "mixed": mixed,
    "trace": trace,
}


def make_workload(name: str, **params: Any) -> Workload:
    """``make_workload("zipf", s=1.2, seed=3)``; ``routes=N`` (and ``table_seed``)
    builds the table instead of passing ``table``. ValueError on a bad name or parameter."""
    try:
        factory = WORKLOADS[name]
    except KeyError:
        raise ValueError(f"workload must be one of {sorted(WORKLOADS)}, got {name!r}") from None
    if "routes" in params:
        params["table"] = route_table(params.pop("routes"), seed=params.pop("table_seed", 0))
    accepted = inspect.signature(factory).parameters
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ValueError(f"workload {name!r} does not take {unknown}; it takes {sorted(accepted)}")
    return factory(**params)


__all__ = [
    "ADVERSARIAL_PREFIX",
    "DEFAULT_ROUTES",
    "DEFAULT_TABLE_SEED",
    "ECHO_PATH",
    "JSON_TYPE",
    "KINDS",
    "RESERVED_FIRST",
    "ROUTES_ENV",
    "SEED_ENV",
    "TEXT_TYPE",
    "WORKLOADS",
    "BenchRequest",
    "Key",
    "RouteSpec",
    "Workload",
    "adversarial",
    "default_table",
    "echo_request",
    "env_int",
    "json_body",
    "make_workload",
    "mixed",
    "padded_json",
    "route_table",
    "scan",
    "trace",
    "uniform",
    "zipf",
    "zipf_cum_weights",
]
