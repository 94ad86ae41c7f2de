"""Writes reference/file-contracts.md from the dbt sources: every file Python writes and dbt
reads, with its folder under the data home, its name pattern, its format and its columns, as the
sources' YAML declares them (dbt's `landed_files` macro reads exactly these declarations).
Run by mkdocs-gen-files at build time.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jinja2
import mkdocs_gen_files
import yaml

from flows.transform import DBT_PROJECT_DIR

PAGE = "reference/file-contracts.md"
DBT = DBT_PROJECT_DIR
DOCS_BLOCK = re.compile(
    r"\{%-?\s*docs\s+(\w+)\s*-?%\}(.*?)\{%-?\s*enddocs\s*-?%\}", re.DOTALL
)


def cell(text: object) -> str:
    return " ".join(str(text).replace("|", "\\|").split())


def docs_blocks() -> dict[str, str]:
    blocks: dict[str, str] = {}
    for path in sorted((DBT / "models").rglob("*.md")):
        for name, text in DOCS_BLOCK.findall(path.read_text()):
            blocks[name] = text.strip()
    return blocks


def rendered(text: str, blocks: dict[str, str]) -> str:
    return jinja2.Environment().from_string(text).render(doc=lambda name: blocks[name])


def source_tables() -> list[tuple[str, str, dict[str, Any], Path]]:
    """(source name, source description, table entry, YAML file) of every file-backed source."""
    found = []
    for path in sorted((DBT / "models").rglob("*.yml")):
        document = yaml.safe_load(path.read_text()) or {}
        for source in document.get("sources") or []:
            for table in source.get("tables") or []:
                meta = (table.get("config") or {}).get("meta") or table.get("meta") or {}
                if "landed_path" in meta:
                    found.append((source["name"], source.get("description", ""), table, path))
    return found


def render() -> str:
    blocks = docs_blocks()
    lines = [
        "# File contracts",
        "",
        "Python never writes a warehouse table: it writes files under the data home, and dbt "
        "reads them as sources. Generated from the dbt sources' YAML when this site was built, "
        "this page lists every such file. The YAML is the contract: dbt's `landed_files` macro "
        "reads the folder, pattern, format and columns from it, so what is documented here is "
        "what dbt reads.",
        "",
        "Rules every writer follows:",
        "",
        "- A file appears whole or not at all: it is written under a name starting with `.`, "
        "flushed, and renamed when complete. Readers skip names starting with `.`.",
        "- Newline-delimited JSON columns are read as text and typed in silver (a value that "
        "does not cast is quarantined, not lost); parquet columns keep their types.",
        "- A folder that does not exist yet reads as an empty, typed table.",
        "- Files that are appended in place (the audit log, the simulator's ground truth) may "
        "end in a torn line after a crash: dbt skips it (`skip bad lines`).",
        "",
        "| source table | folder under the data home | files | format |",
        "| --- | --- | --- | --- |",
    ]
    tables = source_tables()
    for source, _, table, _ in tables:
        meta = (table.get("config") or {}).get("meta") or table.get("meta") or {}
        anchor = f"{source}-{table['name']}"
        lines.append(
            f"| [`{source}.{table['name']}`](#{anchor}) | `{meta['landed_path']}/` "
            f"| `{meta.get('file_glob', '')}` | {meta.get('file_format', '')} |"
        )
    lines.append("")
    for source, _, table, path in tables:
        meta = (table.get("config") or {}).get("meta") or table.get("meta") or {}
        anchor = f"{source}-{table['name']}"
        lines += [
            f"## {source}.{table['name']} {{#{anchor}}}",
            "",
            " ".join(rendered(table.get("description") or "", blocks).split()),
            "",
            f"- Folder: `<data home>/{meta['landed_path']}/`, files matching "
            f"`{meta.get('file_glob', '')}` (searched in sub-folders), format "
            f"{meta.get('file_format', '')}.",
            f"- Declared in `{path.relative_to(DBT.parent).as_posix()}`.",
        ]
        if meta.get("skip_bad_lines"):
            lines.append("- Appended in place: a torn last line is skipped by dbt.")
        lines += ["", "| column | type | meaning |", "| --- | --- | --- |"]
        for column in table.get("columns") or []:
            lines.append(
                f"| `{column['name']}` | `{column.get('data_type', '')}` "
                f"| {cell(rendered(column.get('description') or '', blocks))} |"
            )
        lines.append("")
    return "\n".join(lines)


with mkdocs_gen_files.open(PAGE, "w") as page:
    page.write(render())
