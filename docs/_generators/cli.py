"""Writes reference/cli.md from the parser `tradewatch` itself uses (flows.cli.build_parser).

Every verb and sub-verb gets a section whose anchor is its path (`collect-finnhub`), with its
help line, its usage and a table of its options, so the page lists exactly what the command
line accepts. Run by mkdocs-gen-files at build time.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator

import mkdocs_gen_files

from flows.cli import build_parser
from flows.serve import read_deployments

PAGE = "reference/cli.md"
#: argparse wraps usage lines at the terminal width: fix it, so the page is the same everywhere.
WIDTH = "100"


def cell(text: object) -> str:
    """A value safe inside a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def verbs(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], str, argparse.ArgumentParser]]:
    """(path, help, parser) of every verb and sub-verb, depth first, in declaration order."""
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
        seen: set[int] = set()
        for name, sub in action.choices.items():
            if id(sub) in seen:  # an alias of a verb already listed
                continue
            seen.add(id(sub))
            yield (*path, name), helps.get(name, ""), sub
            yield from verbs(sub, (*path, name))


def options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """The parser's own options and arguments (not help, not the sub-verb choice)."""
    return [
        action
        for action in parser._actions
        if not isinstance(action, argparse._HelpAction | argparse._SubParsersAction)
    ]


def invocation(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    """How the option is written, as argparse's own help shows it (`--seed SEED`)."""
    return argparse.HelpFormatter(parser.prog)._format_action_invocation(action)


def default_of(action: argparse.Action) -> str:
    if action.default in (None, argparse.SUPPRESS) or isinstance(
        action, argparse._StoreTrueAction | argparse._StoreFalseAction
    ):
        return ""
    return f"`{action.default}`"


def options_table(parser: argparse.ArgumentParser) -> list[str]:
    rows = options(parser)
    if not rows:
        return ["No options.", ""]
    lines = ["| option | default | what it does |", "| --- | --- | --- |"]
    for action in rows:
        lines.append(
            f"| `{cell(invocation(parser, action))}` | {cell(default_of(action))} "
            f"| {cell(action.help or '')} |"
        )
    return [*lines, ""]


def usage(parser: argparse.ArgumentParser) -> list[str]:
    text = parser.format_usage().strip().removeprefix("usage: ")
    return ["```", text, "```", ""]


def schedule_text(schedules: tuple[dict, ...]) -> str:
    texts = []
    for entry in schedules:
        if "cron" in entry:
            texts.append(f"cron `{entry['cron']}` ({entry.get('timezone', 'UTC')})")
        elif "interval" in entry:
            texts.append(f"every {float(entry['interval']):g} s")
    return ", ".join(texts) or "on demand"


def deployments() -> list[str]:
    lines = [
        "## Scheduled deployments {#deployments}",
        "",
        "`tradewatch serve` serves every deployment of `prefect.yaml` with its schedule "
        "(read from the file when this site was built):",
        "",
        "| deployment | flow | schedule | does |",
        "| --- | --- | --- | --- |",
    ]
    for spec in read_deployments():
        lines.append(
            f"| `{spec.name}` | `{spec.entrypoint}` | {cell(schedule_text(spec.schedules))} "
            f"| {cell(spec.description)} |"
        )
    return [*lines, ""]


def render() -> str:
    os.environ["COLUMNS"] = WIDTH
    parser = build_parser()
    lines = [
        "# Command line",
        "",
        "Generated from the parser of `tradewatch` (`flows.cli.build_parser`) when this site "
        "was built: it lists every verb and every option the command accepts.",
        "",
        "Every verb exits non-zero with one line naming the error on bad input or a failed "
        "step (`tradewatch: <ErrorType>: <what happened>`); a usage error exits with code 2. "
        "`tradewatch --help` and `tradewatch <verb> --help` print the same text.",
        "",
        "## Options of every verb {#global-options}",
        "",
        *usage(parser),
        *options_table(parser),
        "## Verbs",
        "",
        "| verb | does |",
        "| --- | --- |",
    ]
    found = list(verbs(parser))
    for path, help_text, _ in found:
        anchor = "-".join(path)
        lines.append(f"| [`{' '.join(path)}`](#{anchor}) | {cell(help_text)} |")
    lines.append("")
    for path, help_text, sub in found:
        anchor = "-".join(path)
        level = "#" * (1 + len(path))
        lines += [f"{level} tradewatch {' '.join(path)} {{#{anchor}}}", ""]
        if help_text:
            lines += [f"{help_text}.", ""]
        lines += [*usage(sub), *options_table(sub)]
    lines += deployments()
    return "\n".join(lines)


with mkdocs_gen_files.open(PAGE, "w") as page:
    page.write(render())
