"""The HTML drift report: a page people open offline, with a plot per drifted feature."""

from __future__ import annotations

import base64
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from ml.drift import ModelScores, compute_drift
from ml.drift_report import render_drift_html, write_drift_html

END = datetime(2024, 3, 8, 21, 0, tzinfo=UTC)
NUMERIC = ("volume_zscore", "rsi_14", "price_volatility_1h", "bollinger_pct_b")


def window(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "volume_zscore": rng.normal(0, 1, rows),
            "rsi_14": rng.normal(50, 10, rows),
            "price_volatility_1h": rng.lognormal(-7, 0.5, rows),
            "bollinger_pct_b": rng.normal(0.5, 0.3, rows),
            "symbol": rng.choice(np.array(["AAPL", "MSFT", "NVDA"], dtype=object), rows),
        }
    )


@pytest.fixture(scope="module")
def report():
    reference, current = window(8_000, 1), window(6_000, 2)
    current["volume_zscore"] += 2.0  # shifted
    current["rsi_14"] = 50.0  # collapsed
    current.loc[current.index[:1_500], "price_volatility_1h"] = np.nan  # went missing
    current.loc[current.index[:1_000], "symbol"] = "PLTR"  # a new symbol
    rng = np.random.default_rng(3)
    return compute_drift(
        reference,
        current,
        numeric_features=NUMERIC,
        categorical_features=("symbol",),
        reference_window=(END - timedelta(days=8), END - timedelta(days=1)),
        current_window=(END - timedelta(days=1), END),
        scores=ModelScores(rng.beta(1, 20, 5_000), rng.beta(3, 4, 5_000)),
        run_id="run-7",
        run_ts=END,
    )


def parse(page: str) -> ET.Element:
    assert page.startswith("<!DOCTYPE html>\n")
    return ET.fromstring(page.removeprefix("<!DOCTYPE html>\n"))


def test_the_page_is_well_formed_and_lists_every_feature(report):
    root = parse(render_drift_html(report))

    cells = [row.findall("td") for row in root.iter("tr") if row.findall("td")]
    assert [c[0].text for c in cells] == [*NUMERIC, "symbol", "score"]
    drifted = {c[0].text for c in cells if c[5].findtext("span") == "yes"}
    assert drifted == {"volume_zscore", "rsi_14", "price_volatility_1h", "symbol", "score"}
    summary = root.find(".//p[@class='summary drift']")
    assert summary is not None and "4 of 5 input features drifted (80%)" in summary.text


def test_each_drifted_feature_has_its_own_embedded_plot(report):
    root = parse(render_drift_html(report))

    figures = root.findall(".//figure")
    assert sorted(f.get("id") for f in figures) == sorted(
        f"plot-{f.kind}-{f.feature}" for f in report.drifted_features
    )
    for figure in figures:
        source = figure.find("img").get("src")
        assert source.startswith("data:image/png;base64,")
        png = base64.b64decode(source.removeprefix("data:image/png;base64,"), validate=True)
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5_000
    caption = root.find(".//figure[@id='plot-numeric-price_volatility_1h']/figcaption").text
    assert "Missing: 0.0% of reference rows, 25.0% of current rows" in caption


def test_the_page_needs_nothing_from_the_network(report):
    page = render_drift_html(report)

    assert not re.search(r"https?://", page)
    for png in re.findall(r"base64,([A-Za-z0-9+/=]+)", page):
        assert b"http" not in base64.b64decode(png)  # not even in image metadata
    assert "<script" not in page and "<link" not in page
    assert not re.search(r"""(src|href)=["'](?!data:)""", page)


def test_a_report_without_drift_says_so_and_has_no_plots(tmp_path):
    same = window(3_000, 1)
    quiet = compute_drift(
        same,
        same,
        numeric_features=NUMERIC,
        reference_window=(END - timedelta(days=8), END - timedelta(days=1)),
        current_window=(END - timedelta(days=1), END),
        run_id="quiet",
    )

    path = write_drift_html(quiet, tmp_path / "reports")

    root = parse(path.read_text(encoding="utf-8"))
    assert root.findall(".//figure") == []
    assert root.find(".//p[@class='summary ok']").text.startswith("0 of 4 input features drifted")
    assert [p.name for p in path.parent.iterdir()] == ["drift-quiet.html"]
