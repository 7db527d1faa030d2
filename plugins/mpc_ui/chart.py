"""The HHI trend as an SVG chart drawn on the server (no script, no CDN): one line per market
over the nights, on the concentration bands of the 2023 US Merger Guidelines.

``trend_chart`` turns the series into coordinates; ``templates/_trend.html`` draws them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

# 2023 Merger Guidelines (U.S. DOJ and FTC), section 2.1: HHI below 1,000 unconcentrated,
# 1,000 to 1,800 moderately concentrated, above 1,800 highly concentrated.
BANDS = (
    ("unconcentrated", 0.0, 1000.0),
    ("moderately concentrated", 1000.0, 1800.0),
    ("highly concentrated", 1800.0, 10000.0),
)
HHI_MAX = 10000.0
COLORS = ("#0b57d0", "#b3261e", "#1e6b34", "#7a5200", "#6d28d9", "#0e7490", "#be185d", "#4b5563")
WIDTH, HEIGHT = 860, 300
LEFT, RIGHT, TOP, BOTTOM = 56, 170, 12, 34
MAX_X_TICKS = 6  # dates along the x axis (a label is about 70 px wide)


@dataclass
class Chart:
    width: int
    height: int
    plot: dict  # x, y, width, height of the plotting area
    bands: list[dict] = field(default_factory=list)  # name, css class, y, height, label_y
    lines: list[dict] = field(default_factory=list)  # market, color, points ("x,y x,y"), dots, last value
    x_ticks: list[dict] = field(default_factory=list)  # x, text
    y_ticks: list[dict] = field(default_factory=list)  # y, text


def _top_of_scale(values: list[float]) -> float:
    """The y axis reaches past the highest value and past the highly-concentrated threshold."""
    top = max([2000.0, *values]) * 1.1
    for step in (2500.0, 3000.0, 4000.0, 5000.0, 7500.0, HHI_MAX):
        if top <= step:
            return step
    return HHI_MAX


@dataclass
class _Scale:
    """Where a value (y, HHI up to ``top``) and a night (x) stand in the plotting area, in pixels."""

    plot: dict
    top: float
    nights: list[datetime]

    def y(self, value: float) -> float:
        return round(self.plot["y"] + self.plot["height"] * (1 - min(value, self.top) / self.top), 1)

    def x(self, night: datetime) -> float:
        plot, nights = self.plot, self.nights
        if len(nights) < 2:
            return round(plot["x"] + plot["width"] / 2, 1)
        span = (nights[-1] - nights[0]).total_seconds()
        return round(plot["x"] + plot["width"] * (night - nights[0]).total_seconds() / span, 1)


def _bands(scale: _Scale) -> list[dict]:
    """The concentration bands below the top of the scale."""
    y, top, bands = scale.y, scale.top, []
    for (name, low, high), css in zip(BANDS, ("unconcentrated", "moderate", "high")):
        if low >= top:
            continue
        bands.append(
            {
                "name": name,
                "css": css,
                "low": low,
                "high": high,
                "y": y(min(high, top)),
                "height": round(y(low) - y(min(high, top)), 1),
                "label_y": y(min(high, top)) + 14,
            }
        )
    return bands


def _line(i: int, market: str, points: list[tuple[datetime, float]], scale: _Scale) -> dict:
    """The ``i``-th market's line, its dots and its place in the legend."""
    coords = [(scale.x(night), scale.y(value)) for night, value in points]
    return {
        "market": market,
        "color": COLORS[i % len(COLORS)],
        "points": " ".join(f"{a},{b}" for a, b in coords),
        "dots": [
            {"x": a, "y": b, "title": f"{market} {night:%Y-%m-%d}: {value:,.2f}"}
            for (a, b), (night, value) in zip(coords, points)
        ],
        "last": points[-1][1],
        "legend_y": scale.plot["y"] + 14 + 18 * i,
    }


def trend_chart(series: dict[str, list[tuple[datetime, float]]], *, width: int = WIDTH, height: int = HEIGHT) -> Chart:
    """Coordinates of the chart of ``series`` ({market: [(night, HHI), ...]}, a line per market
    in the given order).

    :param width: the SVG's width in pixels (the plot leaves room for the legend on the right).
    """
    plot = {"x": LEFT, "y": TOP, "width": width - LEFT - RIGHT, "height": height - TOP - BOTTOM}
    nights = sorted({night for points in series.values() for night, _ in points})
    top = _top_of_scale([v for points in series.values() for _, v in points])
    scale = _Scale(plot, top, nights)
    chart = Chart(width, height, plot, bands=_bands(scale))
    for tick in range(0, int(top) + 1, 500 if top <= 3000 else 1000 if top <= 5000 else 2500):
        chart.y_ticks.append({"y": scale.y(tick), "text": f"{tick:,}"})
    step = -(-len(nights) // MAX_X_TICKS)
    chart.x_ticks = [{"x": scale.x(n), "text": n.strftime("%Y-%m-%d")} for n in nights[::step]]
    chart.lines = [_line(i, market, points, scale) for i, (market, points) in enumerate(series.items())]
    return chart
