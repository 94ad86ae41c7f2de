"""`tradewatch report`: the monitoring page an on-call engineer opens first.

One self-contained HTML file, <home>/reports/monitoring.html (core.html): the champion and the
challenger with the gate's decisions, the shadow comparison, the tournament history, drift per
feature over time, flagged trades per symbol per hour, the analysts' review of the champion's
flags (coverage, confirmed precision by week, the queue's age), the data-quality history.

Layout only: ml.monitoring reads the data (the warehouse's monitoring and gold models, the
registry). dbt builds those tables from the files the ML and quality layers write, so
`run_report` rebuilds them first when a warehouse exists (unless its caller just did); a failed
rebuild is shown and the tables as they were are read. A fresh data home is never written to.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from rich.console import Console

from core import html
from core.datahome import write_atomic
from core.html import DASH, Cell, escape, number, table, timestamp
from flows.config import Settings
from flows.engine import has_model_registry, has_warehouse, mlflow_stores, open_warehouse
from ml import monitoring as mon
from ml.monitoring import MonitoringData

REPORT_FILE = "monitoring.html"
MODELS, SHADOW, TOURNAMENT, DRIFT, ANOMALIES, REVIEW, QUALITY = (
    mon.MODELS, mon.SHADOW, mon.TOURNAMENT, mon.DRIFT, mon.ANOMALIES, mon.REVIEW, mon.QUALITY)
SECTIONS: dict[str, str] = {
    MODELS: "Champion and challenger",
    SHADOW: "Champion against challenger on live trades",
    TOURNAMENT: "Tournament history",
    DRIFT: "Drift per feature",
    ANOMALIES: "Anomalies per symbol",
    REVIEW: "Analyst review of the flags",
    QUALITY: "Data quality",
}
SHOWN = 10  # gate decisions, tournaments, drift runs listed
QUALITY_RUNS_SHOWN = 12


def collect_monitoring_data(settings: Settings) -> MonitoringData:
    """Read every section's source (read-only) through ml.monitoring."""
    paths = settings.paths
    registry = None
    # Locally, opening a missing SQLite file would create an MLflow store.
    if has_model_registry(settings):
        from flows.training import registry as registry_of

        registry = registry_of(settings)
    return mon.load_monitoring_data(
        home=paths.home, warehouse=open_warehouse(settings)
        if has_warehouse(settings) else None, registry=registry,
        experiment=settings.training.experiment, reports=paths.reports,
        registered_model=mlflow_stores(settings).model_name,
    )


def run_report(settings: Settings, *, console: Console | None = None,
               refresh: bool = True) -> Path:
    """Write <home>/reports/monitoring.html (atomically) and return its path; `refresh` first
    rebuilds the monitoring tables from the newest files (skip it right after a publish)."""
    console = console or Console()
    problem = None
    if refresh and settings.paths.warehouse.exists():
        from flows.pipeline import PUBLISH_SELECTOR
        from flows.transform import TransformFailed, run_transform

        try:
            run_transform(settings, select=PUBLISH_SELECTOR, console=Console(quiet=True))
        except TransformFailed as exc:
            problem = f"The monitoring tables could not be rebuilt, shown as last built: {exc}"
    page_html = render_monitoring_report(collect_monitoring_data(settings), problem=problem)
    path = write_atomic(settings.paths.reports / REPORT_FILE, page_html)
    console.print(f"report: {path.resolve().as_uri()}")
    return path


# ------------------------------------------------------------------------------ the page


def render_monitoring_report(data: MonitoringData, *, problem: str | None = None) -> str:
    """The whole page as one self-contained HTML document (also well-formed XML)."""
    sections = {MODELS: _models, SHADOW: _shadow, TOURNAMENT: _tournament, DRIFT: _drift,
                ANOMALIES: _anomalies, REVIEW: _review, QUALITY: _quality}
    nav = " ".join(f'<a href="#{key}">{escape(title)}</a>' for key, title in SECTIONS.items())
    links = " &#183; ".join(f'<a href="{escape(href)}">{escape(label)}</a>'
                            for label, href in data.links.items())
    parts = [
        "<h1>Tradewatch monitoring</h1>",
        f'<p class="meta">generated {escape(timestamp(data.generated_at))} from '
        f"<code>{escape(data.home)}</code> &#183; model <code>{escape(data.registered_model)}"
        f"</code> &#183; MLflow experiment <code>{escape(data.experiment)}</code></p>",
        f"<nav>{nav}</nav>",
        _cards(data),
    ]
    if problem:
        parts.append(f'<p class="error">{escape(problem)}</p>')
    if links:
        parts.append(f'<p class="meta">more: {links}</p>')
    for key, render in sections.items():
        parts += [f'<section id="{key}">', f"<h2>{escape(SECTIONS[key])}</h2>"]
        parts.append(f'<p class="error">Could not read this section\'s source: '
                     f"{escape(data.errors[key])}</p>" if key in data.errors else render(data))
        parts += [f'<p class="note">{escape(note)}</p>' for note in data.notes.get(key, [])]
        parts.append("</section>")
    return html.page("Tradewatch monitoring", parts)


def _cards(data: MonitoringData) -> str:
    champion, last = data.aliases.get("champion"), (data.gate_decisions or (None,))[-1]
    cards = [
        html.card("champion", "unreadable", data.errors[MODELS], "bad") if MODELS in data.errors
        else html.card("champion", f"version {champion}", data.model_of(champion) or "", "ok")
        if champion else html.card("champion", "none yet", "run `tradewatch train`", "none"),
        html.card("last gate decision", f"{last.decision} v{last.challenger_version}",
                  timestamp(last.decided_at), "ok" if last.decision == "promote" else "warn")
        if last else html.card("last gate decision", "none yet", "", "none"),
    ]
    if not data.drift.empty:
        run = mon.drift_runs(data.drift)[0]
        extra = ", ".join(f"{kind} drift" for kind in run.other_drifted)
        cards.append(html.card("drift (latest run)", f"{run.inputs_drifted} of {run.inputs} "
                               "features", extra or timestamp(run.run_ts),
                               "bad" if run.inputs_drifted or extra else "ok"))
    else:
        cards.append(html.card("drift (latest run)", "no run yet", "", "none"))
    if not data.quality.empty:
        quality = mon.quality_runs(data.quality)[0]
        state = "bad" if quality.critical_failed else "warn" if quality.warnings_failed else "ok"
        value = quality.verdict if state != "ok" else f"all {quality.expectations} passed"
        cards.append(html.card("data quality (latest run)", value, timestamp(quality.run_ts),
                               state))
    else:
        cards.append(html.card("data quality (latest run)", "no run yet", "", "none"))
    hourly = data.anomalies_hourly
    if not hourly.empty:
        newest = hourly["trade_hour"].max()
        flagged = int(hourly.loc[hourly["trade_hour"] == newest, "flagged"].sum())
        cards.append(html.card("flagged trades (newest hour)", f"{flagged:,}",
                               f"hour from {timestamp(newest)}", "warn" if flagged else "ok"))
    else:
        cards.append(html.card("flagged trades (newest hour)", "no scores yet", "", "none"))
    return '<div class="cards">' + "".join(cards) + "</div>"


def _models(data: MonitoringData) -> str:
    if not data.aliases and not data.gate_decisions:
        return html.empty(f"No version of {data.registered_model} is registered and the gate "
                          "has not decided yet: run `tradewatch train`.")
    parts = []
    if data.aliases:
        order = ("champion", "challenger", "previous")
        rows = []
        for alias in (*order, *sorted(set(data.aliases) - set(order))):
            if (version := data.aliases.get(alias)) is None:
                continue
            info = data.versions.get(version)
            rows.append([alias, version, info and info.model_name or DASH,
                         timestamp(info.created_at) if info and info.created_at else DASH,
                         html.ident(info.run_id) if info and info.run_id else DASH])
        parts += ["<h3>Registry aliases now</h3>", table(
            ["alias", "version", "model", "registered", "MLflow run"], rows, numeric={1})]
    else:
        parts.append(html.empty(f"No version of {data.registered_model} is registered."))
    if not data.gate_decisions:
        return "\n".join([*parts, html.empty("The gate has not decided yet: run `tradewatch "
                                              "train`.")])
    last = data.gate_decisions[-1]
    window = (f" Test window {escape(html.iso(last.test_window_start))} to "
              f"{escape(html.iso(last.test_window_end))}." if last.test_window_start else "")
    parts += ["<h3>Latest gate decision</h3>", (
        f'<p class="banner {escape(last.decision)}"><strong>{escape(last.decision.upper())}'
        f"</strong> challenger {escape(data.version_label(last.challenger_version))} against "
        f"champion {escape(data.version_label(last.champion_version))} at "
        f"{escape(timestamp(last.decided_at))}. Reason: {escape(last.reason.rstrip('.'))}."
        f"{window}</p>")]
    if line := last.comparison_line():
        parts.append(f'<p class="meta">Primary metric, {escape(line)}.</p>')
    parts.append(_metrics_table(data, last))
    if len(data.gate_decisions) > 1:
        rows = []
        for record in reversed(data.gate_decisions[-SHOWN:]):
            c, metric = record.comparison or {}, record.primary_metric or "pr_auc"
            rows.append([
                timestamp(record.decided_at), record.decision,
                data.version_label(record.challenger_version),
                data.version_label(record.champion_version), metric,
                number(record.challenger_metrics.get(metric)),
                number(record.champion_metrics.get(metric)),
                f"{c['low']:+.3f} to {c['high']:+.3f}" if c else DASH,
                number(record.events, 0), record.reason,
            ])
        parts += [f"<h3>Gate decisions (newest {len(rows)} of {len(data.gate_decisions)})</h3>",
                  table(["decided", "decision", "challenger", "champion", "primary metric",
                         "challenger", "champion", "difference interval", "events", "reason"],
                        rows, numeric={5, 6, 7, 8})]
    return "\n".join(parts)


def _metrics_table(data: MonitoringData, record: mon.GateRecord) -> str:
    challenger, champion = record.challenger_metrics, record.champion_metrics
    rows = []
    for key, label, better, digits in mon.GATE_METRICS:
        mine, theirs = challenger.get(key), champion.get(key)
        if mine is None and theirs is None:
            continue
        delta = Cell(DASH)
        if mine is not None and theirs is not None:
            difference = mine - theirs
            css = (("better" if difference * better > 0 else "worse")
                   if better and abs(difference) > 1e-12 else None)
            delta = Cell(f"{difference:+,.{digits}f}", css=css)
        rows.append([label, number(mine, digits), number(theirs, digits), delta])
    if not rows:
        return html.empty("The gate decision carries no metrics (it rejected before scoring).")
    header = ["metric (same test window)",
              f"challenger {data.version_label(record.challenger_version)}",
              f"champion {data.version_label(record.champion_version)}", "challenger − champion"]
    return table(header, rows, numeric={1, 2, 3}) + ("" if champion else (
        '<p class="note">No champion at decision time: the challenger was judged on its own.</p>'))


def _shadow(data: MonitoringData) -> str:
    if data.shadow.empty:
        return html.empty("A challenger the gate kept out scores new trades in shadow; the "
                          "comparison appears after a scoring cycle has run with one registered.")
    rows = [[data.version_label(row.challenger_version), data.version_label(row.champion_version),
             f"{int(row.trades):,}", f"{row.flag_agreement:.1%}", f"{int(row.both_flagged):,}",
             f"{int(row.champion_only_flagged):,}", f"{int(row.challenger_only_flagged):,}",
             f"{int(row.labelled_trades):,}", number(row.champion_precision),
             number(row.challenger_precision),
             f"{timestamp(row.first_trade_ts)} – {timestamp(row.last_trade_ts)}"]
            for row in mon.rows(data.shadow)]
    return ('<p class="note">Shadow scores are never alerted and never reach gold_anomaly_scores.'
            " Precision counts the flags on trades with an analyst's or the simulator's label."
            "</p>" + table(["challenger", "champion", "trades", "flags agree", "both flag",
                            "champion only", "challenger only", "trusted labels",
                            "champion precision", "challenger precision", "trades from – to"],
                           rows, numeric=set(range(2, 10))))


def _tournament(data: MonitoringData) -> str:
    runs = data.tournament_runs
    if runs.empty:
        return html.empty(f"No tournament has been logged to MLflow experiment "
                          f"{data.experiment}: run `tradewatch train`.")
    count = runs["tournament"].nunique()
    latest = mon.leaderboard(runs)
    failed = [row.status != "FINISHED" or pd.isna(row.pr_auc) for row in mon.rows(latest)]
    rows = [["–", row.model, *["–"] * 12, f"failed: {row.error or row.status}"] if bad else
            [number(row.rank, 0), row.model,
             *[number(getattr(row, name), digits) for name, digits in mon.LEADERBOARD_METRICS], ""]
            for row, bad in zip(mon.rows(latest, index=False), failed, strict=True)]
    history = [[number(t.number, 0), timestamp(t.started_at), ", ".join(t.models),
                t.winner or "none (all failed)", number(t.winner_event_average_precision),
                number(t.winner_pr_auc), number(t.failed, 0)]
               for t in mon.tournament_summaries(runs, SHOWN)]
    return "\n".join([
        f'<p class="meta">{count} tournament{"s" if count > 1 else ""}, {len(runs)} model runs '
        f"in MLflow experiment <code>{escape(data.experiment)}</code>.</p>",
        html.figure(_tournament_plot(runs), "Test PR-AUC of each model per tournament (all "
                    "models judged on the same newest test window of their run)."),
        f"<h3>Latest leaderboard (tournament {int(runs['tournament'].max())}, started "
        f"{escape(timestamp(latest['tournament_started_at'].iloc[0]))})</h3>",
        table(["rank", "model", "event AP", "event recall", "false alerts/day", "median TTD s",
               "trade PR-AUC", "ROC-AUC", "precision", "recall", "F1", "train s", "p99 ms/row",
               ""], rows, numeric=set(range(2, 13)) | {0},
              row_classes=["failed" if bad else None for bad in failed]),
        f"<h3>Tournaments (newest {len(history)})</h3>",
        table(["#", "started", "models", "winner", "winner event AP", "winner trade PR-AUC",
               "failed"], history, numeric={0, 4, 5, 6}),
    ])


def _tournament_plot(runs: pd.DataFrame) -> str:
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

    plot, axes = html.new_figure(10, 3.4)
    finished = runs[(runs["status"] == "FINISHED") & runs["pr_auc"].notna()]
    for model, group in finished.groupby("model", sort=True):
        group = group.sort_values("tournament_started_at")
        axes.plot(group["tournament_started_at"].dt.tz_localize(None), group["pr_auc"],
                  marker="o", linewidth=1.5, markersize=5, label=model)
    axes.set(ylabel="test PR-AUC", ylim=(0, 1.02), xlabel="tournament start (UTC)")
    axes.grid(alpha=0.3)
    locator = AutoDateLocator(maxticks=10)
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    if not finished.empty:
        axes.legend(frameon=False, fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return html.png(plot)


def _drift(data: MonitoringData) -> str:
    if data.drift.empty:
        return html.empty("No drift report has been written: run `tradewatch drift`.")
    runs, grid = mon.drift_runs(data.drift), mon.drift_grid(data.drift)
    link, latest = data.links.get("latest drift report"), mon.latest_drift(data.drift)
    return "\n".join([
        f'<p class="meta">{len(runs)} drift run{"s" if len(runs) > 1 else ""} shown. Latest run '
        f"<code>{escape(runs[0].run_id)}</code> at {escape(timestamp(runs[0].run_ts))}: <strong>"
        f"{runs[0].inputs_drifted} of {runs[0].inputs} input features drifted</strong>; current "
        f"window {escape(html.iso(runs[0].current_start, milliseconds=True))} to "
        f"{escape(html.iso(runs[0].current_end, milliseconds=True))}."
        + (f' <a href="{escape(link)}">Open its full report.</a>' if link else "") + "</p>",
        html.figure(html.heatmap(
            grid.ratio, grid.features, [f"{t:%m-%d %H:%M}" for t in grid.runs],
            colormap="RdYlGn_r", vmax=2, scale_label="statistic / threshold",
            xlabel="drift run (UTC)", marks=grid.drifted,
        ), "Statistic divided by its threshold, per feature (rows) and drift run (columns): "
           "green is well below the threshold, red above it; x marks a drifted feature. PSI for "
           "numeric features and scores, Jensen-Shannon distance for categorical ones, PR-AUC "
           "drop for performance."),
        "<h3>Latest drift run</h3>",
        table(["feature", "kind", "statistic", "value", "threshold", "drifted",
               "reference rows", "current rows"],
              [[row.feature, row.kind, row.statistic_name, number(row.statistic, 4),
                number(row.threshold, 3), "yes" if row.drifted else "no",
                number(row.reference_rows, 0), number(row.current_rows, 0)]
               for row in mon.rows(latest, index=False)],
              numeric={3, 4, 6, 7}, row_classes=["bad" if d else None for d in latest["drifted"]]),
        f"<h3>Drift runs (newest {min(len(runs), SHOWN)})</h3>",
        table(["run at", "run id", "input features drifted", "drifted"],
              [[timestamp(run.run_ts), html.ident(run.run_id),
                f"{run.inputs_drifted} of {run.inputs}", ", ".join(run.drifted) or "none"]
               for run in runs[:SHOWN]]),
    ])


def _anomalies(data: MonitoringData) -> str:
    hourly = data.anomalies_hourly
    if hourly.empty:
        return html.empty("The champion has scored no trade: `tradewatch train` scores new "
                          "trades once a champion is promoted (or run `tradewatch score`).")
    start, end = hourly["trade_hour"].min(), hourly["trade_hour"].max() + pd.Timedelta(hours=1)
    scored, flagged = int(hourly["scored"].sum()), int(hourly["flagged"].sum())
    grid = mon.flag_grid(hourly)
    parts = [
        f'<p class="meta">Champion scores of trades from {escape(timestamp(start))} to '
        f"{escape(timestamp(end))} (at most the newest {mon.ANOMALY_HOURS} hours of trade time "
        "with scores; a re-scored trade counts once, with its newest score): "
        f"<strong>{flagged:,} of {scored:,} trades flagged</strong>.</p>",
        html.figure(html.heatmap(
            grid.to_numpy(dtype=float), list(grid.index), [f"{h:%m-%d %H:00}" for h in grid],
            colormap="Reds", vmax=max(1.0, float(grid.to_numpy().max())),
            scale_label="flagged trades", xlabel="hour of trade time (UTC)", row_height=0.32,
            counts=len(grid.columns) <= 36, integer_scale=True,
        ), "Flagged trades per symbol (rows) per hour of trade time (columns, UTC)."),
        "<h3>Per symbol</h3>",
        table(["symbol", "scored", "flagged", "flagged share", "critical", "high",
               "last flagged"],
              [[row.symbol, number(row.scored, 0), number(row.flagged, 0),
                f"{row.flagged / row.scored:.2%}" if row.scored else DASH,
                number(row.critical, 0), number(row.high, 0), timestamp(row.last_flagged_ts)]
               for row in mon.rows(data.anomalies_by_symbol, index=False)],
              numeric={1, 2, 3, 4, 5}),
    ]
    if not (top := data.top_anomalies).empty:
        parts += [f"<h3>Highest-scoring flagged trades (top {len(top)})</h3>", table(
            ["trade time", "symbol", "score", "risk", "scored by", "trade id"],
            [[timestamp(row.trade_ts, seconds=True), row.symbol, number(row.score, 4),
              row.risk_level, f"{row.model_name} {data.version_label(row.model_version)}",
              html.ident(row.trade_id)] for row in mon.rows(top, index=False)], numeric={2})]
    return "\n".join(parts)


def _review(data: MonitoringData) -> str:
    review = data.review
    if review.empty:
        return html.empty("The champion has flagged no trade yet: the review queue fills once "
                          "it scores (`tradewatch review list`, or Review in `tradewatch ui`).")
    summary = mon.review_summary(review)
    age = summary.queue_age(data.generated_at)
    waiting = (f"<strong>{summary.waiting:,} flags waiting</strong>, the oldest a trade of "
               f"{escape(timestamp(summary.oldest_waiting_trade_ts))} scored "
               f"{escape(timestamp(summary.oldest_waiting_since))}"
               + (f" ({escape(_duration(age))} ago)" if age is not None else "")
               if summary.waiting else "<strong>no flag waiting</strong>")
    precision = (f"confirmed precision <strong>{summary.confirmed_precision:.1%}</strong> "
                 f"({summary.confirmed:,} of {summary.reviewed:,} reviewed flags confirmed)"
                 if summary.confirmed_precision is not None else "no flag reviewed yet")
    weeks = list(mon.rows(review.iloc[::-1].head(mon.REVIEW_WEEKS), index=False))
    return "\n".join([
        f'<p class="meta" id="review-summary">Of the current champion\'s '
        f"{summary.flagged:,} flags, analysts reviewed {summary.reviewed:,} "
        f"(<strong>coverage {summary.coverage:.1%}</strong>): {precision}; {waiting}.</p>",
        f"<h3>By week of trade time (newest {len(weeks)} of {len(review)})</h3>",
        table(["week from", "flags", "reviewed", "coverage", "confirmed", "dismissed",
               "confirmed precision", "waiting", "oldest waiting trade"],
              [[timestamp(row.week_start), number(row.flagged, 0), number(row.reviewed, 0),
                f"{row.review_coverage:.1%}", number(row.confirmed, 0),
                number(row.dismissed, 0),
                DASH if pd.isna(row.confirmed_precision) else f"{row.confirmed_precision:.1%}",
                number(row.unreviewed, 0), timestamp(row.oldest_unreviewed_trade_ts)]
               for row in weeks], numeric=set(range(1, 8))),
        '<p class="note">Precision counts the latest analyst decision on each flag of the '
        "current champion; decisions show after the next build.</p>",
    ])


def _duration(age: pd.Timedelta) -> str:
    hours = age.total_seconds() / 3600
    return f"{hours / 24:,.1f} days" if hours >= 48 else f"{hours:,.1f} hours"


def _quality(data: MonitoringData) -> str:
    if data.quality.empty:
        return html.empty("No data-quality checkpoint has run: run `tradewatch validate` (or "
                          "`tradewatch transform`).")
    suites = sorted(data.quality["suite"].dropna().unique())
    runs = mon.quality_runs(data.quality)
    rows = [[timestamp(run.run_ts), html.ident(run.run_id),
             *[Cell(f"{run.suites[s][0]}/{run.suites[s][1]} passed", css=run.suites[s][2])
               if s in run.suites else DASH for s in suites], run.verdict]
            for run in runs[:QUALITY_RUNS_SHOWN]]
    failures = mon.latest_failures(data.quality)
    parts = [
        f'<p class="meta">{len(runs)} checkpoint run{"s" if len(runs) > 1 else ""} read; the '
        f"newest {len(rows)} below. Each cell: expectations passed of those evaluated "
        "(red: a critical one failed, amber: a warning failed).</p>",
        table(["run at", "run id", *suites, "result"], rows),
        "<h3>Failures in the latest run</h3>",
        f'<p class="banner promote">All {runs[0].expectations} expectations passed in run '
        f"<code>{escape(runs[0].run_id)}</code>.</p>" if failures.empty else table(
            ["severity", "suite", "expectation", "column", "observed", "details"],
            [[row.severity, row.suite, row.expectation,
              row.column_name if isinstance(row.column_name, str) else "(table)",
              html.clip(row.observed_value), html.clip(row.details)]
             for row in mon.rows(failures, index=False)],
            row_classes=["bad" if s == "critical" else "warn" for s in failures["severity"]]),
    ]
    if docs := data.links.get("Data Docs (expectation results)"):
        parts.append(f'<p class="meta"><a href="{escape(docs)}">Data Docs</a> hold every '
                     "result in detail.</p>")
    return "\n".join(parts)

