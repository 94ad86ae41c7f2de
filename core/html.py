"""The HTML pages Tradewatch writes itself (the monitoring report, the drift report): one
stylesheet, escaping, tables and figures.

A page is self-contained: inline CSS, every plot a PNG embedded as a base64 data URI, nothing
loaded from the network, so it renders offline, from a mail attachment or a Unity Catalog
volume alike. The markup is also well-formed XML (void elements closed, only XML entities), so
tools can parse it. Plots are drawn through Matplotlib's Agg canvas directly, never pyplot: no
global figure state, safe in a worker thread. (Great Expectations' Data Docs are GX's own.)

    body = [heading, table(["feature", "psi"], [["rsi_14", 0.31]], numeric={1})]
    write_atomic(path, page("Tradewatch drift report", body))
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: The one stylesheet of every page.
CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 1.5rem 2rem;
       color: #1f2328; max-width: 1200px; }
h1 { font-size: 1.6rem; margin-bottom: 0.2rem; }
h2 { font-size: 1.25rem; margin-top: 2.2rem; padding-bottom: 0.3rem;
     border-bottom: 1px solid #d1d9e0; }
h3 { font-size: 1rem; margin-top: 1.4rem; }
.meta, .note, figcaption { color: #59636e; font-size: 0.85rem; }
nav a { margin-right: 1rem; }
a { color: #0969da; }
.cards { display: flex; flex-wrap: wrap; gap: 0.8rem; margin: 1.2rem 0; }
.card { flex: 1 1 190px; border: 1px solid #d1d9e0; border-left-width: 6px;
        border-radius: 6px; padding: 0.55rem 0.8rem; }
.card .label { font-size: 0.75rem; text-transform: uppercase; color: #59636e;
               letter-spacing: 0.03em; }
.card .value { font-size: 1.1rem; font-weight: 600; margin-top: 0.15rem; }
.card .detail { font-size: 0.8rem; color: #59636e; }
.card.ok { border-left-color: #1a7f37; }
.card.warn { border-left-color: #bf8700; }
.card.bad { border-left-color: #cf222e; }
.card.none { border-left-color: #afb8c1; }
.banner, .summary { padding: 0.6rem 0.9rem; border-radius: 6px; margin: 0.8rem 0; }
.banner.promote, .summary.ok { background: #dafbe1; }
.banner.reject { background: #fff8c5; }
.summary.drift { background: #ffebe9; }
.summary { font-size: 1.05rem; }
.empty { color: #59636e; background: #f6f8fa; border: 1px dashed #afb8c1; border-radius: 6px;
         padding: 0.7rem 0.9rem; }
.error { background: #ffebe9; border: 1px solid #ff8182; border-radius: 6px;
         padding: 0.7rem 0.9rem; }
table { border-collapse: collapse; width: 100%; font-size: 0.86rem; margin: 0.5rem 0; }
th, td { border-bottom: 1px solid #d1d9e0; padding: 0.3rem 0.5rem; text-align: left;
         vertical-align: top; }
th { background: #f6f8fa; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.better { color: #1a7f37; font-weight: 600; }
td.worse { color: #cf222e; font-weight: 600; }
td.bad, tr.bad td, tr.drifted td { background: #ffebe9; }
td.warn, tr.warn td { background: #fff8c5; }
td.ok { background: #dafbe1; }
tr.failed td { color: #cf222e; }
.yes { color: #cf222e; font-weight: 600; }
.no { color: #1a7f37; }
ul.notes { color: #59636e; }
code, .id { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 0.8rem; }
figure { margin: 1rem 0; }
img { max-width: 100%; height: auto; border: 1px solid #d1d9e0; border-radius: 4px; }
"""


def escape(text: Any) -> str:
    """`text` (any value, as str) safe inside an element or a quoted attribute."""
    return html.escape(str(text), quote=True)


@dataclass(frozen=True)
class Cell:
    """A table cell with a CSS class, or holding trusted markup (not escaped)."""

    content: Any
    css: str | None = None
    markup: bool = False


def page(title: str, body: Iterable[str]) -> str:
    """A whole HTML document: the title, the stylesheet, then the `body` fragments in order."""
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8"/>',
        '<meta name="viewport" content="width=device-width, initial-scale=1"/>',
        f"<title>{escape(title)}</title>",
        f"<style>{CSS}</style>",
        "</head>",
        "<body>",
        *body,
        "</body>",
        "</html>",
        "",
    ])


def table(
    header: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    numeric: set[int] | None = None,
    row_classes: Sequence[str | None] | None = None,
) -> str:
    """A table; a cell is any value (escaped) or a `Cell`. Columns in `numeric` align right."""
    numeric = numeric or set()
    head = "".join(
        ('<th class="num">' if i in numeric else "<th>") + f"{escape(title)}</th>"
        for i, title in enumerate(header)
    )
    body = []
    for index, row in enumerate(rows):
        css = row_classes[index] if row_classes else None
        cells = []
        for i, cell in enumerate(row):
            classes = ["num"] if i in numeric else []
            if isinstance(cell, Cell):
                text = str(cell.content) if cell.markup else escape(cell.content)
                if cell.css:
                    classes.append(cell.css)
            else:
                text = escape(cell)
            attribute = f' class="{" ".join(classes)}"' if classes else ""
            cells.append(f"<td{attribute}>{text}</td>")
        row_attribute = f' class="{css}"' if css else ""
        body.append(f"<tr{row_attribute}>{''.join(cells)}</tr>")
    return (f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n" + "\n".join(body)
            + "\n</tbody>\n</table>")


def new_figure(width: float, height: float) -> tuple[Figure, Axes]:
    """A Matplotlib figure (inches, 100 dpi, constrained layout) on an Agg canvas, and its axes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure, figure.add_subplot()


def png(figure: Figure) -> str:
    """The figure as a base64 PNG, without the metadata that would name the software."""
    buffer = io.BytesIO()
    # No "Software" text chunk: the page carries no addresses, even inside an image.
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def figure(
    png_base64: str,
    caption: str,
    *,
    alt: str | None = None,
    element_id: str | None = None,
    css: str | None = None,
) -> str:
    """A figure: the embedded PNG (its alt text the caption unless given) and its caption."""
    attributes = "".join(
        f' {name}="{escape(value)}"' for name, value in (("id", element_id), ("class", css))
        if value
    )
    return (
        f'<figure{attributes}><img alt="{escape(alt if alt is not None else caption)}" '
        f'src="data:image/png;base64,{png_base64}"/>'
        f"<figcaption>{escape(caption)}</figcaption></figure>"
    )


# --------------------------------------------------------------------------- values in cells

DASH = "–"


def number(value: Any, digits: int = 3) -> str:
    """A number with thousands separators and `digits` decimals; "–" for None or NaN."""
    if value is None:
        return DASH
    try:
        if value != value:  # NaN
            return DASH
        return f"{int(round(float(value))):,}" if digits == 0 else f"{float(value):,.{digits}f}"
    except (TypeError, ValueError):
        return str(value)


def timestamp(value: Any, *, seconds: bool = False) -> str:
    """A moment in UTC, to the minute (or second); naive values are taken as UTC; "–" for none."""
    import pandas as pd

    if value is None or value is pd.NaT or (not isinstance(value, datetime) and pd.isna(value)):
        return DASH
    moment = pd.Timestamp(value)
    moment = moment.tz_localize("UTC") if moment.tzinfo is None else moment.tz_convert("UTC")
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC" if seconds else "%Y-%m-%d %H:%M UTC")


def iso(value: Any, *, milliseconds: bool = False) -> str:
    """A moment in UTC as ISO 8601 (`2024-03-08T14:00:00+00:00`, or with milliseconds and a Z
    as the drift records write it); "–" for none."""
    import pandas as pd

    if value is None or value is pd.NaT:
        return DASH
    moment = pd.Timestamp(value)
    moment = moment.tz_localize("UTC") if moment.tzinfo is None else moment.tz_convert("UTC")
    if milliseconds:
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return moment.isoformat()


def clip(value: Any, limit: int = 300) -> str:
    """`value` as text, cut to `limit` characters with an ellipsis; "" for None or NaN."""
    text = "" if value is None or value != value else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def ident(text: Any) -> Cell:
    """A cell holding an id (run, trade) in monospace."""
    return Cell(f'<span class="id">{escape(text)}</span>', markup=True)


def empty(message: str) -> str:
    """The "no data yet" note of a section, with what to run to get some."""
    return f'<p class="empty">No data yet. {escape(message)}</p>'


def card(label: str, value: str, detail: str, state: str) -> str:
    """A status card; `state` is ok, warn, bad or none (its colour)."""
    return (
        f'<div class="card {state}"><div class="label">{escape(label)}</div>'
        f'<div class="value">{escape(value)}</div><div class="detail">{escape(detail)}</div></div>'
    )


def heatmap(
    values: Any,
    rows: Sequence[str],
    columns: Sequence[str],
    *,
    colormap: str,
    vmax: float,
    scale_label: str,
    xlabel: str,
    row_height: float = 0.26,
    marks: Iterable[tuple[int, int]] = (),
    counts: bool = False,
    integer_scale: bool = False,
) -> str:
    """A rows × columns heat map (NaN cells grey) as a base64 PNG: at most 16 column labels,
    an "x" on each (row, column) in `marks`, each non-zero cell's count written when `counts`,
    whole numbers on the colour scale when `integer_scale`."""
    import numpy as np
    from matplotlib import colormaps
    from matplotlib.ticker import MaxNLocator

    grid = np.asarray(values, dtype=float)
    plot, axes = new_figure(10, row_height * len(rows) + 1.9)
    image = axes.imshow(np.ma.masked_invalid(grid), aspect="auto", vmin=0, vmax=vmax,
                        cmap=colormaps[colormap].with_extremes(bad="#eaeef2"),
                        interpolation="nearest")
    for i, j in marks:
        axes.text(j, i, "x", ha="center", va="center", fontsize=9, fontweight="bold")
    if counts:
        for i, j in zip(*np.nonzero(np.nan_to_num(grid)), strict=True):
            axes.text(j, i, f"{int(grid[i, j])}", ha="center", va="center", fontsize=7,
                      color="white" if grid[i, j] > 0.6 * vmax else "black")
    axes.set_yticks(range(len(rows)), rows, fontsize=8)
    ticks = list(range(0, len(columns), max(1, -(-len(columns) // 16))))
    axes.set_xticks(ticks, [columns[t] for t in ticks], rotation=45, ha="right", fontsize=8)
    axes.set_xlabel(xlabel)
    bar = plot.colorbar(image, ax=axes, fraction=0.03, pad=0.01)
    bar.set_label(scale_label, fontsize=8)
    if integer_scale:
        bar.locator = MaxNLocator(integer=True)
        bar.update_ticks()
    return png(plot)
