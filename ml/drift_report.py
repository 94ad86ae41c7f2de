"""The drift report as one self-contained HTML page (core.html: inline CSS, each plot an
embedded PNG, well-formed XML): a summary, the per-feature table, a plot per drifted feature.
"""

from __future__ import annotations

from pathlib import Path, PurePath

import numpy as np

from core.datahome import DataHome, as_data_home
from core.html import Cell, escape, figure, new_figure, page, png, table
from ml.drift import DriftHistogram, DriftReport, FeatureDrift
from ml.drift_windows import TimeWindow, iso_utc

_REFERENCE_COLOUR = "#4c72b0"
_CURRENT_COLOUR = "#dd8452"
_YES = Cell('<span class="yes">yes</span>', markup=True)
_NO = Cell('<span class="no">no</span>', markup=True)


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
        "<h1>Tradewatch drift report</h1>",
        f'<p class="meta">run <code>{escape(report.run_id)}</code> at '
        f"{escape(iso_utc(report.run_ts))}"
        f" &#183; reference {_window(report.reference_window)}"
        f" &#183; current {_window(report.current_window)}</p>",
        f'<p class="summary {state}">{escape(headline)}</p>',
        _table(report.features),
    ]
    if report.notes:
        parts.append('<ul class="notes">')
        parts += [f"<li>{escape(note)}</li>" for note in report.notes]
        parts.append("</ul>")
    plotted = [f for f in drifted if f.histogram is not None]
    if plotted:
        parts.append("<h2>Drifted features: reference vs current</h2>")
        parts += [_figure(f) for f in plotted]
    return page(f"Tradewatch drift report {report.run_id}", parts)


def write_drift_html(report: DriftReport, directory: DataHome | Path | str) -> PurePath:
    """Write <directory>/drift-<run_id>.html atomically; `directory` is a folder or a DataHome."""
    return as_data_home(directory).write_atomic(
        f"drift-{report.run_id}.html", render_drift_html(report)
    )


def _table(features: tuple[FeatureDrift, ...]) -> str:
    return table(
        ["feature", "kind", "statistic", "value", "threshold", "drifted", "reference rows",
         "current rows", "note"],
        [[f.feature, f.kind, f.statistic_name, f"{f.statistic:.4f}", f"{f.threshold:g}",
          _YES if f.drifted else _NO, f"{f.reference_rows:,}", f"{f.current_rows:,}",
          f.note or ""] for f in features],
        numeric={3, 4, 6, 7},
        row_classes=["drifted" if f.drifted else None for f in features],
    )


def _figure(feature: FeatureDrift) -> str:
    histogram = feature.histogram
    assert histogram is not None
    image = _plot(feature, histogram)
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
    return figure(
        image,
        caption,
        alt=f"{feature.feature}: reference vs current distribution",
        element_id=f"plot-{feature.kind}-{feature.feature}",
        css="drift-plot",
    )


def _plot(feature: FeatureDrift, histogram: DriftHistogram) -> str:
    plot, axes = new_figure(8, 3.2)
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
    return png(plot)


def _window(window: TimeWindow) -> str:
    return f"{escape(iso_utc(window.start))} to {escape(iso_utc(window.end))}"
