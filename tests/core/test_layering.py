"""The layering rule: the libraries know nothing of each other, of Prefect or of the settings,
only of the floor (`core`), which imports none of them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LIBRARIES = ("ingest", "ml", "expectations")
#: What each package may not import (its own modules and `core` always may).
FORBIDDEN = {
    "core": {"ingest", "ml", "expectations", "flows", "prefect"},
    **{library: {*LIBRARIES, "flows", "prefect"} - {library} for library in LIBRARIES},
}


def imported_packages(path: Path) -> set[str]:
    """The top-level packages a module imports, wherever in the module the import stands."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_package_imports_only_the_floor_and_its_own_modules(package):
    offending = {
        str(path.relative_to(REPO)): sorted(imported_packages(path) & FORBIDDEN[package])
        for path in sorted((REPO / package).rglob("*.py"))
    }

    assert {module: names for module, names in offending.items() if names} == {}
