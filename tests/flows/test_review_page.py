"""The review page's guards and its chart, without a browser or a built warehouse (the browser
tests run on the scoring cycle's home: tests/e2e/test_cycle.py).

A data home with nothing built: every page answers with what is missing, in one line; a form
that did not come from the page, or a request for another host name, is refused and writes
nothing; whatever a user typed comes back escaped.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from flows.config import load_settings
from flows.review_chart import BarRange, PricePoint, price_chart
from flows.review_page import REVIEWER_COOKIE, create_app

HOSTILE = '<script>alert("x")</script>'


@pytest.fixture
def client(tmp_path: Path):
    settings = load_settings(environ={"TRADEWATCH_HOME": str(tmp_path)})
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        yield client


def _files(home: Path) -> list[str]:
    return sorted(p.relative_to(home).as_posix() for p in home.rglob("*"))


def test_a_home_with_nothing_built_shows_why_the_queue_is_empty(client, tmp_path):
    page = client.get("/")
    assert page.status_code == 200
    assert "Review queue" in page.text and "no analysts' database" in html.unescape(page.text)
    assert client.get("/health").text == "ok"
    assert _files(tmp_path) == []


def test_what_a_user_typed_comes_back_escaped(client):
    page = client.get("/trade", params={"id": HOSTILE})
    assert page.status_code == 404
    assert HOSTILE not in page.text
    assert "&lt;script&gt;" in page.text
    decisions = client.get("/decisions", params={"reviewer": HOSTILE})
    assert HOSTILE not in decisions.text and "&lt;script&gt;" in decisions.text


def test_a_form_from_elsewhere_is_refused_and_writes_nothing(client, tmp_path):
    answer = client.post("/decide", data={"trade_id": "t1", "action": "confirm",
                                          "reason": "looks like spoofing", "csrf": "forged"})
    assert answer.status_code == 403
    assert "did not come from this review page" in answer.text
    assert REVIEWER_COOKIE not in answer.cookies
    assert _files(tmp_path) == []


def test_only_this_machines_host_names_are_served(client):
    # A page of another site that resolves its own name to 127.0.0.1 (DNS rebinding) gets
    # nothing.
    assert client.get("/", headers={"host": "attacker.example:8090"}).status_code == 400
    assert client.get("/", headers={"host": "localhost:8090"}).status_code == 200


def test_the_chart_marks_the_trade_and_its_cluster_and_escapes_ids():
    start = datetime(2024, 3, 12, 14, 30, tzinfo=UTC)
    points = [PricePoint(f"t{i}", start + timedelta(seconds=20 * i), 100 + i % 3)
              for i in range(10)]
    points.append(PricePoint(HOSTILE, start + timedelta(seconds=205), 104.0))
    svg = price_chart(points, trade_id="t5", cluster_ids=["t5", "t6", HOSTILE],
                      bars=[BarRange(start, 99.5, 102.5)], title="AAPL <around> t5")
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert svg.count('class="flagged"') == 1 and 'data-trade-id="t5"' in svg
    assert svg.count('class="cluster"') == 2  # t6 and the hostile id; t5 is the ring
    assert HOSTILE not in svg and "&lt;script&gt;" in svg
    assert "AAPL &lt;around&gt; t5" in svg
    assert svg.count('class="bar"') == 1
    assert "No trades" in price_chart([], trade_id="t5")
