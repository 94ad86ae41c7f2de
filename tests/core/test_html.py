"""The page helper: escaped text, well-formed and self-contained pages, tables and figures."""

from __future__ import annotations

import base64
import re
import xml.etree.ElementTree as ET

from core.html import Cell, escape, figure, new_figure, page, png, table


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
