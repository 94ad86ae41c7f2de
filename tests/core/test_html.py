"""The page helper: escaped text, well-formed and self-contained pages, tables and figures."""

from __future__ import annotations

import base64
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from core.html import (
    Cell,
    card,
    clip,
    empty,
    escape,
    figure,
    heatmap,
    ident,
    iso,
    new_figure,
    number,
    page,
    png,
    table,
    timestamp,
)


def parse(document: str) -> ET.Element:
    assert document.startswith("<!DOCTYPE html>\n")
    return ET.fromstring(document.removeprefix("<!DOCTYPE html>\n"))


def test_text_from_the_data_is_escaped_everywhere():
    hostile = '<script>alert("x")</script> & \'AAPL\''
    document = page(hostile, [
        f"<p>{escape(hostile)}</p>",
        table([hostile], [[hostile]]),
        figure("iVBORw0KGgo=", hostile),
    ])

    root = parse(document)
    assert "<script" not in document
    assert root.findtext("head/title") == hostile
    assert [cell.text for cell in root.iter("td")] == [hostile]
    assert root.find(".//img").get("alt") == hostile


def test_a_table_aligns_numbers_and_carries_cell_and_row_classes():
    root = parse(page("t", [table(
        ["feature", "psi", "drifted"],
        [["rsi_14", "0.3100", Cell('<span class="yes">yes</span>', markup=True)],
         ["volume", Cell("0.0100", css="ok"), "no"]],
        numeric={1},
        row_classes=["drifted", None],
    )]))

    header, *body = root.iter("tr")
    assert [th.get("class") for th in header] == [None, "num", None]
    assert body[0].get("class") == "drifted"
    assert body[0][1].get("class") == "num"
    assert body[0][2].find("span").text == "yes"
    assert body[1].get("class") is None and body[1][1].get("class") == "num ok"


def test_a_figure_embeds_its_png_and_nothing_reaches_the_network():
    fig, axes = new_figure(4, 2)
    axes.bar([0, 1], [0.4, 0.6])
    image = png(fig)

    document = page("plots", [figure(image, "shares", element_id="plot-a", css="drift-plot")])

    root = parse(document)
    shown = root.find(".//figure[@id='plot-a']")
    assert shown.get("class") == "drift-plot" and shown.findtext("figcaption") == "shares"
    data = base64.b64decode(shown.find("img").get("src").removeprefix("data:image/png;base64,"))
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and b"http" not in data
    assert not re.search(r"https?://|<link|<script|url\(", document)


def test_cell_values_show_a_dash_for_what_is_missing_and_utc_for_moments():
    assert [number(1234.5678), number(1234.5, 0), number(None), number(float("nan"))] == [
        "1,234.568", "1,234", "–", "–"]
    moment = datetime(2024, 3, 8, 14, 5, 9, tzinfo=UTC)
    assert timestamp(moment) == "2024-03-08 14:05 UTC"
    assert timestamp(pd.Timestamp("2024-03-08 09:05:09-05:00"), seconds=True) == (
        "2024-03-08 14:05:09 UTC")
    assert timestamp(pd.Timestamp("2024-03-08 14:05")) == "2024-03-08 14:05 UTC"  # naive is UTC
    assert [timestamp(None), timestamp(pd.NaT), iso(pd.NaT)] == ["–", "–", "–"]
    assert iso(moment) == "2024-03-08T14:05:09+00:00"
    assert iso(moment, milliseconds=True) == "2024-03-08T14:05:09.000Z"
    assert clip("x" * 10, limit=4) == "xxx…" and clip(None) == "" and clip(float("nan")) == ""


def test_ids_notes_and_cards_are_escaped_markup():
    document = page("parts", [
        table(["run id"], [[ident("<run>")]]), empty("run `x` <now>"),
        card("drift <latest>", "2 of 3", "detail & more", "bad"),
    ])

    root = parse(document)
    assert root.find(".//td/span").get("class") == "id"
    assert root.find(".//td/span").text == "<run>"
    assert root.find(".//p").get("class") == "empty"
    assert root.find(".//p").text == "No data yet. run `x` <now>"
    shown = root.find(".//div")
    assert shown.get("class") == "card bad"
    assert [part.text for part in shown] == ["drift <latest>", "2 of 3", "detail & more"]


def test_a_heatmap_is_a_png_of_the_grid():
    grid = np.array([[0.0, 3.0], [np.nan, 1.0]])

    image = heatmap(grid, ["AAPL", "MSFT"], ["14:00", "15:00"], colormap="Reds", vmax=3,
                    scale_label="flagged", xlabel="hour", marks=[(0, 1)], counts=True,
                    integer_scale=True)

    data = base64.b64decode(image)
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and b"http" not in data
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width == 1000 and height == int(round((0.26 * 2 + 1.9) * 100))
