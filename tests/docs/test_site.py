"""The documentation site: it builds with warnings as errors, its references list every verb,
option and setting, its runbook has an entry for every alert kind, it loads nothing from
another host, and no file of the repository points to documents outside it."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
from pydantic import BaseModel

from core.alerts import AlertKind
from flows.cli import build_parser
from flows.config import RuleSettings, Settings
from ml.datasets import FEATURE_COLUMNS

REPO = Path(__file__).resolve().parents[2]
MKDOCS = Path(sys.executable).parent / "mkdocs"
RUNBOOK = REPO / "docs" / "runbook.md"
ENTRY_PARTS = (
    "**What it means.**",
    "**How to look.**",
    "**What to do.**",
    "**How to confirm it is fixed.**",
)
LOCAL_HOSTS = {"127.0.0.1", "localhost", "[::1]"}


def build(config_dir: Path, site_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(MKDOCS), "build", "--strict", "--config-file", str(config_dir / "mkdocs.yml"),
         "--site-dir", str(site_dir)],
        cwd=config_dir, capture_output=True, text=True, check=False,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1", "DISABLE_MKDOCS_2_WARNING": "true"},
    )


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site as `make docs` builds it (strict: any warning fails)."""
    out = tmp_path_factory.mktemp("site")
    done = build(REPO, out)
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stderr[-6000:]}"
    return out


def page(site: Path, name: str) -> str:
    return (site / name).read_text()


class _Rows(HTMLParser):
    """Table rows of a page as lists of cell texts, and every element id."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.ids: set[str] = set()
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        ids = [value for name, value in attrs if name == "id" and value]
        self.ids.update(ids)
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self.rows:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def parsed(html: str) -> _Rows:
    parser = _Rows()
    parser.feed(html)
    return parser


def verb_paths(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*path, name), sub
                yield from verb_paths(sub, (*path, name))


def options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [
        action
        for action in parser._actions
        if action.option_strings and not isinstance(action, argparse._HelpAction)
    ]


def option_strings(parser: argparse.ArgumentParser) -> set[str]:
    return {option for action in options(parser) for option in action.option_strings}


def setting_names(model: type[BaseModel], prefix: str = "") -> Iterator[str]:
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from setting_names(annotation, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}"


def runbook_entries(section: str) -> dict[str, str]:
    """anchor → text of every `### title {#anchor}` entry under `## <section> {#...}`."""
    text = RUNBOOK.read_text()
    match = re.search(rf"^## {section} \{{#[\w-]+\}}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"docs/runbook.md has no '## {section}' section"
    parts = re.split(r"^### .*?\{#([\w-]+)\}\s*$", match.group(1), flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


# ------------------------------------------------------------------------------ the build


def test_the_site_builds_strictly_with_every_page_of_the_navigation(site: Path) -> None:
    for name in ("index.html", "architecture.html", "runbook.html", "guides/operator.html",
                 "guides/analyst.html", "guides/ml-engineer.html", "guides/data-engineer.html",
                 "reference/cli.html", "reference/settings.html", "reference/features.html",
                 "reference/file-contracts.html", "reference/dbt-docs.html"):
        assert (site / name).is_file(), f"{name} missing from the built site"
    assert "Runbook" in page(site, "index.html")


def test_a_broken_link_or_anchor_fails_the_build(tmp_path: Path) -> None:
    copy = tmp_path / "repo"
    copy.mkdir()
    shutil.copy(REPO / "mkdocs.yml", copy / "mkdocs.yml")
    shutil.copytree(REPO / "docs", copy / "docs")
    with (copy / "docs" / "index.md").open("a") as index:
        index.write("\n[gone](no-such-page.md) and [nowhere](runbook.md#no-such-entry)\n")
    done = build(copy, tmp_path / "site")
    assert done.returncode != 0
    assert "no-such-page.md" in done.stderr
    assert "no-such-entry" in done.stderr


def test_the_site_loads_nothing_from_another_host(site: Path) -> None:
    external: list[str] = []
    url = re.compile(
        r"""(?:src|href|srcset|action|poster|data-src)\s*=\s*["']?\s*((?:https?:)?//[^"'\s>]+)"""
    )
    css_url = re.compile(r"""(?:url\(\s*["']?|@import\s+["'])((?:https?:)?//[^"')\s]+)""")
    for path in sorted(site.rglob("*")):
        if path.suffix not in (".html", ".css") or not path.is_file():
            continue
        text = path.read_text(errors="replace")
        found = url.findall(text) if path.suffix == ".html" else []
        found += css_url.findall(text)
        for link in found:
            host = re.sub(r"^(?:https?:)?//", "", link).split("/")[0].split(":")[0]
            if host not in LOCAL_HOSTS and f"[{host}]" not in LOCAL_HOSTS:
                external.append(f"{path.relative_to(site)}: {link}")
    assert not external, "pages reference other hosts:\n" + "\n".join(external[:20])


# ------------------------------------------------------------------------------ references


def test_the_cli_reference_lists_every_verb_and_every_option(site: Path) -> None:
    html = page(site, "reference/cli.html")
    ids = parsed(html).ids
    parser = build_parser()
    verbs = list(verb_paths(parser))
    assert {"train", "collect-finnhub", "ui"} <= {"-".join(p) for p, _ in verbs}
    starts = {}
    for path, _ in verbs:
        anchor = "-".join(path)
        assert anchor in ids, f"`tradewatch {' '.join(path)}` has no section in the CLI reference"
        starts[anchor] = html.index(f'id="{anchor}"')
    ordered = sorted(starts.values()) + [len(html)]
    for path, sub in verbs:
        start = starts["-".join(path)]
        section = html[start:ordered[ordered.index(start) + 1]]
        for option in option_strings(sub):
            assert option in section, f"`tradewatch {' '.join(path)} {option}` is not documented"
        for action in options(sub):
            assert action.help, (
                f"`tradewatch {' '.join(path)} {action.option_strings[0]}` has no help text: "
                "the reference and --help cannot say what it does"
            )
    for option in option_strings(parser):
        assert option in html


def test_the_settings_reference_lists_and_explains_every_setting(site: Path) -> None:
    table = [row for row in parsed(page(site, "reference/settings.html")).rows if row]
    rows = {row[0]: row for row in table}
    names = list(setting_names(Settings))
    assert {"drift.psi_threshold", "training.threshold.rule", "paths.home"} <= set(names)
    for name in names:
        assert name in rows, f"setting {name} is missing from the settings reference"
        assert rows[name][-1], f"setting {name} has no description (give its field a docstring)"
    # The environment variables that override settings are listed with what they set.
    assert ["TRADEWATCH_HOME", "paths.home", "data"] in table
    assert ["TRADEWATCH_ENV", "environment", "dev"] in table


def test_the_feature_reference_defines_every_model_input(site: Path) -> None:
    html = page(site, "reference/features.html")
    ids = parsed(html).ids
    for column in FEATURE_COLUMNS:
        assert column in ids, f"model input {column} has no definition in the feature reference"
    # The definitions are the dbt docs blocks, rendered (no Jinja left over).
    assert "Wilder" in html and "{{" not in html


def test_the_feature_reference_documents_the_rule_deck_and_its_thresholds(site: Path) -> None:
    html = page(site, "reference/features.html")
    assert {"rule-deck", "rule-thresholds", "rule-columns", "rule-unit-tests"} <= parsed(html).ids
    for rule in ("price_spike", "volume_burst", "wash_cluster", "pump_and_dump",
                 "intensity_burst"):
        # its column and its unit test
        assert f"rule_{rule}" in html and f"gold_rule_flags_{rule}" in html, rule
    # every threshold with its default and its setting
    for name in RuleSettings().dbt_vars():
        assert name in html and f"rules.{name.removeprefix('rule_')}" in html, name


def test_the_file_contracts_list_every_file_dbt_reads(site: Path) -> None:
    ids = parsed(page(site, "reference/file-contracts.html")).ids
    assert {"landing-trades", "landing-bars", "monitoring-audit", "scoring-scores"} <= ids


# ------------------------------------------------------------------------------ runbook


def test_the_runbook_has_an_entry_for_every_alert_kind(site: Path) -> None:
    entries = runbook_entries("Alerts")
    kinds = {str(kind) for kind in AlertKind}
    missing = sorted(kinds - entries.keys())
    assert not missing, (
        f"alert kind(s) {missing} have no runbook entry: add '### <kind> {{#<kind>}}' under "
        "'## Alerts' in docs/runbook.md"
    )
    unknown = sorted(entries.keys() - kinds)
    assert not unknown, f"runbook entries {unknown} name no AlertKind member"
    for kind, text in entries.items():
        for part in ENTRY_PARTS:
            assert part in text, f"runbook entry {kind} lacks {part}"
    assert kinds <= parsed(page(site, "runbook.html")).ids


def test_the_runbook_covers_disk_full_and_audit_log_damage(site: Path) -> None:
    entries = runbook_entries("Other failures")
    assert {"disk-full", "audit-log-damage"} <= entries.keys()
    for name in ("disk-full", "audit-log-damage"):
        for part in ENTRY_PARTS:
            assert part in entries[name], f"runbook entry {name} lacks {part}"
    assert {"disk-full", "audit-log-damage"} <= parsed(page(site, "runbook.html")).ids


# ------------------------------------------------------------------------------ the repository


def test_no_tracked_file_names_documents_outside_the_repository() -> None:
    names = ("DESIGN", "STACK", "STYLE")
    pattern = re.compile(rf"\b(?:{'|'.join(names)})\.md\b".encode())
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True
    ).stdout.split(b"\0")
    offenders = []
    for name in filter(None, listed):
        path = REPO / name.decode()
        if path.is_file() and pattern.search(path.read_bytes()):
            offenders.append(name.decode())
    assert not offenders, (
        f"{offenders} point to files that are not in the repository; point to docs/ instead"
    )
