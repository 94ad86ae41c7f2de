"""The price chart of the review page: a flagged trade among its symbol's trades, as inline SVG.

Drawn here rather than by a charting library in the browser: the page loads nothing from the
network (the machines it runs on are often offline), and an SVG of a few hundred points is a
few kilobytes of text that tests can read. Every text in it is escaped.

The chart shows the symbol's trade prices over the window (a line and a dot per trade), the
minute bars' high-low range behind them when there are bars, the other flags of the trade's
cluster as orange dots and the trade under review as a red ring.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from core.html import escape

WIDTH, HEIGHT = 900, 320
LEFT, RIGHT, TOP, BOTTOM = 70, 40, 20, 40


@dataclass(frozen=True)
class PricePoint:
    """One trade on the chart."""

    trade_id: str
    ts: datetime
    price: float


@dataclass(frozen=True)
class BarRange:
    """One minute bar: its start and its low and high prices."""

    minute: datetime
    low: float
    high: float


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    if high <= low:
        return [low]
    step = (high - low) / (count - 1)
    return [low + i * step for i in range(count)]


def price_chart(
    points: Sequence[PricePoint],
    *,
    trade_id: str,
    cluster_ids: Iterable[str] = (),
    bars: Sequence[BarRange] = (),
    title: str = "",
) -> str:
    """The chart as one `<svg>` element; an explanatory paragraph when there are no points."""
    if not points:
        return '<p class="empty">No trades of this symbol around the flagged trade.</p>'
    cluster = set(cluster_ids) - {trade_id}
    times = [p.ts.timestamp() for p in points] + [b.minute.timestamp() for b in bars]
    prices = [p.price for p in points] + [v for b in bars for v in (b.low, b.high)]
    t0, t1 = min(times), max(times) + (60 if bars else 0)
    p0, p1 = min(prices), max(prices)
    if t1 <= t0:
        t0, t1 = t0 - 30, t1 + 30
    if p1 <= p0:
        p0, p1 = p0 - 0.5, p1 + 0.5
    pad = (p1 - p0) * 0.05
    p0, p1 = p0 - pad, p1 + pad
    inner_w, inner_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(seconds: float) -> float:
        return LEFT + (seconds - t0) / (t1 - t0) * inner_w

    def y(price: float) -> float:
        return TOP + (p1 - price) / (p1 - p0) * inner_h

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="price-chart" role="img" '
        f'width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}">',
        f"<title>{escape(title or 'Trade prices around the flagged trade')}</title>",
        f'<rect x="{LEFT}" y="{TOP}" width="{inner_w}" height="{inner_h}" fill="#fff" '
        'stroke="#d1d9e0"/>',
    ]
    for tick in _ticks(p0 + pad, p1 - pad):
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" '
            'stroke="#eaeef2"/>'
            f'<text x="{LEFT - 6}" y="{y(tick) + 4:.1f}" text-anchor="end" font-size="11" '
            f'fill="#59636e">{tick:,.2f}</text>'
        )
    for tick in _ticks(t0, t1):
        label = datetime.fromtimestamp(tick, tz=points[0].ts.tzinfo).strftime("%H:%M:%S")
        parts.append(
            f'<text x="{x(tick):.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle" '
            f'font-size="11" fill="#59636e">{escape(label)}</text>'
        )
    bar_width = max(1.0, 60 / (t1 - t0) * inner_w - 1)
    for bar in bars:
        parts.append(
            f'<rect class="bar" x="{x(bar.minute.timestamp()):.1f}" y="{y(bar.high):.1f}" '
            f'width="{bar_width:.1f}" height="{max(1.0, y(bar.low) - y(bar.high)):.1f}" '
            'fill="#ddf4ff" stroke="#b6e3ff"/>'
        )
    ordered = sorted(points, key=lambda p: p.ts)
    line = " ".join(f"{x(p.ts.timestamp()):.1f},{y(p.price):.1f}" for p in ordered)
    parts.append(f'<polyline points="{line}" fill="none" stroke="#0969da" stroke-width="1.2"/>')
    marked = None
    for point in ordered:
        cx, cy = x(point.ts.timestamp()), y(point.price)
        label = escape(f"{point.trade_id} {point.ts:%H:%M:%S} {point.price:,.4f}")
        if point.trade_id == trade_id:
            marked = (cx, cy, label, point.trade_id)
        elif point.trade_id in cluster:
            parts.append(f'<circle class="cluster" data-trade-id="{escape(point.trade_id)}" '
                         f'cx="{cx:.1f}" cy="{cy:.1f}" r="4" fill="#fb8500">'
                         f"<title>{label} (same cluster)</title></circle>")
        else:
            parts.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="1.6" fill="#0969da">'
                         f"<title>{label}</title></circle>")
    if marked:
        cx, cy, label, marked_id = marked
        parts.append(f'<circle class="flagged" data-trade-id="{escape(marked_id)}" '
                     f'cx="{cx:.1f}" cy="{cy:.1f}" r="7" fill="none" stroke="#cf222e" '
                     f'stroke-width="2.5"><title>{label} (under review)</title></circle>')
    parts.append(
        f'<g font-size="11" fill="#59636e"><circle cx="{LEFT + 10}" cy="{HEIGHT - 8}" r="6" '
        f'fill="none" stroke="#cf222e" stroke-width="2"/><text x="{LEFT + 20}" '
        f'y="{HEIGHT - 4}">trade under review</text><circle cx="{LEFT + 150}" '
        f'cy="{HEIGHT - 8}" r="4" fill="#fb8500"/><text x="{LEFT + 158}" y="{HEIGHT - 4}">'
        f'other flags of its cluster</text><rect x="{LEFT + 320}" y="{HEIGHT - 13}" '
        f'width="10" height="10" fill="#ddf4ff" stroke="#b6e3ff"/><text x="{LEFT + 335}" '
        f'y="{HEIGHT - 4}">minute bar high-low</text></g>'
    )
    parts.append("</svg>")
    return "".join(parts)
