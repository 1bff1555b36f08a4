"""07 peers: h3lab presets against other Python servers and the raw httptools ceiling, in rounds.

Every server x endpoint is measured once per round (``bench.peers.compare`` on
``bench.rounds``), each server restarted for every round. The h3lab side of
every ratio is one *named* preset (``reference``, default ``performance``),
never whichever preset measured higher; ratios are paired by round.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from h3lab.bench.peer_apps import FLOOR_NAME
from h3lab.studies import loadrun
from h3lab.studies.common import (
    Progress,
    Rows,
    compare_pairs,
    fmt_num,
    fmt_pct,
    log,
    make_plan,
    metric,
)

if TYPE_CHECKING:
    import pandas as pd

STUDY = "peers"
CEILING = "raw"
# The framework floor (peer_apps/floor.py): raw plus what any framework
# must do, with no checks. A reference point, like the ceiling, not a peer:
# it answers these three endpoints and nothing else.
FLOOR = FLOOR_NAME
REFERENCE_POINTS = (CEILING, FLOOR)

FULL: dict[str, Any] = {
    "presets": ["baseline", "performance"],
    "reference": "performance",
    "peers": None,
    "endpoints": ["plaintext", "json", "params"],
    "duration": 2.0,
    "warmup": 0.5,
    "connections": 64,
    "rounds": 5,
    "engine": "auto",
}
QUICK: dict[str, Any] = {
    "presets": ["performance"],
    "peers": ["aiohttp", "raw"],
    "endpoints": ["plaintext"],
    "duration": 1.0,
    "warmup": 0.0,
    "connections": 32,
    "rounds": 3,
}


def plan(quick: bool = False, **given: Any) -> dict[str, Any]:
    p = make_plan(STUDY, FULL, QUICK, quick, given)
    if p["reference"] not in p["presets"]:
        raise ValueError(f"reference must be one of presets {p['presets']}, got {p['reference']!r}")
    return p


def estimate_s(p: Mapping[str, Any], n_servers: int | None = None) -> float:
    servers = n_servers or (len(p["presets"]) + len(p["peers"] or range(6)))
    per = len(p["endpoints"]) * (float(p["duration"]) + max(1.0, float(p["warmup"]))) + 1.5
    return servers * int(p["rounds"]) * per


def measure(p: Mapping[str, Any], notes: list[str] | None = None, progress: Progress = log) -> Rows:
    """Every preset and available peer on every endpoint, in rounds (skipped peers noted)."""
    from h3lab.bench import peers as bench_peers

    notes = notes if notes is not None else []
    available = bench_peers.available_peers(p["peers"], on_skip=notes.append)
    server_cpu, load_cpu = loadrun.cpus()
    n = len(p["presets"]) + len(available)
    progress(f"{STUDY}: {n} servers x {len(p['endpoints'])} endpoints x {p['rounds']} rounds, "
             f"about {estimate_s(p, n) / 60:.1f} min")  # fmt: skip
    return bench_peers.compare(
        endpoints=list(p["endpoints"]),
        peers=available,
        h3lab_presets=list(p["presets"]),
        duration=float(p["duration"]),
        connections=int(p["connections"]),
        engine=loadrun.resolve_engine(p["engine"]),
        server_cpu=server_cpu,
        load_cpu=load_cpu,
        repetitions=int(p["rounds"]),
        warmup=float(p["warmup"]),
        study=STUDY,
        progress=progress,
    )


def is_peer(server: str) -> bool:
    """Another framework: not an h3lab preset, the raw ceiling or the framework floor."""
    return server not in REFERENCE_POINTS and not server.startswith("h3lab-")


def reference_server(preset: str) -> str:
    return f"h3lab-{preset}"


def table(frame: pd.DataFrame, reference: str = "performance") -> pd.DataFrame:
    """Per endpoint and server: median req/s over rounds, share of the raw ceiling, and the
    named h3lab preset against the server (paired by round, Holm over the servers)."""
    import pandas as pd

    rows = metric(frame, "throughput_rps")
    rows = rows[rows["endpoint"].notna()] if "endpoint" in rows.columns else rows.iloc[0:0]
    ref = reference_server(reference)
    out = []
    for endpoint, g in rows.groupby("endpoint", sort=True):
        med = g.groupby("server")["value"].median()
        ceil = med.get(CEILING)
        g = g.assign(arm=g["server"])
        servers = [s for s in med.index if s != ref]
        compared = compare_pairs(g, "throughput_rps", [(s, ref) for s in servers]).set_index("base")
        for server, rps in med.sort_values(ascending=False).items():
            c = compared.loc[server] if server in compared.index else None
            out.append({
                "endpoint": endpoint, "server": server, "rps": float(rps),
                "rounds": int(g[g["server"] == server]["round"].nunique()) if "round" in g else 1,
                "of_ceiling": float(rps / ceil) if ceil else math.nan,
                "reference": ref,
                "ratio": c["ratio"] if c is not None else math.nan,
                "lo": c["lo"] if c is not None else math.nan,
                "hi": c["hi"] if c is not None else math.nan,
                "text": c["text"] if c is not None else ("reference" if server == ref else "n/a"),
            })  # fmt: skip
    return pd.DataFrame(out)


def floor_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per endpoint, the framework floor paired by round against the raw ceiling
    (its share of raw, with an interval) and against the fastest peer (by median):
    the most any framework layer reached here, to read the targets against."""
    import pandas as pd

    rows = metric(frame, "throughput_rps")
    rows = rows[rows["endpoint"].notna()] if "endpoint" in rows.columns else rows.iloc[0:0]
    out = []
    for endpoint, g in rows.groupby("endpoint", sort=True):
        med = g.groupby("server")["value"].median()
        others = [s for s in med.index if is_peer(s)]
        if FLOOR not in med.index or CEILING not in med.index or not others:
            continue
        fastest = str(med[others].idxmax())
        g = g.assign(arm=g["server"])
        pairs = compare_pairs(g, "throughput_rps", [(CEILING, FLOOR), (fastest, FLOOR)])
        by_base = pairs.set_index("base")
        if CEILING not in by_base.index or fastest not in by_base.index:
            continue
        of_raw, over_peer = by_base.loc[CEILING], by_base.loc[fastest]
        out.append({
            "endpoint": endpoint, "fastest_peer": fastest,
            "of_ceiling": of_raw["ratio"], "of_ceiling_lo": of_raw["lo"],
            "of_ceiling_hi": of_raw["hi"],
            "over_fastest": over_peer["ratio"], "over_fastest_lo": over_peer["lo"],
            "over_fastest_hi": over_peer["hi"], "over_fastest_text": over_peer["text"],
        })  # fmt: skip
    return pd.DataFrame(out)


def floor_sentence(floor: pd.DataFrame) -> str:
    """What the framework floor reached, endpoint by endpoint (paired intervals)."""
    if floor.empty:
        return ""
    parts = [
        f"{r.endpoint}: {fmt_pct(r.of_ceiling, digits=0)} of raw "
        f"[{fmt_pct(r.of_ceiling_lo, digits=0)}, {fmt_pct(r.of_ceiling_hi, digits=0)}], "
        f"and against the fastest peer ({r.fastest_peer}) {r.over_fastest_text}"
        for r in floor.itertuples()
    ]
    return (
        f"The framework floor (`{FLOOR}`: the raw server plus a request object, a route "
        f"table, the handler in its own context and its result encoded, with no checks), "
        f"paired by round: " + "; ".join(parts) + ". The rest of the ceiling is what no "
        "framework layer gets back on this machine."
    )


def ceiling_violations(t: pd.DataFrame, tolerance: float = 0.02) -> list[str]:
    """Servers that measured above the raw ceiling of the same run: physically impossible."""
    bad = t[(t["server"] != CEILING) & (t["of_ceiling"] > 1 + tolerance)]
    return [
        f"{r.server} on {r.endpoint} at {r.of_ceiling:.0%} of the raw ceiling"
        for r in bad.itertuples()
    ]


def record_validity(t: pd.DataFrame) -> None:
    """Feed the ceiling check: no server may beat the bare-httptools ceiling of the same run."""
    from h3lab.studies import validity

    rec = validity.current()
    for r in t.itertuples():
        if r.server != CEILING and not math.isnan(r.of_ceiling):
            ceiling = r.rps / r.of_ceiling
            rec.ceiling(r.rps, ceiling, label=f"{r.server} {r.endpoint}")


def versus_fastest(t: pd.DataFrame, reference: str = "performance") -> str:
    """Markdown: per endpoint, the h3lab preset against the fastest *other framework*
    (other h3lab presets, the raw ceiling and the framework floor are not peers), its
    share of the ceiling, the floor's share, and the preset against the floor (paired)."""
    ref = reference_server(reference)
    lines = [f"| endpoint | {ref} | fastest peer | {ref} x that peer | raw httptools ceiling "
             f"| {ref} / raw | {FLOOR} / raw | {ref} x {FLOOR} |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for endpoint, g in t.groupby("endpoint", sort=True):
        mine = g[g["server"] == ref]
        peers_ = g[g["server"].map(is_peer)]
        if mine.empty or peers_.empty:
            continue
        r0, best = mine.iloc[0], peers_.sort_values("rps", ascending=False).iloc[0]
        raw = g[g["server"] == CEILING]
        raw_text = f"{fmt_num(raw.iloc[0].rps)} req/s" if not raw.empty else "n/a"
        share = fmt_pct(r0.of_ceiling, digits=0)
        floor = g[g["server"] == FLOOR]
        floor_share = fmt_pct(floor.iloc[0].of_ceiling, digits=0) if not floor.empty else "n/a"
        of_floor = floor.iloc[0].text if not floor.empty else "n/a"
        lines.append(f"| {endpoint} | {fmt_num(r0.rps)} req/s | {best.server}, "
                     f"{fmt_num(best.rps)} req/s | {best.text} | {raw_text} | {share} "
                     f"| {floor_share} | {of_floor} |")  # fmt: skip
    return "\n".join(lines) if len(lines) > 2 else ""


def conclude(
    t: pd.DataFrame,
    skipped: Sequence[str] = (),
    reference: str = "performance",
    floor: pd.DataFrame | None = None,
) -> str:
    """The summary table, the framework floor (``floor_table``, when given), then
    per endpoint the named preset against every other server."""
    if t.empty:
        return "No data."
    ref = reference_server(reference)
    lines = []
    summary = versus_fastest(t, reference)
    if summary:
        lines.append(summary)
    if floor is not None and not floor.empty:
        lines.append(floor_sentence(floor))
    for endpoint, g in t.groupby("endpoint", sort=True):
        mine = g[g["server"] == ref]
        if mine.empty:
            continue
        r0 = mine.iloc[0]
        text = (
            f"**{endpoint}**: {ref} serves {fmt_num(r0.rps)} req/s (median of {r0.rounds} rounds)"
        )
        if not math.isnan(r0.of_ceiling):
            text += f", {r0.of_ceiling:.0%} of the raw httptools ceiling"
        others = g[(g["server"] != ref) & (g["server"] != CEILING)]  # the floor included
        if not others.empty:
            text += "; against each other server (paired by round, Holm-corrected): " + "; ".join(
                f"{r.server} {r.text}" for r in others.itertuples()
            )
        lines.append(text + ".")
    impossible = ceiling_violations(t)
    if impossible:
        lines.append("**Impossible figures** (above the ceiling measured in the same run): "
                     + "; ".join(impossible) + ".")  # fmt: skip
    if skipped:
        lines.append("Skipped: " + "; ".join(skipped) + ".")
    return "\n\n".join(lines)
