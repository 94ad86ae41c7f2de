"""Writes reference/settings.md from the settings schema (flows.config.Settings) and the shipped
project_config.yml: every setting with its type, limits, default, shipped value and
description, the per-environment overrides, the data-home layout and the environment
variables that settings, the dbt profile and the models read. Run by mkdocs-gen-files.
"""

from __future__ import annotations

import json
import re
import types
import typing
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import annotated_types
import mkdocs_gen_files
import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from flows.config import DEFAULT_CONFIG, Paths, Settings

PAGE = "reference/settings.md"
REPO = DEFAULT_CONFIG.parent
ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
DBT_ENV_VAR = re.compile(
    r"""env_var\(\s*['"]([A-Za-z_][A-Za-z0-9_]*)['"]\s*(?:,\s*([^)]*?))?\s*\)"""
)
BOUNDS = ((annotated_types.Gt, "gt", ">"), (annotated_types.Ge, "ge", "≥"),
          (annotated_types.Lt, "lt", "<"), (annotated_types.Le, "le", "≤"))


def cell(text: object) -> str:
    """A value safe inside a Markdown table cell."""
    return " ".join(str(text).replace("|", "\\|").split())


def is_section(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def type_text(annotation: Any) -> str:
    """The type of a setting in words: `number`, `one of a, b`, `list of text`, ..."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Literal:
        return "one of " + ", ".join(f"`{a}`" for a in args)
    if origin in (types.UnionType, typing.Union):
        return " or ".join("null" if a is type(None) else type_text(a) for a in args)
    if origin is tuple:
        return f"list of {type_text(args[0])}" if args else "list"
    if origin is dict:
        return f"mapping of {type_text(args[0])} to {type_text(args[1])}"
    names = {int: "integer", float: "number", str: "text", bool: "true or false",
             Path: "path", datetime: "date-time with UTC offset", Any: "any value"}
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def limits_text(field: FieldInfo) -> str:
    limits = []
    for item in field.metadata:
        for kind, attribute, symbol in BOUNDS:
            if isinstance(item, kind):
                limits.append(f"{symbol} {getattr(item, attribute)}")
    return ", ".join(limits)


def value_text(value: Any) -> str:
    if value is None:
        return "`null`"
    if isinstance(value, str | int | float | bool | Path):
        return f"`{value}`"
    if isinstance(value, BaseModel):
        return "(section)"
    if isinstance(value, tuple | list):
        value = list(value)
    return f"`{json.dumps(value, default=str, ensure_ascii=False)}`"


def default_text(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    return value_text(field.get_default(call_default_factory=True))


def lookup(raw: Any, dotted: str) -> tuple[bool, Any]:
    """(found, value) of a dotted key in the raw YAML mapping."""
    node = raw
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def flatten(raw: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, leaf value) of a YAML mapping."""
    for key, value in (raw or {}).items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            yield from flatten(value, f"{dotted}.")
        else:
            yield dotted, value


def sections(
    model: type[BaseModel], prefix: str = ""
) -> Iterator[tuple[str, type[BaseModel], list[tuple[str, FieldInfo]]]]:
    """(dotted name, model, leaf fields) of the model and every nested section, in order."""
    leaves = [
        (f"{prefix}{name}", field)
        for name, field in model.model_fields.items()
        if not is_section(field.annotation)
    ]
    yield prefix.rstrip("."), model, leaves
    for name, field in model.model_fields.items():
        if is_section(field.annotation):
            yield from sections(field.annotation, f"{prefix}{name}.")


def settings_tables(raw: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for dotted, model, leaves in sections(Settings):
        title = f"`{dotted}`" if dotted else "Top level"
        anchor = dotted.replace(".", "-") if dotted else "top-level"
        lines += [f"## {title} {{#{anchor}}}", ""]
        if model.__doc__ and dotted:
            lines += [" ".join(model.__doc__.split()), ""]
        if not leaves:
            continue
        lines += [
            "| setting | type | default | in project_config.yml | what it is |",
            "| --- | --- | --- | --- | --- |",
        ]
        for name, field in leaves:
            kind = type_text(field.annotation)
            limits = limits_text(field)
            found, shipped = lookup(raw, name)
            lines.append(
                f"| `{name}` | {cell(kind + (f' ({limits})' if limits else ''))} "
                f"| {cell(default_text(field))} | {cell(value_text(shipped) if found else '—')} "
                f"| {cell(field.description or '')} |"
            )
        lines.append("")
        if model is Paths:
            lines += data_home_layout()
    return lines


def data_home_layout() -> list[str]:
    """The folders of the data home, from the Paths properties the code uses."""
    home = Path("/HOME")
    lines = [
        "Everything the platform keeps locally lives under the data home:",
        "",
        "| path | under the data home |",
        "| --- | --- |",
    ]
    paths = Paths(home=home)
    for name, member in vars(Paths).items():
        if isinstance(member, property):
            relative = getattr(paths, name).relative_to(home).as_posix()
            lines.append(f"| `paths.{name}` | `{relative}` |")
    return [*lines, ""]


def environment_overrides(raw: dict[str, Any], environments: dict[str, Any]) -> list[str]:
    lines = [
        "## Environments {#environments}",
        "",
        "The `environment` setting (`TRADEWATCH_ENV`) selects a block of `environments:` in "
        "project_config.yml, merged over the settings above:",
        "",
        "| environment | setting | value |",
        "| --- | --- | --- |",
    ]
    for name, block in environments.items():
        overrides = list(flatten(block))
        if not overrides:
            lines.append(f"| `{name}` | (none) | |")
        for dotted, value in overrides:
            lines.append(f"| `{name}` | `{dotted}` | {cell(value_text(value))} |")
    return [*lines, ""]


def environment_variables(raw: dict[str, Any]) -> list[str]:
    lines = [
        "## Environment variables {#environment-variables}",
        "",
        "`TRADEWATCH_CONFIG` names the settings file to read (default: the project_config.yml "
        "beside the code); `tradewatch --config FILE` does the same for one command.",
        "",
        "### Settings taken from the environment {#settings-from-the-environment}",
        "",
        "`${VAR}` and `${VAR:-default}` in project_config.yml are replaced from the "
        "environment before validation; an unset variable without a default is an error.",
        "",
        "| variable | sets | default |",
        "| --- | --- | --- |",
    ]
    for dotted, value in flatten(raw):
        for match in ENV_REF.finditer(str(value)):
            default = f"`{match.group(2)}`" if match.group(2) is not None else "(required)"
            lines.append(f"| `{match.group(1)}` | `{dotted}` | {default} |")
    lines += [
        "",
        "### Secrets {#secrets}",
        "",
        "Secrets are read from the environment only when they are needed, sent only to their "
        "provider, and never written to logs, files or error messages. The settings name the "
        "variables:",
        "",
        "| variable | named by the setting |",
        "| --- | --- |",
    ]
    settings = Settings.model_validate(_interpolated(raw))
    for _, _, leaves in sections(Settings):
        for name, _ in leaves:
            if name.endswith("_env"):
                lines.append(f"| `{_attribute(settings, name)}` | `{name}` |")
    lines += [
        "",
        "### Read by dbt {#read-by-dbt}",
        "",
        "The dbt profile (profiles.yml) and project read these with `env_var()`; "
        "`tradewatch transform` sets `TRADEWATCH_HOME` and `TRADEWATCH_DBT_TARGET` itself.",
        "",
        "| variable | default | read in |",
        "| --- | --- | --- |",
    ]
    for variable, (default, files) in dbt_env_vars().items():
        lines.append(
            f"| `{variable}` | {cell(default)} "
            f"| {cell(', '.join(f'`{f}`' for f in sorted(files)))} |"
        )
    return [*lines, ""]


def dbt_env_vars() -> dict[str, tuple[str, set[str]]]:
    """variable → (its default as written, files that read it) in profiles.yml and dbt_project."""
    found: dict[str, tuple[str, set[str]]] = {}
    files = [REPO / "profiles.yml", *sorted((REPO / "dbt_project").rglob("*.sql")),
             *sorted((REPO / "dbt_project").rglob("*.yml"))]
    for path in files:
        if any(part in ("target", "dbt_packages", "logs") for part in path.parts):
            continue
        for match in DBT_ENV_VAR.finditer(path.read_text()):
            name, default = match.group(1), (match.group(2) or "").strip()
            known_default, readers = found.get(name, ("", set()))
            readers.add(path.relative_to(REPO).as_posix())
            found[name] = (known_default or _default_text(default), readers)
    return dict(sorted(found.items()))


def _default_text(default: str) -> str:
    """A literal default as code; an expression (computed in a macro) as words."""
    if not default:
        return "(none)"
    if len(default) >= 2 and default[0] == default[-1] and default[0] in "'\"":
        return f"`{default[1:-1]}`"
    return "computed where it is read"


def _interpolated(raw: Any) -> Any:
    """The shipped values with every `${VAR:-default}` at its default (no environment read)."""
    if isinstance(raw, dict):
        return {k: _interpolated(v) for k, v in raw.items() if k != "environments"}
    if isinstance(raw, list):
        return [_interpolated(v) for v in raw]
    if isinstance(raw, str):
        return ENV_REF.sub(lambda m: m.group(2) or "", raw)
    return raw


def _attribute(settings: Settings, dotted: str) -> Any:
    value: Any = settings
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


def render() -> str:
    raw = yaml.safe_load(DEFAULT_CONFIG.read_text())
    environments = raw.pop("environments", {}) or {}
    lines = [
        "# Settings",
        "",
        "Generated from the settings schema (`flows.config.Settings`) and the shipped "
        "project_config.yml when this site was built: every setting is listed, with its "
        "default (where the schema has one), the value project_config.yml ships, and the "
        "environment variable that overrides it.",
        "",
        "Settings are read once per command, validated strictly (an unknown key or a value "
        "out of range is an error naming the setting) and frozen. `required` settings have no "
        "default: project_config.yml must give them.",
        "",
        *settings_tables(raw),
        *environment_overrides(raw, environments),
        *environment_variables(raw),
    ]
    return "\n".join(lines)


with mkdocs_gen_files.open(PAGE, "w") as page:
    page.write(render())
