"""The suite's chart style and helpers (Altair 5.5+/6, exported with vl-convert).

* One registered theme, ``h3lab``: Liberation Sans (bundled by vl-convert, so
  PNG/SVG exports look the same on every machine), fixed panel sizes, a
  colour-blind-safe palette. ``setup()`` enables it.
* Every helper takes *pre-aggregated* data (medians and intervals computed in
  ``analysis``), so a chart never embeds raw samples; the 5,000-row guard of
  Altair is lifted anyway (``setup``) so a larger frame can never break a
  figure -- it would only make it heavier.
* One fixed colour per strategy and preset name (``COLORS``), the same in
  every figure of every study: ``color_scale`` builds the scale from it.
* Ratios are drawn on a log axis with their intervals and a reference line at
  1.0 (``ratio_chart``); one axis never mixes units.
* Charts are interactive in JupyterLab (tooltips; clicking a legend entry
  highlights that strategy) and render *offline*: ``setup`` selects Altair's
  HTML renderer with the ``inline`` template, which embeds vega, vega-lite and
  vega-embed (bundled by vl-convert) instead of loading them from a CDN, so the
  live chart works without a network in the lab and in exported HTML. Exported
  figures: ``save_chart`` writes PNG (144 ppi) and SVG, captioned with the
  run's provenance. Under the study runner (``H3LAB_STUDY_RUN=1``) ``show``
  displays the PNG instead of the live chart (smaller notebooks).
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from h3lab.studies.theme import (  # noqa: F401 - re-exported: charts.COLORS, charts.PALETTE...
    COLORS,
    FONT,
    HEIGHT,
    PALETTE,
    PPI,
    THEME,
    WIDTH,
    color_for,
    color_scale,
    theme_config,
)

if TYPE_CHECKING:
    import altair as alt
    import pandas as pd

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def color_enc(frame: pd.DataFrame, field: str, title: str | None = None) -> Any:
    """``alt.Color`` for ``field`` with the fixed colours of the names in ``frame``."""
    import altair as alt

    values = frame[field].astype(str).unique() if field in frame.columns else []
    return alt.Color(f"{field}:N", title=title or field, scale=color_scale(values))


def setup() -> None:
    """Register and enable the ``h3lab`` theme; lift the 5,000-row limit."""
    import altair as alt

    if THEME not in alt.theme.names():
        alt.theme.register(THEME, enable=False)(theme_config)
    alt.theme.enable(THEME)
    # Offline: vega, vega-lite and vega-embed inlined from vl-convert's bundle (no CDN).
    alt.renderers.enable("html", template="inline")
    # Charts are built from aggregated frames; this only guarantees that a
    # bigger one (a long time series) still renders instead of raising.
    alt.data_transformers.disable_max_rows()


def study_run_mode() -> bool:
    return os.environ.get("H3LAB_STUDY_RUN", "") not in ("", "0")


# -- export and display ---------------------------------------------------------------


def with_caption(spec: dict[str, Any], caption: str | None) -> dict[str, Any]:
    """The spec with ``caption`` (e.g. run id, commit, machine) as the title's last subtitle line."""
    if not caption:
        return spec
    title = spec.get("title")
    if title is None:
        spec["title"] = {"text": "", "subtitle": caption}
    elif isinstance(title, str | list):
        spec["title"] = {"text": title, "subtitle": caption}
    elif isinstance(title, dict):
        sub = title.get("subtitle")
        lines = [] if sub is None else [sub] if isinstance(sub, str) else list(sub)
        title["subtitle"] = [*lines, caption]
    spec["title"].setdefault("subtitleFontSize", 10)
    return spec


def save_chart(
    chart: alt.TopLevelMixin, figures_dir: str | Path, name: str, caption: str | None = None
) -> dict[str, Path]:
    """Write ``<name>.png`` (144 ppi) and ``<name>.svg`` into ``figures_dir``; their paths.

    ``caption`` (the run's provenance: run id, commit, machine) goes under the title.
    """
    import vl_convert as vlc

    figures = Path(figures_dir)
    figures.mkdir(parents=True, exist_ok=True)
    stem = _SAFE_NAME.sub("_", name).strip("_") or "figure"
    spec = with_caption(chart.to_dict(), caption)
    png = figures / f"{stem}.png"
    svg = figures / f"{stem}.svg"
    # vl-convert directly (not chart.save): one conversion per format, same spec, and
    # the PNG bytes are reused by show() instead of being rendered twice.
    png.write_bytes(vlc.vegalite_to_png(spec, ppi=PPI))
    svg.write_text(vlc.vegalite_to_svg(spec), encoding="utf-8")
    return {"png": png, "svg": svg}


class StaticChart:
    """A PNG displayed in place of a chart (rich display protocol)."""

    def __init__(self, png: bytes, name: str) -> None:
        self.png = png
        self.name = name

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        return {
            "image/png": base64.b64encode(self.png).decode("ascii"),
            "text/plain": f"<chart {self.name}>",
        }


def show(
    chart: alt.TopLevelMixin, paths: dict[str, Path] | None = None, name: str = "chart"
) -> Any:
    """What a notebook cell should display: the live chart in the lab, its PNG in a study run."""
    if study_run_mode():
        if paths is not None and paths.get("png") is not None and Path(paths["png"]).is_file():
            return StaticChart(Path(paths["png"]).read_bytes(), name)
        import vl_convert as vlc

        return StaticChart(vlc.vegalite_to_png(chart.to_dict(), ppi=PPI), name)
    return chart


# -- building blocks -------------------------------------------------------------------


def _field(name: str, kind: str) -> str:
    return f"{name}:{kind}"


def legend_selection(field: str) -> alt.Parameter:
    """Click a legend entry to highlight that series (shift-click for several)."""
    import altair as alt

    return alt.selection_point(fields=[field], bind="legend")


def _tooltips(frame: pd.DataFrame, fields: Sequence[str]) -> list[Any]:
    import altair as alt

    out = []
    for name in fields:
        if name not in frame.columns:
            continue
        numeric = frame[name].dtype.kind in "fiu"
        out.append(alt.Tooltip(name, format=".4~g") if numeric else alt.Tooltip(name))
    return out


def _scale(log: bool) -> Any:
    import altair as alt

    return alt.Scale(type="log") if log else alt.Scale(zero=False)


def _facet_and_title(
    chart: Any, facet: str | None, facet_columns: int, independent_y: bool, title: str | None
) -> Any:
    """Facet by a strategy column (smaller panels) and set the title, as every chart does."""
    import altair as alt

    if facet:
        chart = chart.properties(width=WIDTH - 60, height=HEIGHT - 30).facet(
            facet=alt.Facet(_field(facet, "N"), title=facet), columns=facet_columns
        )
        if independent_y:
            chart = chart.resolve_scale(y="independent")
    if title:
        chart = chart.properties(title=title)
    return chart


def _assemble(
    layers: list[Any],
    base: Any,
    frame: pd.DataFrame,
    select: Any,
    *,
    y: str,
    lo: str | None,
    hi: str | None,
    y_title: str | None,
    facet: str | None,
    facet_columns: int,
    title: str | None,
    independent_y: bool,
    errorbar_color: str | None = None,
) -> alt.TopLevelMixin:
    """Add the [lo, hi] error bars, the legend selection, facets and the title."""
    import altair as alt

    if lo and hi and lo in frame.columns and hi in frame.columns:
        mark = (
            {"ticks": True} if errorbar_color is None else {"ticks": True, "color": errorbar_color}
        )
        layers.append(
            base.mark_errorbar(**mark).encode(y=alt.Y(_field(lo, "Q"), title=y_title or y), y2=hi)
        )
    chart = alt.layer(*layers).add_params(select)
    return _facet_and_title(chart, facet, facet_columns, independent_y, title)


def line_with_errorbars(
    frame: pd.DataFrame,
    *,
    x: str,
    y: str = "median",
    lo: str | None = "lo",
    hi: str | None = "hi",
    color: str,
    x_title: str | None = None,
    y_title: str | None = None,
    log_x: bool = False,
    log_y: bool = False,
    x_type: str = "Q",
    facet: str | None = None,
    facet_columns: int = 3,
    title: str | None = None,
    tooltip: Sequence[str] = (),
    independent_y: bool = False,
) -> alt.TopLevelMixin:
    """Median per (x, color) as lines and points, the interval [lo, hi] as error bars.

    ``frame`` is one row per (x, color[, facet]) -- e.g. ``analysis.summarize_metric``.
    """
    import altair as alt

    select = legend_selection(color)
    opacity = alt.when(select).then(alt.value(1.0)).otherwise(alt.value(0.15))
    x_enc = alt.X(
        _field(x, x_type),
        title=x_title or x,
        scale=_scale(log_x) if x_type == "Q" else alt.Undefined,
    )
    tips = _tooltips(frame, [color, x, y, lo or "", hi or "", "n", *tooltip])
    base = alt.Chart(frame).encode(x=x_enc, color=color_enc(frame, color), opacity=opacity)
    lines = base.mark_line(point=True).encode(
        y=alt.Y(_field(y, "Q"), title=y_title or y, scale=_scale(log_y)), tooltip=tips
    )
    layers: list[Any] = [lines]
    return _assemble(
        layers,
        base,
        frame,
        select,
        y=y,
        lo=lo,
        hi=hi,
        y_title=y_title,
        facet=facet,
        facet_columns=facet_columns,
        title=title,
        independent_y=independent_y,
    )


def bars(
    frame: pd.DataFrame,
    *,
    x: str,
    y: str = "median",
    lo: str | None = "lo",
    hi: str | None = "hi",
    color: str | None = None,
    x_title: str | None = None,
    y_title: str | None = None,
    log_y: bool = False,
    facet: str | None = None,
    facet_columns: int = 3,
    title: str | None = None,
    tooltip: Sequence[str] = (),
    independent_y: bool = False,
) -> alt.TopLevelMixin:
    """Bars of ``y`` per ``x`` (grouped by ``color`` with xOffset), error bars [lo, hi]."""
    import altair as alt

    color = color or x
    select = legend_selection(color)
    opacity = alt.when(select).then(alt.value(1.0)).otherwise(alt.value(0.15))
    tips = _tooltips(frame, [x, color, y, lo or "", hi or "", "n", *tooltip])
    enc: dict[str, Any] = {
        "x": alt.X(_field(x, "N"), title=x_title or x),
        "color": color_enc(frame, color),
        "opacity": opacity,
    }
    if color != x:
        enc["xOffset"] = alt.XOffset(_field(color, "N"))
    base = alt.Chart(frame).encode(**enc)
    layers: list[Any] = [
        base.mark_bar().encode(
            y=alt.Y(
                _field(y, "Q"), title=y_title or y, scale=_scale(log_y) if log_y else alt.Undefined
            ),
            tooltip=tips,
        )
    ]
    return _assemble(
        layers,
        base,
        frame,
        select,
        y=y,
        lo=lo,
        hi=hi,
        y_title=y_title,
        facet=facet,
        facet_columns=facet_columns,
        title=title,
        independent_y=independent_y,
        errorbar_color="black",
    )


def time_series(
    frame: pd.DataFrame,
    *,
    x: str = "t",
    y: str = "value",
    color: str,
    x_title: str = "time (s)",
    y_title: str | None = None,
    log_y: bool = False,
    facet: str | None = None,
    facet_columns: int = 3,
    title: str | None = None,
    independent_y: bool = False,
) -> alt.TopLevelMixin:
    """One line per ``color`` over time (e.g. per-second throughput, RSS)."""
    import altair as alt

    select = legend_selection(color)
    opacity = alt.when(select).then(alt.value(1.0)).otherwise(alt.value(0.15))
    chart = (
        alt.Chart(frame)
        .mark_line()
        .encode(
            x=alt.X(_field(x, "Q"), title=x_title),
            y=alt.Y(_field(y, "Q"), title=y_title or y, scale=_scale(log_y)),
            color=color_enc(frame, color),
            opacity=opacity,
            tooltip=_tooltips(frame, [color, x, y]),
        )
        .add_params(select)
    )
    return _facet_and_title(chart, facet, facet_columns, independent_y, title)


def percentile_chart(
    frame: pd.DataFrame,
    *,
    color: str,
    percentile: str = "percentile",
    value: str = "latency_ms",
    title: str | None = None,
    facet: str | None = None,
) -> alt.TopLevelMixin:
    """Latency by percentile on log axes: x = -log10(1 - p) labelled p50..p99.99, y log.

    ``frame`` comes from ``analysis.percentile_table`` (columns ``percentile`` in
    0..100 and ``nines`` = -log10(1 - p/100)).
    """
    import altair as alt

    select = legend_selection(color)
    opacity = alt.when(select).then(alt.value(1.0)).otherwise(alt.value(0.15))
    ticks = [0.301, 1, 2, 3, 4]
    label = (
        "datum.value < 0.5 ? 'p50' : datum.value < 1.5 ? 'p90' : datum.value < 2.5 ? 'p99' :"
        " datum.value < 3.5 ? 'p99.9' : 'p99.99'"
    )
    chart = (
        alt.Chart(frame)
        .mark_line(interpolate="step-after")
        .encode(
            x=alt.X("nines:Q", title="percentile", axis=alt.Axis(values=ticks, labelExpr=label)),
            y=alt.Y(_field(value, "Q"), title="latency (ms, log)", scale=alt.Scale(type="log")),
            color=color_enc(frame, color),
            opacity=opacity,
            tooltip=_tooltips(frame, [color, percentile, value]),
        )
        .add_params(select)
    )
    return _facet_and_title(chart, facet, 3, False, title)


def ecdf_chart(
    frame: pd.DataFrame,
    *,
    color: str,
    value: str = "latency_ms",
    fraction: str = "fraction",
    title: str | None = None,
) -> alt.TopLevelMixin:
    """Empirical CDF (pre-computed, e.g. from a histogram) with a log latency axis."""
    import altair as alt

    select = legend_selection(color)
    opacity = alt.when(select).then(alt.value(1.0)).otherwise(alt.value(0.15))
    chart = (
        alt.Chart(frame)
        .mark_line(interpolate="step-after")
        .encode(
            x=alt.X(_field(value, "Q"), title="latency (ms, log)", scale=alt.Scale(type="log")),
            y=alt.Y(
                _field(fraction, "Q"), title="fraction of requests", scale=alt.Scale(domain=[0, 1])
            ),
            color=color_enc(frame, color),
            opacity=opacity,
            tooltip=_tooltips(frame, [color, value, fraction]),
        )
        .add_params(select)
    )
    if title:
        chart = chart.properties(title=title)
    return chart


def table_chart(
    frame: pd.DataFrame, columns: Sequence[str], title: str | None = None
) -> alt.TopLevelMixin:
    """A small text table as a figure (the headline numbers), columns sized to their text."""
    import altair as alt
    import pandas as pd

    char_px = 7.2  # Liberation Sans 12px: a generous average glyph width
    texts = {c: [("" if v is None else str(v)) for v in frame[c]] for c in columns}
    widths = {c: max(len(str(c)), *(len(t) for t in texts[c])) * char_px + 18 for c in columns}
    records = []
    x = 0.0
    for c in columns:
        records.append({"x": x, "row": -1, "text": str(c), "header": True})
        records.extend(
            {"x": x, "row": i, "text": t, "header": False} for i, t in enumerate(texts[c])
        )
        x += widths[c]
    data = pd.DataFrame(records)
    height = 24 * (len(frame) + 1)
    enc = {
        "x": alt.X("x:Q", scale=alt.Scale(domain=[0, x]), axis=None),
        "y": alt.Y("row:O", axis=None),
        "text": "text:N",
    }
    head = (
        alt.Chart(data[data["header"]])
        .mark_text(align="left", fontWeight="bold", fontSize=12)
        .encode(**enc)
    )
    body = alt.Chart(data[~data["header"]]).mark_text(align="left", fontSize=12).encode(**enc)
    chart = (
        alt.layer(head, body).properties(width=int(x), height=height).configure_view(stroke=None)
    )
    if title:
        chart = chart.properties(title=title)
    return chart


def crosscheck_chart(frame: pd.DataFrame, title: str | None = None) -> alt.TopLevelMixin:
    """h3lab's simulated hit ratio and libCacheSim's on the same traces, side by side.

    ``frame``: ``analysis.crosscheck_table`` (h3lab, libcachesim and fraction per
    workload x policy x size). Bars pair up per cache size (as a share of the
    working set, so every workload has the same x axis).
    """
    import altair as alt

    def label(f: float) -> str:
        return f"{float(f'{f * 100:.2g}'):g}%"  # 0.0099 -> "0.99%", 0.1 -> "10%"

    data = frame.copy()
    if "fraction" in data.columns:
        data["size"] = [label(f) for f in data["fraction"]]
        order = list(dict.fromkeys(label(f) for f in sorted(data["fraction"].unique())))
        x_title = "size / working set"
    else:
        data["size"] = data["cache_size"].astype(str)
        order = [str(v) for v in sorted(data["cache_size"].unique())]
        x_title = "cache size (entries)"
    long = data.melt(
        id_vars=["workload", "cache_policy", "cache_size", "size"],
        value_vars=["h3lab", "libcachesim"],
        var_name="simulator",
        value_name="hit_ratio",
    )
    select = legend_selection("simulator")
    opacity = alt.when(select).then(alt.value(1.0)).otherwise(alt.value(0.15))
    chart = (
        alt.Chart(long)
        .mark_bar()
        .encode(
            x=alt.X("size:O", title=x_title, sort=order, axis=alt.Axis(labelAngle=0)),
            xOffset=alt.XOffset("simulator:N"),
            y=alt.Y("hit_ratio:Q", title="hit ratio", scale=alt.Scale(domain=[0, 1])),
            color=color_enc(long, "simulator"),
            opacity=opacity,
            tooltip=_tooltips(
                long, ["workload", "cache_policy", "cache_size", "simulator", "hit_ratio"]
            ),
        )
        .add_params(select)
        .properties(width=150, height=110)
        .facet(
            row=alt.Row("cache_policy:N", title="policy"),
            column=alt.Column("workload:N", title="workload"),
        )
        # each workload shows its own sizes (a tiny trace rounds 1% to another share)
        .resolve_scale(x="independent", xOffset="independent")
    )
    if title:
        chart = chart.properties(title=title)
    return chart


def ratio_chart(
    frame: pd.DataFrame,
    *,
    y: str = "measure",
    x: str = "ratio",
    lo: str = "lo",
    hi: str = "hi",
    x_title: str = "ratio (> 1 = better: more throughput or less time; log scale)",
    color: str | None = None,
    title: str | None = None,
) -> alt.TopLevelMixin:
    """Ratios on a log axis: a point per row, its interval as an error bar, a rule at 1.0.

    ``frame``: one row per ratio (``ratio``, ``lo``, ``hi``; e.g.
    ``common.compare_arms`` or ``headline.ratio_rows``). Ratios of any size
    share the axis honestly (a 174x gain is drawn longer than a 3.4x one, and
    0.5x as far below 1 as 2x above it).
    """
    import altair as alt

    data = frame.copy()
    for col in (x, lo, hi):
        data[col] = data[col].astype(float)
    data["label"] = [f"{v:.3g}x" if v == v else "n/a" for v in data[x]]
    finite = data[[x, lo, hi]].stack()
    finite = finite[(finite > 0) & (finite < float("inf"))]
    span = (
        [min(0.5, float(finite.min()) / 1.2), max(2.0, float(finite.max()) * 1.2)]
        if len(finite)
        else [0.5, 2]
    )
    scale = alt.Scale(type="log", domain=span)
    base = alt.Chart(data).encode(
        y=alt.Y(f"{y}:N", title=None, sort=None, axis=alt.Axis(labelLimit=320))
    )
    enc: dict[str, Any] = {"x": alt.X(f"{x}:Q", title=x_title, scale=scale),
                           "tooltip": _tooltips(data, [y, x, lo, hi, "text", "result", "n"])}  # fmt: skip
    if color and color in data.columns:
        enc["color"] = color_enc(data, color)
    points = base.mark_point(filled=True, size=70, color="#0072B2").encode(**enc)
    bars = base.mark_errorbar(ticks=True, color="#333").encode(
        x=alt.X(f"{lo}:Q", title=x_title, scale=scale), x2=f"{hi}:Q"
    )
    labels = base.mark_text(align="left", dx=8, dy=-8, fontSize=10, color="#333").encode(
        x=alt.X(f"{x}:Q", scale=scale), text="label:N"
    )
    rule = alt.Chart(data).mark_rule(color="#999", strokeDash=[4, 3]).encode(x=alt.datum(1.0))
    chart = alt.layer(rule, bars, points, labels).properties(
        width=420, height=26 * max(1, len(data))
    )
    if title:
        chart = chart.properties(title=title)
    return chart
