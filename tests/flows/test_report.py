"""The monitoring report: empty states on a fresh home, every section's numbers from real files
(audit log, drift and quality NDJSON, scores parquet) and a real MLflow SQLite store, a page
that is self-contained and well-formed, and one broken source that does not hide the others."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from flows.config import Settings, load_settings
from flows.report import (
    ANOMALIES,
    DRIFT,
    MODELS,
    QUALITY,
    REVIEW,
    SECTIONS,
    TOURNAMENT,
    MonitoringData,
    render_monitoring_report,
    run_report,
)
from ml.monitoring import assign_tournaments
from tests.flows.report_home import T0, write_drift, write_quality, write_realistic_home
from tests.flows.report_page import Node, assert_self_contained, parse_page
from tests.flows.report_snapshot import SNAPSHOT, rendered_structure

#: Sections the report gained after report_structure.json was written.
NEWER_SECTIONS = (REVIEW,)


def settings_for(home: Path) -> Settings:
    return load_settings(environ={"TRADEWATCH_HOME": str(home)})


#: The models the report reads that need no features (the shadow comparison needs the labels,
#: so the features: it is tested with the cycle, tests/e2e/test_cycle.py).
REPORT_MODELS = "tag:monitoring gold_anomaly_scores"
# The shadow comparison and the analysts' marts read gold_anomaly_labels, which needs features.
NEEDS_FEATURES = (
    "monitoring_shadow_scores monitoring_shadow_summary gold_flagged_trades gold_symbol_daily "
    "gold_anomaly_events monitoring_review_weekly"
)


def build_report_models(home: Path) -> None:
    """dbt builds the monitoring and gold models the report reads from the home's files."""
    from rich.console import Console

    from flows.transform import run_transform

    run_transform(settings_for(home), select=REPORT_MODELS, exclude=NEEDS_FEATURES,
                  console=Console(quiet=True))


@dataclass(frozen=True)
class RenderedHome:
    home: Path
    path: Path
    page: str
    root: Node


@pytest.fixture(scope="module")
def realistic(tmp_path_factory: pytest.TempPathFactory) -> RenderedHome:
    home = tmp_path_factory.mktemp("home")
    write_realistic_home(home)
    build_report_models(home)
    path = run_report(settings_for(home), refresh=False)
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


@pytest.fixture
def built_home(tmp_path: Path) -> Path:
    """A home with drift and quality runs, its report models built."""
    write_drift(tmp_path)
    write_quality(tmp_path)
    build_report_models(tmp_path)
    return tmp_path


def test_a_failed_rebuild_is_reported_and_the_tables_as_built_are_shown(built_home: Path):
    broken = built_home / "scores" / "date=2024-03-10" / "scores-run1.parquet"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"not a parquet file")

    page = run_report(settings_for(built_home)).read_text(encoding="utf-8")

    root = parse_page(page)
    banner = [p for p in root.find_all("p") if p.attrs.get("class") == "error"]
    assert banner and banner[0].text().startswith("The monitoring tables could not be rebuilt")
    assert "2 of 3 input features drifted" in root.by_id(DRIFT).text()
    assert root.by_id(QUALITY).table_with("result")[1][-1] == "1 critical failed"


def test_an_unreadable_table_is_reported_and_the_other_sections_still_render(built_home: Path):
    import duckdb

    # A table of an older build, without the columns the report reads.
    with duckdb.connect(str(built_home / "warehouse.duckdb")) as connection:
        connection.execute("create or replace table monitoring.monitoring_gate_decisions as "
                           "select 'e1' as event_id")

    page = run_report(settings_for(built_home), refresh=False).read_text(encoding="utf-8")

    root = parse_page(page)
    errors = [p for p in root.by_id(MODELS).find_all("p") if p.attrs.get("class") == "error"]
    assert errors and "MissingTableOrColumn" in errors[0].text()
    assert "run `tradewatch transform`" in errors[0].text()
    assert "2 of 3 input features drifted" in root.by_id(DRIFT).text()
    assert root.by_id(QUALITY).table_with("result")[1][-1] == "1 critical failed"
    assert root.by_id(ANOMALIES).find_all("p")[0].attrs["class"] == "empty"


def test_render_is_a_pure_function_of_the_data(tmp_path: Path):
    data = MonitoringData(generated_at=T0, home=tmp_path, errors={TOURNAMENT: "boom <b>"})

    page = render_monitoring_report(data)

    assert page == render_monitoring_report(data)
    assert "boom &lt;b&gt;" in page
    assert list(tmp_path.iterdir()) == []


def test_the_page_shows_what_the_report_showed_when_it_read_the_files_itself(realistic):
    """report_structure.json: this home rendered by the report before it read the dbt models
    (see report_snapshot.py): the same cards, sections, headings, sentences, figures and
    tables, cell by cell (MLflow run ids and registration times masked). Sections added since
    (the analysts' review) are not in it."""
    expected = json.loads(SNAPSHOT.read_text(encoding="utf-8"))
    expected.pop("_note")

    actual = rendered_structure(realistic.page)

    assert actual["cards"] == expected["cards"]
    assert [s for s in actual["sections"] if s not in NEWER_SECTIONS] == list(
        expected["sections"])
    for section, shown in expected["sections"].items():
        assert actual["sections"][section] == shown, section
