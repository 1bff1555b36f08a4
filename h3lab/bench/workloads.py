"""Deterministic request generators: route tables and the traffic that hits them.

Theory of operation
-------------------
A benchmark that sends the wrong requests measures nothing, and one whose
answers are not checked can reward a fast wrong answer. So a workload here is
built from a *route table* whose every route knows

* its pattern (to register it on an ``H3`` app: ``RouteSpec.handler`` gives
  the handler ``h3lab.bench.apps`` uses),
* how to make concrete paths from an integer ``k`` (``RouteSpec.path(k)``),
* and exactly what the app answers for each of them (``RouteSpec.request(k)``
  is a ``BenchRequest`` carrying the expected status, content type and body).

The table is generated so that the answer is known *without* running a
router: static segments are lowercase words, while every value put in a
dynamic segment contains a digit, so a value can never be mistaken for a
static word; and at each node of the route tree (a prefix of segment shapes)
at most one dynamic kind (``:param``, ``*`` or ``**:name``) exists. Under
rou3's priority (static, then ``:param``, then ``*``, then ``**:name``, with
backtracking) the depth-first walk for ``route.path(k)`` therefore always
tries that route's own branch first at every segment, and finds it: the route
that made a path is the route that matches it, under every strategy.

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

Environment: ``H3LAB_BENCH_ROUTES`` (route count, default 200) and
``H3LAB_BENCH_SEED`` (table seed, default 0) choose ``default_table()``, which
both ``h3lab.bench.apps.create_app`` and every workload built without an
explicit table use, so a load generator and the server it targets agree when
they share the environment.
"""

from __future__ import annotations

import bisect
import csv
import inspect
import itertools
import json
import os
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from pathlib import Path
from typing import Any

from h3lab.routing import routing_path

Key = tuple[str, str]

TEXT_TYPE = "text/plain; charset=utf-8"
JSON_TYPE = "application/json"

ROUTES_ENV = "H3LAB_BENCH_ROUTES"
SEED_ENV = "H3LAB_BENCH_SEED"
DEFAULT_ROUTES = 200
DEFAULT_TABLE_SEED = 0

ECHO_PATH = "/echo"
ADVERSARIAL_PREFIX = "/users"

KINDS = ("static", "param", "wildcard", "catchall")

# First segments the bench app already uses for its own endpoints (the demo's
# benchmark routes and the echo); the table never starts with them, so it can
# be registered next to them without a duplicate or a priority clash.
RESERVED_FIRST = frozenset({"api", "users", "plaintext", "json", "echo"})

# Lowercase letters and hyphens only: a dynamic value always contains a digit,
# so it can never equal a static segment (see the theory of operation).
_GROUPS = (
    "accounts", "orders", "products", "inventory", "billing", "catalog", "search",
    "reports", "admin", "auth", "media", "teams", "projects", "tickets", "invoices",
    "payments", "shipping", "reviews", "analytics", "settings", "customers", "vendors",
    "warehouses", "campaigns", "coupons", "subscriptions", "notifications", "messages",
    "files", "jobs", "webhooks", "integrations", "audit", "locales", "pages", "posts",
    "comments", "tags", "categories", "events",
)  # fmt: skip
_WORDS = (
    "items", "details", "history", "summary", "export", "archive", "comments", "tags",
    "members", "roles", "permissions", "preview", "status", "metrics", "stats", "owners",
    "attachments", "versions", "drafts", "published", "pending", "approved", "rejected",
    "recent", "popular", "featured", "latest", "search", "filters", "config", "limits",
    "quotas", "usage", "logs", "activity", "timeline", "feed", "followers", "following",
    "likes", "shares", "notes", "labels", "milestones", "releases", "builds", "deployments",
    "alerts", "rules", "groups", "contacts", "addresses", "methods", "refunds", "disputes",
    "lines", "taxes", "discounts", "rates", "zones", "carriers", "labels-print", "returns",
    "exchanges", "ratings", "replies", "threads", "channels", "invites", "sessions", "tokens",
    "keys", "scopes", "audits", "snapshots", "backups", "restores", "imports", "exports-csv",
)  # fmt: skip

_MAX_ATTEMPTS_PER_ROUTE = 400


# --------------------------------------------------------------------------
# requests and routes
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchRequest:
    """One request to send, and what a correct server answers.

    ``expect_body`` None means "not checked" (only the status and, when set,
    the content type are). ``route`` and ``params`` are what the router must
    find (for in-process checks); None when the request must not match.
    """

    method: str
    path: str
    body: bytes = b""
    content_type: str | None = None
    expect_status: int = 200
    expect_content_type: str | None = None
    expect_body: bytes | None = None
    route: str | None = None
    params: tuple[tuple[str, str], ...] = ()

    @property
    def key(self) -> Key:
        """``(method, routing path)``: what a route cache is keyed by."""
        return (self.method, routing_path(self.path.partition("?")[0]))

    def check(self, status: int, content_type: str | None, body: bytes | None) -> str | None:
        """What is wrong with a response to this request (None when it is right).

        The content type is compared by media type (``text/plain`` matches
        ``text/plain; charset=utf-8``: peers differ in parameters). The body
        must be byte-identical, except that a JSON body may differ in
        whitespace or key order if it decodes to the same value (a peer's JSON
        encoder may add spaces; the content must still be exact).
        """
        if status != self.expect_status:
            return f"{self.method} {self.path}: status {status}, expected {self.expect_status}"
        if self.expect_content_type is not None and _media_type(content_type) != _media_type(
            self.expect_content_type
        ):
            return (
                f"{self.method} {self.path}: content-type {content_type!r}, "
                f"expected {self.expect_content_type!r}"
            )
        if (
            self.expect_body is not None
            and body != self.expect_body
            and not (
                _media_type(self.expect_content_type) == JSON_TYPE
                and _same_json(body, self.expect_body)
            )
        ):
            return (
                f"{self.method} {self.path}: body {body!r:.200}, expected {self.expect_body!r:.200}"
            )
        return None


def _media_type(content_type: str | None) -> str | None:
    if content_type is None:
        return None
    return content_type.partition(";")[0].strip().lower()


def _same_json(a: bytes | None, b: bytes) -> bool:
    if a is None:
        return False
    try:
        return json.loads(a) == json.loads(b)
    except ValueError:
        return False


def json_body(value: Any) -> bytes:
    """Compact JSON, as h3lab encodes dicts (for predicting response bodies).

    Written independently of ``h3lab.response`` on purpose: the expectation
    must not share a bug with the code it checks.
    """
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class RouteSpec:
    """One route of a generated table: registrable, and able to make paths.

    ``segments`` is the pattern split on ``/``; ``dynamic`` lists, in order,
    ``(segment index, kind, param name)`` of its dynamic segments.
    """

    pattern: str
    kind: str
    index: int
    method: str = "GET"
    segments: tuple[str, ...] = field(default=(), repr=False)
    dynamic: tuple[tuple[int, str, str], ...] = field(default=(), repr=False)

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(name for _, _, name in self.dynamic)

    @property
    def is_static(self) -> bool:
        return not self.dynamic

    def values(self, k: int) -> tuple[str, ...]:
        """The values of the dynamic segments for ``k`` (each holds a digit)."""
        if k < 0:
            raise ValueError(f"k must be >= 0, got {k}")
        out = []
        for j, (_, kind, _) in enumerate(self.dynamic):
            # The first value carries k, so distinct k give distinct paths;
            # later ones vary a little for realism.
            base = str(k) if j == 0 else str(k % 97 + j)
            out.append(f"{base}/doc-{k % 7}.txt" if kind == "catchall" else base)
        return tuple(out)

    def params(self, k: int) -> dict[str, str]:
        """The params the router must return for ``path(k)``."""
        return dict(zip(self.param_names, self.values(k), strict=True))

    def path(self, k: int = 0) -> str:
        """A concrete path this route (and only it) answers; static ignores ``k``."""
        if not self.dynamic:
            return self.pattern
        parts = list(self.segments)
        for (position, _, _), value in zip(self.dynamic, self.values(k), strict=True):
            parts[position] = value
        return "/" + "/".join(parts)

    def response_value(self, params: dict[str, str]) -> Any:
        """What the handler returns: the pattern as text, or route + params as JSON."""
        if not self.dynamic:
            return self.pattern
        return {"route": self.pattern, "params": {n: params[n] for n in self.param_names}}

    def expected_body(self, k: int) -> bytes:
        value = self.response_value(self.params(k))
        return value.encode() if isinstance(value, str) else json_body(value)

    def expected_content_type(self) -> str:
        return TEXT_TYPE if not self.dynamic else JSON_TYPE

    def handler(self) -> Callable[[Any], Any]:
        """The handler the bench app registers for this route."""
        spec = self
        if not self.dynamic:
            text = self.pattern

            def static_handler(event: Any) -> str:
                return text

            static_handler.__name__ = f"route{self.index}"
            return static_handler

        def dynamic_handler(event: Any) -> Any:
            return spec.response_value(event.params)

        dynamic_handler.__name__ = f"route{self.index}"
        return dynamic_handler

    def request(self, k: int = 0) -> BenchRequest:
        params = self.params(k)
        return BenchRequest(
            self.method,
            self.path(k),
            expect_status=200,
            expect_content_type=self.expected_content_type(),
            expect_body=self.expected_body(k),
            route=self.pattern,
            params=tuple(params.items()),
        )


# --------------------------------------------------------------------------
# route tables
# --------------------------------------------------------------------------


def _singular(word: str) -> str:
    word = word.replace("-", "_")
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith("ses") or word.endswith("xes"):
        return word[:-2]
    if word.endswith("s") and len(word) > 3:
        return word[:-1]
    return word


def _kind_counts(
    n: int, static_share: float, param_share: float, wildcard_share: float
) -> dict[str, int]:
    shares = (static_share, param_share, wildcard_share)
    if any(s < 0 for s in shares) or abs(sum(shares) - 1.0) > 1e-6:
        raise ValueError(
            "static_share + param_share + wildcard_share must be 1 with none negative, "
            f"got {static_share} + {param_share} + {wildcard_share}"
        )
    n_static = round(n * static_share)
    n_wild = round(n * wildcard_share)
    n_param = n - n_static - n_wild
    if n_param < 0:  # rounding both up on a tiny table
        n_wild += n_param
        n_param = 0
    # Wildcard routes are split between `*` (one segment) and `**:path` (the rest).
    n_star = (n_wild + 1) // 2
    return {"static": n_static, "param": n_param, "wildcard": n_star, "catchall": n_wild - n_star}


class _TableBuilder:
    """Draws candidate routes and keeps those that preserve the table's invariants."""

    def __init__(self, rng: random.Random, depth: tuple[int, int]) -> None:
        self.rng = rng
        self.lo, self.hi = depth
        self.shapes: set[tuple[str, ...]] = set()
        # node (tuple of shape items of the prefix) -> its one dynamic kind
        self.dynamic_at: dict[tuple[str, ...], str] = {}
        self.groups = [g for g in _GROUPS if g not in RESERVED_FIRST]

    def candidate(self, kind: str) -> tuple[list[str], list[int]] | None:
        rng = self.rng
        min_depth = self.lo if kind == "static" else max(self.lo, 2)
        if min_depth > self.hi:
            return None
        n = rng.randint(min_depth, self.hi)
        words = [rng.choice(self.groups)] + [rng.choice(_WORDS) for _ in range(n - 1)]
        if kind == "static":
            return words, []
        if kind == "catchall":
            return words, [n - 1]
        # The first segment stays static: a resource group, as in real APIs.
        positions = list(range(1, n))
        count = 1 if kind == "wildcard" or n < 3 or rng.random() < 0.6 else 2
        return words, sorted(rng.sample(positions, min(count, len(positions))))

    def try_add(self, kind: str, index: int) -> RouteSpec | None:
        drawn = self.candidate(kind)
        if drawn is None:
            return None
        words, positions = drawn
        dyn_kind = "param" if kind == "param" else kind
        shape = tuple("\x00" + dyn_kind if i in positions else w for i, w in enumerate(words))
        if shape in self.shapes:
            return None
        for i in positions:
            if self.dynamic_at.get(shape[:i], dyn_kind) != dyn_kind:
                return None  # another dynamic kind already hangs off this node
        segments = list(words)
        dynamic: list[tuple[int, str, str]] = []
        names: set[str] = set()
        for i in positions:
            name = _singular(words[i - 1]) + "_id" if i > 0 and i - 1 not in positions else "id"
            while name in names:
                name += "x"
            names.add(name)
            if dyn_kind == "param":
                segments[i] = ":" + name
            elif dyn_kind == "wildcard":
                segments[i] = "*"
                name = str(len(dynamic))  # rou3 names unnamed params "0", "1"
            else:
                name = "path"
                segments[i] = "**:" + name
            dynamic.append((i, dyn_kind, name))
        self.shapes.add(shape)
        for i in positions:
            self.dynamic_at[shape[:i]] = dyn_kind
        return RouteSpec(
            "/" + "/".join(segments),
            kind,
            index,
            "GET",
            tuple(segments),
            tuple(dynamic),
        )


def route_table(
    n: int,
    *,
    static_share: float = 0.5,
    param_share: float = 0.4,
    wildcard_share: float = 0.1,
    depth: tuple[int, int] = (1, 4),
    seed: int = 0,
) -> list[RouteSpec]:
    """``n`` distinct GET routes (no two of one shape), deterministic for ``seed``.

    ``wildcard_share`` is split between ``*`` routes (kind "wildcard") and
    ``**:path`` routes (kind "catchall"). Dynamic routes need two segments or
    more (the first is always a static resource group). Routes come in a
    seeded shuffled order; ``RouteSpec.index`` is the position in that order.
    """
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 100_000:
        raise ValueError(f"route_table n must be an int in 1..100000, got {n!r}")
    lo, hi = depth
    if not 1 <= lo <= hi:
        raise ValueError(f"depth must be (lo, hi) with 1 <= lo <= hi, got {depth!r}")
    counts = _kind_counts(n, static_share, param_share, wildcard_share)
    if hi < 2 and counts["static"] < n:
        raise ValueError(f"dynamic routes need depth >= 2, got depth={depth!r}")
    rng = random.Random(f"route_table:{seed}")
    order = [kind for kind in KINDS for _ in range(counts[kind])]
    rng.shuffle(order)
    builder = _TableBuilder(rng, (lo, hi))
    table: list[RouteSpec] = []
    for kind in order:
        for _ in range(_MAX_ATTEMPTS_PER_ROUTE):
            spec = builder.try_add(kind, len(table))
            if spec is not None:
                table.append(spec)
                break
        else:
            raise ValueError(
                f"cannot generate {n} distinct routes with depth={depth!r}: "
                f"ran out of {kind} shapes after {len(table)} routes (allow deeper routes)"
            )
    return table


def default_table() -> list[RouteSpec]:
    """The table of the bench app: ``H3LAB_BENCH_ROUTES`` / ``H3LAB_BENCH_SEED`` or 200 / 0."""
    return route_table(
        env_int(ROUTES_ENV, DEFAULT_ROUTES, 1), seed=env_int(SEED_ENV, DEFAULT_TABLE_SEED, 0)
    )


def env_int(name: str, default: int, lo: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from None
    if value < lo:
        raise ValueError(f"{name} must be >= {lo}, got {value}")
    return value


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
