"""The suite's one visual identity: the Altair theme ``h3lab`` and one colour per name.

* Liberation Sans (bundled by vl-convert, so PNG/SVG exports look the same on
  every machine), fixed panel sizes, a colour-blind-safe palette (Okabe-Ito).
* ``COLORS``: one fixed colour per preset, strategy and server name, used by
  every figure of every study (``color_for`` / ``color_scale``), so a name
  never changes colour between figures.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from altair.theme import ThemeConfig

THEME = "h3lab"
FONT = "Liberation Sans"
WIDTH = 320
HEIGHT = 220
PPI = 144
# Okabe-Ito: distinguishable with the common colour-vision deficiencies.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]

# One colour per name, defined once: a preset, strategy or server keeps its colour
# in every figure. Presets and the strategies named alike share it on purpose.
COLORS: dict[str, str] = {
    # presets (and memory strategies of the same names)
    "baseline": "#D55E00",
    "minimal": "#E69F00",
    "balanced": "#56B4E9",
    "performance": "#0072B2",
    # routers
    "linear": "#D55E00",
    "trie": "#009E73",
    "compiled": "#CC79A7",
    "hybrid": "#0072B2",
    # cache policies and bounds
    "lru": "#0072B2",
    "lfu": "#009E73",
    "fifo": "#E69F00",
    "wtinylfu": "#CC79A7",
    "belady": "#000000",
    "unbounded": "#999999",
    "none": "#D55E00",
    # middleware executions
    "legacy": "#D55E00",
    "fast": "#0072B2",
    # peers
    "h3lab-baseline": "#D55E00",
    "h3lab-balanced": "#56B4E9",
    "h3lab-performance": "#0072B2",
    "raw": "#000000",
    "aiohttp": "#009E73",
    "starlette-uvicorn": "#E69F00",
    "starlette-granian": "#F0E442",
    "falcon-uvicorn": "#CC79A7",
    "blacksheep-uvicorn": "#999999",
    # simulators, regimes
    "h3lab": "#0072B2",
    "libcachesim": "#E69F00",
    "bare": "#D55E00",
    "hit": "#009E73",
    "miss": "#CC79A7",
}
_FALLBACK = ["#882255", "#44AA99", "#332288", "#DDCC77", "#117733", "#88CCEE", "#AA4499"]


def color_for(name: Any) -> str:
    """The fixed colour of a name: exact, then by its first word ("bounded 256" -> "bounded"...)."""
    text = str(name)
    if text in COLORS:
        return COLORS[text]
    head = re.split(r"[ +\-]", text, maxsplit=1)[0]
    if head in COLORS:
        return COLORS[head]
    # a stable fallback, independent of which other names a figure shows
    return _FALLBACK[sum(text.encode()) % len(_FALLBACK)]


def color_scale(values: Any) -> Any:
    """An Altair colour scale mapping each of ``values`` to its fixed colour."""
    import altair as alt

    domain = [str(v) for v in dict.fromkeys(values) if v is not None and v == v]
    return alt.Scale(domain=domain, range=[color_for(v) for v in domain])


def theme_config() -> ThemeConfig:
    return {
        "config": {
            "font": FONT,
            "view": {"continuousWidth": WIDTH, "continuousHeight": HEIGHT, "stroke": "#ddd"},
            "title": {"font": FONT, "fontSize": 14, "anchor": "start", "subtitleColor": "#555"},
            "axis": {
                "labelFont": FONT,
                "titleFont": FONT,
                "labelFontSize": 11,
                "titleFontSize": 12,
                "gridColor": "#eee",
                # log axes label every decade multiple: drop labels that would collide
                "labelOverlap": "greedy",
                "labelSeparation": 4,
            },
            "legend": {
                "labelFont": FONT,
                "titleFont": FONT,
                "labelFontSize": 11,
                "titleFontSize": 12,
            },
            "header": {
                "labelFont": FONT,
                "titleFont": FONT,
                "labelFontSize": 12,
                "titleFontSize": 12,
            },
            "range": {"category": PALETTE},
            "line": {"strokeWidth": 2},
            "point": {"size": 40, "filled": True},
        }
    }
