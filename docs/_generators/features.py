"""Writes reference/features.md from the dbt project: the columns of gold_trade_features as its
YAML declares them, each described by the `{% docs %}` blocks the dbt docs use (the formulas live
in dbt_project/models/gold/_gold__features_docs.md and are written once), and the unit tests
that pin the formulas; then the surveillance rule deck (gold_rule_flags) the same way, with its
thresholds' defaults from dbt_project.yml. Run by mkdocs-gen-files at build time.
"""

from __future__ import annotations

import re
from typing import Any

import jinja2
import mkdocs_gen_files
import yaml

from flows.transform import DBT_PROJECT_DIR
from ml.datasets import FEATURE_COLUMNS

PAGE = "reference/features.md"
MODEL = "gold_trade_features"
RULES_MODEL = "gold_rule_flags"
DBT = DBT_PROJECT_DIR
#: dbt's docs block: {% docs name %} ... {% enddocs %} (whitespace control allowed).
DOCS_BLOCK = re.compile(
    r"\{%-?\s*docs\s+(\w+)\s*-?%\}(.*?)\{%-?\s*enddocs\s*-?%\}", re.DOTALL
)


def docs_blocks() -> dict[str, str]:
    """Every docs block of the project's docs paths, by name."""
    project = yaml.safe_load((DBT / "dbt_project.yml").read_text())
    blocks: dict[str, str] = {}
    for folder in project.get("docs-paths") or project.get("model-paths") or ["models"]:
        for path in sorted((DBT / folder).rglob("*.md")):
            for name, text in DOCS_BLOCK.findall(path.read_text()):
                blocks[name] = text.strip()
    return blocks


def model_yaml(name: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The model's YAML entry and the unit tests written for it."""
    entry, tests = None, []
    for path in sorted((DBT / "models").rglob("*.yml")):
        document = yaml.safe_load(path.read_text()) or {}
        for model in document.get("models") or []:
            if model.get("name") == name:
                entry = model
        tests += [t for t in document.get("unit_tests") or [] if t.get("model") == name]
    if entry is None:
        raise RuntimeError(f"no YAML entry for model {name} under {DBT / 'models'}")
    return entry, tests


def rendered(text: str, blocks: dict[str, str]) -> str:
    """A description with its `{{ doc("...") }}` calls replaced, as dbt renders it."""

    def doc(name: str) -> str:
        if name not in blocks:
            raise RuntimeError(f'{MODEL}: doc("{name}") names no docs block')
        return blocks[name]

    return jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(text).render(doc=doc)


def unit_test_lines(model: str, unit_tests: list[dict[str, Any]]) -> list[str]:
    """The bullet list of a model's unit tests (name and description)."""
    lines = []
    for test in unit_tests:
        description = " ".join(str(test.get("description") or "").split())
        lines += [f"- **{test['name']}** — {description}"]
    return lines


def render_rules(blocks: dict[str, str]) -> list[str]:
    """The rule deck: gold_rule_flags' columns, its thresholds (the rule_* vars) and tests."""
    entry, unit_tests = model_yaml(RULES_MODEL)
    project = yaml.safe_load((DBT / "dbt_project.yml").read_text())
    thresholds = {k: v for k, v in project["vars"].items() if k.startswith("rule_")}
    lines = [
        "## The rule deck {#rule-deck}",
        "",
        rendered(entry.get("description") or "", blocks),
        "",
        "### Thresholds {#rule-thresholds}",
        "",
        "The defaults are the `rule_*` vars of `dbt_project/dbt_project.yml`; set one in the "
        "`rules` block of `project_config.yml` by its name without the prefix (see "
        "[rules settings](settings.md#rules)); the next `tradewatch transform` applies it.",
        "",
        "| var | default | setting |",
        "| --- | --- | --- |",
    ]
    for name, value in thresholds.items():
        lines.append(f"| `{name}` | `{value}` | `rules.{name.removeprefix('rule_')}` |")
    lines += ["", "### Columns of gold_rule_flags {#rule-columns}", "",
              "| column | type | definition |", "| --- | --- | --- |"]
    for column in entry.get("columns") or []:
        text = " ".join(rendered(column.get("description") or "", blocks).split())
        lines.append(f"| `{column['name']}` | `{column.get('data_type', '')}` | "
                     f"{text.replace('|', '/')} |")
    lines += ["", "### Executable definitions of the rules {#rule-unit-tests}", "",
              f"Each rule is pinned by a dbt unit test (`dbt build --select {RULES_MODEL}` "
              "runs them):", ""]
    return lines + unit_test_lines(RULES_MODEL, unit_tests) + [""]


def render() -> str:
    blocks = docs_blocks()
    entry, unit_tests = model_yaml(MODEL)
    columns = entry.get("columns") or []
    lines = [
        "# Gold features",
        "",
        f"Generated from the dbt project when this site was built: the columns of `{MODEL}` as "
        "its YAML declares them, each with the definition the dbt docs show (the `{% docs %}` "
        "blocks of `dbt_project/models/gold/_gold__features_docs.md`, written once and used "
        "everywhere). The window lengths are settings: see "
        "[features settings](settings.md#features). The surveillance rules that read these "
        "features follow: [the rule deck](#rule-deck).",
        "",
        "## The table {#the-table}",
        "",
        rendered(entry.get("description") or "", blocks),
        "",
        "| column | type | model input |",
        "| --- | --- | --- |",
    ]
    for column in columns:
        name = column["name"]
        model_input = "yes" if name in FEATURE_COLUMNS else ""
        lines.append(
            f"| [`{name}`](#{name}) | `{column.get('data_type', '')}` | {model_input} |"
        )
    lines += ["", "## Columns {#columns}", ""]
    for column in columns:
        name = column["name"]
        lines += [
            f"### {name} {{#{name}}}",
            "",
            f"`{column.get('data_type', '')}`"
            + (" · model input" if name in FEATURE_COLUMNS else ""),
            "",
            rendered(column.get("description") or "", blocks),
            "",
        ]
    if unit_tests:
        lines += [
            "## Executable definitions {#unit-tests}",
            "",
            "Each formula is pinned by a dbt unit test on hand-computed rows "
            f"(`dbt build --select {MODEL}` runs them):",
            "",
        ]
        lines += unit_test_lines(MODEL, unit_tests)
        lines.append("")
    lines += render_rules(blocks)
    return "\n".join(lines)


with mkdocs_gen_files.open(PAGE, "w") as page:
    page.write(render())
