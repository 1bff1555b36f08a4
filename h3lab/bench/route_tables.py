"""Route tables whose every answer is known: the routes a benchmark registers,
and for each concrete path the response a correct server gives.

Theory of operation
-------------------
A benchmark that sends the wrong requests measures nothing, and one whose
answers are not checked can reward a fast wrong answer. So every workload
(``h3lab.bench.workloads``) is built from a *route table* whose every route
knows

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

Environment: ``H3LAB_BENCH_ROUTES`` (route count, default 200) and
``H3LAB_BENCH_SEED`` (table seed, default 0) choose ``default_table()``, which
both ``h3lab.bench.apps.create_app`` and every workload built without an
explicit table use, so a load generator and the server it targets agree when
they share the environment.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable
from dataclasses import dataclass, field
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
