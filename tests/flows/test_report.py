"""The monitoring report: empty states on a fresh home, every section's numbers from real files
(audit log, drift and quality NDJSON, scores parquet) and a real MLflow SQLite store, a page
that is self-contained and well-formed, and one broken source that does not hide the others."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flows.config import Settings, load_settings
from flows.report import (
    ANOMALIES,
    DRIFT,
    MODELS,
    QUALITY,
    SECTIONS,
    TOURNAMENT,
    MonitoringData,
    assign_tournaments,
    render_monitoring_report,
    run_report,
)
from ml.audit import AuditLog

T0 = datetime(2024, 3, 8, 14, 0, tzinfo=UTC)
VOID = {"meta", "img", "br", "hr", "link", "input", "col", "area", "base", "source", "wbr"}


# ----------------------------------------------------------------------- a small page model


@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    children: list[Node | str] = field(default_factory=list)

    def text(self) -> str:
        return " ".join(
            " ".join(c.split()) if isinstance(c, str) else c.text() for c in self.children
        ).strip()

    def find_all(self, tag: str) -> list[Node]:
        found = []
        for child in self.children:
            if isinstance(child, Node):
                if child.tag == tag:
                    found.append(child)
                found.extend(child.find_all(tag))
        return found

    def by_id(self, ident: str) -> Node:
        matches = [n for n in self.find_all("section") if n.attrs.get("id") == ident]
        assert len(matches) == 1, f"expected one section #{ident}, found {len(matches)}"
        return matches[0]

    def tables(self) -> list[list[list[str]]]:
        """Every table as rows of cell texts (header row first)."""
        return [
            [[cell.text() for cell in row.children if isinstance(cell, Node)]
             for row in table.find_all("tr")]
            for table in self.find_all("table")
        ]

    def table_with(self, header_cell: str) -> list[list[str]]:
        matches = [t for t in self.tables() if header_cell in t[0]]
        assert matches, f"no table with a {header_cell!r} column"
        return matches[0]


class StrictTreeBuilder(HTMLParser):
    """html.parser, plus the checks a browser forgives: every element closed, in order."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag, attrs):
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag, attrs):
        self.stack[-1].children.append(Node(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag):
        assert tag not in VOID, f"</{tag}> closes a void element"
        assert self.stack[-1].tag == tag, (
            f"</{tag}> closes <{self.stack[-1].tag}> (line {self.getpos()[0]})"
        )
        self.stack.pop()

    def handle_data(self, data):
        self.stack[-1].children.append(data)


def parse_page(page: str) -> Node:
    builder = StrictTreeBuilder()
    builder.feed(page)
    builder.close()
    assert [n.tag for n in builder.stack] == ["#document"], "unclosed elements at the end"
    return builder.root


def assert_self_contained(page: str, root: Node) -> None:
    """No asset or link leaves the page: only data: URIs and relative links."""
    for node in root.find_all("img") + root.find_all("script") + root.find_all("link"):
        source = node.attrs.get("src") or node.attrs.get("href") or ""
        assert source.startswith("data:image/png;base64,"), source[:80]
    for anchor in root.find_all("a"):
        href = anchor.attrs["href"]
        assert href.startswith("#") or "://" not in href and not href.startswith("//"), href
    assert "http://" not in page and "https://" not in page
    assert "url(" not in page and "@import" not in page
    for image in root.find_all("img"):
        png = base64.b64decode(image.attrs["src"].split(",", 1)[1])
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
        assert b"http" not in png


def settings_for(home: Path) -> Settings:
    return load_settings(environ={"TRADEWATCH_HOME": str(home)})


# ------------------------------------------------------------------------- a realistic home


def write_ndjson(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def metrics(pr_auc, roc_auc, precision, recall, f1, event_recall, trade_precision, p99,
            **event_level):
    return {
        "pr_auc": pr_auc, "roc_auc": roc_auc, "precision": precision, "recall": recall,
        "f1": f1, "event_recall": event_recall, "trade_precision": trade_precision,
        "latency_p50_ms": p99 / 3, "latency_p99_ms": p99, "threshold": 0.5, "rows": 1200.0,
        "positives": 36.0, **event_level,
    }


CHALLENGER_V3 = metrics(
    0.7412, 0.951, 0.62, 0.71, 0.662, 0.80, 0.58, 0.0121, event_average_precision=0.912,
    false_alerts_per_day=412.5, median_time_to_detect_s=2.0, events=240.0,
)
CHAMPION_V2 = metrics(
    0.7600, 0.958, 0.66, 0.73, 0.693, 0.85, 0.61, 0.0150, event_average_precision=0.905,
    false_alerts_per_day=480.0, median_time_to_detect_s=0.0, events=240.0,
)
COMPARISON_V3 = {
    "metric": "event_average_precision", "champion": 0.905, "challenger": 0.912,
    "difference": 0.007, "low": -0.011, "high": 0.026, "confidence": 0.9, "resamples": 1000,
    "blocks": 30, "block_minutes": 60.0,
}


def write_audit(home: Path) -> None:
    log = AuditLog(home / "monitoring" / "audit")
    window = {"test_window_start": "2024-03-10T12:00:00+00:00",
              "test_window_end": "2024-03-10T15:00:00+00:00"}
    log.append("gate_decision", {
        "decision": "promote", "reason": "no champion yet", "champion_version": None,
        "challenger_version": "1", "champion_metrics": {},
        "challenger_metrics": metrics(0.70, 0.94, 0.6, 0.7, 0.65, 0.8, 0.55, 0.02), **window,
    }, now=T0 + timedelta(minutes=55))
    log.append("promotion", {"champion_version": "1"}, now=T0 + timedelta(minutes=56))
    log.append("gate_decision", {
        "decision": "promote", "reason": "challenger PR-AUC 0.7600 beats champion 0.7000",
        "champion_version": "1", "challenger_version": "2",
        "champion_metrics": metrics(0.70, 0.94, 0.6, 0.7, 0.65, 0.8, 0.55, 0.02),
        "challenger_metrics": CHAMPION_V2, **window,
    }, now=T0 + timedelta(days=1, minutes=55))
    log.append("gate_decision", {
        "decision": "reject",
        "reason": "the interval's lower bound -0.011 does not clear +0.01",
        "champion_version": "2", "challenger_version": "3",
        "champion_metrics": CHAMPION_V2, "challenger_metrics": CHALLENGER_V3, **window,
        "primary_metric": "event_average_precision", "comparison": COMPARISON_V3,
        "events": 240,
    }, now=T0 + timedelta(days=2, minutes=55))


# tournament start, then (model, test PR-AUC or None for a failed run)
TOURNAMENTS = [
    (T0 + timedelta(minutes=50), [("random_forest", 0.70), ("lightgbm", 0.65)]),
    (T0 + timedelta(days=1, minutes=50), [("random_forest", 0.71), ("lightgbm", 0.76)]),
    (T0 + timedelta(days=2, minutes=50),
     [("xgboost", 0.7412), ("lightgbm", 0.7330), ("isolation_forest", None)]),
]


def write_mlflow(home: Path) -> None:
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param, RunTag

    uri = f"sqlite:///{home / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.create_experiment(
        "tradewatch", artifact_location=(home / "mlartifacts").as_uri()
    )
    run_of_version = {}
    for number, (start, models) in enumerate(TOURNAMENTS, 1):
        ranked = sorted((p, m) for m, p in models if p is not None)[::-1]
        for offset, (model, pr_auc) in enumerate(models):
            ms = int((start + timedelta(seconds=20 * offset)).timestamp() * 1000)
            run = client.create_run(experiment, start_time=ms, run_name=model,
                                    tags={"model": model})
            params = [Param("data.test_end", f"2024-03-{9 + number}T15:00:00+00:00")]
            tags = []
            logged = []
            if pr_auc is None:
                tags.append(RunTag("error", "ValueError: the training set has one class"))
            else:
                rank = [m for _, m in ranked].index(model) + 1
                tags.append(RunTag("rank", str(rank)))
                logged = [Metric(name, value, ms, 0) for name, value in {
                    "event_average_precision": pr_auc + 0.1, "false_alerts_per_day": 300.0,
                    "median_time_to_detect_s": 1.5,
                    "pr_auc": pr_auc, "roc_auc": 0.9 + pr_auc / 20, "precision": 0.6,
                    "recall": 0.7, "f1": 0.646, "event_recall": 0.8, "trade_precision": 0.55,
                    "training_seconds": 12.5, "latency_p99_ms": 0.0121,
                }.items()]
            client.log_batch(run.info.run_id, metrics=logged, params=params, tags=tags)
            client.set_terminated(run.info.run_id, "FINISHED" if pr_auc is not None else "FAILED",
                                  end_time=ms + 10_000)
            if pr_auc is not None and model == ranked[0][1]:
                run_of_version[str(number)] = (model, run.info.run_id)
    client.create_registered_model("tradewatch_anomaly")
    for _, (model, run_id) in sorted(run_of_version.items()):  # versions 1, 2, 3 in order
        client.create_model_version(
            "tradewatch_anomaly", f"runs:/{run_id}/model", run_id=run_id,
            tags={"model_name": model, "run_id": run_id},
        )
    for alias, version in {"champion": "2", "previous": "1", "challenger": "3"}.items():
        client.set_registered_model_alias("tradewatch_anomaly", alias, version)


DRIFT_RUNS = [
    ("20240309T160000Z-aaaa", T0 + timedelta(days=1, hours=2),
     {"volume_zscore": 0.05, "price_change_pct": 0.10, "session_type": 0.02, "score": 0.01}),
    ("20240310T160000Z-bbbb", T0 + timedelta(days=2, hours=2),
     {"volume_zscore": 0.35, "price_change_pct": 0.12, "session_type": 0.15, "score": 0.25}),
]
FEATURE_KINDS = {
    "volume_zscore": ("numeric", "psi", 0.2), "price_change_pct": ("numeric", "psi", 0.2),
    "session_type": ("categorical", "js_distance", 0.1), "score": ("prediction", "psi", 0.2),
}


def write_drift(home: Path) -> None:
    for run_id, run_ts, values in DRIFT_RUNS:
        write_ndjson(home / "monitoring" / "drift" / f"drift-{run_id}.ndjson", [
            {"run_id": run_id, "run_ts": iso(run_ts), "feature": feature,
             "kind": FEATURE_KINDS[feature][0], "statistic_name": FEATURE_KINDS[feature][1],
             "statistic": value, "threshold": FEATURE_KINDS[feature][2],
             "drifted": value > FEATURE_KINDS[feature][2], "reference_rows": 5000,
             "current_rows": 800, "reference_start": iso(run_ts - timedelta(days=7)),
             "reference_end": iso(run_ts - timedelta(hours=24)),
             "current_start": iso(run_ts - timedelta(hours=24)), "current_end": iso(run_ts)}
            for feature, value in values.items()
        ])
    # A report still being written: a reader must not see it.
    (home / "monitoring" / "drift" / ".drift-half.ndjson.tmp").write_text('{"run_id": "hal')


QUALITY_RUNS = [
    ("20240309T150000000000Z-q1", T0 + timedelta(days=1, hours=1), {}),
    ("20240310T150000000000Z-q2", T0 + timedelta(days=2, hours=1),
     {("silver_trades", "expect_column_values_to_be_between"): "3 of 1000 rows below 0",
      ("gold_trade_features", "expect_table_row_count_to_be_between"): "12 rows"}),
]
EXPECTATIONS = [
    ("silver_trades", "expect_column_values_to_not_be_null", "trade_id", "critical"),
    ("silver_trades", "expect_column_values_to_be_between", "price", "critical"),
    ("silver_trades", "expect_column_values_to_be_unique", "trade_id", "critical"),
    ("gold_trade_features", "expect_column_values_to_not_be_null", "rsi_14", "critical"),
    ("gold_trade_features", "expect_table_row_count_to_be_between", None, "warning"),
]


def write_quality(home: Path) -> None:
    for run_id, run_ts, failures in QUALITY_RUNS:
        write_ndjson(home / "monitoring" / "quality" / f"quality-{run_id}.ndjson", [
            {"run_id": run_id, "run_ts": iso(run_ts), "suite": suite, "expectation": name,
             "column": column, "severity": severity, "success": (suite, name) not in failures,
             "observed_value": failures.get((suite, name), "ok"), "details": ""}
            for suite, name, column, severity in EXPECTATIONS
        ])


SCORES_SCHEMA = pa.schema([
    ("trade_id", pa.string()), ("symbol", pa.string()), ("trade_ts", pa.timestamp("us", tz="UTC")),
    ("score", pa.float64()), ("flag", pa.bool_()), ("risk_level", pa.string()),
    ("model_name", pa.string()), ("model_version", pa.string()),
    ("scored_at", pa.timestamp("us", tz="UTC")),
])


def score_rows(symbol, hour: datetime, scores: list[float], version="2", prefix=None):
    prefix = prefix or f"{symbol}-{hour:%d%H}"
    return [{
        "trade_id": f"{prefix}-{i}", "symbol": symbol,
        "trade_ts": hour + timedelta(minutes=i), "score": s, "flag": s >= 0.5,
        "risk_level": "critical" if s >= 0.8 else "high" if s >= 0.5 else "low",
        "model_name": "tradewatch_anomaly", "model_version": version,
    } for i, s in enumerate(scores)]


def write_scores(home: Path) -> None:
    day = T0 + timedelta(days=2)                   # 2024-03-10 14:00
    first = (
        score_rows("AAPL", day, [0.1] * 7 + [0.6, 0.6, 0.97])          # AAPL-1014-0 … -9
        + score_rows("AAPL", day + timedelta(hours=1), [0.2] * 4 + [0.85])  # AAPL-1015-4
        + score_rows("MSFT", day + timedelta(hours=1), [0.1, 0.2, 0.3, 0.05])
        # Four days before the newest hour: outside the 48-hour window.
        + score_rows("NVDA", day - timedelta(days=4), [0.99])
    )
    # A newer champion re-scored AAPL-1014-8 (flagged at 0.6 by version 2) as normal.
    rescored = [dict(first[8], score=0.1, flag=False, risk_level="low", model_version="3")]
    for name, rows, scored_at in (("scores-run1", first, day + timedelta(hours=3)),
                                  ("scores-run2", rescored, day + timedelta(hours=4))):
        frame = pd.DataFrame(rows).assign(scored_at=scored_at)
        for date, part in frame.groupby(frame["trade_ts"].map(lambda t: f"{t:%Y-%m-%d}")):
            path = home / "scores" / f"date={date}" / f"{name}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            table = pa.Table.from_pandas(part.reset_index(drop=True), schema=SCORES_SCHEMA,
                                         preserve_index=False)
            pq.write_table(table, path)


def write_other_reports(home: Path) -> None:
    drift_page = home / "reports" / "drift" / "drift-20240310T160000Z-bbbb.html"
    drift_page.parent.mkdir(parents=True, exist_ok=True)
    drift_page.write_text("<html></html>")
    docs = home / "reports" / "data_docs" / "index.html"
    docs.parent.mkdir(parents=True, exist_ok=True)
    docs.write_text("<html></html>")


@dataclass(frozen=True)
class RenderedHome:
    home: Path
    path: Path
    page: str
    root: Node


@pytest.fixture(scope="module")
def realistic(tmp_path_factory: pytest.TempPathFactory) -> RenderedHome:
    home = tmp_path_factory.mktemp("home")
    write_audit(home)
    write_mlflow(home)
    write_drift(home)
    write_quality(home)
    write_scores(home)
    write_other_reports(home)
    path = run_report(settings_for(home))
    page = path.read_text(encoding="utf-8")
    return RenderedHome(home, path, page, parse_page(page))


# --------------------------------------------------------------------------------- tests


def test_a_fresh_home_renders_every_section_empty_and_writes_nothing_else(tmp_path: Path):
    path = run_report(settings_for(tmp_path))

    assert path == tmp_path / "reports" / "monitoring.html"
    page = path.read_text(encoding="utf-8")
    root = parse_page(page)
    for section in SECTIONS:
        empty = [p for p in root.by_id(section).find_all("p")
                 if p.attrs.get("class") == "empty"]
        assert empty and empty[0].text().startswith("No data yet."), section
    assert "run `tradewatch train`" in root.by_id(MODELS).text()
    assert "run `tradewatch drift`" in root.by_id(DRIFT).text()
    assert not root.find_all("img")
    assert_self_contained(page, root)
    # Read-only: no MLflow store, warehouse or monitoring directory was created.
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == [
        "reports", "reports/monitoring.html",
    ]


def test_champion_and_challenger_side_by_side_with_the_latest_decision(realistic):
    section = realistic.root.by_id(MODELS)

    aliases = section.table_with("alias")
    assert [row[:3] for row in aliases[1:]] == [
        ["champion", "2", "lightgbm"], ["challenger", "3", "xgboost"],
        ["previous", "1", "random_forest"],
    ]
    banner = [p for p in section.find_all("p") if "banner" in p.attrs.get("class", "")][0]
    assert banner.attrs["class"] == "banner reject"
    assert "REJECT challenger v3 (xgboost) against champion v2 (lightgbm)" in banner.text()
    assert "does not clear +0.01" in banner.text()
    # The primary metric, both values and the interval, as the gate weighed them.
    assert (
        "event_average_precision: challenger 0.912 vs champion 0.905, difference +0.007 "
        "(90% interval -0.011 to +0.026, 240 events)"
    ) in section.text()
    side_by_side = {row[0]: row[1:] for row in
                    section.table_with("metric (same test window)")[1:]}
    assert side_by_side["event average precision"] == ["0.912", "0.905", "+0.007"]
    assert side_by_side["event recall at threshold"][:2] == ["0.800", "0.850"]
    assert side_by_side["false alerts per day"] == ["412.5", "480.0", "-67.5"]
    assert side_by_side["median time to detect (s)"] == ["2.0", "0.0", "+2.0"]
    assert side_by_side["labelled events in window"][:2] == ["240", "240"]
    assert side_by_side["trade PR-AUC"] == ["0.741", "0.760", "-0.019"]
    assert side_by_side["trade ROC-AUC"] == ["0.951", "0.958", "-0.007"]
    assert side_by_side["trade precision"][:2] == ["0.620", "0.660"]
    assert side_by_side["trade recall"][:2] == ["0.710", "0.730"]
    assert side_by_side["trade F1"][:2] == ["0.662", "0.693"]
    assert side_by_side["latency p99 (ms/row)"] == ["0.0121", "0.0150", "-0.0029"]
    # fewer false alerts is better, a slower detection worse
    cells = {row[0]: row for row in section.table_with("metric (same test window)")[1:]}
    assert cells["false alerts per day"][3] == "-67.5"
    history = section.table_with("decision")
    assert [row[1] for row in history[1:]] == ["reject", "promote", "promote"]
    assert history[3][3] == "none"  # the first promotion had no champion to beat
    # the newest decision names its primary metric, both values and the interval
    assert history[1][4:9] == [
        "event_average_precision", "0.912", "0.905", "-0.011 to +0.026", "240",
    ]
    # decisions from before the gate judged on events show PR-AUC and no interval
    assert history[2][4:8] == ["pr_auc", "0.760", "0.700", "–"]


def test_tournament_history_from_mlflow(realistic):
    section = realistic.root.by_id(TOURNAMENT)

    assert "3 tournaments, 7 model runs" in section.text()
    leaderboard = section.table_with("trade PR-AUC")
    assert leaderboard[0][:7] == [
        "rank", "model", "event AP", "event recall", "false alerts/day", "median TTD s",
        "trade PR-AUC",
    ]
    assert [row[:7] for row in leaderboard[1:3]] == [
        ["1", "xgboost", "0.841", "0.800", "300.0", "1.5", "0.741"],
        ["2", "lightgbm", "0.833", "0.800", "300.0", "1.5", "0.733"],
    ]
    assert leaderboard[3][:3] == ["–", "isolation_forest", "–"]
    assert "failed: ValueError: the training set has one class" in leaderboard[3][-1]
    tournaments = section.table_with("winner")
    assert [(row[0], row[3], row[4], row[5]) for row in tournaments[1:]] == [
        ("3", "xgboost", "0.841", "0.741"), ("2", "lightgbm", "0.860", "0.760"),
        ("1", "random_forest", "0.800", "0.700"),
    ]
    assert len(section.find_all("img")) == 1


def test_untagged_runs_are_grouped_into_tournaments_by_model_and_test_window():
    started = pd.Timestamp("2024-03-08T15:00:00Z")
    runs = pd.DataFrame({
        "model": ["lightgbm", "xgboost", "lightgbm", "xgboost", "lightgbm", "lightgbm"],
        "started_at": [started + pd.Timedelta(seconds=s) for s in (0, 5, 60, 65, 120, 125)],
        "tournament_tag": [None, None, None, None, "t-9", "t-9"],
        "test_window": ["w1", "w1", "w1", "w1", "w2", "w2"],
    })

    numbered = assign_tournaments(runs)

    assert numbered["tournament"].tolist() == [1, 1, 2, 2, 3, 3]
    assert numbered["tournament_started_at"].iloc[3] == started + pd.Timedelta(seconds=60)


def test_drift_per_feature_over_time(realistic):
    section = realistic.root.by_id(DRIFT)

    assert "2 drift runs shown" in section.text()
    assert "2 of 3 input features drifted" in section.text()
    latest = section.table_with("drifted")
    assert latest[1][:6] == ["volume_zscore", "numeric", "psi", "0.3500", "0.200", "yes"]
    drifted = {row[0] for row in latest[1:] if row[5] == "yes"}
    assert drifted == {"volume_zscore", "session_type", "score"}
    runs = section.table_with("input features drifted")
    assert [(row[2], row[3]) for row in runs[1:]] == [
        ("2 of 3", "score, session_type, volume_zscore"), ("0 of 3", "none"),
    ]
    assert len(section.find_all("img")) == 1
    links = [a.attrs["href"] for a in section.find_all("a")]
    assert links == ["drift/drift-20240310T160000Z-bbbb.html"]


def test_anomalies_per_symbol_from_the_newest_champion_scores(realistic):
    section = realistic.root.by_id(ANOMALIES)

    # The re-scored trade counts once, unflagged; NVDA's trade is outside the window.
    assert "3 of 19 trades flagged" in section.text()
    per_symbol = {row[0]: row[1:6] for row in section.table_with("flagged share")[1:]}
    assert per_symbol == {
        "AAPL": ["15", "3", "20.00%", "2", "1"],
        "MSFT": ["4", "0", "0.00%", "0", "0"],
    }
    top = section.table_with("trade id")
    assert [row[1:] for row in top[1:]] == [
        ["AAPL", "0.9700", "critical", "tradewatch_anomaly v2 (lightgbm)", "AAPL-1014-9"],
        ["AAPL", "0.8500", "critical", "tradewatch_anomaly v2 (lightgbm)", "AAPL-1015-4"],
        ["AAPL", "0.6000", "high", "tradewatch_anomaly v2 (lightgbm)", "AAPL-1014-7"],
    ]
    assert len(section.find_all("img")) == 1


def test_data_quality_history_and_latest_failures(realistic):
    section = realistic.root.by_id(QUALITY)

    grid = section.table_with("result")
    assert grid[0][2:] == ["gold_trade_features", "silver_trades", "result"]
    assert grid[1][2:] == ["1/2 passed", "2/3 passed", "1 critical failed"]
    assert grid[2][2:] == ["2/2 passed", "3/3 passed", "passed"]
    cells = [row for row in section.find_all("tr")][1].find_all("td")
    assert [c.attrs.get("class") for c in cells[2:4]] == ["warn", "bad"]
    failures = section.table_with("severity")
    assert [row[:4] for row in failures[1:]] == [
        ["critical", "silver_trades", "expect_column_values_to_be_between", "price"],
        ["warning", "gold_trade_features", "expect_table_row_count_to_be_between", "(table)"],
    ]
    assert failures[1][4] == "3 of 1000 rows below 0"


def test_the_status_cards_summarise_each_section(realistic):
    cards = {
        card.children[0].text(): card.children[1].text()
        for card in realistic.root.find_all("div") if "card " in card.attrs.get("class", "")
    }

    assert cards == {
        "champion": "version 2",
        "last gate decision": "reject v3",
        "drift (latest run)": "2 of 3 features",
        "data quality (latest run)": "1 critical failed",
        "flagged trades (newest hour)": "1",
    }


def test_the_page_is_self_contained_and_well_formed(realistic):
    assert_self_contained(realistic.page, realistic.root)
    assert len(realistic.root.find_all("img")) == 3
    relative = {a.attrs["href"] for a in realistic.root.find_all("a")
                if not a.attrs["href"].startswith("#")}
    assert relative == {"drift/drift-20240310T160000Z-bbbb.html", "data_docs/index.html"}
    for href in relative:
        assert (realistic.path.parent / href).exists()


def test_an_unreadable_source_is_reported_and_the_other_sections_still_render(tmp_path: Path):
    write_drift(tmp_path)
    write_quality(tmp_path)
    audit = tmp_path / "monitoring" / "audit" / "audit-2024-03-08.ndjson"
    audit.parent.mkdir(parents=True)
    audit.write_text('{"event_id": "e1", "kind": "gate_decision"\n{"event_id": "e2"}\n')
    broken = tmp_path / "scores" / "date=2024-03-10" / "scores-run1.parquet"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"not a parquet file")
    (tmp_path / "monitoring" / "quality" / "quality-torn.ndjson").write_text('{"run_id": ')

    page = run_report(settings_for(tmp_path)).read_text(encoding="utf-8")

    root = parse_page(page)
    for section, source in ((MODELS, "AuditLogDamaged"),
                            (ANOMALIES, "scores-run1.parquet")):
        errors = [p for p in root.by_id(section).find_all("p")
                  if p.attrs.get("class") == "error"]
        assert errors and source in errors[0].text(), section
    assert "2 of 3 input features drifted" in root.by_id(DRIFT).text()
    quality = root.by_id(QUALITY)
    assert quality.table_with("result")[1][-1] == "1 critical failed"
    assert "skipped unreadable file quality-torn.ndjson" in quality.text()


def test_render_is_a_pure_function_of_the_data(tmp_path: Path):
    data = MonitoringData(generated_at=T0, home=tmp_path, errors={TOURNAMENT: "boom <b>"})

    page = render_monitoring_report(data)

    assert page == render_monitoring_report(data)
    assert "boom &lt;b&gt;" in page
    assert list(tmp_path.iterdir()) == []
