"""The drift report as one self-contained HTML page.

Everything the page needs is inside it: inline CSS, and each plot a PNG embedded as a
base64 data URI, so it renders offline, from a mail attachment or a Unity Catalog volume
alike. The markup is also well-formed XML (void elements closed, only XML entities), so
tools can parse it. Matplotlib draws through its Agg canvas directly, never pyplot: no
global figure state, safe in a worker thread.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path, PurePath

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from core.datahome import DataHome, as_data_home
from ml.drift import DriftHistogram, DriftReport, FeatureDrift, TimeWindow, iso_utc

_REFERENCE_COLOUR = "#4c72b0"
_CURRENT_COLOUR = "#dd8452"

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem;
       color: #1f2328; max-width: 1100px; }
h1 { font-size: 1.5rem; margin-bottom: 0.2rem; }
h2 { font-size: 1.15rem; margin-top: 2rem; }
.meta { color: #59636e; margin-top: 0; }
.summary { font-size: 1.05rem; padding: 0.6rem 0.9rem; border-radius: 6px; }
.summary.ok { background: #dafbe1; }
.summary.drift { background: #ffebe9; }
table { border-collapse: collapse; width: 100%; font-size: 0.9rem; }
th, td { border-bottom: 1px solid #d1d9e0; padding: 0.35rem 0.5rem; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.drifted td { background: #fff5f4; }
.yes { color: #cf222e; font-weight: 600; }
.no { color: #1a7f37; }
figure { margin: 1.5rem 0; }
figcaption { color: #59636e; font-size: 0.85rem; }
img { max-width: 100%; height: auto; border: 1px solid #d1d9e0; border-radius: 4px; }
ul.notes { color: #59636e; }
"""


def render_drift_html(report: DriftReport) -> str:
    """The report as an HTML page: summary, the per-feature table, a plot per drifted feature."""
    drifted = report.drifted_features
    inputs = report.input_features
    state = "drift" if drifted else "ok"
    headline = (
        f"{sum(f.drifted for f in inputs)} of {len(inputs)} input features drifted "
        f"({report.drifted_share:.0%})"
    )
    if report.prediction is not None:
        headline += "; scores drifted" if report.prediction_drift else "; scores stable"
    if report.performance is not None:
        headline += (
            f"; PR-AUC dropped by {report.performance.statistic:.3f}"
            if report.performance_drift
            else "; performance within tolerance"
        )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8"/>',
        '<meta name="viewport" content="width=device-width, initial-scale=1"/>',
        f"<title>Tradewatch drift report {_e(report.run_id)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        "<h1>Tradewatch drift report</h1>",
        f'<p class="meta">run <code>{_e(report.run_id)}</code> at {_e(iso_utc(report.run_ts))}'
        f" &#183; reference {_window(report.reference_window)}"
        f" &#183; current {_window(report.current_window)}</p>",
        f'<p class="summary {state}">{_e(headline)}</p>',
        _table(report.features),
    ]
    if report.notes:
        parts.append('<ul class="notes">')
        parts += [f"<li>{_e(note)}</li>" for note in report.notes]
        parts.append("</ul>")
    plotted = [f for f in drifted if f.histogram is not None]
    if plotted:
        parts.append("<h2>Drifted features: reference vs current</h2>")
        parts += [_figure(f) for f in plotted]
    parts += ["</body>", "</html>", ""]
    return "\n".join(parts)


def write_drift_html(report: DriftReport, directory: DataHome | Path | str) -> PurePath:
    """Write <directory>/drift-<run_id>.html atomically; `directory` is a folder or a DataHome."""
    return as_data_home(directory).write_atomic(
        f"drift-{report.run_id}.html", render_drift_html(report)
    )


def _table(features: tuple[FeatureDrift, ...]) -> str:
    header = (
        "<tr><th>feature</th><th>kind</th><th>statistic</th><th>value</th><th>threshold</th>"
        "<th>drifted</th><th>reference rows</th><th>current rows</th><th>note</th></tr>"
    )
    rows = []
    for f in features:
        css = ' class="drifted"' if f.drifted else ""
        verdict = '<span class="yes">yes</span>' if f.drifted else '<span class="no">no</span>'
        rows.append(
            f"<tr{css}><td>{_e(f.feature)}</td><td>{_e(f.kind)}</td>"
            f'<td>{_e(f.statistic_name)}</td><td class="num">{f.statistic:.4f}</td>'
            f'<td class="num">{f.threshold:g}</td><td>{verdict}</td>'
            f'<td class="num">{f.reference_rows:,}</td><td class="num">{f.current_rows:,}</td>'
            f"<td>{_e(f.note or '')}</td></tr>"
        )
    return f"<table>\n<thead>{header}</thead>\n<tbody>\n" + "\n".join(rows) + "\n</tbody>\n</table>"


def _figure(feature: FeatureDrift) -> str:
    histogram = feature.histogram
    assert histogram is not None
    png = _plot(feature, histogram)
    caption = (
        f"{feature.feature}: {feature.statistic_name} {feature.statistic:.4f} "
        f"(threshold {feature.threshold:g}); bars are shares of all rows."
    )
    if histogram.clipped:
        caption += " Values beyond the plotted range are counted in the end bars."
    if histogram.reference_missing_share or histogram.current_missing_share:
        caption += (
            f" Missing: {histogram.reference_missing_share:.1%} of reference rows, "
            f"{histogram.current_missing_share:.1%} of current rows."
        )
    return (
        f'<figure id="plot-{_e(feature.kind)}-{_e(feature.feature)}" class="drift-plot">'
        f'<img alt="{_e(feature.feature)}: reference vs current distribution" '
        f'src="data:image/png;base64,{png}"/>'
        f"<figcaption>{_e(caption)}</figcaption></figure>"
    )


def _plot(feature: FeatureDrift, histogram: DriftHistogram) -> str:
    figure = Figure(figsize=(8, 3.2), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    reference = np.asarray(histogram.reference_share)
    current = np.asarray(histogram.current_share)
    if histogram.categories is not None:
        positions = np.arange(len(histogram.categories))
        axes.bar(positions - 0.2, reference, width=0.4, label="reference", color=_REFERENCE_COLOUR)
        axes.bar(positions + 0.2, current, width=0.4, label="current", color=_CURRENT_COLOUR)
        axes.set_xticks(positions, histogram.categories, rotation=30 if len(positions) > 6 else 0)
    else:
        edges = np.asarray(histogram.edges)
        widths = np.diff(edges)
        axes.bar(
            edges[:-1],
            reference,
            width=widths,
            align="edge",
            alpha=0.55,
            label="reference",
            color=_REFERENCE_COLOUR,
        )
        axes.bar(
            edges[:-1],
            current,
            width=widths,
            align="edge",
            alpha=0.55,
            label="current",
            color=_CURRENT_COLOUR,
        )
        axes.set_xlabel(feature.feature)
    axes.set_ylabel("share of rows")
    axes.set_title(
        f"{feature.feature} - {feature.statistic_name} {feature.statistic:.3f}", fontsize=10
    )
    axes.legend(frameon=False)
    buffer = io.BytesIO()
    # No "Software" text chunk: the page should carry no addresses, even inside an image.
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _window(window: TimeWindow) -> str:
    return f"{_e(iso_utc(window.start))} to {_e(iso_utc(window.end))}"


def _e(text: str) -> str:
    return html.escape(str(text), quote=True)
