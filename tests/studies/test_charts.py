"""Chart theme and helpers: fixed colours, ratio axes, captions, offline rendering."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from h3lab.studies import charts

CDN = re.compile(r"cdn\.jsdelivr|unpkg\.com|cdnjs|<script[^>]+src=[\"']https?://", re.I)


def test_theme_registered_and_enabled() -> None:
    import altair as alt

    charts.setup()
    assert "h3lab" in alt.theme.names() and alt.theme.active == "h3lab"
    assert charts.theme_config()["config"]["font"] == "Liberation Sans"


def test_one_fixed_colour_per_name_in_every_figure() -> None:
    charts.setup()
    a = pd.DataFrame({"router": ["trie", "linear"], "median": [1.0, 2.0], "x": [1, 1]})
    b = pd.DataFrame(
        {"router": ["linear", "hybrid", "trie"], "median": [1.0, 2.0, 3.0], "x": [1, 1, 1]}
    )

    def colours(chart: object) -> dict[str, str]:
        spec = str(chart.to_dict())  # type: ignore[attr-defined]
        domain = re.search(r"'domain': \[([^\]]*)\], 'range': \[([^\]]*)\]", spec)
        assert domain is not None
        names = [n.strip(" '") for n in domain.group(1).split(",")]
        cols = [c.strip(" '") for c in domain.group(2).split(",")]
        return dict(zip(names, cols, strict=True))

    ca = colours(charts.bars(a, x="router", color="router", lo=None, hi=None))
    cb = colours(charts.line_with_errorbars(b, x="x", color="router", lo=None, hi=None))
    assert ca["trie"] == cb["trie"] == charts.COLORS["trie"]
    assert ca["linear"] == cb["linear"] != ca["trie"]
    # unknown names still get a colour that does not depend on the other names shown
    assert charts.color_for("bounded 256") == charts.color_for("bounded 256")
    assert charts.color_for("performance - pool") == charts.COLORS["performance"]


def test_ratio_chart_is_log_with_intervals_and_a_line_at_one(tmp_path: Path) -> None:
    charts.setup()
    frame = pd.DataFrame({"measure": ["route lookup", "pool"], "ratio": [174.0, 0.8],
                          "lo": [150.0, 0.6], "hi": [200.0, 1.1]})  # fmt: skip
    chart = charts.ratio_chart(frame, title="r")
    spec = str(chart.to_dict())
    assert "'type': 'log'" in spec and "errorbar" in spec and "'datum': 1.0" in spec
    paths = charts.save_chart(chart, tmp_path, "ratio", caption="run R1 | commit abc | 2 CPUs")
    assert "run R1 | commit abc" in paths["svg"].read_text()


def test_more_than_5000_rows_never_break_a_chart(tmp_path: Path) -> None:
    charts.setup()
    big = pd.DataFrame(
        {"t": range(6000), "value": [i % 97 for i in range(6000)], "s": ["a", "b"] * 3000}
    )
    paths = charts.save_chart(
        charts.time_series(big, color="s", title="big"), tmp_path, "big chart!"
    )
    assert paths["png"].name == "big_chart.png"
    assert paths["png"].read_bytes()[:4] == b"\x89PNG" and paths["svg"].read_text().startswith(
        "<svg"
    )


def test_helpers_render(tmp_path: Path) -> None:
    charts.setup()
    summary = pd.DataFrame({"x": [1, 10, 1, 10], "median": [1.0, 2.0, 3.0, 4.0], "lo": [0.5, 1.5, 2.5, 3.5],
                            "hi": [1.5, 2.5, 3.5, 4.5], "s": ["a", "a", "b", "b"], "f": ["p", "p", "p", "p"]})  # fmt: skip
    made = [
        charts.line_with_errorbars(summary, x="x", color="s", facet="f", log_x=True, log_y=True),
        charts.bars(summary, x="s", color="s", facet="f"),
        charts.table_chart(pd.DataFrame({"a": ["1"], "b": ["two"]}), ["a", "b"], title="t"),
    ]
    pct = pd.DataFrame({"s": ["a", "a"], "nines": [0.3, 2.0], "latency_ms": [1.0, 5.0], "percentile": [50, 99],
                        "fraction": [0.5, 0.99]})  # fmt: skip
    made += [charts.percentile_chart(pct, color="s"), charts.ecdf_chart(pct, color="s")]
    for i, chart in enumerate(made):
        paths = charts.save_chart(chart, tmp_path, f"c{i}", caption="run x")
        assert paths["png"].stat().st_size > 1000 and paths["svg"].stat().st_size > 1000
    assert "params" in str(made[0].to_dict()) and "legend" in str(made[0].to_dict())


def test_live_charts_render_offline_without_a_cdn() -> None:
    """In JupyterLab (and exported HTML) the chart's HTML carries vega itself, no CDN."""
    import altair as alt

    charts.setup()
    chart = alt.Chart(pd.DataFrame({"x": [1, 2]})).mark_point().encode(x="x")
    bundle = chart._repr_mimebundle_()
    bundle = bundle[0] if isinstance(bundle, tuple) else bundle
    html = bundle["text/html"]
    assert "vegaEmbed" in html and len(html) > 100_000  # the libraries are inlined
    assert not CDN.search(html), CDN.search(html)


def test_show_is_static_under_the_runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import altair as alt

    chart = alt.Chart(pd.DataFrame({"x": [1, 2]})).mark_point().encode(x="x")
    monkeypatch.delenv("H3LAB_STUDY_RUN", raising=False)
    assert charts.show(chart) is chart
    monkeypatch.setenv("H3LAB_STUDY_RUN", "1")
    shown = charts.show(chart, charts.save_chart(chart, tmp_path, "p"), "p")
    assert set(shown._repr_mimebundle_()) == {"image/png", "text/plain"}
