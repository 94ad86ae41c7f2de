"""The monitoring page as a tree (a strict HTML parser), and its structure: what a reader sees
in each section (headings, tables, figures, key sentences), for comparing two renderings."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

VOID = {"meta", "img", "br", "hr", "link", "input", "col", "area", "base", "source", "wbr"}


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


def page_structure(root: Node, *, masked: tuple[str, ...] = ()) -> dict[str, Any]:
    """The page as a reader sees it: status cards, then per section its title, sub-headings,
    paragraphs (class and text), figures (captions) and tables (header and cell texts).

    Cells of the columns named in `masked` (values that differ on every run, like MLflow run
    ids) are replaced by "*"; the rows still count.
    """
    cards = {
        card.children[0].text(): [part.text() for part in card.children[1:]]
        for card in root.find_all("div") if "card " in card.attrs.get("class", "")
    }
    sections = {}
    for section in root.find_all("section"):
        tables = []
        for rows in section.tables():
            header = rows[0]
            hidden = {i for i, name in enumerate(header) if name in masked}
            tables.append({
                "header": header,
                "rows": [["*" if i in hidden else cell for i, cell in enumerate(row)]
                         for row in rows[1:]],
            })
        sections[section.attrs["id"]] = {
            "title": section.find_all("h2")[0].text(),
            "headings": [h.text() for h in section.find_all("h3")],
            "paragraphs": [[p.attrs.get("class", ""), p.text()] for p in section.find_all("p")],
            "figures": [f.find_all("figcaption")[0].text() for f in section.find_all("figure")],
            "tables": tables,
        }
    return {"cards": cards, "sections": sections}


def digits_in(text: str) -> list[str]:
    """The figures a sentence states (numbers, percentages, signed differences), in order."""
    return re.findall(r"[-+]?\d[\d,]*(?:\.\d+)?%?", text)
